//! The `rollout` record drives actions with the controller's privileges: only a record it sealed for that
//! very workload is acted on, and an update in flight finishes whatever happens to the other annotations.
//! Each test is an attack or an accident that once made the controller act wrongly or stop silently.

use serde_json::json;
use watch_cluster_sim::{Kind, controllers::Outcome};

use crate::env::{Env, NS};
use crate::{as_pairs, enabled};

const ROLLOUT: &str = "watch-cluster.io/rollout";

/// A record as an attacker writes it: the documented shape, no seal.
fn forged(from: &str, to: &str, outcome: Option<serde_json::Value>) -> String {
    let mut record = json!({
        "id": "f0f0f0f0f0f0f0f0",
        "from": {"app": from},
        "to": {"app": to},
        "startedAt": "2026-01-01T00:00:00Z",
    });
    if let Some(outcome) = outcome {
        record["outcome"] = outcome;
    }
    record.to_string()
}

fn patches(env: &Env, name: &str) -> usize {
    let path = format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}");
    env.sim
        .request_log()
        .entries()
        .into_iter()
        // Accepted ones only: a `detected` write from a stale copy is refused (409) and made again.
        .filter(|r| r.method == "PATCH" && r.path == path && (200..300).contains(&r.status))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_from_on_a_failing_rollout_is_never_patched_in_and_nothing_is_quarantined_or_sent()
{
    let mut env = Env::start().await;
    env.push("team/pay", "1.1.0", "a").await;
    let stuck = env.image("team/pay", "1.1.0");
    env.set_outcome_for_image(&stuck, Outcome::Stuck);
    let mut annotations = enabled("version");
    annotations.push((ROLLOUT, forged("evil/backdoor:6.6.6", &stuck, None)));
    env.create(
        Kind::Deployment,
        "pay",
        &[("app", &stuck)],
        &as_pairs(&annotations),
    );
    env.wait_for(Kind::Deployment, "pay", "stuck", |d| {
        d["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["reason"] == "ProgressDeadlineExceeded"))
    })
    .await;
    env.spawn_controller(env.base_settings());

    let (kind, _, note) = env.wait_for_event("pay", "RecordRejected").await;
    assert_eq!(kind, "Warning");
    assert!(note.contains("no seal"), "{note}");
    env.more_checks(Kind::Deployment, "pay", 1).await;
    assert_eq!(env.image_of(Kind::Deployment, "pay", "app"), stuck);
    assert_eq!(
        env.annotation(Kind::Deployment, "pay", "watch-cluster.io/quarantine"),
        None
    );
    let reasons = env.reasons("pay");
    assert!(
        !reasons
            .iter()
            .any(|r| r == "RolledBack" || r == "RolloutFailed"),
        "{reasons:?}"
    );
    assert!(
        !env.webhook_types("pay")
            .iter()
            .any(|t| t == "IMAGE_ROLLOUT_FAILED")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_record_on_a_healthy_workload_announces_no_completed_rollout() {
    let mut env = Env::start().await;
    env.push("team/ok", "1.0.0", "a").await;
    let current = env.image("team/ok", "1.0.0");
    let mut annotations = enabled("version");
    annotations.push((ROLLOUT, forged("team/ok:0.9.0", &current, None)));
    env.create(
        Kind::Deployment,
        "ok",
        &[("app", &current)],
        &as_pairs(&annotations),
    );
    env.spawn_controller(env.base_settings());

    env.wait_for_event("ok", "RecordRejected").await;
    env.more_checks(Kind::Deployment, "ok", 1).await;
    assert!(!env.reasons("ok").iter().any(|r| r == "RolloutCompleted"));
    assert!(
        !env.webhook_types("ok")
            .iter()
            .any(|t| t.starts_with("IMAGE_ROLLOUT"))
    );
    assert_eq!(patches(&env, "ok"), 1, "only the `detected` write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_outcome_is_never_delivered() {
    let mut env = Env::start().await;
    env.push("team/out", "1.0.0", "a").await;
    let current = env.image("team/out", "1.0.0");
    let outcome =
        json!({"result": "failed", "at": "2026-01-01T00:01:00Z", "error": "forger's words"});
    let mut annotations = enabled("version");
    annotations.push((ROLLOUT, forged("x:1", &current, Some(outcome))));
    env.create(
        Kind::Deployment,
        "out",
        &[("app", &current)],
        &as_pairs(&annotations),
    );
    env.spawn_controller(env.base_settings());

    env.wait_for_event("out", "RecordRejected").await;
    env.more_checks(Kind::Deployment, "out", 1).await;
    assert!(
        !env.webhook_types("out")
            .iter()
            .any(|t| t.starts_with("IMAGE_ROLLOUT"))
    );
    assert!(
        env.annotation(Kind::Deployment, "out", ROLLOUT).is_some(),
        "the forged record is left for its owner to remove"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_rollout_annotation_is_reported_and_checks_go_on() {
    let mut env = Env::start().await;
    env.push("team/gb", "1.0.0", "a").await;
    let newer = env.push("team/gb", "1.1.0", "a").await;
    let current = env.image("team/gb", "1.0.0");
    let mut annotations = enabled("version");
    annotations.push((ROLLOUT, "{not json".to_owned()));
    env.create(
        Kind::Deployment,
        "gb",
        &[("app", &current)],
        &as_pairs(&annotations),
    );
    env.spawn_controller(env.base_settings());

    let (_, _, note) = env.wait_for_event("gb", "RecordRejected").await;
    assert!(note.contains("not a rollout record"), "{note}");
    assert!(
        note.contains("{not json"),
        "the Event names the value: {note}"
    );
    let expected = format!("{}@{}", env.image("team/gb", "1.1.0"), newer.digest);
    env.wait_for_webhooks("gb", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    assert_eq!(env.image_of(Kind::Deployment, "gb", "app"), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_spaced_record_is_still_ours_and_its_rollout_completes_without_a_patch_storm() {
    let mut env = Env::start().await;
    env.push("team/sp", "1.0.0", "a").await;
    env.push("team/sp", "1.1.0", "a").await;
    let slow = env.image("team/sp", "1.1.0");
    env.set_outcome_for_image(&slow, Outcome::Slow(20.0));
    let current = env.image("team/sp", "1.0.0");
    env.create(
        Kind::Deployment,
        "sp",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
    );
    env.spawn_controller(env.base_settings());
    env.wait_for_webhooks("sp", "IMAGE_ROLLOUT_STARTED", 1)
        .await;

    let raw = env
        .annotation(Kind::Deployment, "sp", ROLLOUT)
        .expect("record");
    let value: serde_json::Value = serde_json::from_str(&raw).expect("json");
    let pretty = serde_json::to_string_pretty(&value).expect("pretty");
    env.set_annotation(Kind::Deployment, "sp", ROLLOUT, Some(&pretty));
    env.wait_for_webhooks("sp", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    env.wait_for(Kind::Deployment, "sp", "record removed", |d| {
        d["metadata"]["annotations"].get(ROLLOUT).is_none()
    })
    .await;
    // detected, update, outcome, removal: a failed `test` on the re-spaced text would repeat forever.
    assert!(patches(&env, "sp") <= 5, "{} patches", patches(&env, "sp"));
    assert!(!env.reasons("sp").iter().any(|r| r == "RecordRejected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_broken_mid_rollout_does_not_stop_the_rollback_or_the_failed_webhook() {
    let mut env = Env::start().await;
    env.push("team/cr", "1.0.0", "a").await;
    env.push("team/cr", "1.1.0", "a").await;
    let bad = env.image("team/cr", "1.1.0");
    env.set_outcome_for_image(&bad, Outcome::Stuck);
    let current = env.image("team/cr", "1.0.0");
    env.create(
        Kind::Deployment,
        "cr",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
    );
    env.spawn_controller(env.base_settings());
    env.wait_for_webhooks("cr", "IMAGE_ROLLOUT_STARTED", 1)
        .await;

    env.set_annotation(
        Kind::Deployment,
        "cr",
        "watch-cluster.io/cron",
        Some("not a cron"),
    );
    let failed = env.wait_for_webhooks("cr", "IMAGE_ROLLOUT_FAILED", 1).await;
    assert_eq!(failed[0]["details"]["rolledBackTo"], current.as_str());
    env.wait_for(Kind::Deployment, "cr", "rolled back", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] == current.as_str()
            && d["metadata"]["annotations"].get(ROLLOUT).is_none()
    })
    .await;
    assert!(env.reasons("cr").iter().any(|r| r == "InvalidAnnotation"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opting_out_mid_rollout_still_finishes_it() {
    let mut env = Env::start().await;
    env.push("team/oo", "1.0.0", "a").await;
    env.push("team/oo", "1.1.0", "a").await;
    let slow = env.image("team/oo", "1.1.0");
    env.set_outcome_for_image(&slow, Outcome::Slow(20.0));
    let current = env.image("team/oo", "1.0.0");
    env.create(
        Kind::Deployment,
        "oo",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
    );
    env.spawn_controller(env.base_settings());
    env.wait_for_webhooks("oo", "IMAGE_ROLLOUT_STARTED", 1)
        .await;

    env.set_annotation(
        Kind::Deployment,
        "oo",
        "watch-cluster.io/enabled",
        Some("false"),
    );
    env.wait_for_webhooks("oo", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    env.wait_for(Kind::Deployment, "oo", "record removed", |d| {
        d["metadata"]["annotations"].get(ROLLOUT).is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_quarantine_holds_updates_back_and_says_so() {
    let mut env = Env::start().await;
    env.push("team/q", "1.0.0", "a").await;
    env.push("team/q", "1.1.0", "a").await;
    let current = env.image("team/q", "1.0.0");
    let mut annotations = enabled("version");
    annotations.push(("watch-cluster.io/quarantine", "[{broken".to_owned()));
    env.create(
        Kind::Deployment,
        "q",
        &[("app", &current)],
        &as_pairs(&annotations),
    );
    env.spawn_controller(env.base_settings());

    let (_, _, note) = env.wait_for_event("q", "RecordRejected").await;
    assert!(note.contains("quarantine"), "{note}");
    // The Event comes from the check's decision, which would have been followed by the update patch.
    assert_eq!(env.image_of(Kind::Deployment, "q", "app"), current);
    assert_eq!(patches(&env, "q"), 1, "only the `detected` write");
}
