//! Kubernetes Events (docs/notifications.md#kubernetes-events): one writer for the process, one Event per transition, never one per tick.
//!
//! Input: what happened to a workload (a reason from [`Reason`] and a note). Output: `events.k8s.io/v1`
//! Events reported by component `watch-cluster`. Conditions that persist across ticks (an invalid
//! annotation, a failing registry) go through [`EventRecorder::publish_once`], which remembers the last
//! note per (workload, reason) so a user sees the problem once and again only when it changes.
//! Publishing never fails a reconcile: an Event that cannot be written is logged.

use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex},
};

use k8s_openapi::{
    api::{
        core::v1::ObjectReference,
        events::v1::{Event as K8sEvent, EventSeries},
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
    runtime::events::{EventType, Reporter},
};

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

/// How long a repeat of an Event's note counts up that Event: kube-runtime's and client-go's window. A repeat
/// after it opens a new Event, so a series quiet for longer is forgotten.
const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);

/// How often the forgotten series are swept out: a sweep walks the whole map, a publish only its own key.
const SERIES_SWEEP: SignedDuration = SignedDuration::from_mins(1);

/// One Event on the API server that repeats of one note count up: what the next repeat needs to patch it
/// (~100 bytes), not the Event.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    /// The note it was opened with, hashed: only whether a note is the same one is ever asked.
    note: u64,
    /// The Event's name.
    name: String,
    /// How many times it was seen (1: created, never patched).
    count: i32,
    /// When it was last seen.
    last: Timestamp,
}

/// The Event series of each workload and reason, and when the forgotten ones were last swept out.
///
/// WHY a series per (workload, reason) and note instead of kube-runtime's `Recorder`: a `Recorder` folds an
/// Event into the previous one of the same type, action, reason and object for six minutes, whatever its
/// note. Two different `SignatureRejected` candidates (or two `ImageUpdated` within six minutes) would then
/// show as one Event with `count: 2` and the first text only; and it keeps the whole Event (~2 KB with its
/// map) per series, which was 9.5 MiB after 1,000 updates (BENCHMARKS.md). Here a repeat of the same note
/// within six minutes counts up its Event; a new note, or a repeat after that, creates a new one.
#[derive(Debug, Default)]
struct SeriesMap {
    open: HashMap<(Subject, Reason), Series>,
    swept: Option<Timestamp>,
}

/// What a publish does on the API server.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// Creates an Event named so.
    Create(String),
    /// Counts up the Event of this name to `count`.
    Repeat { name: String, count: i32 },
}

impl SeriesMap {
    /// What publishing `note` (hashed) on `key` at `now` does: counts up the open series of that note, or
    /// opens a new one (`fresh_name` makes its Event's name). Forgets series older than [`SERIES_TTL`] at
    /// most every [`SERIES_SWEEP`].
    fn step(
        &mut self,
        key: &(Subject, Reason),
        note: u64,
        now: Timestamp,
        fresh_name: impl FnOnce() -> String,
    ) -> Step {
        if self.swept.is_none_or(|at| at + SERIES_SWEEP <= now) {
            self.open.retain(|_, series| series.last + SERIES_TTL > now);
            self.swept = Some(now);
        }
        match self.open.get(key) {
            Some(series) if series.note == note && series.last + SERIES_TTL > now => Step::Repeat {
                name: series.name.clone(),
                count: series.count + 1,
            },
            _ => Step::Create(fresh_name()),
        }
    }

    /// Remembers what a publish wrote (only once it was written, as kube-runtime does: a failed create
    /// leaves nothing to count up).
    fn written(&mut self, key: (Subject, Reason), note: u64, step: Step, now: Timestamp) {
        if !self.open.contains_key(&key) && self.open.len() >= MAX_SUBJECTS {
            // Bounded like the memo; the cost of a clear is one Event created anew instead of counted up.
            self.open.clear();
        }
        let (name, count) = match step {
            Step::Create(name) => (name, 1),
            Step::Repeat { name, count } => (name, count),
        };
        self.open.insert(
            key,
            Series {
                note,
                name,
                count,
                last: now,
            },
        );
    }

    fn retain(&mut self, mut keep: impl FnMut(&Subject) -> bool) {
        self.open.retain(|(subject, _), _| keep(subject));
    }
}

/// The one Event writer of the process.
#[derive(Clone)]
pub struct EventRecorder {
    client: kube::Client,
    reporter: Reporter,
    /// Hashes notes for [`Series::note`].
    hasher: RandomState,
    series: Arc<Mutex<SeriesMap>>,
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
            hasher: RandomState::new(),
            series: Arc::default(),
            last: Arc::default(),
        }
    }

    fn series(&self) -> std::sync::MutexGuard<'_, SeriesMap> {
        // Plain data, as the memo.
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an Event now: creates it, or counts up the Event of the same workload, reason and note
    /// written in the last six minutes.
    pub async fn publish(&self, regarding: &ObjectReference, reason: Reason, note: String) {
        let note = truncate(note, 1000);
        let key = (Subject::of(regarding), reason);
        let hash = self.hasher.hash_one(&note);
        let now = Timestamp::now();
        let step = self.series().step(&key, hash, now, || {
            let name = regarding.name.as_deref().unwrap_or(COMPONENT);
            // kube-runtime's and client-go's naming: unique per object and nanosecond.
            format!("{name}.{:x}", now.as_nanosecond())
        });
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let written = match &step {
            Step::Create(name) => {
                let event = self.event(name, regarding, reason, note, now);
                events
                    .create(&PostParams::default(), &event)
                    .await
                    .map(drop)
            }
            Step::Repeat { name, count } => {
                let series = EventSeries {
                    count: *count,
                    last_observed_time: MicroTime(now),
                };
                let patch = Patch::Merge(serde_json::json!({ "series": series }));
                events
                    .patch(name, &PatchParams::default(), &patch)
                    .await
                    .map(drop)
            }
        };
        match written {
            Ok(()) => self.series().written(key, hash, step, now),
            Err(error) => {
                // The next occurrence creates an Event rather than patch one that may be gone.
                self.series().open.remove(&key);
                tracing::warn!(
                    namespace = regarding.namespace.as_deref().unwrap_or_default(),
                    name = regarding.name.as_deref().unwrap_or_default(),
                    reason = reason.as_str(),
                    %error,
                    "failed to record a Kubernetes Event"
                );
            }
        }
    }

    /// A new Event, as kube-runtime's `Recorder` writes it.
    fn event(
        &self,
        name: &str,
        regarding: &ObjectReference,
        reason: Reason,
        note: String,
        now: Timestamp,
    ) -> K8sEvent {
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            action: Some(reason.action().into()),
            reason: Some(reason.as_str().into()),
            note: Some(note),
            type_: Some(
                match reason.event_type() {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            ..K8sEvent::default()
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
        self.series().retain(|s| *s != subject);
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
        self.series().retain(keep);
    }

    /// Whether a condition of this workload is remembered (what [`forget`](Self::forget) is for). Its open
    /// Event series are not asked: they end by themselves six minutes after their last Event.
    pub fn remembers(&self, regarding: &ObjectReference) -> bool {
        self.lock().contains_key(&Subject::of(regarding))
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

    /// A repeat of a note counts up its Event for six minutes after it was last seen, then opens a new
    /// one; the series quiet for longer are swept out of memory.
    #[test]
    fn a_series_counts_up_for_six_minutes_and_is_then_forgotten() {
        let mut map = SeriesMap::default();
        let web = (
            Subject::of(&deployment("shop", "web", "uid-1")),
            Reason::RegistryError,
        );
        let api = (
            Subject::of(&deployment("shop", "api", "uid-2")),
            Reason::RegistryError,
        );
        let t0 = Timestamp::from_second(1_000_000).expect("time");
        let at = |mins: i64, secs: i64| {
            t0 + SignedDuration::from_mins(mins) + SignedDuration::from_secs(secs)
        };
        let publish = |map: &mut SeriesMap, key: &(Subject, Reason), note: u64, now| {
            let step = map.step(key, note, now, || format!("e{}", now.as_second()));
            map.written(key.clone(), note, step.clone(), now);
            step
        };
        assert_eq!(
            publish(&mut map, &web, 1, at(0, 0)),
            Step::Create("e1000000".into())
        );
        assert_eq!(
            publish(&mut map, &web, 1, at(5, 59)),
            Step::Repeat {
                name: "e1000000".into(),
                count: 2
            },
            "within six minutes of the last time it was seen"
        );
        assert_eq!(
            publish(&mut map, &web, 1, at(11, 58)),
            Step::Repeat {
                name: "e1000000".into(),
                count: 3
            },
            "the window runs from the last repeat"
        );
        assert_eq!(
            publish(&mut map, &web, 2, at(12, 0)),
            Step::Create(format!("e{}", at(12, 0).as_second())),
            "a new note is a new Event"
        );
        assert_eq!(
            publish(&mut map, &api, 1, at(12, 0)),
            Step::Create(format!("e{}", at(12, 0).as_second()))
        );
        assert_eq!(map.open.len(), 2);
        assert_eq!(
            publish(&mut map, &web, 2, at(18, 0)),
            Step::Create(format!("e{}", at(18, 0).as_second())),
            "six minutes after it was last seen, a repeat opens a new Event"
        );
        // The sweep at 18:00 forgot the quiet series of `api`; `web` holds its new one.
        assert_eq!(map.open.len(), 1);
        assert!(map.open.contains_key(&web));
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
