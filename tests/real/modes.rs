//! The two installs users choose between, each on a control plane of its own: `k8s/` with the controller
//! watching every namespace (the default), and `k8s/namespaced/` where the cluster-wide objects were never
//! applied. Every request of the controller is judged by the real authorizer (the audit log) and feeds the
//! run's comparison of used and granted rules (`.ci/test`, README "RBAC").

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, api::PostParams};
use serde_json::json;
use watch_cluster_testkit::ImageFault;

use crate::env::{Kind, Mode, RealEnv};
use crate::{as_pairs, enabled};

/// The smoke scenarios at once: for each kind an update that completes (the DaemonSet's registry credentials
/// in a pull secret) and one that gets stuck and is rolled back. Every call the controller makes.
async fn every_kind_of_call(mode: Mode, test: &str) {
    let mut env = RealEnv::start_in(test, mode).await;
    env.push("team/app", "1.0.0").await;
    let newer = env.push("team/app", "1.1.0").await;
    let mut stuck = Vec::new();
    for repo in ["team/db", "team/pay", "team/logs"] {
        env.push(repo, "1.0.0").await;
        let bad = env.push(repo, "1.1.0").await;
        env.set_fault(&bad.digest, ImageFault::Crash).await;
        stuck.push(env.image(repo, "1.0.0"));
    }
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:secret");
    let config = json!({"auths": {env.registry.host(): {"auth": auth}}}).to_string();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "regcred", "namespace": env.ns()},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(env.admin.clone(), env.ns())
        .create(&PostParams::default(), &secret)
        .await
        .expect("pull secret created");

    let app = env.image("team/app", "1.0.0");
    env.create(
        Kind::Deployment,
        "web",
        &[("app", &app)],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    env.create(
        Kind::DaemonSet,
        "agent",
        &[("app", &app)],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    env.set_pull_secret(Kind::DaemonSet, "agent", "regcred")
        .await;
    env.create(
        Kind::StatefulSet,
        "store",
        &[("app", &app)],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let [db, pay, logs] = [&stuck[0], &stuck[1], &stuck[2]];
    env.create(
        Kind::StatefulSet,
        "db",
        &[("db", db)],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    env.create(
        Kind::Deployment,
        "pay",
        &[("app", pay)],
        &as_pairs(&enabled("version")),
        json!({"progressDeadlineSeconds": 10}),
    )
    .await;
    env.create(
        Kind::DaemonSet,
        "logs",
        &[("app", logs)],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    let watched = settings
        .iter()
        .find(|(k, _)| k == "WATCH_NAMESPACES")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    match mode {
        Mode::ClusterWide => assert_eq!(watched, "", "the default install watches every namespace"),
        Mode::NamespacedOverlay => assert_eq!(watched, "team-a"),
        Mode::OwnNamespace => {}
    }
    let settings: Vec<(String, String)> = settings
        .into_iter()
        .chain([("ROLLOUT_TIMEOUT".to_owned(), "20s".to_owned())])
        .collect();
    env.spawn_controller(&settings);

    let expected = format!("{}@{}", env.image("team/app", "1.1.0"), newer.digest);
    for name in ["web", "agent", "store"] {
        let done = env.wait_for_webhook(name, "IMAGE_ROLLOUT_COMPLETED").await;
        assert_eq!(done["deployment"]["image"], expected.as_str(), "{done}");
    }
    for (kind, name, previous) in [
        (Kind::StatefulSet, "db", db),
        (Kind::Deployment, "pay", pay),
        (Kind::DaemonSet, "logs", logs),
    ] {
        let failed = env.wait_for_webhook(name, "IMAGE_ROLLOUT_FAILED").await;
        assert_eq!(
            failed["details"]["rolledBackTo"],
            previous.as_str(),
            "{failed}"
        );
        let (ok, output) = env.rollout_status(kind, name, &["--timeout=60s"]).await;
        assert!(ok, "{name} is healthy again: {output}");
    }
    assert!(
        env.reasons("db")
            .await
            .contains(&"StuckPodDeleted".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_install_watches_every_namespace_with_the_cluster_role() {
    every_kind_of_call(Mode::ClusterWide, "cluster-wide").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespaced_install_works_where_the_cluster_wide_objects_never_were() {
    every_kind_of_call(Mode::NamespacedOverlay, "namespaced").await;
}
