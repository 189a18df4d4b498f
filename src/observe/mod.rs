//! Observe: what an update's rollout needs next, from its record and the workload's latest state
//! (docs/guarantees.md, "Rollouts").
//!
//! Input: the sealed `rollout` record, the workload as the watch shows it, the time, and since when this
//! process has watched the record. Output: one [`Step`]: wait, finish as completed, finish as failed
//! (with or without a rollback), or deliver an outcome already recorded. Pure; the controller carries the
//! step out (`controller::observe`) and nothing else decides how a rollout ends.
//!
//! Two rules keep a healthy workload safe. A rollout is failed only on what the workload shows now: its own
//! controller's verdict (`ProgressDeadlineExceeded`), a newer image than ours, or no progress within the
//! limit counted from when this process began watching — never from a `startedAt` days old, so a record
//! left behind while the controller was away is judged on the rollout it sees — and measured on the
//! monotonic clock, so a wall clock stepped forward fails nothing. A workload that is complete is never
//! rolled back, however late.

pub mod cause;
pub mod release;

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;

pub use cause::Cause;

use crate::{
    annotations::{self, RolloutOutcome, RolloutRecord},
    retry::Backoff,
    strategy::{Quarantine, QuarantineEntry},
    workload::{Kind, Progress, Workload},
};

/// StatefulSets and DaemonSets have no progress deadline: this bounds them unless `ROLLOUT_TIMEOUT` is set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Grace after a Deployment's own `progressDeadlineSeconds` before the controller gives up on it.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(60);

/// What the observer knows when it looks at a rollout.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The update in flight.
    pub record: &'a RolloutRecord,
    /// The workload now.
    pub workload: &'a Workload,
    /// Now.
    pub now: DateTime<Utc>,
    /// How long this process has watched the record, on its monotonic clock.
    pub watched_for: Duration,
    /// `ROLLOUT_TIMEOUT`.
    pub rollout_timeout: Option<Duration>,
    /// The workload's pods, when the caller listed them (only needed to classify a failure, see
    /// [`cause`]); empty otherwise, which blames the workload.
    pub pods: &'a [Pod],
}

/// Why a rollout failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Someone wrote another image over ours: theirs stays, nothing is rolled back.
    Superseded {
        /// The image now in the spec.
        image: String,
    },
    /// The workload's controller gave up (`ProgressDeadlineExceeded`, ...).
    Stuck {
        /// Its words.
        why: String,
    },
    /// No completion within the limit.
    TimedOut {
        /// The limit.
        limit: Duration,
        /// Where the rollout stands.
        what: String,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Superseded { image } => write!(f, "superseded by {image}"),
            Failure::Stuck { why } => f.write_str(why),
            Failure::TimedOut { limit, what } => write!(
                f,
                "rollout did not complete within {}s: {what}",
                limit.as_secs()
            ),
        }
    }
}

/// The next thing to do about a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Still in progress: look again on the next change, or after this long at the latest.
    Wait(Duration),
    /// Complete: record this outcome.
    Complete(RolloutRecord),
    /// Failed: record this outcome; `roll_back` restores `from` and quarantines `to` in the same patch.
    Fail {
        /// The record with its outcome.
        outcome: RolloutRecord,
        /// Why.
        failure: Failure,
        /// Whether the previous images are restored.
        roll_back: bool,
        /// Whether the new pods blamed the image (for `QUARANTINE_SCOPE=cluster`).
        cause: Cause,
    },
    /// The outcome is recorded: deliver it, then remove the record.
    Deliver,
}

/// Decides the next step of a rollout.
pub fn step(seen: &Observation<'_>) -> Step {
    let record = seen.record;
    if record.outcome.is_some() {
        return Step::Deliver;
    }
    if let Some(image) = superseded_by(record, seen.workload) {
        return fail(seen, Failure::Superseded { image }, false);
    }
    match &seen.workload.progress {
        Progress::Complete => Step::Complete(completed(record, seen.now)),
        Progress::Failed(why) => fail(seen, Failure::Stuck { why: why.clone() }, true),
        Progress::InProgress(what) => {
            let limit = rollout_limit(
                seen.workload.kind,
                seen.workload.progress_deadline_seconds,
                seen.rollout_timeout,
            );
            let since_start = (seen.now - record.started_at).to_std().unwrap_or_default();
            let elapsed = since_start.min(seen.watched_for);
            if elapsed < limit {
                return Step::Wait(limit - elapsed);
            }
            let what = what.clone();
            fail(seen, Failure::TimedOut { limit, what }, true)
        }
    }
}

fn superseded_by(record: &RolloutRecord, workload: &Workload) -> Option<String> {
    record.to.iter().find_map(|(name, written)| {
        let image = workload
            .container(name)
            .map(|c| c.image.clone())
            .unwrap_or_default();
        (image != *written).then_some(image)
    })
}

fn fail(seen: &Observation<'_>, failure: Failure, may_roll_back: bool) -> Step {
    let roll_back = may_roll_back && rollback_enabled(seen.workload);
    let outcome = RolloutRecord {
        outcome: Some(RolloutOutcome::Failed {
            delivered: Default::default(),
            at: seen.now,
            error: failure.to_string(),
            rolled_back_to: roll_back.then(|| seen.record.from.clone()),
        }),
        ..seen.record.clone()
    };
    // Someone else's image replaced ours: its pods say nothing about the image we wrote.
    let cause = match failure {
        Failure::Superseded { .. } => Cause::Workload,
        Failure::Stuck { .. } | Failure::TimedOut { .. } => {
            cause::classify(seen.workload, seen.record, seen.pods)
        }
    };
    Step::Fail {
        outcome,
        failure,
        roll_back,
        cause,
    }
}

/// Whether `step` fails the rollout in a way the pods could blame on the image: the caller lists the pods
/// and steps again only then, so a rollout in progress costs no pod list.
pub fn needs_pods(step: &Step) -> bool {
    matches!(
        step,
        Step::Fail {
            failure: Failure::Stuck { .. } | Failure::TimedOut { .. },
            ..
        }
    )
}

/// `rollback: "false"` turns rollback off. Read leniently on purpose: an update in flight finishes by the
/// safe default even when the annotations around it were edited into something invalid.
fn rollback_enabled(workload: &Workload) -> bool {
    workload
        .annotations
        .get(annotations::ROLLBACK)
        .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"))
}

fn completed(record: &RolloutRecord, now: DateTime<Utc>) -> RolloutRecord {
    let duration_ms = u64::try_from((now - record.started_at).num_milliseconds()).unwrap_or(0);
    RolloutRecord {
        outcome: Some(RolloutOutcome::Completed {
            delivered: Default::default(),
            at: now,
            duration_ms,
        }),
        ..record.clone()
    }
}

/// How long a rollout may take.
pub fn rollout_limit(
    kind: Kind,
    progress_deadline_seconds: Option<i32>,
    rollout_timeout: Option<Duration>,
) -> Duration {
    match kind {
        Kind::Deployment => {
            let own = Duration::from_secs(
                u64::try_from(progress_deadline_seconds.unwrap_or(600)).unwrap_or(600),
            ) + DEADLINE_GRACE;
            rollout_timeout.map_or(own, |t| t.min(own))
        }
        Kind::StatefulSet | Kind::DaemonSet => rollout_timeout.unwrap_or(DEFAULT_TIMEOUT),
    }
}

/// The `quarantine` annotation after a rollback of `record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineUpdate {
    /// The value to write.
    pub value: String,
    /// The stored value could not be read and was replaced: the rollback must not wait on a
    /// hand-edited annotation, and the user is told what was lost.
    pub replaced: Option<String>,
}

/// Adds the images `record` wrote to the workload's quarantine.
pub fn quarantine_after(
    workload: &Workload,
    record: &RolloutRecord,
    now: DateTime<Utc>,
) -> QuarantineUpdate {
    let stored = workload.annotations.get(annotations::QUARANTINE);
    let (mut quarantine, replaced) = match stored.map(|v| Quarantine::from_annotation(v)) {
        None => (Quarantine::default(), None),
        Some(Ok(quarantine)) => (quarantine, None),
        Some(Err(_)) => (Quarantine::default(), stored.cloned()),
    };
    for (container, image) in &record.to {
        quarantine.add(QuarantineEntry {
            container: container.clone(),
            image: image.clone(),
            at: now,
        });
    }
    let value = quarantine.to_annotation().unwrap_or_else(|_| "[]".into());
    QuarantineUpdate { value, replaced }
}

/// `name=image,…` for messages, or the image alone for one container.
pub fn images(map: &BTreeMap<String, String>) -> String {
    crate::update::per_container(map.iter().map(|(n, i)| (n.as_str(), i.as_str())))
}

/// How long until a rollout whose outcome could not be written or delivered is looked at again: doubling
/// from 2 s, at most 5 minutes, so a refusing API server or an unreachable receiver is not hammered.
pub fn retry_after(failures: u32) -> Duration {
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
    // `failures` counts the failures before this one: the first wait is 2 s.
    BACKOFF.delay(failures.saturating_add(1))
}

#[cfg(test)]
mod tests;
