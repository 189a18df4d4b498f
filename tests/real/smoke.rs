//! Smoke on real Kubernetes: for each kind, an update that completes and a stuck one that is rolled back,
//! with the exact webhooks, and `kubectl rollout status` agreeing with the controller's verdict.

use serde_json::{Value, json};
use watch_cluster_testkit::ImageFault;

use crate::env::{Kind, RealEnv};
use crate::{as_pairs, enabled};

/// The fields every webhook body has, and no others.
/// The payload's `deployment` object names the kind only when it is not a Deployment (compat).
fn assert_envelope(hook: &Value, event_type: &str, kind: Kind, ns: &str, image: &str) {
    assert_eq!(hook["eventType"], event_type, "{hook}");
    let mut workload = json!({"namespace": ns, "name": "app", "image": image});
    if kind != Kind::Deployment {
        workload["kind"] = json!(kind.name());
    }
    assert_eq!(hook["deployment"], workload, "{hook}");
    let timestamp = hook["timestamp"].as_str().unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
        "timestamp {timestamp:?} is not RFC 3339"
    );
    assert_eq!(
        hook.as_object().map(|o| o.len()),
        Some(4),
        "exactly eventType, timestamp, deployment, details: {hook}"
    );
}

async fn an_update_completes(kind: Kind, test: &str) {
    let mut env = RealEnv::start(test).await;
    env.push("team/app", "1.0.0").await;
    let newer = env.push("team/app", "1.1.0").await;
    let current = env.image("team/app", "1.0.0");
    env.create(
        kind,
        "app",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    env.spawn_controller(&settings);

    let expected = format!("{}@{}", env.image("team/app", "1.1.0"), newer.digest);
    let completed = env.wait_for_webhook("app", "IMAGE_ROLLOUT_COMPLETED").await;
    assert_eq!(
        env.webhook_types("app"),
        ["IMAGE_ROLLOUT_STARTED", "IMAGE_ROLLOUT_COMPLETED"],
        "DEPLOYMENT_DETECTED is off in k8s/base/configmap.yaml"
    );
    let started = &env.webhooks("app")[0];
    assert_envelope(started, "IMAGE_ROLLOUT_STARTED", kind, env.ns(), &expected);
    assert_eq!(started["details"], json!({"previousImage": current}));
    assert_envelope(
        &completed,
        "IMAGE_ROLLOUT_COMPLETED",
        kind,
        env.ns(),
        &expected,
    );
    let details = completed["details"].as_object().expect("details");
    assert_eq!(details.len(), 1, "{details:?}");
    let duration = details["rolloutDuration"].as_str().unwrap_or_default();
    assert!(
        duration.ends_with("ms") && duration.trim_end_matches("ms").parse::<u64>().is_ok(),
        "{duration}"
    );

    assert_eq!(env.image_of(kind, "app").await, expected);
    assert_eq!(
        env.annotation(kind, "app", "watch-cluster.io/last-update-image")
            .await,
        Some(expected.clone())
    );
    // The verdict the controller delivered is the one kubectl reaches on its own.
    let (ok, output) = env.rollout_status(kind, "app", &["--timeout=60s"]).await;
    assert!(ok, "kubectl rollout status: {output}");
    // Every pod runs the new image, and reports the digest the registry served when it started.
    let pods = env.pods("app").await;
    assert_eq!(pods.len(), 2, "two pods");
    let image_id = format!("{}/team/app@{}", env.registry.host(), newer.digest);
    for pod in &pods {
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        assert_eq!(statuses.len(), 1);
        assert_eq!(statuses[0].image, expected);
        assert_eq!(statuses[0].image_id, image_id);
        assert!(statuses[0].ready);
    }
    let reasons = env.reasons("app").await;
    assert!(
        reasons.contains(&"ImageUpdated".to_owned())
            && reasons.contains(&"RolloutCompleted".to_owned()),
        "{reasons:?}"
    );
}

async fn a_stuck_update_is_rolled_back(kind: Kind, test: &str) {
    let mut env = RealEnv::start(test).await;
    env.push("team/app", "1.0.0").await;
    let bad = env.push("team/app", "1.1.0").await;
    env.set_fault(&bad.digest, ImageFault::Crash).await;
    let current = env.image("team/app", "1.0.0");
    // A Deployment fails by its own progress deadline (the real deployment controller's verdict); the
    // other kinds have none, so the controller's ROLLOUT_TIMEOUT decides.
    let spec = match kind {
        Kind::Deployment => json!({"progressDeadlineSeconds": 10}),
        Kind::StatefulSet | Kind::DaemonSet => json!({}),
    };
    env.create(
        kind,
        "app",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
        spec,
    )
    .await;
    let (ok, output) = env.rollout_status(kind, "app", &["--timeout=60s"]).await;
    assert!(ok, "the first rollout completes: {output}");
    let mut settings = env.settings().await;
    settings.push(("ROLLOUT_TIMEOUT".into(), "20s".into()));
    env.spawn_controller(&settings);

    let bad_image = format!("{}@{}", env.image("team/app", "1.1.0"), bad.digest);
    env.wait_for_webhook("app", "IMAGE_ROLLOUT_STARTED").await;
    match kind {
        Kind::Deployment => {
            // kubectl watches the same rollout and reaches the same verdict, before the rollback.
            let (ok, output) = env.rollout_status(kind, "app", &["--timeout=60s"]).await;
            assert!(!ok, "kubectl rollout status succeeded: {output}");
            assert!(
                output.contains("exceeded its progress deadline"),
                "{output}"
            );
        }
        Kind::StatefulSet | Kind::DaemonSet => {
            // No deadline: kubectl keeps waiting, as the controller does until its timeout.
            let (ok, output) = env.rollout_status(kind, "app", &["--watch=false"]).await;
            assert!(ok, "{output}");
            assert!(output.contains("Waiting for"), "{output}");
        }
    }

    let failed = env.wait_for_webhook("app", "IMAGE_ROLLOUT_FAILED").await;
    assert_envelope(&failed, "IMAGE_ROLLOUT_FAILED", kind, env.ns(), &bad_image);
    let error = failed["details"]["error"].as_str().unwrap_or_default();
    match kind {
        Kind::Deployment => assert_eq!(
            error, "deployment \"app\" exceeded its progress deadline",
            "{failed}"
        ),
        Kind::StatefulSet | Kind::DaemonSet => assert!(
            error.starts_with("rollout did not complete within 20s: "),
            "{failed}"
        ),
    }
    assert_eq!(
        failed["details"],
        json!({"error": error, "rolledBackTo": current})
    );
    assert_eq!(
        env.webhook_types("app"),
        ["IMAGE_ROLLOUT_STARTED", "IMAGE_ROLLOUT_FAILED"]
    );
    env.wait_for(kind, "app", "rolled back", |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] == current.as_str()
            && o["metadata"]["annotations"]
                .get("watch-cluster.io/rollout")
                .is_none()
    })
    .await;
    let quarantine = env
        .annotation(kind, "app", "watch-cluster.io/quarantine")
        .await
        .unwrap_or_default();
    assert!(quarantine.contains(&bad.digest), "{quarantine}");
    // After the rollback the workload is healthy again, by kubectl's own judgement.
    let (ok, output) = env.rollout_status(kind, "app", &["--timeout=60s"]).await;
    assert!(ok, "kubectl rollout status after the rollback: {output}");
    let reasons = env.reasons("app").await;
    assert!(
        reasons.contains(&"RolloutFailed".to_owned()) && reasons.contains(&"RolledBack".to_owned()),
        "{reasons:?}"
    );
    // A StatefulSet never replaces its Not Ready pod by itself: the controller deleted it (src/release.rs).
    assert_eq!(
        reasons.contains(&"StuckPodDeleted".to_owned()),
        kind == Kind::StatefulSet,
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_update_completes_on_kube_apiserver() {
    an_update_completes(Kind::Deployment, "smoke-deploy-ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_update_completes_on_kube_apiserver() {
    an_update_completes(Kind::StatefulSet, "smoke-sts-ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_update_completes_on_kube_apiserver() {
    an_update_completes(Kind::DaemonSet, "smoke-ds-ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_deployment_is_rolled_back_by_its_progress_deadline_on_kube_apiserver() {
    a_stuck_update_is_rolled_back(Kind::Deployment, "smoke-deploy-stuck").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_statefulset_is_rolled_back_by_rollout_timeout_on_kube_apiserver() {
    a_stuck_update_is_rolled_back(Kind::StatefulSet, "smoke-sts-stuck").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_daemonset_is_rolled_back_by_rollout_timeout_on_kube_apiserver() {
    a_stuck_update_is_rolled_back(Kind::DaemonSet, "smoke-ds-stuck").await;
}
