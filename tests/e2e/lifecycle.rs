//! The workload's life with the controller: restarts mid-rollout, opting out, announcements, and namespace
//! scoping (the scenarios of both backends are in `tests/scenarios/`).

use watch_cluster_sim::{Kind, controllers::Outcome};

use crate::env::{Env, free_port, metric};
use crate::{EVERY_SECOND, as_pairs, enabled};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_rollout_finishes_it_after_a_restart_and_delivers_one_completed() {
    let mut env = Env::start().await;
    env.push("team/slow", "1.0.0", "a").await;
    env.push("team/slow", "1.1.0", "a").await;
    env.set_outcome_for_image("team/slow:1.1.0", Outcome::Slow(40.0));
    let current = env.image("team/slow", "1.0.0");
    env.create(
        Kind::Deployment,
        "slow",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
    );
    let first = env.spawn_controller(env.base_settings());
    env.wait_for_webhooks("slow", "IMAGE_ROLLOUT_STARTED", 1)
        .await;
    env.kill_controller(first).await;
    assert!(
        env.annotation(Kind::Deployment, "slow", "watch-cluster.io/rollout")
            .is_some(),
        "the rollout is still in flight when the controller dies"
    );

    let port = free_port();
    let admin = format!("127.0.0.1:{port}");
    env.spawn_controller(env.base_settings().with("ADMIN_ADDR", &admin));
    env.wait_for(Kind::Deployment, "slow", "rollout record removed", |d| {
        d["metadata"]["annotations"]
            .get("watch-cluster.io/rollout")
            .is_none()
    })
    .await;
    let completed = env.webhook_requests("slow");
    let completed: Vec<_> = completed
        .iter()
        .filter(|r| r.json()["eventType"] == "IMAGE_ROLLOUT_COMPLETED")
        .collect();
    assert_eq!(completed.len(), 1, "exactly one COMPLETED");
    assert_eq!(
        env.webhook_types("slow")
            .iter()
            .filter(|t| *t == "DEPLOYMENT_DETECTED")
            .count(),
        1,
        "a restart announces nothing again"
    );
    let delivered = "watch_cluster_webhook_deliveries_total{receiver=\"webhook\",event_type=\"IMAGE_ROLLOUT_COMPLETED\",outcome=\"delivered\"}";
    assert_eq!(
        metric(port, delivered).await,
        1.0,
        "the restarted controller delivered the outcome"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_enabled_stops_checks_at_once() {
    let mut env = Env::start().await;
    env.push("team/off", "1.0.0", "a").await;
    env.push("team/clock", "1.0.0", "a").await;
    let current = env.image("team/off", "1.0.0");
    env.create(
        Kind::Deployment,
        "off",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
    );
    env.create(
        Kind::Deployment,
        "clock",
        &[("app", &env.image("team/clock", "1.0.0"))],
        &as_pairs(&enabled("version")),
    );
    env.spawn_controller(env.base_settings());
    env.more_checks(Kind::Deployment, "off", 1).await;

    env.set_annotation(Kind::Deployment, "off", "watch-cluster.io/enabled", None);
    env.push("team/off", "1.1.0", "a").await;
    // The controller has seen the change by the time `clock` was checked three more times (each second);
    // from then on `off` is not even read.
    env.more_checks(Kind::Deployment, "clock", 3).await;
    let reads = env.reads_of(Kind::Deployment, "off");
    env.more_checks(Kind::Deployment, "clock", 3).await;
    assert_eq!(
        env.reads_of(Kind::Deployment, "off"),
        reads,
        "no check of a workload opted out"
    );
    assert_eq!(
        env.image_of(Kind::Deployment, "off", "app"),
        current,
        "never updated once opted out"
    );
    assert!(
        !env.webhook_types("off")
            .iter()
            .any(|t| t.starts_with("IMAGE_ROLLOUT"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detected_is_announced_once_per_configuration_and_not_on_restart() {
    let mut env = Env::start().await;
    env.push("team/quiet", "1.0.0", "a").await;
    let image = env.image("team/quiet", "1.0.0");
    env.create(
        Kind::Deployment,
        "quiet",
        &[("app", &image)],
        &as_pairs(&enabled("version")),
    );
    let first = env.spawn_controller(env.base_settings());
    env.wait_for_webhooks("quiet", "DEPLOYMENT_DETECTED", 1)
        .await;
    env.more_checks(Kind::Deployment, "quiet", 2).await;
    env.kill_controller(first).await;
    env.spawn_controller(env.base_settings());
    env.more_checks(Kind::Deployment, "quiet", 2).await;
    assert_eq!(env.webhook_types("quiet"), ["DEPLOYMENT_DETECTED"]);

    env.set_annotation(
        Kind::Deployment,
        "quiet",
        "watch-cluster.io/strategy",
        Some("semver"),
    );
    env.set_annotation(
        Kind::Deployment,
        "quiet",
        "watch-cluster.io/strategy",
        Some("version-lock-minor"),
    );
    let detected = env
        .wait_for_webhooks("quiet", "DEPLOYMENT_DETECTED", 2)
        .await;
    assert_eq!(
        detected[1]["details"]["updateStrategy"],
        "version-lock-minor"
    );
    assert_eq!(
        env.annotation(Kind::Deployment, "quiet", "watch-cluster.io/detected"),
        Some(format!(
            "{{\"cron\":\"{EVERY_SECOND}\",\"strategy\":\"version-lock-minor\"}}"
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_namespaces_leaves_other_namespaces_alone() {
    let mut env = Env::start().await;
    env.push("team/ns", "1.0.0", "a").await;
    env.push("team/ns", "1.1.0", "a").await;
    let current = env.image("team/ns", "1.0.0");
    env.namespace("other");
    env.create_in(
        "other",
        Kind::Deployment,
        "outside",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
    );
    env.create(
        Kind::Deployment,
        "inside",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
    );
    env.spawn_controller(env.base_settings().with("WATCH_NAMESPACES", crate::env::NS));

    env.wait_for_webhooks("inside", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    env.more_checks(Kind::Deployment, "inside", 2).await;
    let outside = env
        .sim
        .store()
        .get(Kind::Deployment, Some("other"), "outside")
        .unwrap();
    assert_eq!(
        outside["spec"]["template"]["spec"]["containers"][0]["image"],
        current.as_str()
    );
    assert!(env.webhooks("outside").is_empty());
    let listed_all = env
        .sim
        .request_log()
        .entries()
        .into_iter()
        .any(|r| r.path == "/apis/apps/v1/deployments");
    assert!(
        !listed_all,
        "no cluster-wide list or watch when namespaces are given"
    );
}
