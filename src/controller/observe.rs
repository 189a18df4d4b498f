//! Carries out what [`crate::observe::step`] decides: the writes, Events and webhooks that end a rollout.
//!
//! Input: a workload whose `rollout` annotation opened with this controller's seal. Output: the outcome
//! recorded in that annotation first, then Events and the `IMAGE_ROLLOUT_COMPLETED`/`FAILED` webhook, then
//! the annotation removed. Because the annotation is the only state, a restarted controller or a new leader
//! picks up exactly where the last one stopped (docs/guarantees.md, "Rollouts").
//!
//! Runs for every workload that carries a sealed record, whatever its other annotations say: an update in
//! flight always finishes, even after `enabled` was set to `"false"` or the cron was broken mid-rollout.

use std::{collections::HashMap, sync::Arc, sync::Mutex, time::Duration};

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::ListParams};

use super::{Context, ManagedKind, WorkloadKey, notify_ref, reference_of};
use crate::{
    annotations::{RolloutOutcome, RolloutRecord},
    metrics::RolloutResult,
    notify::{Event, Facts, Notification, events::Reason},
    observe::{self, Observation, Step, images},
    record::{self, Binding, Rejected, Sealed},
    update::{self, UpdateError, patch},
    workload::Workload,
};

/// What this process remembers of the record it is watching.
#[derive(Debug, Clone)]
pub struct Watching {
    id: String,
    since: tokio::time::Instant,
    failures: u32,
}

/// How soon a record that moved under us (a conflict) is looked at again: the watch brings the new copy
/// sooner in the usual case, this bounds the rare one.
const CONFLICT_RETRY: Duration = Duration::from_secs(2);

/// The workload's own identity, which its record is sealed to.
pub fn binding(workload: &Workload) -> Binding<'_> {
    Binding {
        kind: workload.kind,
        namespace: &workload.namespace,
        name: &workload.name,
        uid: &workload.uid,
    }
}

/// Opens the workload's `rollout` annotation: `None` when there is none; a record it cannot trust is
/// reported once per value (a Warning Event that names it) and never acted on.
pub async fn open_record<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    workload: &Workload,
) -> Option<Sealed> {
    let raw = workload.annotations.get(crate::annotations::ROLLOUT)?;
    match record::open(&ctx.record_key, &binding(workload), raw) {
        Ok(sealed) => Some(sealed),
        Err(rejected) => {
            report_rejected::<K>(ctx, key, workload, raw, &rejected).await;
            None
        }
    }
}

async fn report_rejected<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    workload: &Workload,
    raw: &str,
    rejected: &Rejected,
) {
    let shown: String = raw.chars().take(200).collect();
    let note = format!(
        "{rejected}; it is ignored, and checks go on (the next update replaces it). Remove it with: kubectl \
         annotate {} {} watch-cluster.io/rollout- (value: {shown})",
        key.kind.as_str().to_lowercase(),
        key.name
    );
    let reference = reference_of::<K>(key, Some(workload.uid.clone()));
    let reported = ctx
        .events
        .publish_once_keyed(&reference, Reason::RecordRejected, raw, note)
        .await;
    if reported {
        tracing::warn!(%rejected, "ignored a rollout record watch-cluster did not write");
    }
}

/// Moves a rollout on from what the workload shows now. Returns how long until it must be looked at again
/// at the latest (its deadline, or a retry after a failed write or delivery).
#[tracing::instrument(skip_all, fields(kind = %key.kind, namespace = %key.namespace, name = %key.name))]
pub async fn advance<K: ManagedKind>(
    ctx: &Arc<Context>,
    key: &WorkloadKey,
    workload: &Workload,
    sealed: &Sealed,
) -> Duration {
    let watching = ctx.with_memory(key, |m| {
        let current = m.rollout.take().filter(|w| w.id == sealed.record.id);
        m.rollout
            .insert(current.unwrap_or_else(|| Watching {
                id: sealed.record.id.clone(),
                since: tokio::time::Instant::now(),
                failures: 0,
            }))
            .clone()
    });
    let observation = Observation {
        record: &sealed.record,
        workload,
        now: Utc::now(),
        watched_for: watching.since.elapsed(),
        rollout_timeout: ctx.config.rollout_timeout,
        pods: &[],
    };
    let mut step = observe::step(&observation);
    // Only a cluster quarantine needs to know whom the pods blame, and only once the rollout has failed:
    // a rollout in progress costs no pod list.
    let pods = if observe::needs_pods(&step) && ctx.cluster_quarantine.is_some() {
        list_pods(ctx, key, workload).await
    } else {
        Vec::new()
    };
    if !pods.is_empty() {
        step = observe::step(&Observation {
            pods: &pods,
            ..observation
        });
    }
    let written = match step {
        Step::Wait(wait) => return wait,
        Step::Deliver => {
            spawn_delivery::<K>(ctx, key);
            return observe::retry_after(watching.failures);
        }
        Step::Complete(next) => complete::<K>(ctx, key, workload, sealed, next).await,
        Step::Fail {
            outcome,
            failure,
            roll_back,
            cause,
        } => {
            quarantine_cluster_wide(ctx, key, &cause).await;
            fail::<K>(ctx, key, workload, sealed, outcome, &failure, roll_back).await
        }
    };
    match written {
        Ok(()) => {
            spawn_delivery::<K>(ctx, key);
            observe::retry_after(0)
        }
        Err(UpdateError::Conflict { .. }) => CONFLICT_RETRY,
        Err(error) => unwritable::<K>(ctx, key, workload, &error).await,
    }
}

/// The workload's pods, to classify a failure; none when they cannot be listed (the failure then stays the
/// workload's: a quarantine must never wait on a pod list).
async fn list_pods(ctx: &Context, key: &WorkloadKey, workload: &Workload) -> Vec<Pod> {
    let Some(selector) = workload.label_selector() else {
        return Vec::new();
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    match api.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list.items,
        Err(error) => {
            tracing::warn!(%error, "cannot list the workload's pods to tell whether the image failed; quarantining on this workload only");
            Vec::new()
        }
    }
}

/// Adds the digests the pods blamed to the cluster quarantine, before the rollback is written: if the
/// process stops in between, the next attempt adds them again (adding is idempotent), whereas the other
/// order could lose them. A quarantine that cannot be written never holds up the rollback.
async fn quarantine_cluster_wide(ctx: &Context, key: &WorkloadKey, cause: &observe::Cause) {
    let (Some(store), observe::Cause::Image(blamed)) = (&ctx.cluster_quarantine, cause) else {
        return;
    };
    let failed = observe::cause::Failed {
        kind: key.kind,
        namespace: &key.namespace,
        name: &key.name,
    };
    let entries = observe::cause::cluster_entries(&failed, blamed, Utc::now());
    store.add_reported(&ctx.events, &failed, &entries).await;
}

/// A refused outcome write: one Warning Event, then retries with a growing pause instead of every 2 s.
async fn unwritable<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    workload: &Workload,
    error: &UpdateError,
) -> Duration {
    let failures = ctx.with_memory(key, |m| {
        let watching = m.rollout.as_mut().map(|w| {
            w.failures = w.failures.saturating_add(1);
            w.failures
        });
        watching.unwrap_or(1)
    });
    let wait = observe::retry_after(failures);
    let reference = reference_of::<K>(key, Some(workload.uid.clone()));
    let note = format!(
        "failed to record the rollout's outcome: {error}; retrying in {}s",
        wait.as_secs()
    );
    let reported = ctx
        .events
        .publish_once_keyed(
            &reference,
            Reason::RolloutRecordUnwritable,
            &error.to_string(),
            note,
        )
        .await;
    if reported {
        tracing::warn!(%error, "failed to record the rollout's outcome");
    }
    wait
}

/// Records a completed rollout and its Event.
async fn complete<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    workload: &Workload,
    sealed: &Sealed,
    next: RolloutRecord,
) -> Result<(), UpdateError> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let value = record::seal(&ctx.record_key, &binding(workload), &next);
    update::apply(
        &api,
        &key.name,
        patch::record_patch(&sealed.raw, Some(&value)),
    )
    .await?;
    count_outcome(ctx, &next);
    let reference = reference_of::<K>(key, Some(workload.uid.clone()));
    let note = format!("rollout of {} completed", images(&next.to));
    ctx.events
        .publish(&reference, Reason::RolloutCompleted, note)
        .await;
    Ok(())
}

/// Records a failed rollout: with the previous images restored and the failed ones quarantined when
/// `roll_back`, in one guarded patch.
async fn fail<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    workload: &Workload,
    sealed: &Sealed,
    next: RolloutRecord,
    failure: &observe::Failure,
    roll_back: bool,
) -> Result<(), UpdateError> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let value = record::seal(&ctx.record_key, &binding(workload), &next);
    let quarantine =
        roll_back.then(|| observe::quarantine_after(workload, &sealed.record, Utc::now()));
    let patch = match &quarantine {
        Some(q) => patch::rollback_patch(sealed, workload, q.value.clone(), &value),
        None => patch::record_patch(&sealed.raw, Some(&value)),
    };
    update::apply(&api, &key.name, patch).await?;
    count_outcome(ctx, &next);
    tracing::warn!(error = %failure, rolled_back = roll_back, "rollout failed");
    let reference = reference_of::<K>(key, Some(workload.uid.clone()));
    let record = &sealed.record;
    let note = format!("rollout of {} failed: {failure}", images(&record.to));
    ctx.events
        .publish(&reference, Reason::RolloutFailed, note)
        .await;
    if roll_back {
        let note = format!(
            "restored {}; {} quarantined",
            images(&record.from),
            images(&record.to)
        );
        ctx.events
            .publish(&reference, Reason::RolledBack, note)
            .await;
    }
    if let Some(lost) = quarantine.and_then(|q| q.replaced) {
        let shown: String = lost.chars().take(200).collect();
        let note = format!(
            "the quarantine annotation could not be read and was replaced by the images just rolled back; \
             it held: {shown}"
        );
        ctx.events
            .publish(&reference, Reason::RecordRejected, note)
            .await;
    }
    Ok(())
}

/// Delivery tasks, one per workload at a time. A request that arrives while a task runs is not dropped: the
/// task looks again when it finishes. (Dropping it lost outcomes: a task started from a stale copy found
/// nothing to deliver while the next rollout's outcome, recorded meanwhile, waited for the next schedule
/// tick — docs/design.md, "Outcome delivery".)
#[derive(Debug, Default)]
pub struct Deliveries(Mutex<HashMap<WorkloadKey, bool>>);

impl Deliveries {
    /// Whether the caller should start a task; otherwise the running one is asked to look again.
    pub fn begin(&self, key: &WorkloadKey) -> bool {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match running.get_mut(key) {
            Some(again) => {
                *again = true;
                false
            }
            None => {
                running.insert(key.clone(), false);
                true
            }
        }
    }

    /// Called by a task after one pass: whether it must look again (asked meanwhile); otherwise it ends.
    pub fn finish(&self, key: &WorkloadKey) -> bool {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match running.get_mut(key) {
            Some(again) if *again => {
                *again = false;
                true
            }
            _ => {
                running.remove(key);
                false
            }
        }
    }
}

/// Delivers the outcome the API server holds for `key`, in its own task, so a slow receiver never holds
/// up reconciles.
fn spawn_delivery<K: ManagedKind>(ctx: &Arc<Context>, key: &WorkloadKey) {
    if !ctx.deliveries.begin(key) {
        return;
    }
    let ctx = ctx.clone();
    let key = key.clone();
    // Tracked: shutdown lets it finish before the Lease is released.
    ctx.tasks.clone().spawn(async move {
        loop {
            let notification = |record: &RolloutRecord| notification(&key, record);
            if !super::deliver::deliver_current::<K>(&ctx, &key, notification).await {
                ctx.with_memory(&key, |m| {
                    if let Some(w) = m.rollout.as_mut() {
                        w.failures = w.failures.saturating_add(1);
                    }
                });
            }
            if !ctx.deliveries.finish(&key) {
                break;
            }
        }
    });
}

fn notification(key: &WorkloadKey, record: &RolloutRecord) -> Option<Notification> {
    let (event, at) = match record.outcome.as_ref()? {
        RolloutOutcome::Completed {
            at, duration_ms, ..
        } => (
            Event::ImageRolloutCompleted {
                rollout_duration: Duration::from_millis(*duration_ms),
            },
            *at,
        ),
        RolloutOutcome::Failed {
            at,
            error,
            rolled_back_to,
            ..
        } => (
            Event::ImageRolloutFailed {
                error: error.clone(),
                rolled_back_to: rolled_back_to.as_ref().map(images),
            },
            *at,
        ),
    };
    let to = images(&record.to);
    // A rollback quarantines the images it rolled away from, all of `to` (observe::quarantine_after).
    let rolled_back = matches!(
        record.outcome,
        Some(RolloutOutcome::Failed {
            rolled_back_to: Some(_),
            ..
        })
    );
    let facts = Facts {
        from: record.from.clone(),
        to: record.to.clone(),
        quarantined: if rolled_back {
            record.to.clone()
        } else {
            Default::default()
        },
        started_at: Some(record.started_at),
    };
    Some(Notification::new(notify_ref(key), to, event, at, &record.id).with_facts(facts))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Kind;

    fn key() -> WorkloadKey {
        WorkloadKey {
            kind: Kind::Deployment,
            namespace: "team".into(),
            name: "web".into(),
        }
    }

    #[test]
    fn a_delivery_asked_for_while_one_runs_is_run_after_it_not_dropped() {
        // The interleaving that lost COMPLETED webhooks: a task starts (from a stale copy), the next
        // outcome is recorded and asks for delivery while the task still runs.
        let deliveries = Deliveries::default();
        assert!(deliveries.begin(&key()), "the first request starts a task");
        assert!(
            !deliveries.begin(&key()),
            "a second one joins the running task"
        );
        assert!(
            deliveries.finish(&key()),
            "the task must look again after its pass"
        );
        assert!(!deliveries.finish(&key()), "then it ends");
        assert!(
            deliveries.begin(&key()),
            "and the next request starts a new task"
        );
    }
}
