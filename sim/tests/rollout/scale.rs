//! Many workloads at once.

use std::time::Duration;

use watch_cluster_sim::Kind;
use watch_cluster_sim::controllers::ControllerConfig;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_deployments_roll_out_promptly() {
    const N: usize = 1000;
    const UPDATED: usize = 100;
    let sim = Sim::start(ControllerConfig::fast());
    let long = Duration::from_secs(60);
    for i in 0..N {
        let d = deployment(&format!("d{i}"), 2, "app:1");
        sim.store.create(Kind::Deployment, d).unwrap();
    }
    for i in 0..N {
        let name = format!("d{i}");
        sim.wait_longer(
            long,
            Kind::Deployment,
            &name,
            "complete",
            deployment_complete,
        )
        .await;
    }
    for i in 0..UPDATED {
        sim.set_image(Kind::Deployment, &format!("d{i}"), "app:2");
    }
    for i in 0..UPDATED {
        let name = format!("d{i}");
        sim.wait_longer(long, Kind::Deployment, &name, "updated", |d| {
            deployment_complete(d) && revision(d) == "2"
        })
        .await;
    }
}
