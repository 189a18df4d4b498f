//! Deployment rollouts: condition sequence, surge, revisions, rollback, deadlines, pause,
//! Recreate.

use serde_json::json;
use watch_cluster_sim::controllers::{ControllerConfig, Outcome};
use watch_cluster_sim::{ChangeType, Kind};

use super::*;

#[tokio::test]
async fn deployment_rollout_surges_and_reports_the_kubernetes_condition_sequence() {
    let sim = Sim::start(ControllerConfig::fast());
    sim.store
        .create(Kind::Deployment, deployment("web", 3, "app:1"))
        .unwrap();
    let d = sim
        .wait_for(Kind::Deployment, "web", "first rollout complete", |d| {
            deployment_complete(d) && progressing(d).1 == "NewReplicaSetAvailable"
        })
        .await;
    assert_eq!(revision(&d), "1");

    let mut rx = sim.store.subscribe();
    sim.set_image(Kind::Deployment, "web", "app:2");
    let d = sim
        .wait_for(Kind::Deployment, "web", "second rollout complete", |d| {
            deployment_complete(d)
                && progressing(d).1 == "NewReplicaSetAvailable"
                && revision(d) == "2"
        })
        .await;
    let (mut reasons, mut max_replicas) = (Vec::new(), 0);
    record(&mut rx, "web", &mut reasons, &mut max_replicas);
    assert_eq!(
        reasons.first().map(String::as_str),
        Some("NewReplicaSetAvailable"),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"NewReplicaSetCreated".to_string()),
        "{reasons:?}"
    );
    let created = reasons
        .iter()
        .position(|r| r == "NewReplicaSetCreated")
        .unwrap();
    assert_eq!(
        reasons[created + 1..],
        ["ReplicaSetUpdated", "NewReplicaSetAvailable"],
        "{reasons:?}"
    );
    assert_eq!(
        max_replicas, 4,
        "maxSurge 25% of 3 rounds up to one extra pod"
    );

    for key in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        assert_eq!(count(&d, key), 3, "{key}");
    }
    assert!(
        d["status"].get("unavailableReplicas").is_none(),
        "zero counts are omitted"
    );
    let available = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .unwrap();
    assert_eq!(
        (available["status"].as_str(), available["reason"].as_str()),
        (Some("True"), Some("MinimumReplicasAvailable"))
    );

    let rss = sim.store.list(Kind::ReplicaSet, Some(NS));
    assert_eq!(rss.len(), 2);
    let new_rs = rss.iter().find(|rs| rs["spec"]["replicas"] == 3).unwrap();
    let hash = new_rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(new_rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(revision(new_rs), "2");
    let pods = sim.pods(("app", "web"));
    assert_eq!(pods.len(), 3, "old pods are gone");
    for p in &pods {
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash);
        assert_eq!(p["status"]["phase"], "Running");
        let image_id = p["status"]["containerStatuses"][0]["imageID"]
            .as_str()
            .unwrap();
        assert!(
            image_id.starts_with("docker.io/library/app@sha256:"),
            "{image_id}"
        );
    }
}

#[tokio::test]
async fn rollback_to_an_old_template_reuses_its_replica_set_with_the_next_revision() {
    let sim = Sim::start(ControllerConfig::fast());
    sim.store
        .create(Kind::Deployment, deployment("web", 2, "app:1"))
        .unwrap();
    sim.wait_for(
        Kind::Deployment,
        "web",
        "rev 1 complete",
        deployment_complete,
    )
    .await;
    sim.set_image(Kind::Deployment, "web", "app:2");
    sim.wait_for(Kind::Deployment, "web", "rev 2 complete", |d| {
        deployment_complete(d) && revision(d) == "2"
    })
    .await;
    sim.set_image(Kind::Deployment, "web", "app:1");
    let d = sim
        .wait_for(Kind::Deployment, "web", "rev 3 complete", |d| {
            deployment_complete(d)
                && revision(d) == "3"
                && progressing(d).1 == "NewReplicaSetAvailable"
        })
        .await;
    let rss = sim.store.list(Kind::ReplicaSet, Some(NS));
    assert_eq!(rss.len(), 2, "no third ReplicaSet");
    let active = rss.iter().find(|rs| rs["spec"]["replicas"] == 2).unwrap();
    assert_eq!(revision(active), "3");
    assert_eq!(
        active["spec"]["template"]["spec"]["containers"][0]["image"],
        "app:1"
    );
    assert_eq!(count(&d, "availableReplicas"), 2);
}

#[tokio::test]
async fn stuck_rollout_exceeds_its_progress_deadline_and_keeps_old_pods() {
    let config = ControllerConfig::fast();
    config
        .control
        .set_outcome_for_image("app:2", Outcome::Stuck);
    let sim = Sim::start(config);
    let mut d = deployment("web", 2, "app:1");
    d["spec"]["progressDeadlineSeconds"] = json!(50); // 0.5 s at time scale 0.01
    sim.store.create(Kind::Deployment, d).unwrap();
    sim.wait_for(
        Kind::Deployment,
        "web",
        "rev 1 complete",
        deployment_complete,
    )
    .await;
    sim.set_image(Kind::Deployment, "web", "app:2");
    let d = sim
        .wait_for(Kind::Deployment, "web", "deadline exceeded", |d| {
            progressing(d) == ("False".to_string(), "ProgressDeadlineExceeded".to_string())
        })
        .await;
    assert_eq!(count(&d, "availableReplicas"), 2, "old pods keep serving");
    assert_eq!(count(&d, "updatedReplicas"), 1);
    let new_pod = sim
        .pods(("app", "web"))
        .into_iter()
        .find(|p| p["spec"]["containers"][0]["image"] == "app:2")
        .unwrap();
    assert_eq!(new_pod["status"]["phase"], "Pending");
    assert_eq!(
        new_pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
}

#[tokio::test]
async fn never_ready_pods_run_but_the_deployment_times_out() {
    let config = ControllerConfig::fast();
    config
        .control
        .set_outcome(Kind::Deployment, NS, "web", Outcome::NeverReady);
    let sim = Sim::start(config);
    let mut d = deployment("web", 1, "app:1");
    d["spec"]["progressDeadlineSeconds"] = json!(30);
    sim.store.create(Kind::Deployment, d).unwrap();
    let d = sim
        .wait_for(Kind::Deployment, "web", "deadline exceeded", |d| {
            progressing(d).1 == "ProgressDeadlineExceeded"
        })
        .await;
    assert_eq!(count(&d, "availableReplicas"), 0);
    let pod = &sim.pods(("app", "web"))[0];
    assert_eq!(pod["status"]["phase"], "Running");
    let ready = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
}

#[tokio::test]
async fn paused_deployment_makes_no_progress_and_zero_replicas_have_no_pods() {
    let sim = Sim::start(ControllerConfig::fast());
    sim.store
        .create(Kind::Deployment, deployment("web", 1, "app:1"))
        .unwrap();
    sim.store
        .create(Kind::Deployment, deployment("none", 0, "app:1"))
        .unwrap();
    sim.wait_for(
        Kind::Deployment,
        "web",
        "rev 1 complete",
        deployment_complete,
    )
    .await;
    let none = sim
        .wait_for(Kind::Deployment, "none", "complete", |d| {
            progressing(d).1 == "NewReplicaSetAvailable"
        })
        .await;
    assert!(sim.pods(("app", "none")).is_empty());
    assert!(none["status"].get("replicas").is_none());

    let mut d = sim.get(Kind::Deployment, "web");
    d["spec"]["paused"] = json!(true);
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:2");
    sim.store.update(Kind::Deployment, d).unwrap();
    let d = sim
        .wait_for(Kind::Deployment, "web", "paused observed", |d| {
            progressing(d).1 == "DeploymentPaused"
                && d["status"]["observedGeneration"] == d["metadata"]["generation"]
        })
        .await;
    assert_eq!(count(&d, "updatedReplicas"), 0);
    assert_eq!(
        sim.store
            .list(Kind::ReplicaSet, Some(NS))
            .iter()
            .filter(|r| r["metadata"]["name"].as_str().unwrap().starts_with("web-"))
            .count(),
        1
    );
}

#[tokio::test]
async fn recreate_removes_old_pods_before_starting_new_ones() {
    let sim = Sim::start(ControllerConfig::fast());
    let mut d = deployment("web", 2, "app:1");
    d["spec"]["strategy"] = json!({"type": "Recreate"});
    sim.store.create(Kind::Deployment, d).unwrap();
    sim.wait_for(
        Kind::Deployment,
        "web",
        "rev 1 complete",
        deployment_complete,
    )
    .await;
    let mut rx = sim.store.subscribe();
    sim.set_image(Kind::Deployment, "web", "app:2");
    sim.wait_for(Kind::Deployment, "web", "rev 2 complete", |d| {
        deployment_complete(d) && revision(d) == "2"
    })
    .await;
    let (mut live_old, mut max_mixed) = (2, 0);
    while let Ok(c) = rx.try_recv() {
        if c.kind != Kind::Pod {
            continue;
        }
        let old = c.object["spec"]["containers"][0]["image"] == "app:1";
        match (c.change_type, old) {
            (ChangeType::Deleted, true) => live_old -= 1,
            (ChangeType::Added, false) => max_mixed = max_mixed.max(live_old),
            _ => {}
        }
    }
    assert_eq!(
        max_mixed, 0,
        "no new pod was created while an old one existed"
    );
}

#[tokio::test]
async fn rapid_template_changes_converge_on_the_last_one() {
    let sim = Sim::start(ControllerConfig::fast());
    sim.store
        .create(Kind::Deployment, deployment("web", 3, "app:1"))
        .unwrap();
    sim.wait_for(
        Kind::Deployment,
        "web",
        "rev 1 complete",
        deployment_complete,
    )
    .await;
    for v in 2..=6 {
        sim.set_image(Kind::Deployment, "web", &format!("app:{v}"));
        // Change the template again as soon as this one is observed: mid-rollout.
        sim.wait_for(Kind::Deployment, "web", "generation observed", |d| {
            d["status"]["observedGeneration"] == d["metadata"]["generation"]
        })
        .await;
    }
    let d = sim
        .wait_for(Kind::Deployment, "web", "last template rolled out", |d| {
            deployment_complete(d) && progressing(d).1 == "NewReplicaSetAvailable"
        })
        .await;
    let pods = sim.pods(("app", "web"));
    assert_eq!(pods.len(), 3);
    assert!(
        pods.iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "app:6")
    );
    let newest: i64 = revision(&d).parse().unwrap();
    let rss = sim.store.list(Kind::ReplicaSet, Some(NS));
    let max_rs = rss
        .iter()
        .map(|r| revision(r).parse::<i64>().unwrap())
        .max()
        .unwrap();
    assert_eq!(
        newest, max_rs,
        "the Deployment carries its newest ReplicaSet's revision"
    );
}

#[tokio::test]
async fn scaling_keeps_the_replica_set_and_revision() {
    let sim = Sim::start(ControllerConfig::fast());
    sim.store
        .create(Kind::Deployment, deployment("web", 1, "app:1"))
        .unwrap();
    sim.wait_for(
        Kind::Deployment,
        "web",
        "rev 1 complete",
        deployment_complete,
    )
    .await;
    let mut d = sim.get(Kind::Deployment, "web");
    d["spec"]["replicas"] = json!(4);
    sim.store.update(Kind::Deployment, d).unwrap();
    let d = sim
        .wait_for(Kind::Deployment, "web", "scaled to 4", |d| {
            deployment_complete(d) && count(d, "replicas") == 4
        })
        .await;
    assert_eq!(revision(&d), "1");
    let rss = sim.store.list(Kind::ReplicaSet, Some(NS));
    assert_eq!(rss.len(), 1);
    assert_eq!(rss[0]["spec"]["replicas"], 4);
    assert_eq!(sim.pods(("app", "web")).len(), 4);
}
