//! Updates per strategy and kind: the happy paths and the failed rollout.

use serde_json::json;
use watch_cluster_sim::{Kind, controllers::Outcome};

use crate::env::{Env, NS};
use crate::{EVERY_SECOND, enabled, notes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semver_update_of_a_deployment_completes_and_is_reported_started_then_completed() {
    let mut env = Env::start().await;
    env.push("team/web", "1.0.0", "a").await;
    let newer = env.push("team/web", "1.2.0", "a").await;
    env.push("team/web", "1.1.0", "a").await;
    env.push("team/web", "2.0.0-rc1", "a").await;
    let current = env.image("team/web", "1.0.0");
    env.create(
        Kind::Deployment,
        "web",
        &[("app", &current)],
        &notes(&enabled("version")),
    );
    env.spawn_controller(env.base_settings());

    let expected = format!("{}@{}", env.image("team/web", "1.2.0"), newer.digest);
    env.wait_for(Kind::Deployment, "web", "updated and rolled out", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] == expected.as_str()
            && d["metadata"]["annotations"]
                .get("watch-cluster.io/rollout")
                .is_none()
    })
    .await;
    let completed = env
        .wait_for_webhooks("web", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;

    assert_eq!(
        env.annotation(
            Kind::Deployment,
            "web",
            "watch-cluster.io/last-update-image"
        ),
        Some(expected.clone())
    );
    assert_eq!(
        env.annotation(Kind::Deployment, "web", "watch-cluster.io/change"),
        Some(format!("{current} -> {expected}"))
    );
    assert_eq!(
        env.annotation(
            Kind::Deployment,
            "web",
            "watch-cluster.io/last-update-to-digest"
        ),
        Some(newer.digest.clone())
    );
    assert!(
        env.annotation(Kind::Deployment, "web", "watch-cluster.io/last-update")
            .is_some_and(|v| v.parse::<i64>().is_ok())
    );
    assert_eq!(
        env.webhook_types("web"),
        [
            "DEPLOYMENT_DETECTED",
            "IMAGE_ROLLOUT_STARTED",
            "IMAGE_ROLLOUT_COMPLETED"
        ]
    );
    let hooks = env.webhooks("web");
    assert_eq!(
        hooks[0]["details"],
        json!({"cronExpression": EVERY_SECOND, "updateStrategy": "version"})
    );
    assert_eq!(
        hooks[1]["deployment"],
        json!({"namespace": NS, "name": "web", "image": expected})
    );
    assert_eq!(hooks[1]["details"], json!({"previousImage": current}));
    let duration = completed[0]["details"]["rolloutDuration"].as_str().unwrap();
    assert!(
        duration.ends_with("ms") && duration.trim_end_matches("ms").parse::<u64>().is_ok(),
        "{duration}"
    );
    assert_eq!(
        completed[0].as_object().unwrap().len(),
        4,
        "exactly eventType, timestamp, deployment, details"
    );
    let reasons = env.reasons("web");
    assert!(
        reasons.contains(&"ImageUpdated".to_owned())
            && reasons.contains(&"RolloutCompleted".to_owned()),
        "{reasons:?}"
    );
    assert!(
        env.forbidden_calls().is_empty(),
        "{:?}",
        env.forbidden_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_major_and_lock_minor_stay_inside_their_range() {
    let mut env = Env::start().await;
    for tag in ["1.2.0", "1.2.5", "1.3.0", "2.0.0"] {
        env.push("team/api", tag, "a").await;
    }
    let current = env.image("team/api", "1.2.0");
    env.create(
        Kind::Deployment,
        "major",
        &[("app", &current)],
        &notes(&enabled("version-lock-major")),
    );
    env.create(
        Kind::Deployment,
        "minor",
        &[("app", &current)],
        &notes(&enabled("VERSION-LOCK-MINOR")),
    );
    env.spawn_controller(env.base_settings());

    let major = env.image("team/api", "1.3.0");
    let minor = env.image("team/api", "1.2.5");
    env.wait_for(Kind::Deployment, "major", "moved to 1.3.0", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .is_some_and(|i| i.starts_with(&format!("{major}@sha256:")))
    })
    .await;
    env.wait_for(Kind::Deployment, "minor", "moved to 1.2.5", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .is_some_and(|i| i.starts_with(&format!("{minor}@sha256:")))
    })
    .await;
    env.wait_for_webhooks("major", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    env.wait_for_webhooks("minor", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    // Later checks find nothing newer inside the range: no second update.
    let detected = env.webhooks("minor")[0].clone();
    assert_eq!(detected["details"]["updateStrategy"], "version-lock-minor");
    assert_eq!(
        env.webhook_types("major")
            .iter()
            .filter(|t| *t == "IMAGE_ROLLOUT_STARTED")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_follows_a_re_pushed_tag_and_pins_the_new_digest() {
    let mut env = Env::start().await;
    let first = env.push("team/tool", "stable", "one").await;
    let current = env.image("team/tool", "stable");
    env.create(
        Kind::Deployment,
        "tool",
        &[("app", &current)],
        &notes(&enabled("latest")),
    );
    env.spawn_controller(env.base_settings());

    // The ready pods all run the registry's digest: nothing to do, however many checks run.
    env.wait_for_log(0, "Digest unchanged", 2).await;
    assert_eq!(env.image_of(Kind::Deployment, "tool", "app"), current);

    let second = env.push("team/tool", "stable", "two").await;
    assert_ne!(first.digest, second.digest);
    let moved = format!("{current}@{}", second.digest);
    env.wait_for(Kind::Deployment, "tool", "follows the new digest", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] == moved.as_str()
    })
    .await;
    let done = env
        .wait_for_webhooks("tool", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    assert_eq!(done[0]["deployment"]["image"], moved.as_str());
    assert_eq!(
        env.annotation(
            Kind::Deployment,
            "tool",
            "watch-cluster.io/last-update-from-digest"
        ),
        Some(first.digest.clone()),
        "the digest the pods ran is recorded as the previous one"
    );
    let started: Vec<_> = env
        .webhooks("tool")
        .into_iter()
        .filter(|w| w["eventType"] == "IMAGE_ROLLOUT_STARTED")
        .collect();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["details"]["previousImage"], current.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_named_container_of_a_two_container_deployment_is_managed() {
    let mut env = Env::start().await;
    env.push("team/app", "1.0.0", "a").await;
    let newer = env.push("team/app", "1.1.0", "a").await;
    env.push("team/proxy", "3.0.0", "a").await;
    env.push("team/proxy", "3.1.0", "a").await;
    let app = env.image("team/app", "1.0.0");
    let proxy = env.image("team/proxy", "3.0.0");
    let mut annotations = enabled("version");
    annotations.push(("watch-cluster.io/containers", "app".to_owned()));
    env.create(
        Kind::Deployment,
        "pair",
        &[("app", &app), ("proxy", &proxy)],
        &notes(&annotations),
    );
    env.spawn_controller(env.base_settings());

    let expected = format!("{}@{}", env.image("team/app", "1.1.0"), newer.digest);
    env.wait_for_webhooks("pair", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    assert_eq!(env.image_of(Kind::Deployment, "pair", "app"), expected);
    assert_eq!(
        env.image_of(Kind::Deployment, "pair", "proxy"),
        proxy,
        "the sidecar is left alone"
    );
    let started = env
        .webhooks("pair")
        .into_iter()
        .find(|w| w["eventType"] == "IMAGE_ROLLOUT_STARTED")
        .unwrap();
    assert_eq!(started["deployment"]["image"], expected.as_str());
    assert_eq!(started["details"]["previousImage"], app.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_and_a_daemonset_are_updated_with_their_kind_in_the_payload() {
    let mut env = Env::start().await;
    env.push("team/db", "5.0.0", "a").await;
    env.push("team/db", "5.1.0", "a").await;
    env.push("team/agent", "0.9.0", "a").await;
    env.push("team/agent", "0.10.0", "a").await;
    env.create(
        Kind::StatefulSet,
        "db",
        &[("db", &env.image("team/db", "5.0.0"))],
        &notes(&enabled("version")),
    );
    env.create(
        Kind::DaemonSet,
        "agent",
        &[("agent", &env.image("team/agent", "0.9.0"))],
        &notes(&enabled("version")),
    );
    env.spawn_controller(env.base_settings());

    let db = env
        .wait_for_webhooks("db", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    let agent = env
        .wait_for_webhooks("agent", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    assert_eq!(db[0]["deployment"]["kind"], "StatefulSet");
    assert_eq!(agent[0]["deployment"]["kind"], "DaemonSet");
    assert!(
        env.image_of(Kind::StatefulSet, "db", "db")
            .contains("/team/db:5.1.0@sha256:")
    );
    assert!(
        env.image_of(Kind::DaemonSet, "agent", "agent")
            .contains("/team/agent:0.10.0@sha256:")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_rollout_is_rolled_back_quarantined_and_a_newer_image_is_taken_later() {
    let mut env = Env::start().await;
    env.push("team/pay", "1.0.0", "a").await;
    let bad = env.push("team/pay", "1.1.0", "a").await;
    env.set_outcome_for_image("team/pay:1.1.0", Outcome::Stuck);
    let current = env.image("team/pay", "1.0.0");
    env.create(
        Kind::Deployment,
        "pay",
        &[("app", &current)],
        &notes(&enabled("version")),
    );
    env.spawn_controller(env.base_settings());

    let failed = env
        .wait_for_webhooks("pay", "IMAGE_ROLLOUT_FAILED", 1)
        .await;
    let bad_image = format!("{}@{}", env.image("team/pay", "1.1.0"), bad.digest);
    assert_eq!(failed[0]["deployment"]["image"], bad_image.as_str());
    assert_eq!(failed[0]["details"]["rolledBackTo"], current.as_str());
    assert!(
        failed[0]["details"]["error"]
            .as_str()
            .unwrap()
            .contains("progress deadline"),
        "{}",
        failed[0]
    );
    env.wait_for(Kind::Deployment, "pay", "rolled back", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] == current.as_str()
            && d["metadata"]["annotations"]
                .get("watch-cluster.io/rollout")
                .is_none()
    })
    .await;
    let quarantine = env
        .annotation(Kind::Deployment, "pay", "watch-cluster.io/quarantine")
        .unwrap();
    assert!(quarantine.contains(&bad_image), "{quarantine}");
    let reasons = env.reasons("pay");
    assert!(
        reasons.contains(&"RolloutFailed".to_owned()) && reasons.contains(&"RolledBack".to_owned()),
        "{reasons:?}"
    );

    // Several more checks: the quarantined image is not retried.
    let log_mark = env.controller_log(0).matches("check finished").count();
    env.wait_for_log(0, "check finished", log_mark + 3).await;
    assert_eq!(
        env.webhook_types("pay")
            .iter()
            .filter(|t| *t == "IMAGE_ROLLOUT_STARTED")
            .count(),
        1
    );

    // A newer, healthy image is taken.
    let good = env.push("team/pay", "1.2.0", "a").await;
    let good_image = format!("{}@{}", env.image("team/pay", "1.2.0"), good.digest);
    env.wait_for(Kind::Deployment, "pay", "moved to 1.2.0", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] == good_image.as_str()
    })
    .await;
    env.wait_for_webhooks("pay", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_registry_is_read_with_the_workloads_image_pull_secret() {
    use base64::Engine as _;
    let mut env = Env::start_with(watch_cluster_testkit::RegistryAuth::basic("ci", "s3cret")).await;
    env.push("private/app", "1.0.0", "a").await;
    let newer = env.push("private/app", "1.0.1", "a").await;
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret");
    let config = json!({"auths": {env.registry.host(): {"auth": auth}}}).to_string();
    env.sim
        .store()
        .create(
            Kind::Secret,
            json!({
                "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                "metadata": {"name": "regcred", "namespace": NS},
                "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config)},
            }),
        )
        .expect("secret");
    let current = env.image("private/app", "1.0.0");
    env.create(
        Kind::Deployment,
        "private",
        &[("app", &current)],
        &notes(&enabled("version")),
    );
    env.edit(Kind::Deployment, "private", |d| {
        d["spec"]["template"]["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    });
    env.spawn_controller(env.base_settings());

    let expected = format!("{}@{}", env.image("private/app", "1.0.1"), newer.digest);
    env.wait_for(
        Kind::Deployment,
        "private",
        "updated with the secret's credentials",
        |d| d["spec"]["template"]["spec"]["containers"][0]["image"] == expected.as_str(),
    )
    .await;
    let secret_calls: Vec<String> = env
        .sim
        .request_log()
        .entries()
        .into_iter()
        .filter(|r| r.path.contains("/secrets"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(!secret_calls.is_empty());
    assert!(
        secret_calls
            .iter()
            .all(|c| c == &format!("GET /api/v1/namespaces/{NS}/secrets/regcred")),
        "Secrets are read by name only: {secret_calls:?}"
    );
    assert!(
        !env.controller_log(0).contains("s3cret"),
        "credentials never logged"
    );
    assert!(
        env.forbidden_calls().is_empty(),
        "{:?}",
        env.forbidden_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_changed_by_another_writer_mid_rollout_ends_it_as_superseded_without_rollback() {
    let mut env = Env::start().await;
    env.push("team/sup", "1.0.0", "a").await;
    env.push("team/sup", "1.1.0", "a").await;
    env.set_outcome_for_image("team/sup:1.1.0", Outcome::Slow(60.0));
    let current = env.image("team/sup", "1.0.0");
    env.create(
        Kind::Deployment,
        "sup",
        &[("app", &current)],
        &notes(&enabled("version")),
    );
    env.spawn_controller(env.base_settings());
    env.wait_for_webhooks("sup", "IMAGE_ROLLOUT_STARTED", 1)
        .await;

    let theirs = format!("{current}-hotfix");
    env.edit(Kind::Deployment, "sup", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(theirs);
    });
    let failed = env
        .wait_for_webhooks("sup", "IMAGE_ROLLOUT_FAILED", 1)
        .await;
    assert_eq!(
        failed[0]["details"]["error"],
        format!("superseded by {theirs}").as_str()
    );
    assert!(
        failed[0]["details"].get("rolledBackTo").is_none(),
        "nothing rolled back"
    );
    env.wait_for(Kind::Deployment, "sup", "record removed", |d| {
        d["metadata"]["annotations"]
            .get("watch-cluster.io/rollout")
            .is_none()
    })
    .await;
    assert_eq!(env.image_of(Kind::Deployment, "sup", "app"), theirs);
    assert_eq!(
        env.annotation(Kind::Deployment, "sup", "watch-cluster.io/quarantine"),
        None
    );
}
