//! The workload's life with the controller: restarts mid-rollout, invalid and fixed annotations, opting
//! out, announcements, manual checks, dry runs, and namespace scoping.

use watch_cluster_sim::{Kind, controllers::Outcome};
use watch_cluster_testkit::FakeRegistry;

use crate::env::Env;
use crate::{EVERY_SECOND, enabled, notes};

/// A cron that fires only in 2099: nothing but `check-now` triggers a check.
const NEVER_SOON: &str = "0 0 0 1 1 ? 2099";

/// Waits until the controller has finished `n` more checks of `name` than now.
async fn more_checks(env: &Env, index: usize, name: &str, n: usize) {
    let needle = format!(
        "name={name} trigger=Schedule}}: watch_cluster::controller::checker: check finished"
    );
    let seen = env.controller_log(index).matches(&needle).count();
    env.wait_for_log(index, &needle, seen + n).await;
}

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
        &notes(&enabled("version")),
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

    let second = env.spawn_controller(env.base_settings());
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
    assert!(
        env.controller_log(second).contains("check finished")
            || env.controller_log(second).contains("watching")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_annotations_get_one_warning_and_no_registry_traffic_until_fixed() {
    let mut env = Env::start().await;
    let fake = FakeRegistry::start().await.expect("fake registry");
    fake.set_tags("team/x", vec!["1.0.0".into(), "1.1.0".into()]);
    // Digests, so the simulated kubelet can "pull" the image and the rollout completes.
    fake.set_digest("team/x", "1.0.0", &format!("sha256:{}", "a".repeat(64)));
    fake.set_digest("team/x", "1.1.0", &format!("sha256:{}", "b".repeat(64)));
    let image = format!("{}/team/x:1.0.0", fake.host());
    let mut bad_cron = enabled("version");
    bad_cron[1].1 = "every minute".into();
    let mut bad_strategy = enabled("newest");
    bad_strategy[1].1 = EVERY_SECOND.into();
    env.create(
        Kind::Deployment,
        "bad-cron",
        &[("app", &image)],
        &notes(&bad_cron),
    );
    env.create(
        Kind::Deployment,
        "bad-strategy",
        &[("app", &image)],
        &notes(&bad_strategy),
    );
    // A valid workload on the real registry paces the test: each of its checks is a tick that passed.
    env.push("team/clock", "1.0.0", "a").await;
    env.create(
        Kind::Deployment,
        "clock",
        &[("app", &env.image("team/clock", "1.0.0"))],
        &notes(&enabled("version")),
    );
    let insecure = format!("{},{}", env.registry.host(), fake.host());
    env.spawn_controller(env.base_settings().with("INSECURE_REGISTRIES", &insecure));

    let (kind, _, note) = env.wait_for_event("bad-cron", "InvalidAnnotation").await;
    assert_eq!(kind, "Warning");
    assert!(
        note.contains("watch-cluster.io/cron") && note.contains("0 */5 * * * ?"),
        "{note}"
    );
    let (_, _, note) = env
        .wait_for_event("bad-strategy", "InvalidAnnotation")
        .await;
    assert!(
        note.contains("watch-cluster.io/strategy") && note.contains("version-lock-major"),
        "{note}"
    );
    more_checks(&env, 0, "clock", 3).await;
    for name in ["bad-cron", "bad-strategy"] {
        let warnings = env
            .reasons(name)
            .iter()
            .filter(|r| *r == "InvalidAnnotation")
            .count();
        assert_eq!(
            warnings, 1,
            "{name}: one Event per transition, not per tick"
        );
        assert!(
            env.webhooks(name).is_empty(),
            "{name}: nothing announced while invalid"
        );
    }
    assert_eq!(
        fake.count(http::Method::GET, "/v2/team/x/tags/list"),
        0,
        "no tag listing for invalid workloads"
    );

    // Fixing the annotation resumes checks without a restart.
    env.set_annotation(
        Kind::Deployment,
        "bad-cron",
        "watch-cluster.io/cron",
        Some(EVERY_SECOND),
    );
    env.wait_for_webhooks("bad-cron", "DEPLOYMENT_DETECTED", 1)
        .await;
    fake.wait_for_count(
        http::Method::GET,
        "/v2/team/x/tags/list",
        1,
        crate::env::WAIT,
    )
    .await
    .expect("the fixed workload is checked");
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
        &notes(&enabled("version")),
    );
    env.create(
        Kind::Deployment,
        "clock",
        &[("app", &env.image("team/clock", "1.0.0"))],
        &notes(&enabled("version")),
    );
    env.spawn_controller(env.base_settings());
    more_checks(&env, 0, "off", 1).await;

    env.set_annotation(Kind::Deployment, "off", "watch-cluster.io/enabled", None);
    env.push("team/off", "1.1.0", "a").await;
    more_checks(&env, 0, "clock", 3).await;
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
        &notes(&enabled("version")),
    );
    let first = env.spawn_controller(env.base_settings());
    env.wait_for_webhooks("quiet", "DEPLOYMENT_DETECTED", 1)
        .await;
    more_checks(&env, first, "quiet", 2).await;
    env.kill_controller(first).await;
    let second = env.spawn_controller(env.base_settings());
    more_checks(&env, second, "quiet", 2).await;
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
async fn check_now_triggers_one_check_records_it_and_is_removed() {
    let mut env = Env::start().await;
    env.push("team/manual", "1.0.0", "a").await;
    let newer = env.push("team/manual", "1.0.1", "a").await;
    let mut annotations = enabled("version");
    annotations[1].1 = NEVER_SOON.into();
    env.create(
        Kind::Deployment,
        "manual",
        &[("app", &env.image("team/manual", "1.0.0"))],
        &notes(&annotations),
    );
    env.spawn_controller(env.base_settings());
    env.wait_for_webhooks("manual", "DEPLOYMENT_DETECTED", 1)
        .await;

    env.set_annotation(
        Kind::Deployment,
        "manual",
        "watch-cluster.io/check-now",
        Some(""),
    );
    let expected = format!("{}@{}", env.image("team/manual", "1.0.1"), newer.digest);
    env.wait_for(
        Kind::Deployment,
        "manual",
        "updated and check-now removed",
        |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] == expected.as_str()
                && d["metadata"]["annotations"]
                    .get("watch-cluster.io/check-now")
                    .is_none()
        },
    )
    .await;
    env.wait_for_event("manual", "ManualCheckUpdated").await;
    let reasons = env.reasons("manual");
    assert!(
        reasons.contains(&"ManualCheckRequested".to_owned()),
        "{reasons:?}"
    );

    // Nothing newer now: the next manual check says so and removes the annotation again.
    env.wait_for_webhooks("manual", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    env.set_annotation(
        Kind::Deployment,
        "manual",
        "watch-cluster.io/check-now",
        Some("again"),
    );
    env.wait_for_event("manual", "ManualCheckNoUpdate").await;
    env.wait_for(Kind::Deployment, "manual", "check-now removed", |d| {
        d["metadata"]["annotations"]
            .get("watch-cluster.io/check-now")
            .is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_records_what_it_would_do_and_changes_nothing_else() {
    let mut env = Env::start().await;
    env.push("team/dry", "1.0.0", "a").await;
    env.push("team/dry", "2.0.0", "a").await;
    let current = env.image("team/dry", "1.0.0");
    env.create(
        Kind::Deployment,
        "dry",
        &[("app", &current)],
        &notes(&enabled("version")),
    );
    env.spawn_controller(env.base_settings().with("DRY_RUN", "true"));

    let (kind, _, note) = env.wait_for_event("dry", "DryRunWouldUpdate").await;
    assert_eq!(kind, "Normal");
    assert!(
        note.starts_with(&format!("{current} -> ")) && note.contains("team/dry:2.0.0@sha256:"),
        "{note}"
    );
    more_checks(&env, 0, "dry", 2).await;
    assert_eq!(env.image_of(Kind::Deployment, "dry", "app"), current);
    for key in ["last-update", "last-update-image", "change", "rollout"] {
        assert_eq!(
            env.annotation(Kind::Deployment, "dry", &format!("watch-cluster.io/{key}")),
            None,
            "{key}"
        );
    }
    assert!(
        env.annotation(Kind::Deployment, "dry", "watch-cluster.io/detected")
            .is_some()
    );
    assert_eq!(env.webhook_types("dry"), ["DEPLOYMENT_DETECTED"]);
    assert_eq!(
        env.reasons("dry")
            .iter()
            .filter(|r| *r == "DryRunWouldUpdate")
            .count(),
        1
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
        &notes(&enabled("version")),
    );
    env.create(
        Kind::Deployment,
        "inside",
        &[("app", &current)],
        &notes(&enabled("version")),
    );
    env.spawn_controller(env.base_settings().with("WATCH_NAMESPACES", crate::env::NS));

    env.wait_for_webhooks("inside", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    more_checks(&env, 0, "inside", 2).await;
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
