//! Webhook payloads (docs/notifications.md): the typed notification a caller builds, and its exact JSON body.
//!
//! Input: a [`Notification`] (which workload, which image, what happened, when). Output: the compact JSON
//! body receivers parse, and the delivery id they deduplicate on. Key names and value formats are
//! compatible with the original tool, so they are spelled out here by serde attributes rather than
//! derived from Rust names.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The four webhook event types, named as receivers see them in `eventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// A workload is newly watched or its effective (cron, strategy) changed.
    DeploymentDetected,
    /// The update patch was accepted.
    ImageRolloutStarted,
    /// The rollout completed.
    ImageRolloutCompleted,
    /// The patch was refused, or the rollout failed or timed out.
    ImageRolloutFailed,
}

impl EventType {
    /// Every event type, in the order of docs/notifications.md.
    pub const ALL: [EventType; 4] = [
        EventType::DeploymentDetected,
        EventType::ImageRolloutStarted,
        EventType::ImageRolloutCompleted,
        EventType::ImageRolloutFailed,
    ];

    /// The wire name, e.g. `IMAGE_ROLLOUT_COMPLETED` (also the metric label value).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::DeploymentDetected => "DEPLOYMENT_DETECTED",
            EventType::ImageRolloutStarted => "IMAGE_ROLLOUT_STARTED",
            EventType::ImageRolloutCompleted => "IMAGE_ROLLOUT_COMPLETED",
            EventType::ImageRolloutFailed => "IMAGE_ROLLOUT_FAILED",
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of workload a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment: the payload carries no `kind` (compatibility with the original tool).
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
}

impl WorkloadKind {
    fn is_deployment(&self) -> bool {
        matches!(self, WorkloadKind::Deployment)
    }
}

/// Which workload a notification is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkloadRef {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// What happened, with the `details` each event type carries.
///
/// Image strings follow docs/notifications.md: the pinned image if one container is managed, else `name=image,…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
pub enum Event {
    /// `DEPLOYMENT_DETECTED` with the effective cron expression and strategy.
    DeploymentDetected {
        /// The effective `cron` value.
        cron_expression: String,
        /// The effective `strategy` value.
        update_strategy: String,
    },
    /// `IMAGE_ROLLOUT_STARTED` with the image(s) before the update.
    ImageRolloutStarted {
        /// The image(s) before the update.
        previous_image: String,
    },
    /// `IMAGE_ROLLOUT_COMPLETED` with the time from `startedAt` to completion.
    ImageRolloutCompleted {
        /// Serialized as whole milliseconds, `"45000ms"`.
        #[serde(serialize_with = "serialize_millis")]
        rollout_duration: Duration,
    },
    /// `IMAGE_ROLLOUT_FAILED` with the reason and, when rolled back, the restored image(s).
    ImageRolloutFailed {
        /// Why it failed, e.g. `superseded by app:2.0.0`.
        error: String,
        /// The image(s) restored by the rollback; absent when nothing was rolled back.
        #[serde(skip_serializing_if = "Option::is_none")]
        rolled_back_to: Option<String>,
    },
}

impl Event {
    /// The event type this event is sent as.
    pub fn event_type(&self) -> EventType {
        match self {
            Event::DeploymentDetected { .. } => EventType::DeploymentDetected,
            Event::ImageRolloutStarted { .. } => EventType::ImageRolloutStarted,
            Event::ImageRolloutCompleted { .. } => EventType::ImageRolloutCompleted,
            Event::ImageRolloutFailed { .. } => EventType::ImageRolloutFailed,
        }
    }
}

fn serialize_millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{}ms", duration.as_millis()))
}

/// One notification, ready to be handed to the [`Notifier`](super::Notifier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The workload it is about.
    pub workload: WorkloadRef,
    /// `deployment.image`: the image(s) the workload runs (or was moved to).
    pub image: String,
    /// What happened.
    pub event: Event,
    /// When it happened; serialized in whole seconds, UTC.
    pub at: DateTime<Utc>,
    /// `X-Watch-Cluster-Delivery`; see [`delivery_id`].
    pub delivery_id: String,
    /// What the chat formats show beyond the compat body; never serialized into it.
    pub facts: Facts,
}

/// What a chat message says beyond the compat JSON (docs/notifications.md#formats): per container, from where
/// to where, and what a rollback quarantined. Empty maps mean "not known here"; the compat body never carries
/// these, so it stays byte-identical to the original tool's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Container → image before the update (STARTED, COMPLETED, FAILED).
    pub from: BTreeMap<String, String>,
    /// Container → image written by the update; on DETECTED, the images the workload runs.
    pub to: BTreeMap<String, String>,
    /// Container → image quarantined on this workload by the rollback (the failed `to` images).
    pub quarantined: BTreeMap<String, String>,
    /// When the update patch was accepted: how long a failed rollout ran.
    pub started_at: Option<DateTime<Utc>>,
}

impl Notification {
    /// Builds a notification whose delivery id is [`delivery_id`] of the workload, `key` and the event type.
    ///
    /// `key` identifies the occurrence: the `rollout` annotation's `id` for `IMAGE_ROLLOUT_*`, and the
    /// announced `detected` value for `DEPLOYMENT_DETECTED`.
    pub fn new(
        workload: WorkloadRef,
        image: String,
        event: Event,
        at: DateTime<Utc>,
        key: &str,
    ) -> Self {
        let delivery_id = delivery_id(&workload.namespace, &workload.name, key, event.event_type());
        Notification {
            workload,
            image,
            event,
            at,
            delivery_id,
            facts: Facts::default(),
        }
    }

    /// The same notification with `facts` for the chat formats.
    pub fn with_facts(self, facts: Facts) -> Self {
        Notification { facts, ..self }
    }

    /// The event type this notification is sent as.
    pub fn event_type(&self) -> EventType {
        self.event.event_type()
    }

    /// The exact request body: compact JSON with the keys of docs/notifications.md, in their documented order.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&Payload {
            event_type: self.event_type(),
            timestamp: self.at.to_rfc3339_opts(SecondsFormat::Secs, true),
            deployment: DeploymentJson {
                namespace: &self.workload.namespace,
                name: &self.workload.name,
                image: &self.image,
                kind: self.workload.kind,
            },
            details: &self.event,
        })
    }
}

/// The deterministic `X-Watch-Cluster-Delivery` id of one notification.
///
/// The first 32 hex digits (128 bits) of SHA-256 over the NUL-separated namespace, name, `rollout_id`
/// and event type. It depends on nothing else (no clock, no randomness, no replica identity), so a
/// retry, a restarted controller and a new leader delivering the same outcome all send the same id,
/// and receivers can deduplicate at-least-once deliveries. NUL cannot occur in Kubernetes names, so
/// distinct inputs cannot collide by concatenation.
pub fn delivery_id(namespace: &str, name: &str, rollout_id: &str, event_type: EventType) -> String {
    let mut hasher = Sha256::new();
    for part in [namespace, name, rollout_id, event_type.as_str()] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let mut id = hex::encode(hasher.finalize());
    id.truncate(32);
    id
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    event_type: EventType,
    timestamp: String,
    deployment: DeploymentJson<'a>,
    details: &'a Event,
}

#[derive(Serialize)]
struct DeploymentJson<'a> {
    namespace: &'a str,
    name: &'a str,
    image: &'a str,
    #[serde(skip_serializing_if = "WorkloadKind::is_deployment")]
    kind: WorkloadKind,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn notification(kind: WorkloadKind, image: &str, event: Event) -> String {
        let workload = WorkloadRef {
            kind,
            namespace: "default".into(),
            name: "my-app".into(),
        };
        let at = Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
            + chrono::Duration::milliseconds(789);
        let n = Notification::new(workload, image.into(), event, at, "r1");
        String::from_utf8(n.to_json().unwrap()).unwrap()
    }

    #[test]
    fn deployment_detected_carries_cron_and_strategy() {
        let event = Event::DeploymentDetected {
            cron_expression: "0 */5 * * * ?".into(),
            update_strategy: "version".into(),
        };
        assert_eq!(
            notification(WorkloadKind::Deployment, "myapp:1.0.0", event),
            r#"{"eventType":"DEPLOYMENT_DETECTED","timestamp":"2024-01-01T12:00:00Z","deployment":{"namespace":"default","name":"my-app","image":"myapp:1.0.0"},"details":{"cronExpression":"0 */5 * * * ?","updateStrategy":"version"}}"#
        );
    }

    #[test]
    fn rollout_started_carries_previous_image() {
        let event = Event::ImageRolloutStarted {
            previous_image: "myapp:1.0.0@sha256:aa".into(),
        };
        assert_eq!(
            notification(WorkloadKind::Deployment, "myapp:1.0.1@sha256:bb", event),
            r#"{"eventType":"IMAGE_ROLLOUT_STARTED","timestamp":"2024-01-01T12:00:00Z","deployment":{"namespace":"default","name":"my-app","image":"myapp:1.0.1@sha256:bb"},"details":{"previousImage":"myapp:1.0.0@sha256:aa"}}"#
        );
    }

    #[test]
    fn rollout_completed_carries_duration_in_milliseconds() {
        let event = Event::ImageRolloutCompleted {
            rollout_duration: Duration::from_millis(45_000),
        };
        assert_eq!(
            notification(WorkloadKind::Deployment, "myapp:1.0.1@sha256:bb", event),
            r#"{"eventType":"IMAGE_ROLLOUT_COMPLETED","timestamp":"2024-01-01T12:00:00Z","deployment":{"namespace":"default","name":"my-app","image":"myapp:1.0.1@sha256:bb"},"details":{"rolloutDuration":"45000ms"}}"#
        );
    }

    #[test]
    fn rollout_failed_with_rollback_names_the_restored_image_and_the_kind() {
        let event = Event::ImageRolloutFailed {
            error: "ProgressDeadlineExceeded".into(),
            rolled_back_to: Some("myapp:1.0.0@sha256:aa".into()),
        };
        assert_eq!(
            notification(WorkloadKind::StatefulSet, "myapp:1.0.1@sha256:bb", event),
            r#"{"eventType":"IMAGE_ROLLOUT_FAILED","timestamp":"2024-01-01T12:00:00Z","deployment":{"namespace":"default","name":"my-app","image":"myapp:1.0.1@sha256:bb","kind":"StatefulSet"},"details":{"error":"ProgressDeadlineExceeded","rolledBackTo":"myapp:1.0.0@sha256:aa"}}"#
        );
    }

    #[test]
    fn rollout_failed_without_rollback_omits_rolled_back_to() {
        let event = Event::ImageRolloutFailed {
            error: "patch refused".into(),
            rolled_back_to: None,
        };
        assert_eq!(
            notification(WorkloadKind::DaemonSet, "a=x:1,b=y:2", event),
            r#"{"eventType":"IMAGE_ROLLOUT_FAILED","timestamp":"2024-01-01T12:00:00Z","deployment":{"namespace":"default","name":"my-app","image":"a=x:1,b=y:2","kind":"DaemonSet"},"details":{"error":"patch refused"}}"#
        );
    }

    #[test]
    fn delivery_id_is_stable_and_distinguishes_every_input() {
        let id = delivery_id("ns", "app", "r1", EventType::ImageRolloutCompleted);
        // Pinned: replicas running different versions must agree on the id (SHA-256 of
        // "ns\0app\0r1\0IMAGE_ROLLOUT_COMPLETED\0", first 32 hex digits).
        assert_eq!(id, "5a9bc2ce49891408f17c2836289293e8");
        for other in [
            delivery_id("ns", "app", "r1", EventType::ImageRolloutFailed),
            delivery_id("ns", "app", "r2", EventType::ImageRolloutCompleted),
            delivery_id("ns", "app2", "r1", EventType::ImageRolloutCompleted),
            delivery_id("nsa", "pp", "r1", EventType::ImageRolloutCompleted),
        ] {
            assert_ne!(id, other);
        }
    }
}
