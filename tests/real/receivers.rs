//! Several receivers of one outcome on the real API server: the `delivered` list is written to the
//! `rollout` record by guarded JSON patches kube-apiserver applies, and carries who has the outcome across
//! a restart (docs/notifications.md#delivery-records).

use std::time::Duration;

use serde_json::{Value, json};
use watch_cluster_testkit::webhook::{Response, WebhookReceiver};

use crate::env::{Kind, RealEnv, WAIT};
use crate::{as_pairs, enabled};

const ROLLOUT: &str = "watch-cluster.io/rollout";

/// The `delivered` list of the workload's rollout record; `None` when there is no record.
fn delivered(deployment: &Value) -> Option<Vec<String>> {
    let raw = deployment["metadata"]["annotations"][ROLLOUT].as_str()?;
    let record: Value = serde_json::from_str(raw).ok()?;
    let ids = record["outcome"]["delivered"].as_array().cloned();
    Some(
        ids.unwrap_or_default()
            .iter()
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_one_receiver_hangs_sends_only_to_that_receiver_on_kube_apiserver() {
    let mut env = RealEnv::start("receivers-restart").await;
    let generic = WebhookReceiver::start().await.expect("receiver starts");
    // Never answers within controller A's life: its timeout is beyond every wait of this test.
    generic.respond_next(Response::Hang);
    env.push("team/pair", "1.0.0").await;
    env.push("team/pair", "1.1.0").await;
    env.create(
        Kind::Deployment,
        "pair",
        &[("app", &env.image("team/pair", "1.0.0"))],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let mut settings = env.settings().await;
    settings.retain(|(k, _)| k != "WEBHOOK_TIMEOUT");
    settings.push(("WEBHOOK_TIMEOUT".into(), "300000".into()));
    settings.push((
        "NOTIFY_URLS".into(),
        format!(
            "generic+{}outcomes?events=IMAGE_ROLLOUT_COMPLETED",
            generic.url()
        ),
    ));
    let a = env.spawn_controller(&settings);

    env.wait_for_webhook("pair", "IMAGE_ROLLOUT_COMPLETED")
        .await;
    let hanging = generic.wait_for_requests(1, WAIT).await.expect("A posts");
    env.wait_for(Kind::Deployment, "pair", "webhook listed", |d| {
        delivered(d) == Some(vec!["webhook".to_owned()])
    })
    .await;
    assert!(
        hanging[0].received_at.elapsed() < Duration::from_secs(300),
        "listed before the hanging receiver's timeout"
    );
    env.terminate_controller(a, WAIT).await;
    assert_eq!(
        delivered(&env.get(Kind::Deployment, "pair").await),
        Some(vec!["webhook".to_owned()]),
        "the record outlives a shutdown mid-delivery"
    );

    env.spawn_controller(&settings);
    env.wait_for(Kind::Deployment, "pair", "record removed", |d| {
        delivered(d).is_none()
    })
    .await;
    let requests = generic.requests();
    assert_eq!(requests.len(), 2, "A's hanging request, then B's");
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(requests[1].json()["eventType"], "IMAGE_ROLLOUT_COMPLETED");
    let completed = env
        .webhook_types("pair")
        .into_iter()
        .filter(|t| t == "IMAGE_ROLLOUT_COMPLETED")
        .count();
    assert_eq!(completed, 1, "WEBHOOK_URL got the outcome exactly once");
}
