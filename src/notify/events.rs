//! Kubernetes Events (docs/notifications.md#kubernetes-events): one shared `Recorder`, one Event per transition, never one per tick.
//!
//! Input: what happened to a workload (a reason from [`Reason`] and a note). Output: `events.k8s.io/v1`
//! Events reported by component `watch-cluster`. Conditions that persist across ticks (an invalid
//! annotation, a failing registry) go through [`EventRecorder::publish_once`], which remembers the last
//! note per (workload, reason) so a user sees the problem once and again only when it changes.
//! Publishing never fails a reconcile: an Event that cannot be written is logged.

use std::{
    collections::{HashMap, HashSet},
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
    /// Warning (on the ConfigMap `watch-cluster-quarantine`): the cluster quarantine cannot be read or
    /// written; no workload it could concern is updated until it can.
    QuarantineUnreadable,
    /// Normal: an update was found and a gate holds it (once per gate and candidate).
    UpdateHeld,
    /// Normal: the workload is managed by Argo CD or Flux (once per workload).
    ManagedByGitOps,
    /// Warning: an `imagePullSecrets` entry names a Secret that does not exist; it is skipped
    /// (docs/cloud-registries.md).
    PullSecretMissing,
    /// Warning: a candidate's signature was rejected and it is not taken (once per candidate and reason).
    SignatureRejected,
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
            Reason::QuarantineUnreadable => "QuarantineUnreadable",
            Reason::UpdateHeld => "UpdateHeld",
            Reason::ManagedByGitOps => "ManagedByGitOps",
            Reason::PullSecretMissing => "PullSecretMissing",
            Reason::SignatureRejected => "SignatureRejected",
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
            | Reason::StuckPodDeleted
            | Reason::UpdateHeld
            | Reason::ManagedByGitOps => EventType::Normal,
            _ => EventType::Warning,
        }
    }

    /// The `action` field: what the controller was doing.
    fn action(self) -> &'static str {
        match self {
            Reason::ImageUpdated
            | Reason::UpdateFailed
            | Reason::DryRunWouldUpdate
            | Reason::UpdateHeld => "Update",
            Reason::RolloutCompleted
            | Reason::RolloutFailed
            | Reason::RecordRejected
            | Reason::RolloutRecordUnwritable => "ObserveRollout",
            Reason::RolledBack | Reason::StuckPodDeleted => "Rollback",
            _ => "Check",
        }
    }
}

/// Whose condition a remembered note is: the workload's kind and namespace (so a relist of one watch can
/// prune its own entries), and its uid, or its name while the uid is unknown. Keyed by uid because a
/// workload deleted and created again under the same name is a new object whose first Warning must be seen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Subject {
    kind: String,
    namespace: String,
    id: String,
}

impl Subject {
    fn of(r: &ObjectReference) -> Self {
        let id = r.uid.as_deref().or(r.name.as_deref()).unwrap_or_default();
        Self {
            kind: r.kind.clone().unwrap_or_default(),
            namespace: r.namespace.clone().unwrap_or_default(),
            id: id.to_owned(),
        }
    }
}

/// At most this many workloads have remembered conditions. Entries of deleted workloads are pruned by the
/// watches; the bound covers what they cannot see (a watch that never relists). Evicting a workload costs
/// at most one repeated Event for it.
const MAX_SUBJECTS: usize = 20_000;

/// The last note per workload and reason: one hash lookup per call, whatever the number of workloads.
type Memo = HashMap<Subject, HashMap<Reason, String>>;

/// The Event series of each workload and reason: the note it was opened with and the recorder that counts
/// its repeats.
///
/// WHY one kube-runtime `Recorder` per series: a `Recorder` folds an Event into the previous one of the same
/// type, action, reason and object for six minutes, whatever its note. Two different `SignatureRejected`
/// candidates (or two `ImageUpdated` within six minutes) would then show as one Event with `count: 2` and
/// the first text only. A repeat of the same note still counts up in one Event; a new note opens a new one.
type Series = HashMap<(Subject, Reason), (String, Recorder)>;

/// The one Event writer of the process.
#[derive(Clone)]
pub struct EventRecorder {
    client: kube::Client,
    reporter: Reporter,
    series: Arc<Mutex<Series>>,
    last: Arc<Mutex<Memo>>,
}

impl EventRecorder {
    /// A recorder reporting as `watch-cluster` from `instance` (the pod name when known).
    pub fn new(client: kube::Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: COMPONENT.into(),
            instance,
        };
        Self {
            client,
            reporter,
            series: Arc::default(),
            last: Arc::default(),
        }
    }

    /// The recorder of the series `note` belongs to, opening a new series when the note differs from the
    /// last one of this workload and reason.
    fn series_for(&self, regarding: &ObjectReference, reason: Reason, note: &str) -> Recorder {
        let key = (Subject::of(regarding), reason);
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((last, recorder)) = series.get(&key)
            && last == note
        {
            return recorder.clone();
        }
        if series.len() >= MAX_SUBJECTS {
            // Bounded like the memo; the cost of a clear is one Event counted anew instead of counted up.
            series.clear();
        }
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        series.insert(key, (note.to_owned(), recorder.clone()));
        recorder
    }

    /// Records an Event now.
    pub async fn publish(&self, regarding: &ObjectReference, reason: Reason, note: String) {
        let note = truncate(note, 1000);
        let recorder = self.series_for(regarding, reason, &note);
        let event = Event {
            type_: reason.event_type(),
            reason: reason.as_str().into(),
            note: Some(note),
            action: reason.action().into(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, regarding).await {
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
        let subject = Subject::of(regarding);
        let mut last = self.lock();
        if let Some(conditions) = last.get_mut(&subject) {
            conditions.remove(&reason);
            if conditions.is_empty() {
                last.remove(&subject);
            }
        }
    }

    /// Forgets every condition of a workload (it was deleted or opted out).
    pub fn forget(&self, regarding: &ObjectReference) {
        let subject = Subject::of(regarding);
        self.lock().remove(&subject);
        self.series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(s, _), _| *s != subject);
    }

    /// After a relist of the workloads of `kind` (in `namespace`, or in all namespaces): forgets those whose
    /// uid (or name) is not in `alive`, i.e. deleted while the watch was down.
    pub fn retain_listed(&self, kind: &str, namespace: Option<&str>, alive: &HashSet<String>) {
        let keep = |subject: &Subject| {
            subject.kind != kind
                || namespace.is_some_and(|ns| subject.namespace != ns)
                || alive.contains(&subject.id)
        };
        self.lock().retain(|subject, _| keep(subject));
        self.series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(subject, _), _| keep(subject));
    }

    /// How many workloads have remembered conditions.
    pub fn remembered(&self) -> usize {
        self.lock().len()
    }

    fn remember(&self, regarding: &ObjectReference, reason: Reason, note: &str) -> bool {
        let subject = Subject::of(regarding);
        let mut last = self.lock();
        if !last.contains_key(&subject) && last.len() >= MAX_SUBJECTS {
            // Any one will do: the bound only has to hold, and the cost is one repeated Event.
            if let Some(evicted) = last.keys().next().cloned() {
                last.remove(&evicted);
            }
        }
        let conditions = last.entry(subject).or_default();
        if conditions.get(&reason).is_some_and(|n| n == note) {
            return false;
        }
        conditions.insert(reason, note.to_owned());
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memo> {
        // The map holds plain data: a panic elsewhere cannot leave it half-updated.
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
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

    /// kube-runtime folds Events of one reason and object into one for six minutes, whatever the note:
    /// a second rejected candidate must still be its own Event, and a repeat must count up the first.
    #[tokio::test]
    async fn a_new_note_is_a_new_event_and_a_repeated_note_counts_up_its_own() {
        crate::install_crypto_provider();
        let api = watch_cluster_sim::InProcess::new(watch_cluster_sim::ApiConfig::default())
            .expect("api");
        let recorder = EventRecorder::new(api.client.clone(), None);
        let web = deployment("default", "web", "uid-1");
        for note in [
            "1.3.0: unsigned",
            "1.2.0: signed by an unknown key",
            "1.3.0: unsigned",
        ] {
            recorder
                .publish(&web, Reason::SignatureRejected, note.into())
                .await;
        }
        recorder
            .publish(&web, Reason::SignatureRejected, "1.3.0: unsigned".into())
            .await;
        let events = api
            .store
            .list(watch_cluster_sim::Kind::Event, Some("default"));
        let mut seen: Vec<(String, u64)> = events
            .iter()
            .map(|e| {
                let note = e["message"]
                    .as_str()
                    .or(e["note"].as_str())
                    .unwrap_or_default();
                let count = e["series"]["count"]
                    .as_u64()
                    .or(e["count"].as_u64())
                    .unwrap_or(1);
                (note.to_owned(), count)
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("1.2.0: signed by an unknown key".to_owned(), 1),
                ("1.3.0: unsigned".to_owned(), 1),
                ("1.3.0: unsigned".to_owned(), 2),
            ]
        );
    }

    fn recorder() -> EventRecorder {
        crate::install_crypto_provider();
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        EventRecorder::new(kube::Client::try_from(config).expect("client"), None)
    }

    fn deployment(namespace: &str, name: &str, uid: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Deployment".into()),
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_workload_created_again_under_the_same_name_gets_its_first_warning() {
        let recorder = recorder();
        let old = deployment("shop", "web", "uid-1");
        assert!(recorder.remember(&old, Reason::InvalidAnnotation, "bad cron"));
        assert!(!recorder.remember(&old, Reason::InvalidAnnotation, "bad cron"));
        let new = deployment("shop", "web", "uid-2");
        assert!(
            recorder.remember(&new, Reason::InvalidAnnotation, "bad cron"),
            "the new object's first Warning is not swallowed"
        );
    }

    #[tokio::test]
    async fn a_relist_forgets_the_workloads_it_no_longer_lists_in_its_own_scope_only() {
        let recorder = recorder();
        let kept = deployment("shop", "web", "uid-1");
        let gone = deployment("shop", "api", "uid-2");
        let elsewhere = deployment("other", "db", "uid-3");
        for r in [&kept, &gone, &elsewhere] {
            assert!(recorder.remember(r, Reason::RegistryError, "app:NotFound"));
        }
        let alive = HashSet::from(["uid-1".to_owned()]);
        recorder.retain_listed("Deployment", Some("shop"), &alive);
        assert_eq!(recorder.remembered(), 2);
        assert!(!recorder.remember(&kept, Reason::RegistryError, "app:NotFound"));
        assert!(recorder.remember(&gone, Reason::RegistryError, "app:NotFound"));
        assert!(!recorder.remember(&elsewhere, Reason::RegistryError, "app:NotFound"));
    }

    #[tokio::test]
    async fn the_memory_of_conditions_is_bounded() {
        let recorder = recorder();
        for i in 0..MAX_SUBJECTS + 10 {
            let r = deployment("shop", &format!("w{i}"), &format!("uid-{i}"));
            assert!(recorder.remember(&r, Reason::RegistryError, "app:NotFound"));
        }
        assert_eq!(recorder.remembered(), MAX_SUBJECTS);
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let note = "é".repeat(600);
        let cut = truncate(note, 1000);
        assert!(cut.len() <= 1000);
        assert!(cut.ends_with("..."));
    }
}
