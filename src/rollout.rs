//! Observe: follow an update's rollout to its outcome, roll back a failure, deliver the outcome (SPEC §6).
//!
//! Input: a workload carrying a `rollout` annotation (written with the update patch). Output: the outcome
//! recorded in that annotation first, then Events and the `IMAGE_ROLLOUT_COMPLETED`/`FAILED` webhook, then
//! the annotation removed. Because the annotation is the only state, a restarted controller or a new leader
//! picks up exactly where the last one stopped: an unfinished rollout is observed again, a recorded outcome
//! is delivered again (same delivery id: at least once, deduplicable by receivers).
//!
//! The workload is watched, not polled: the controller's own watch carries its status, and every change runs
//! [`advance`] from reconcile (level-triggered, like every kube-runtime controller), with a requeue at the
//! deadline for a rollout that stops changing.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use kube::Api;

use crate::{
    annotations::{self, RolloutOutcome, RolloutRecord},
    controller::{Context, ManagedKind, WorkloadKey, notify_ref, reference_of},
    metrics::RolloutResult,
    notify::{DeliveryOutcome, Event, Notification, events::Reason},
    strategy::{Quarantine, QuarantineEntry},
    update::{self, UpdateError, patch, per_container},
    workload::{Kind, Progress, Workload},
};

/// StatefulSets and DaemonSets have no progress deadline: this bounds them unless `ROLLOUT_TIMEOUT` is set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Grace after a Deployment's own `progressDeadlineSeconds` before the controller gives up on it.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(60);

/// Moves a workload's rollout on from what its latest state shows; called by reconcile whenever the workload
/// changes (the controller's watch carries its status), so no extra watch or polling is needed.
///
/// Returns how long until the rollout's deadline when it is still in progress: reconcile requeues then, so a
/// rollout that stops changing is still failed on time. Deliveries run in their own tasks: a slow webhook
/// receiver never holds up reconciles.
#[tracing::instrument(skip_all, fields(kind = %key.kind, namespace = %key.namespace, name = %key.name))]
pub async fn advance<K: ManagedKind>(
    ctx: &Arc<Context>,
    key: &WorkloadKey,
    workload: &Workload,
) -> Option<Duration> {
    let record = read_record(workload)?;
    if record.outcome.is_some() {
        spawn_delivery::<K>(ctx, key, record);
        return None;
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let now = Utc::now();
    let limit = rollout_limit(
        workload.kind,
        workload.progress_deadline_seconds,
        ctx.config.rollout_timeout,
    );
    let elapsed = (now - record.started_at).to_std().unwrap_or_default();
    let superseded = record.to.iter().find_map(|(name, written)| {
        let image = workload
            .container(name)
            .map(|c| c.image.clone())
            .unwrap_or_default();
        (image != *written).then_some(image)
    });
    let next = if let Some(image) = superseded {
        let why = format!("superseded by {image}");
        fail::<K>(ctx, key, &api, workload, &record, why, false).await
    } else {
        match &workload.progress {
            Progress::Complete => complete::<K>(ctx, key, &api, workload, &record, now).await,
            Progress::Failed(why) => {
                fail::<K>(ctx, key, &api, workload, &record, why.clone(), true).await
            }
            Progress::InProgress(what) if elapsed < limit => {
                tracing::debug!(%what, "rollout in progress");
                return Some(limit - elapsed);
            }
            Progress::InProgress(what) => {
                let why = format!(
                    "rollout did not complete within {}s: {what}",
                    limit.as_secs()
                );
                fail::<K>(ctx, key, &api, workload, &record, why, true).await
            }
        }
    };
    match next {
        Some(next) => {
            spawn_delivery::<K>(ctx, key, next);
            None
        }
        // The record moved under us (another writer or leader, or a stale copy): look again shortly.
        None => Some(RETRY),
    }
}

/// How soon a rollout whose outcome could not be written is looked at again.
const RETRY: Duration = Duration::from_secs(2);

/// Delivers a recorded outcome in its own task, once per process at a time.
fn spawn_delivery<K: ManagedKind>(ctx: &Arc<Context>, key: &WorkloadKey, record: RolloutRecord) {
    {
        let mut delivering = ctx.delivering.lock().unwrap_or_else(|e| e.into_inner());
        if !delivering.insert(key.clone()) {
            return;
        }
    }
    let ctx = ctx.clone();
    let key = key.clone();
    // Tracked: shutdown lets it finish before the Lease is released.
    ctx.tasks.clone().spawn(async move {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.namespace);
        // Reconcile may run on a cached copy older than our own removal of the record: deliver only what
        // the API server still holds, or an outcome would be delivered twice.
        let current = match api.get_opt(&key.name).await {
            Ok(obj) => obj.and_then(|o| read_record(&o.project())),
            Err(error) => {
                tracing::warn!(%error, "failed to read the workload before delivering its outcome");
                None
            }
        };
        if current.as_ref() == Some(&record) {
            deliver_and_clear(&ctx, &key, &api, record).await;
        }
        ctx.delivering
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    });
}

fn read_record(workload: &Workload) -> Option<RolloutRecord> {
    match RolloutRecord::from_annotations(&workload.annotations)? {
        Ok(record) => Some(record),
        Err(raw) => {
            tracing::warn!(%raw, "the rollout annotation is unreadable; remove it to resume checks");
            None
        }
    }
}

/// How long a rollout may take from `startedAt`.
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

/// Records a completed rollout and its Event; `None` when the guarded patch was refused.
async fn complete<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    api: &Api<K>,
    workload: &Workload,
    record: &RolloutRecord,
    now: DateTime<Utc>,
) -> Option<RolloutRecord> {
    let next = completed(record, now);
    if let Err(error) =
        update::apply(api, &key.name, patch::record_patch(record, Some(&next))).await
    {
        tracing::info!(%error, "failed to record the outcome; looking again shortly");
        return None;
    }
    count_outcome(ctx, &next);
    let reference = reference_of::<K>(key, Some(workload.uid.clone()));
    ctx.events
        .publish(
            &reference,
            Reason::RolloutCompleted,
            format!("rollout of {} completed", images(&next.to)),
        )
        .await;
    Some(next)
}

fn completed(record: &RolloutRecord, now: DateTime<Utc>) -> RolloutRecord {
    let duration_ms = u64::try_from((now - record.started_at).num_milliseconds()).unwrap_or(0);
    RolloutRecord {
        outcome: Some(RolloutOutcome::Completed {
            at: now,
            duration_ms,
        }),
        ..record.clone()
    }
}

/// Records a failed rollout: rolled back (restore + quarantine) when allowed, else just the outcome.
/// Returns the record as written, or `None` when the guarded patch was refused.
async fn fail<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    api: &Api<K>,
    workload: &Workload,
    record: &RolloutRecord,
    error: String,
    may_roll_back: bool,
) -> Option<RolloutRecord> {
    let now = Utc::now();
    let rollback_enabled = workload
        .annotations
        .get(annotations::ROLLBACK)
        .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"));
    let roll_back = may_roll_back && rollback_enabled;
    let next = RolloutRecord {
        outcome: Some(RolloutOutcome::Failed {
            at: now,
            error: error.clone(),
            rolled_back_to: roll_back.then(|| record.from.clone()),
        }),
        ..record.clone()
    };
    let patch = if roll_back {
        let mut quarantine = workload
            .annotations
            .get(annotations::QUARANTINE)
            .and_then(|v| Quarantine::from_annotation(v).ok())
            .unwrap_or_default();
        for (container, image) in &record.to {
            quarantine.add(QuarantineEntry {
                container: container.clone(),
                image: image.clone(),
                at: now,
            });
        }
        let value = quarantine.to_annotation().unwrap_or_else(|_| "[]".into());
        patch::rollback_patch(record, workload, value, &next)
    } else {
        patch::record_patch(record, Some(&next))
    };
    match update::apply(api, &key.name, patch).await {
        Ok(_) => {}
        Err(UpdateError::Conflict { .. }) => return None,
        Err(refused) => {
            tracing::warn!(error = %refused, "failed to record the failed rollout");
            return None;
        }
    }
    count_outcome(ctx, &next);
    tracing::warn!(%error, rolled_back = roll_back, "rollout failed");
    let reference = reference_of::<K>(key, Some(workload.uid.clone()));
    ctx.events
        .publish(
            &reference,
            Reason::RolloutFailed,
            format!("rollout of {} failed: {error}", images(&record.to)),
        )
        .await;
    if roll_back {
        ctx.events
            .publish(
                &reference,
                Reason::RolledBack,
                format!(
                    "restored {}; {} quarantined",
                    images(&record.from),
                    images(&record.to)
                ),
            )
            .await;
    }
    Some(next)
}

/// Delivers the recorded outcome, then removes the annotation (SPEC §6: after success or exhausted retries).
async fn deliver_and_clear<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    api: &Api<K>,
    record: RolloutRecord,
) {
    let Some(outcome) = &record.outcome else {
        return;
    };
    let (event, at) = match outcome {
        RolloutOutcome::Completed { at, duration_ms } => (
            Event::ImageRolloutCompleted {
                rollout_duration: Duration::from_millis(*duration_ms),
            },
            *at,
        ),
        RolloutOutcome::Failed {
            at,
            error,
            rolled_back_to,
        } => (
            Event::ImageRolloutFailed {
                error: error.clone(),
                rolled_back_to: rolled_back_to.as_ref().map(images),
            },
            *at,
        ),
    };
    let notification =
        Notification::new(notify_ref(key), images(&record.to), event, at, &record.id);
    match ctx.notifier.deliver(&notification).await {
        DeliveryOutcome::Exhausted => tracing::warn!(
            "the webhook receiver did not take the outcome; giving up after the configured retries"
        ),
        // Shutdown cut the delivery short: keep the record so the next leader delivers it.
        DeliveryOutcome::Interrupted => return,
        DeliveryOutcome::Delivered | DeliveryOutcome::Disabled => {}
    }
    match update::apply(api, &key.name, patch::record_patch(&record, None)).await {
        // A conflict: someone (a new leader) already moved the record on.
        Ok(_) | Err(UpdateError::Conflict { .. }) => {}
        Err(error) => {
            tracing::warn!(%error, "failed to remove the rollout annotation; delivering again on the next change");
        }
    }
}

/// Counts an outcome once, when it is recorded; deliveries may repeat (after a restart), the count does not.
fn count_outcome(ctx: &Context, record: &RolloutRecord) {
    let (result, at) = match &record.outcome {
        Some(RolloutOutcome::Completed { at, .. }) => (RolloutResult::completed, at),
        Some(RolloutOutcome::Failed {
            at,
            rolled_back_to: Some(_),
            ..
        }) => (RolloutResult::rolled_back, at),
        Some(RolloutOutcome::Failed { at, .. }) => (RolloutResult::failed, at),
        None => return,
    };
    let seconds = (*at - record.started_at).num_milliseconds().max(0) as f64 / 1000.0;
    ctx.metrics.rollout(result, seconds);
}

fn images(map: &std::collections::BTreeMap<String, String>) -> String {
    per_container(map.iter().map(|(n, i)| (n.as_str(), i.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_gets_its_own_deadline_plus_a_minute_unless_the_timeout_is_shorter() {
        assert_eq!(
            rollout_limit(Kind::Deployment, Some(600), None),
            Duration::from_secs(660)
        );
        assert_eq!(
            rollout_limit(Kind::Deployment, Some(30), Some(Duration::from_secs(600))),
            Duration::from_secs(90)
        );
        assert_eq!(
            rollout_limit(Kind::Deployment, Some(600), Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn statefulsets_and_daemonsets_default_to_ten_minutes() {
        assert_eq!(
            rollout_limit(Kind::StatefulSet, None, None),
            DEFAULT_TIMEOUT
        );
        assert_eq!(
            rollout_limit(Kind::DaemonSet, None, Some(Duration::from_secs(42))),
            Duration::from_secs(42)
        );
    }
}
