//! Refusals are refusals: an admission policy that refuses the new image is reported once (a Warning Event
//! `UpdateFailed` and one durable `IMAGE_ROLLOUT_FAILED`), never retried in silence as if someone had
//! changed the workload (docs/design.md "Refusals").

use serde_json::json;

use crate::env::{Kind, RealEnv, WAIT};
use crate::{as_pairs, enabled};

async fn a_refused_update_is_reported_once(reason: &str, code: u16, test: &str) {
    let mut env = RealEnv::start(test).await;
    env.push("team/app", "1.0.0").await;
    env.push("team/app", "1.1.0").await;
    env.deny_images(":1.1.0", reason).await;
    let current = env.image("team/app", "1.0.0");
    env.create(
        Kind::Deployment,
        "app",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    env.spawn_controller(&settings);

    let failed = env.wait_for_webhook("app", "IMAGE_ROLLOUT_FAILED").await;
    let policy = format!("deny-{}", env.ns());
    let error = format!(
        "the API server refused to patch app: {code} {reason}: deployments.apps \"app\" is forbidden: \
         ValidatingAdmissionPolicy '{policy}' with binding '{policy}' denied request: images containing :1.1.0 \
         are not allowed here"
    );
    assert_eq!(
        failed["details"],
        json!({"error": error}),
        "no rolledBackTo"
    );
    assert!(
        failed["deployment"]["image"]
            .as_str()
            .unwrap_or_default()
            .contains("/team/app:1.1.0@sha256:"),
        "{failed}"
    );
    // The outcome went through the `rollout` record, which is cleared once delivered.
    env.wait_for(Kind::Deployment, "app", "the record delivered", |d| {
        d["metadata"]["annotations"]
            .get("watch-cluster.io/rollout")
            .is_none()
    })
    .await;

    // The next scheduled check (before the failure backoff spaces them out) meets the same refusal, as
    // the API server's own record shows: it is not reported again.
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.refused_patches(code) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no second refused patch in the audit log"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(env.webhook_types("app"), ["IMAGE_ROLLOUT_FAILED"]);
    let reasons = env.reasons("app").await;
    assert_eq!(
        reasons.iter().filter(|r| *r == "UpdateFailed").count(),
        1,
        "{reasons:?}"
    );
    assert_eq!(env.image_of(Kind::Deployment, "app").await, current);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_policy_refusing_the_image_as_invalid_is_reported_once() {
    a_refused_update_is_reported_once("Invalid", 422, "refused-invalid").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_policy_refusing_the_image_as_forbidden_is_reported_once() {
    a_refused_update_is_reported_once("Forbidden", 403, "refused-forbidden").await;
}
