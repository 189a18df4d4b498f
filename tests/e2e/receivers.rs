//! Several receivers of one outcome (docs/notifications.md#delivery-records): each gets it once, a hanging
//! one delays none of the others, and the record's `delivered` list carries who has it across a restart.

use std::time::Duration;

use serde_json::Value;
use watch_cluster_sim::Kind;
use watch_cluster_testkit::webhook::{Response, WebhookReceiver};

use crate::env::{Env, WAIT, free_port, metric};
use crate::{as_pairs, enabled};

const ROLLOUT: &str = "watch-cluster.io/rollout";

/// The `delivered` list of the workload's rollout record; `None` when there is no record.
fn delivered(deployment: &Value) -> Option<Vec<String>> {
    let raw = deployment["metadata"]["annotations"][ROLLOUT].as_str()?;
    let record: Value = serde_json::from_str(raw).ok()?;
    Some(
        record["outcome"]["delivered"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    )
}

fn completed_for(requests: &[watch_cluster_testkit::ReceivedRequest], name: &str) -> usize {
    requests
        .iter()
        .filter(|r| {
            let body = r.json();
            body["eventType"] == "IMAGE_ROLLOUT_COMPLETED" && body["deployment"]["name"] == name
        })
        .count()
}

/// A Deployment `name` with an update waiting, a generic receiver (COMPLETED only) that hangs on its first
/// request, and controller A running with both it and `WEBHOOK_URL` until `WEBHOOK_URL` is listed in the
/// record; then A is stopped. Returns the generic receiver and A's settings.
async fn stopped_while_generic_hangs(
    env: &mut Env,
    name: &str,
) -> (WebhookReceiver, crate::env::ControllerSettings) {
    let generic = WebhookReceiver::start().await.expect("receiver starts");
    // Accepts the connection and never answers within controller A's life (its timeout is 60 s).
    generic.respond_next(Response::Hang);
    let repo = format!("team/{name}");
    env.push(&repo, "1.0.0", "a").await;
    env.push(&repo, "1.1.0", "a").await;
    env.create(
        Kind::Deployment,
        name,
        &[("app", &env.image(&repo, "1.0.0"))],
        &as_pairs(&enabled("version")),
    );
    let notify = format!(
        "generic+{}outcomes?events=IMAGE_ROLLOUT_COMPLETED",
        generic.url()
    );
    let settings = env
        .base_settings()
        .with("NOTIFY_URLS", &notify)
        .with("WEBHOOK_TIMEOUT", "60000");
    let a = env.spawn_controller(settings.clone());

    // WEBHOOK_URL gets the outcome and is listed while the generic receiver still hangs on it.
    env.wait_for_webhooks(name, "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    let hanging = generic.wait_for_requests(1, WAIT).await.expect("A posts");
    let started = hanging[0].received_at;
    env.wait_for(Kind::Deployment, name, "webhook listed", |d| {
        delivered(d) == Some(vec!["webhook".to_owned()])
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "listed before the hanging receiver's timeout"
    );
    assert_eq!(generic.requests().len(), 1, "still hanging, not retried");

    // A stops mid-delivery: the record stays, with the one receiver that has the outcome.
    env.terminate_controller(a, WAIT).await;
    assert_eq!(
        delivered(&env.get(Kind::Deployment, name)),
        Some(vec!["webhook".to_owned()]),
        "the record outlives a shutdown mid-delivery"
    );
    (generic, settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_one_receiver_hangs_sends_only_to_that_receiver_and_then_removes_the_record()
 {
    let mut env = Env::start().await;
    let (generic, settings) = stopped_while_generic_hangs(&mut env, "pair").await;

    // B, same settings: sends to the generic receiver only (it now answers 200), then removes the record.
    let port = free_port();
    env.spawn_controller(settings.with("ADMIN_ADDR", &format!("127.0.0.1:{port}")));
    env.wait_for(Kind::Deployment, "pair", "record removed", |d| {
        delivered(d).is_none()
    })
    .await;
    let generic_requests = generic.requests();
    assert_eq!(generic_requests.len(), 2, "A's hanging request, then B's");
    assert_eq!(completed_for(&generic_requests, "pair"), 2);
    assert_eq!(
        generic_requests[0].header("x-watch-cluster-delivery"),
        generic_requests[1].header("x-watch-cluster-delivery"),
        "the same delivery id across the restart"
    );
    assert_eq!(generic_requests[0].body, generic_requests[1].body);
    assert_eq!(
        completed_for(&env.webhook.requests(), "pair"),
        1,
        "WEBHOOK_URL got the outcome exactly once"
    );
    let series = |receiver: &str| {
        format!(
            "watch_cluster_webhook_deliveries_total{{receiver=\"{receiver}\",event_type=\"IMAGE_ROLLOUT_COMPLETED\",outcome=\"delivered\"}}"
        )
    };
    assert_eq!(
        metric(port, &series("generic")).await,
        1.0,
        "B delivered to generic"
    );
    assert_eq!(
        metric(port, &series("webhook")).await,
        0.0,
        "B sent nothing to webhook"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_removed_from_the_config_before_a_restart_no_longer_holds_the_record() {
    let mut env = Env::start().await;
    let (generic, _) = stopped_while_generic_hangs(&mut env, "solo").await;

    // B has only WEBHOOK_URL, which is already listed: nothing is left to send, so the record goes.
    env.spawn_controller(env.base_settings());
    env.wait_for(Kind::Deployment, "solo", "record removed", |d| {
        delivered(d).is_none()
    })
    .await;
    assert_eq!(
        generic.requests().len(),
        1,
        "the removed receiver is not contacted"
    );
    assert_eq!(
        completed_for(&env.webhook.requests(), "solo"),
        1,
        "WEBHOOK_URL is not sent the outcome again"
    );
}
