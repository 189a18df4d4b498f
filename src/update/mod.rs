//! Applying decisions to workloads (docs/guarantees.md#updates): one guarded JSON Patch per workload and check.
//!
//! Input: the workload projection and the decided [`ContainerChange`]s. Output: the accepted object, or an
//! [`UpdateError`] that says whether the refusal means "someone else changed it, decide again" (409 from
//! a resourceVersion precondition, 422 from a failed `test`, see [`is_failed_operation`]) or a real refusal
//! to report (validation, admission, RBAC, a deleted namespace...).

pub mod patch;

use json_patch::Patch as JsonPatch;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde::de::DeserializeOwned;

pub use patch::{Change, ContainerChange, per_container};

/// The field manager of every write, so `managedFields` show who changed what.
pub const FIELD_MANAGER: &str = "watch-cluster";

/// How a patch was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The object changed since it was read (409 Conflict, or 422 from a failed JSON Patch `test`).
    #[error("failed to patch {name}: it changed since it was read")]
    Conflict {
        /// The workload.
        name: String,
    },
    /// The API server refused the patch for another reason.
    #[error("the API server refused to patch {name}: {answer}")]
    Refused {
        /// The workload.
        name: String,
        /// What the API server said, for people: `403 Forbidden: <message>`, without the Status dump.
        answer: String,
        /// The API server's answer.
        #[source]
        source: kube::Error,
    },
}

impl UpdateError {
    /// A short, bounded reason for Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            UpdateError::Conflict { .. } => "conflict",
            UpdateError::Refused { .. } => "refused",
        }
    }
}

/// Applies a JSON Patch and classifies a refusal.
pub async fn apply<K>(api: &Api<K>, name: &str, patch: JsonPatch) -> Result<K, UpdateError>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    api.patch(name, &params, &Patch::<()>::Json(patch))
        .await
        .map_err(|source| classify(name, source))
}

fn classify(name: &str, source: kube::Error) -> UpdateError {
    match &source {
        kube::Error::Api(status) if status.code == 409 || is_failed_operation(status) => {
            UpdateError::Conflict { name: name.into() }
        }
        kube::Error::Api(status) => UpdateError::Refused {
            name: name.into(),
            answer: format!("{} {}: {}", status.code, status.reason, status.message),
            source,
        },
        other => UpdateError::Refused {
            name: name.into(),
            answer: other.to_string(),
            source,
        },
    }
}

/// Whether a 422 says "an operation of the JSON Patch could not be applied" (a failed `test`, a `remove` of
/// a path that is gone), which means the object changed since it was read. kube-apiserver (seen on v1.36.3,
/// docs/design.md "Refusals") answers that with reason `Invalid` and empty `details`; a validation or
/// admission refusal is also 422 `Invalid` but names the object (`details.name`, `details.kind`) and its
/// causes, and must be reported, never retried in silence.
pub fn is_failed_operation(status: &kube::core::Status) -> bool {
    status.code == 422
        && status.reason == "Invalid"
        && status
            .details
            .as_ref()
            .is_none_or(|d| d.name.is_empty() && d.kind.is_empty() && d.causes.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::{UpdateError, classify, is_failed_operation};

    use chrono::DateTime;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::{Value, json};

    use super::patch::*;
    use crate::{
        annotations::{self, RolloutOutcome, RolloutRecord},
        workload::Workload,
    };

    fn object() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "5",
                "annotations": {"watch-cluster.io/enabled": "true", "watch-cluster.io/check-now": "",
                                "team": "payments"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {
                "containers": [{"name": "app", "image": "app:1.0.0"}, {"name": "proxy", "image": "envoy:1.30.0"}]}}}
        })
    }

    fn record(to: &str) -> RolloutRecord {
        RolloutRecord {
            id: "r1".into(),
            from: [("app".to_owned(), "app:1.0.0".to_owned())].into(),
            to: [("app".to_owned(), to.to_owned())].into(),
            started_at: DateTime::from_timestamp(1_704_067_200, 0).unwrap(),
            outcome: None,
        }
    }

    fn change(workload: &Workload) -> ContainerChange {
        ContainerChange {
            container: workload.container("app").unwrap().clone(),
            from_image: "app:1.0.0".into(),
            to_image: "app:1.0.1@sha256:bb".into(),
            from_digest: Some("sha256:aa".into()),
            to_digest: "sha256:bb".into(),
        }
    }

    #[test]
    fn the_update_patch_changes_only_the_managed_image_and_records_the_change() {
        let mut doc = object();
        let workload = Workload::from(&serde_json::from_value::<Deployment>(doc.clone()).unwrap());
        let now = DateTime::from_timestamp(1_704_067_200, 0).unwrap();
        let p = update_patch(
            &workload,
            &[change(&workload)],
            &record("app:1.0.1@sha256:bb").to_value(),
            now,
        );
        json_patch::patch(&mut doc, &p).unwrap();
        let containers = &doc["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "app:1.0.1@sha256:bb");
        assert_eq!(containers[1]["image"], "envoy:1.30.0");
        let stored = &doc["metadata"]["annotations"];
        assert_eq!(stored["team"], "payments", "other annotations are kept");
        assert_eq!(stored[annotations::LAST_UPDATE], "1704067200000");
        assert_eq!(
            stored[annotations::LAST_UPDATE_IMAGE],
            "app:1.0.1@sha256:bb"
        );
        assert_eq!(
            stored[annotations::CHANGE],
            "app:1.0.0 -> app:1.0.1@sha256:bb"
        );
        assert_eq!(stored[annotations::LAST_UPDATE_FROM_DIGEST], "sha256:aa");
        assert_eq!(stored[annotations::LAST_UPDATE_TO_DIGEST], "sha256:bb");
        assert!(
            stored.get(annotations::CHECK_NOW).is_none(),
            "check-now is removed"
        );
        let stored: RolloutRecord =
            serde_json::from_str(stored[annotations::ROLLOUT].as_str().unwrap()).unwrap();
        assert_eq!(stored, record("app:1.0.1@sha256:bb"));
    }

    #[test]
    fn the_update_patch_fails_its_test_when_the_image_changed_meanwhile() {
        let original = object();
        let workload =
            Workload::from(&serde_json::from_value::<Deployment>(original.clone()).unwrap());
        let mut doc = original;
        doc["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:9.9.9");
        let p = update_patch(
            &workload,
            &[change(&workload)],
            &record("app:1.0.1@sha256:bb").to_value(),
            DateTime::from_timestamp(0, 0).unwrap(),
        );
        let before = doc.clone();
        assert!(json_patch::patch(&mut doc, &p).is_err());
        assert_eq!(doc, before, "a failed patch changes nothing");
    }

    #[test]
    fn the_update_patch_fails_its_test_when_anything_changed_since_the_copy_it_was_decided_from() {
        let original = object();
        let workload =
            Workload::from(&serde_json::from_value::<Deployment>(original.clone()).unwrap());
        let p = update_patch(
            &workload,
            &[change(&workload)],
            &record("app:1.0.1@sha256:bb").to_value(),
            DateTime::from_timestamp(0, 0).unwrap(),
        );
        assert_eq!(
            serde_json::to_value(&p).unwrap()[0],
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": "5"}),
            "the first operation"
        );
        // Same images, but paused (or re-annotated) meanwhile: a newer resourceVersion.
        let mut doc = original;
        doc["metadata"]["resourceVersion"] = json!("6");
        doc["spec"]["paused"] = json!(true);
        let before = doc.clone();
        assert!(json_patch::patch(&mut doc, &p).is_err());
        assert_eq!(doc, before, "a failed patch changes nothing");
    }

    #[test]
    fn several_containers_are_recorded_as_name_value_pairs() {
        assert_eq!(
            per_container([("app", "a:2"), ("proxy", "p:3")]),
            "app=a:2,proxy=p:3"
        );
        assert_eq!(per_container([("app", "a:2")]), "a:2");
    }

    #[test]
    fn the_rollback_patch_restores_quarantines_and_records_the_outcome() {
        let mut doc = object();
        doc["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:1.0.1@sha256:bb");
        let current = record("app:1.0.1@sha256:bb");
        doc["metadata"]["annotations"][annotations::ROLLOUT] = json!(current.to_value());
        let workload = Workload::from(&serde_json::from_value::<Deployment>(doc.clone()).unwrap());
        let mut failed = current.clone();
        failed.outcome = Some(RolloutOutcome::Failed {
            delivered: Default::default(),
            at: DateTime::from_timestamp(1_704_067_300, 0).unwrap(),
            error: "deadline".into(),
            rolled_back_to: Some(current.from.clone()),
        });
        let sealed = crate::record::Sealed {
            raw: current.to_value(),
            record: current.clone(),
        };
        let p = rollback_patch(&sealed, &workload, "[]".into(), &failed.to_value());
        json_patch::patch(&mut doc, &p).unwrap();
        assert_eq!(
            doc["spec"]["template"]["spec"]["containers"][0]["image"],
            "app:1.0.0"
        );
        assert_eq!(
            doc["metadata"]["annotations"][annotations::QUARANTINE],
            "[]"
        );
        assert_eq!(
            doc["metadata"]["annotations"][annotations::ROLLOUT],
            json!(failed.to_value())
        );
    }

    #[test]
    fn the_record_patch_only_moves_the_record_it_was_built_from() {
        let current = record("app:1.0.1@sha256:bb");
        let mut doc = object();
        doc["metadata"]["annotations"][annotations::ROLLOUT] = json!(current.to_value());
        let mut other = doc.clone();
        let raw = current.to_value();
        json_patch::patch(&mut doc, &record_patch(&raw, None)).unwrap();
        assert!(
            doc["metadata"]["annotations"]
                .get(annotations::ROLLOUT)
                .is_none()
        );
        other["metadata"]["annotations"][annotations::ROLLOUT] = json!(record("x").to_value());
        assert!(json_patch::patch(&mut other, &record_patch(&raw, None)).is_err());
    }

    /// Answers of kube-apiserver v1.36.3 to JSON Patches of a Deployment, verbatim (docs/design.md).
    fn status(body: &str) -> kube::core::Status {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn a_failed_test_is_a_conflict_and_a_validation_or_admission_refusal_is_not() {
        let failed_test = status(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server rejected our request due to an error in our request","reason":"Invalid","details":{},"code":422}"#,
        );
        assert!(is_failed_operation(&failed_test));
        let invalid = status(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0","reason":"Invalid","details":{"name":"web","group":"apps","kind":"Deployment","causes":[{"reason":"FieldValueInvalid","message":"Invalid value: -1: must be greater than or equal to 0","field":"spec.replicas"}]},"code":422}"#,
        );
        assert!(!is_failed_operation(&invalid));
        let policy = status(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'no-bad' with binding 'no-bad' denied request: image is invalid","reason":"Invalid","details":{"name":"web","group":"apps","kind":"deployments","causes":[{"message":"ValidatingAdmissionPolicy 'no-bad' with binding 'no-bad' denied request: image is invalid"}]},"code":422}"#,
        );
        assert!(!is_failed_operation(&policy));
        assert!(matches!(
            classify("web", kube::Error::Api(Box::new(failed_test))),
            UpdateError::Conflict { .. }
        ));
        assert!(matches!(
            classify("web", kube::Error::Api(Box::new(policy))),
            UpdateError::Refused { .. }
        ));
    }
}
