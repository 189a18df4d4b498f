//! Kubernetes Events (SPEC §7): one shared `Recorder`, one Event per transition, never one per tick.
//!
//! Input: what happened to a workload (a reason from [`Reason`] and a note). Output: `events.k8s.io/v1`
//! Events reported by component `watch-cluster`. Conditions that persist across ticks (an invalid
//! annotation, a failing registry) go through [`EventRecorder::publish_once`], which remembers the last
//! note per (workload, reason) so a user sees the problem once and again only when it changes.
//! Publishing never fails a reconcile: an Event that cannot be written is logged.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// The reporting component of every Event.
pub const COMPONENT: &str = "watch-cluster";

/// Why an Event was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Normal: an image was updated (from → to).
    ImageUpdated,
    /// Normal: the rollout completed.
    RolloutCompleted,
    /// Normal: containers the strategy cannot handle were skipped.
    ContainersSkipped,
    /// Normal: `DRY_RUN` would have updated.
    DryRunWouldUpdate,
    /// Warning: the rollout failed.
    RolloutFailed,
    /// Warning: the previous images were restored.
    RolledBack,
    /// Warning: the update patch was refused.
    UpdateFailed,
    /// Warning: another writer put the old image back.
    UpdateReverted,
    /// Warning: an annotation value cannot be used.
    InvalidAnnotation,
    /// Warning: the registry could not be asked.
    RegistryError,
    /// Warning: the workload uses the `OnDelete` update strategy and is not managed.
    UnsupportedUpdateStrategy,
    /// Normal: `check-now` was seen.
    ManualCheckRequested,
    /// Normal: `check-now` led to an update.
    ManualCheckUpdated,
    /// Normal: `check-now` found nothing to do.
    ManualCheckNoUpdate,
    /// Warning: `check-now` failed.
    ManualCheckFailed,
    /// Normal: a StatefulSet pod left Not Ready on a quarantined image was deleted after the rollback.
    StuckPodDeleted,
    /// Warning: a `rollout` annotation the controller did not write, or a `rollout` or `quarantine` it cannot
    /// read, was ignored.
    RecordRejected,
    /// Warning: a rollout's outcome could not be written; retried with a growing pause.
    RolloutRecordUnwritable,
}

impl Reason {
    /// The Event reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ImageUpdated => "ImageUpdated",
            Reason::RolloutCompleted => "RolloutCompleted",
            Reason::ContainersSkipped => "ContainersSkipped",
            Reason::DryRunWouldUpdate => "DryRunWouldUpdate",
            Reason::RolloutFailed => "RolloutFailed",
            Reason::RolledBack => "RolledBack",
            Reason::UpdateFailed => "UpdateFailed",
            Reason::UpdateReverted => "UpdateReverted",
            Reason::InvalidAnnotation => "InvalidAnnotation",
            Reason::RegistryError => "RegistryError",
            Reason::UnsupportedUpdateStrategy => "UnsupportedUpdateStrategy",
            Reason::ManualCheckRequested => "ManualCheckRequested",
            Reason::ManualCheckUpdated => "ManualCheckUpdated",
            Reason::ManualCheckNoUpdate => "ManualCheckNoUpdate",
            Reason::ManualCheckFailed => "ManualCheckFailed",
            Reason::StuckPodDeleted => "StuckPodDeleted",
            Reason::RecordRejected => "RecordRejected",
            Reason::RolloutRecordUnwritable => "RolloutRecordUnwritable",
        }
    }

    /// Warning or Normal.
    pub fn event_type(self) -> EventType {
        match self {
            Reason::ImageUpdated
            | Reason::RolloutCompleted
            | Reason::ContainersSkipped
            | Reason::DryRunWouldUpdate
            | Reason::ManualCheckRequested
            | Reason::ManualCheckUpdated
            | Reason::ManualCheckNoUpdate
            | Reason::StuckPodDeleted => EventType::Normal,
            _ => EventType::Warning,
        }
    }

    /// The `action` field: what the controller was doing.
    fn action(self) -> &'static str {
        match self {
            Reason::ImageUpdated | Reason::UpdateFailed | Reason::DryRunWouldUpdate => "Update",
            Reason::RolloutCompleted
            | Reason::RolloutFailed
            | Reason::RecordRejected
            | Reason::RolloutRecordUnwritable => "ObserveRollout",
            Reason::RolledBack | Reason::StuckPodDeleted => "Rollback",
            _ => "Check",
        }
    }
}

type Key = (String, Reason);

/// The one Event writer of the process.
#[derive(Clone)]
pub struct EventRecorder {
    recorder: Recorder,
    last: Arc<Mutex<HashMap<Key, String>>>,
}

impl EventRecorder {
    /// A recorder reporting as `watch-cluster` from `instance` (the pod name when known).
    pub fn new(client: kube::Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: COMPONENT.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client, reporter),
            last: Arc::default(),
        }
    }

    /// Records an Event now.
    pub async fn publish(&self, regarding: &ObjectReference, reason: Reason, note: String) {
        let event = Event {
            type_: reason.event_type(),
            reason: reason.as_str().into(),
            note: Some(truncate(note, 1000)),
            action: reason.action().into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, regarding).await {
            tracing::warn!(
                namespace = regarding.namespace.as_deref().unwrap_or_default(),
                name = regarding.name.as_deref().unwrap_or_default(),
                reason = reason.as_str(),
                %error,
                "failed to record a Kubernetes Event"
            );
        }
    }

    /// Records an Event unless the same (workload, reason) was last recorded with the same note.
    /// Returns whether an Event was recorded.
    pub async fn publish_once(
        &self,
        regarding: &ObjectReference,
        reason: Reason,
        note: String,
    ) -> bool {
        if !self.remember(regarding, reason, &note) {
            return false;
        }
        self.publish(regarding, reason, note).await;
        true
    }

    /// Like [`publish_once`](Self::publish_once), but "the same" is decided by `identity`, not by the note,
    /// for conditions whose message varies while the condition does not.
    pub async fn publish_once_keyed(
        &self,
        regarding: &ObjectReference,
        reason: Reason,
        identity: &str,
        note: String,
    ) -> bool {
        if !self.remember(regarding, reason, identity) {
            return false;
        }
        self.publish(regarding, reason, note).await;
        true
    }

    /// Forgets a persistent condition, so its next occurrence is recorded again.
    pub fn clear(&self, regarding: &ObjectReference, reason: Reason) {
        if let Ok(mut last) = self.last.lock() {
            last.remove(&(key_of(regarding), reason));
        }
    }

    /// Forgets every condition of a workload (it was deleted or opted out).
    pub fn forget(&self, regarding: &ObjectReference) {
        let key = key_of(regarding);
        if let Ok(mut last) = self.last.lock() {
            last.retain(|(k, _), _| *k != key);
        }
    }

    fn remember(&self, regarding: &ObjectReference, reason: Reason, note: &str) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return true;
        };
        let key = (key_of(regarding), reason);
        if last.get(&key).is_some_and(|n| n == note) {
            return false;
        }
        last.insert(key, note.to_owned());
        true
    }
}

fn key_of(r: &ObjectReference) -> String {
    format!(
        "{}/{}/{}",
        r.kind.as_deref().unwrap_or_default(),
        r.namespace.as_deref().unwrap_or_default(),
        r.name.as_deref().unwrap_or_default()
    )
}

/// Event notes are limited to 1 kB by the API server.
fn truncate(mut note: String, max: usize) -> String {
    if note.len() > max {
        let mut end = max.saturating_sub(3);
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn warnings_and_normals_follow_the_spec() {
        assert_eq!(Reason::InvalidAnnotation.event_type(), EventType::Warning);
        assert_eq!(Reason::RegistryError.event_type(), EventType::Warning);
        assert_eq!(Reason::ImageUpdated.event_type(), EventType::Normal);
        assert_eq!(Reason::ManualCheckFailed.event_type(), EventType::Warning);
        assert_eq!(Reason::ContainersSkipped.as_str(), "ContainersSkipped");
    }

    #[tokio::test]
    async fn a_persistent_condition_is_remembered_per_workload_and_reason_until_cleared() {
        crate::install_crypto_provider();
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let recorder = EventRecorder::new(kube::Client::try_from(config).expect("client"), None);
        let web = ObjectReference {
            kind: Some("Deployment".into()),
            namespace: Some("shop".into()),
            name: Some("web".into()),
            ..Default::default()
        };
        let api = ObjectReference {
            name: Some("api".into()),
            ..web.clone()
        };
        assert!(recorder.remember(&web, Reason::RegistryError, "app:NotFound"));
        assert!(
            !recorder.remember(&web, Reason::RegistryError, "app:NotFound"),
            "same condition"
        );
        assert!(
            recorder.remember(&api, Reason::RegistryError, "app:NotFound"),
            "other workload"
        );
        assert!(
            recorder.remember(&web, Reason::InvalidAnnotation, "app:NotFound"),
            "other reason"
        );
        assert!(
            recorder.remember(&web, Reason::RegistryError, "app:RateLimited"),
            "a new error"
        );
        recorder.clear(&web, Reason::RegistryError);
        assert!(
            recorder.remember(&web, Reason::RegistryError, "app:RateLimited"),
            "after recovery"
        );
        recorder.forget(&web);
        assert!(recorder.remember(&web, Reason::InvalidAnnotation, "app:NotFound"));
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let note = "é".repeat(600);
        let cut = truncate(note, 1000);
        assert!(cut.len() <= 1000);
        assert!(cut.ends_with("..."));
    }
}
