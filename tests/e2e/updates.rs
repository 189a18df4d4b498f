//! Updates per strategy and kind: the happy paths and the failed rollout.

use serde_json::json;
use watch_cluster_sim::{Kind, controllers::Outcome};

use crate::env::{Env, NS};
use crate::{as_pairs, enabled};

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
        &as_pairs(&enabled("version")),
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
        .filter(|c| !is_record_key_call(c))
        .collect();
    assert!(!secret_calls.is_empty());
    assert!(
        secret_calls
            .iter()
            .all(|c| c == &format!("GET /api/v1/namespaces/{NS}/secrets/regcred")),
        "Secrets are read by name only: {secret_calls:?}"
    );
    assert!(!env.log_reveals(0, "s3cret"), "credentials never logged");
    assert!(
        env.forbidden_calls().is_empty(),
        "{:?}",
        env.forbidden_calls()
    );
}

/// SPEC §14: a named pull secret that does not exist is skipped with a Warning Event, and the check goes on
/// without it (here anonymously: the registry needs no credentials).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_pull_secret_is_skipped_with_a_warning_and_the_check_goes_on() {
    let mut env = Env::start().await;
    env.push("open/app", "1.0.0", "a").await;
    let newer = env.push("open/app", "1.0.1", "a").await;
    let current = env.image("open/app", "1.0.0");
    env.create(
        Kind::Deployment,
        "open",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
    );
    env.edit(Kind::Deployment, "open", |d| {
        d["spec"]["template"]["spec"]["imagePullSecrets"] = json!([{"name": "gone"}]);
    });
    env.spawn_controller(env.base_settings());
    let (kind, _, note) = env.wait_for_event("open", "PullSecretMissing").await;
    assert_eq!(kind, "Warning");
    assert!(note.contains("gone"), "{note}");
    let expected = format!("{}@{}", env.image("open/app", "1.0.1"), newer.digest);
    env.wait_for(
        Kind::Deployment,
        "open",
        "updated without the missing secret",
        |d| d["spec"]["template"]["spec"]["containers"][0]["image"] == expected.as_str(),
    )
    .await;
}

/// SPEC §14: a matching pull secret the registry refuses is a `RegistryError` naming the secret; nothing
/// else (anonymous, cloud identity) is tried in its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_secret_the_registry_refuses_is_a_registry_error_naming_the_secret() {
    use base64::Engine as _;
    let mut env = Env::start_with(watch_cluster_testkit::RegistryAuth::basic("ci", "s3cret")).await;
    env.push("private/app", "1.0.0", "a").await;
    env.push("private/app", "1.0.1", "a").await;
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:wrong");
    let config = json!({"auths": {env.registry.host(): {"auth": auth}}}).to_string();
    env.sim
        .store()
        .create(
            Kind::Secret,
            json!({
                "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                "metadata": {"name": "stale", "namespace": NS},
                "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config)},
            }),
        )
        .expect("secret");
    let current = env.image("private/app", "1.0.0");
    env.create(
        Kind::Deployment,
        "private",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
    );
    env.edit(Kind::Deployment, "private", |d| {
        d["spec"]["template"]["spec"]["imagePullSecrets"] = json!([{"name": "stale"}]);
    });
    env.spawn_controller(env.base_settings());
    let (kind, _, note) = env.wait_for_event("private", "RegistryError").await;
    assert_eq!(kind, "Warning");
    assert!(note.contains(&format!("Secret {NS}/stale")), "{note}");
    assert_eq!(env.image_of(Kind::Deployment, "private", "app"), current);
    assert!(!env.log_reveals(0, "wrong"), "credentials never logged");
}

/// The controller's own Secret (the key that seals its records), read or made once at start.
fn is_record_key_call(call: &str) -> bool {
    call == "GET /api/v1/namespaces/watch-cluster/secrets/watch-cluster-record-key"
        || call == "POST /api/v1/namespaces/watch-cluster/secrets"
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
        &as_pairs(&enabled("version")),
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
