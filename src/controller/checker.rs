//! One check of one workload: read → guard → resolve → decide → update (docs/guarantees.md#updates).
//!
//! Input: the workload key, its validated settings and the watch's copy of it. Output: at most one guarded
//! JSON Patch, the Events and webhooks that describe it, and a rollout observer. The first attempt decides
//! from the watch's copy and guards the patch with its resourceVersion, so a check that finds nothing new
//! makes no API request and an update makes two (the patch, then its Event, sent apart so the next check
//! need not wait for it): docs/design.md#api-requests-per-check. A 409 or a failed `test` (422) means
//! someone changed the workload since that copy (a 404: deleted it): read it from the API server and decide
//! again, at most [`ATTEMPTS`] attempts in all, with no webhook and no Warning. Any other refusal is
//! reported (`UpdateFailed`, `IMAGE_ROLLOUT_FAILED`).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use kube::Api;
use sha2::{Digest, Sha256};

use super::{Context, ManagedKind, WorkloadKey, notify_ref, observe::binding, reference_of};
use crate::{
    admit::Held,
    annotations::{self, RolloutOutcome, RolloutRecord, Settings},
    decide::{Findings, Kept, RegistryFailure, SignatureRejection, Undecidable, decide},
    metrics::CheckOutcome,
    notify::{Event, Facts, Notification, events::Reason},
    record,
    registry::RegistryClient,
    schedule::max_answer_age,
    update::{self, Change, ContainerChange, UpdateError, patch, per_container},
    workload::{Progress, Workload},
};

/// Read-decide-write attempts before a check gives up on a workload that keeps changing.
pub const ATTEMPTS: usize = 3;

/// Why a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Its cron fired.
    Schedule,
    /// `watch-cluster.io/check-now`.
    Manual,
    /// A registry reported a push of a repository it uses.
    Push,
    /// A gate that held its update opened, or a rollout slot freed.
    GateOpened,
}

/// What a check did.
#[derive(Debug)]
pub enum Checked {
    /// The workload was patched.
    Updated(Change),
    /// Nothing newer: why each container keeps its image.
    UpToDate(Vec<Kept>),
    /// Not checked now.
    Skipped(Skip),
    /// `DRY_RUN`: what would have changed.
    DryRun(Change),
    /// An update was found and gates hold it: why, and the update.
    Held(Vec<Held>, Option<Change>),
    /// The check failed.
    Failed(CheckFailure),
}

impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Checked::Updated(change) | Checked::DryRun(change) => change.fmt(f),
            Checked::UpToDate(kept) => {
                let reasons: Vec<String> = kept.iter().map(ToString::to_string).collect();
                f.write_str(&reasons.join("; "))
            }
            Checked::Skipped(skip) => skip.fmt(f),
            Checked::Failed(failure) => failure.fmt(f),
            Checked::Held(held, change) => {
                let reasons: Vec<String> = held.iter().map(ToString::to_string).collect();
                match change {
                    Some(change) => write!(f, "{change} waits: {}", reasons.join("; ")),
                    None => f.write_str(&reasons.join("; ")),
                }
            }
        }
    }
}

/// Why a workload is not checked now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// Deleted since the reconcile began.
    #[error("the workload no longer exists")]
    Gone,
    /// Our own update is still being rolled out.
    #[error("an update is still being rolled out")]
    RolloutInFlight,
    /// `spec.paused`.
    #[error("the workload is paused")]
    Paused,
    /// The `OnDelete` update strategy.
    #[error(
        "{0} uses the OnDelete update strategy: watch-cluster does not manage it (use RollingUpdate)"
    )]
    OnDelete(crate::workload::Kind),
    /// Someone else's rollout is moving or stuck.
    #[error("a rollout is in progress or stuck: {0}")]
    Moving(String),
    /// Every attempt met a concurrent edit.
    #[error("the workload kept changing during {ATTEMPTS} attempts; next check on schedule")]
    KeptChanging,
    /// The process is stopping.
    #[error("the controller is shutting down")]
    ShuttingDown,
}

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckFailure {
    /// The workload could not be read.
    #[error("failed to read the workload: {0}")]
    Read(#[source] kube::Error),
    /// Its annotations allow no decision.
    #[error(transparent)]
    Undecidable(#[from] Undecidable),
    /// The registry could not be asked, for every container that might move.
    #[error("{}", join(.0))]
    Registry(Vec<RegistryFailure>),
    /// The API server refused the update.
    #[error(transparent)]
    Refused(UpdateError),
}

/// Every registry failure is a 404: what a check woken by a push meets while the registry finishes writing
/// the tag.
pub fn not_served_yet(failures: &[RegistryFailure]) -> bool {
    !failures.is_empty() && failures.iter().all(|f| f.reason == "NotFound")
}

fn join(failures: &[RegistryFailure]) -> String {
    let parts: Vec<String> = failures.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

/// Checks one workload and records what happened.
#[tracing::instrument(skip_all, fields(kind = %key.kind, namespace = %key.namespace, name = %key.name, trigger = ?trigger))]
pub async fn check<K: ManagedKind>(
    ctx: &Arc<Context>,
    key: &WorkloadKey,
    settings: &Settings,
    trigger: Trigger,
    stored: &Workload,
) -> Checked {
    let reference = reference_of::<K>(key, None);
    if trigger == Trigger::Manual {
        let note = "check requested with watch-cluster.io/check-now".into();
        ctx.events
            .publish(&reference, Reason::ManualCheckRequested, note)
            .await;
    }
    let now = Utc::now();
    let shared = Shared {
        registry: ctx
            .registry
            .with_max_age(answer_max_age(settings, trigger, now)),
        reads: ctx.reads.with_max_age(read_max_age(settings, trigger, now)),
    };
    let checked = match ctx.checks.acquire().await {
        Ok(_permit) => check_once::<K>(ctx, key, settings, &shared, trigger, stored).await,
        // Closed only if the process is going away; a check that cannot run is skipped, not failed.
        Err(_closed) => Checked::Skipped(Skip::ShuttingDown),
    };
    if !matches!(&checked, Checked::Held(held, _) if held.iter().any(|h| matches!(h, Held::Slot { .. })))
    {
        // It no longer waits for a slot: nothing to update, another gate holds it, or it was granted one.
        ctx.withdraw_from_queue(key);
    }
    let news = report_held::<K>(ctx, key, &checked).await;
    log_outcome(&checked, news);
    ctx.metrics.check(match &checked {
        Checked::Updated(_) => CheckOutcome::updated,
        Checked::UpToDate(_) => CheckOutcome::no_update,
        Checked::Skipped(_) => CheckOutcome::skipped,
        Checked::DryRun(_) => CheckOutcome::dry_run,
        Checked::Failed(_) => CheckOutcome::failed,
        Checked::Held(..) => CheckOutcome::held,
    });
    if trigger == Trigger::Manual {
        let reason = match &checked {
            Checked::Updated(_) => Reason::ManualCheckUpdated,
            Checked::Failed(_) => Reason::ManualCheckFailed,
            Checked::UpToDate(_) | Checked::Skipped(_) | Checked::DryRun(_) | Checked::Held(..) => {
                Reason::ManualCheckNoUpdate
            }
        };
        ctx.events
            .publish(&reference, reason, checked.to_string())
            .await;
        if !matches!(checked, Checked::Updated(_)) {
            remove_check_now::<K>(ctx, key).await;
        }
    }
    checked
}

/// INFO only for news (an update, what a dry run would update, a failure, a gate that starts holding): 200
/// workloads on an every-second cron would otherwise write an INFO line per workload per second saying
/// nothing happened.
fn log_outcome(checked: &Checked, news: bool) {
    match checked {
        Checked::Updated(_) | Checked::DryRun(_) | Checked::Failed(_) => {
            tracing::info!(outcome = %checked, "check finished");
        }
        Checked::Held(..) if news => tracing::info!(outcome = %checked, "check finished"),
        Checked::UpToDate(_) | Checked::Skipped(_) | Checked::Held(..) => {
            tracing::debug!(outcome = %checked, "check finished");
        }
    }
}

/// One Normal Event `UpdateHeld` per gate and candidate, not per tick: a reason reported already is not
/// reported again while it keeps holding; one that stops holding and comes back is. Returns whether any
/// reason is new.
async fn report_held<K: ManagedKind>(ctx: &Context, key: &WorkloadKey, checked: &Checked) -> bool {
    let (held, candidate) = match checked {
        Checked::Held(held, change) => (
            held.as_slice(),
            change.as_ref().map(|c| c.to.clone()).unwrap_or_default(),
        ),
        _ => {
            ctx.with_memory(key, |m| m.held_reported.clear());
            return false;
        }
    };
    let current: std::collections::BTreeSet<String> =
        held.iter().map(|h| h.identity(&candidate)).collect();
    let new: Vec<&Held> = ctx.with_memory(key, |m| {
        let new = held
            .iter()
            .filter(|h| !m.held_reported.contains(&h.identity(&candidate)))
            .collect();
        m.held_reported = current;
        new
    });
    let reference = reference_of::<K>(key, None);
    for reason in &new {
        let note = if candidate.is_empty() {
            reason.to_string()
        } else {
            format!("{candidate}: {reason}")
        };
        ctx.events
            .publish(&reference, Reason::UpdateHeld, note)
            .await;
    }
    !new.is_empty()
}

/// The shared answers a check may use: registry answers, and ServiceAccount and pull-secret reads.
struct Shared {
    registry: RegistryClient,
    reads: crate::decide::ClusterReads,
}

/// How old a shared registry answer this check may use (docs/guarantees.md, "Registries"). A check
/// someone asked for with `check-now` looks at the registry as it is now.
fn answer_max_age(settings: &Settings, trigger: Trigger, now: DateTime<Utc>) -> Duration {
    match trigger {
        // A push event says the registry changed: what was cached before it is stale.
        Trigger::Manual | Trigger::Push => Duration::ZERO,
        Trigger::Schedule | Trigger::GateOpened => {
            max_answer_age(&settings.schedule, now).unwrap_or(Duration::MAX)
        }
    }
}

/// How old a shared ServiceAccount or pull-secret read this check may use (docs/design.md#api-requests-per-check):
/// a scheduled check, one read since its fire time, so every check of a window shares one read per object
/// and a Secret changed before a fire time is read anew by that fire time's checks. Any other check (a
/// `check-now`, a push, a gate that opened) reads them now.
fn read_max_age(settings: &Settings, trigger: Trigger, now: DateTime<Utc>) -> Duration {
    match trigger {
        Trigger::Schedule => settings
            .schedule
            .previous_before(now, true)
            .and_then(|tick| (now - tick).to_std().ok())
            .unwrap_or(Duration::ZERO),
        Trigger::Manual | Trigger::Push | Trigger::GateOpened => Duration::ZERO,
    }
}

/// Decide from the watch's copy, guard, write; after a concurrent edit read the workload from the API
/// server and decide again, at most [`ATTEMPTS`] attempts in all.
async fn check_once<K: ManagedKind>(
    ctx: &Arc<Context>,
    key: &WorkloadKey,
    settings: &Settings,
    shared: &Shared,
    trigger: Trigger,
    stored: &Workload,
) -> Checked {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let mut copy = Some(stored.clone());
    for _ in 0..ATTEMPTS {
        let mut workload = match copy.take() {
            Some(stored) => stored,
            None => match api.get_opt(&key.name).await {
                Ok(Some(obj)) => obj.project(),
                Ok(None) => return Checked::Skipped(Skip::Gone),
                Err(e) => return Checked::Failed(CheckFailure::Read(e)),
            },
        };
        if let Some(skip) = guard::<K>(ctx, key, &workload).await {
            return Checked::Skipped(skip);
        }
        let plan = match plan::<K>(ctx, key, &workload, settings, shared, trigger).await {
            Ok(plan) => plan,
            Err(failure) => return Checked::Failed(failure),
        };
        // `pending` is written whatever happens next (held, dry run, no change): it is when candidates were
        // first seen, and a restart must not reset that clock. The update patch is then guarded by the
        // resourceVersion that write produced.
        match write_pending::<K>(&api, key, &workload, &plan).await {
            PendingWrite::Written(version) => workload.resource_version = version,
            PendingWrite::Conflict => continue,
            PendingWrite::Unchanged => {}
        }
        let age_holds: Vec<Held> = plan.held.iter().map(Held::from).collect();
        if plan.changes.is_empty() {
            if !age_holds.is_empty() {
                return Checked::Held(age_holds, None);
            }
            return Checked::UpToDate(plan.kept);
        }
        let change = Change::of(&plan.changes);
        let signed = plan.signed_note();
        let reference = reference_of::<K>(key, Some(workload.uid.clone()));
        let holds = settings.gates.holds_at(Utc::now(), settings.force);
        if !holds.is_empty() {
            return Checked::Held(holds, Some(change));
        }
        if !ctx.config.dry_run
            && let Some(slot) = ctx.request_slot(key)
        {
            return Checked::Held(vec![slot], Some(change));
        }
        if ctx.config.dry_run {
            ctx.events
                .publish_once(
                    &reference,
                    Reason::DryRunWouldUpdate,
                    format!("{change}{signed}"),
                )
                .await;
            return Checked::DryRun(change);
        }
        match write::<K>(ctx, key, &api, &workload, &plan.changes, &signed).await {
            Written::Conflict => continue,
            Written::Done(checked) => return checked,
        }
    }
    Checked::Skipped(Skip::KeptChanging)
}

/// What writing `pending` did.
enum PendingWrite {
    /// Written: the workload's new resourceVersion.
    Written(String),
    /// The workload changed since the copy the decision was made from: decide again.
    Conflict,
    /// Nothing to write, or the write failed (logged).
    Unchanged,
}

/// Writes the `pending` annotation when deciding changed it, conditional on the resourceVersion of the copy
/// it was decided from. Any other failure is logged and the check goes on: the next check decides from the
/// annotation as it is then, so at worst a candidate's clock starts later.
async fn write_pending<K: ManagedKind>(
    api: &Api<K>,
    key: &WorkloadKey,
    workload: &Workload,
    plan: &Findings,
) -> PendingWrite {
    let Some(value) = plan.pending_merge_value() else {
        return PendingWrite::Unchanged;
    };
    let patch = serde_json::json!({"metadata": {
        "resourceVersion": workload.resource_version,
        "annotations": {annotations::PENDING: value},
    }});
    let params = kube::api::PatchParams {
        field_manager: Some(update::FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api
        .patch(&key.name, &params, &kube::api::Patch::Merge(&patch))
        .await
    {
        Ok(written) => written
            .meta()
            .resource_version
            .clone()
            .map_or(PendingWrite::Unchanged, PendingWrite::Written),
        Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {
            tracing::debug!("the workload changed while deciding; reading it again");
            PendingWrite::Conflict
        }
        Err(error) => {
            tracing::warn!(%error, "failed to record when the min-age candidates were first seen");
            PendingWrite::Unchanged
        }
    }
}

enum Written {
    Done(Checked),
    Conflict,
}

/// Writes the guarded update patch and tells what it did.
async fn write<K: ManagedKind>(
    ctx: &Arc<Context>,
    key: &WorkloadKey,
    api: &Api<K>,
    workload: &Workload,
    changes: &[ContainerChange],
    signed: &str,
) -> Written {
    let change = Change::of(changes);
    let reference = reference_of::<K>(key, Some(workload.uid.clone()));
    let record = new_record(workload, changes);
    let now = record.started_at;
    let sealed = record::seal(&ctx.record_key, &binding(workload), &record);
    let patch = patch::update_patch(workload, changes, &sealed, now);
    let applied = update::apply(api, &key.name, patch).await;
    match &applied {
        Ok(_) => ctx.slot_written(key, &record.id),
        Err(_) => ctx.release_slot(key),
    }
    match applied {
        Ok(_) => {
            ctx.with_memory(key, |m| m.refused = None);
            ctx.metrics.update();
            tracing::info!(%change, "image updated{signed}");
            // Sent apart: the check's permit goes to the next due check now, not after the Event's round
            // trip. Shutdown waits for `tasks`, so the Event is not lost.
            let events = Arc::clone(ctx);
            let note = format!("{change}{signed}");
            ctx.tasks.spawn(async move {
                events
                    .events
                    .publish(&reference, Reason::ImageUpdated, note)
                    .await;
            });
            let started = Notification::new(
                notify_ref(key),
                change.to.clone(),
                Event::ImageRolloutStarted {
                    previous_image: change.from.clone(),
                },
                now,
                &record.id,
            )
            .with_facts(Facts {
                from: record.from.clone(),
                to: record.to.clone(),
                quarantined: BTreeMap::new(),
                started_at: Some(record.started_at),
            });
            ctx.notifier.try_notify(&started);
            Written::Done(Checked::Updated(change))
        }
        Err(UpdateError::Conflict { .. }) => {
            tracing::debug!("the workload changed while deciding; reading it again");
            Written::Conflict
        }
        // Deleted since the watch's copy: the read that follows says so (`Skip::Gone`).
        Err(UpdateError::Refused {
            source: kube::Error::Api(status),
            ..
        }) if status.code == 404 => {
            tracing::debug!("the workload is gone; reading it again");
            Written::Conflict
        }
        Err(error @ UpdateError::Refused { .. }) => {
            let message = error.to_string();
            let refused = Refused {
                workload,
                changes,
                record,
                message: &message,
            };
            report_refusal(ctx, key, api, &reference, refused).await;
            Written::Done(Checked::Failed(CheckFailure::Refused(error)))
        }
    }
}

/// An update the API server refused.
struct Refused<'a> {
    workload: &'a Workload,
    changes: &'a [ContainerChange],
    record: RolloutRecord,
    message: &'a str,
}

/// Reports a refused update once per transition (docs/guarantees.md#updates): a Warning Event `UpdateFailed`, and the FAILED
/// outcome written into the `rollout` record by an annotation-only patch, from which it is delivered as any
/// outcome is (so a restart does not lose it). Where that patch is refused too, FAILED goes from memory.
async fn report_refusal<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    api: &Api<K>,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    refused: Refused<'_>,
) {
    let Refused {
        workload,
        changes,
        record,
        message,
    } = refused;
    let to = per_container(record.to.iter().map(|(n, i)| (n.as_str(), i.as_str())));
    let repeated = ctx.with_memory(key, |m| m.refused.replace(to.clone()) == Some(to.clone()));
    if repeated {
        tracing::debug!(%message, "update refused again; reported already");
        return;
    }
    tracing::warn!(%message, "update refused");
    ctx.events
        .publish(reference, Reason::UpdateFailed, message.to_owned())
        .await;
    let failed = RolloutRecord {
        outcome: Some(RolloutOutcome::Failed {
            delivered: Default::default(),
            at: Utc::now(),
            error: message.to_owned(),
            rolled_back_to: None,
        }),
        ..record
    };
    let sealed = record::seal(&ctx.record_key, &binding(workload), &failed);
    match update::apply(api, &key.name, patch::refused_patch(changes, &sealed)).await {
        // Our own write comes back through the watch; the rollout observer delivers the outcome.
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(%error, "cannot record the refused update; sending FAILED from memory");
            let notification = Notification::new(
                notify_ref(key),
                to,
                Event::ImageRolloutFailed {
                    error: message.to_owned(),
                    rolled_back_to: None,
                },
                Utc::now(),
                &failed.id,
            )
            .with_facts(Facts {
                from: failed.from.clone(),
                to: failed.to.clone(),
                quarantined: BTreeMap::new(),
                started_at: Some(failed.started_at),
            });
            ctx.tasks.spawn(ctx.notifier.deliver(&notification));
        }
    }
}

/// Reasons not to touch the workload now (docs/guarantees.md#updates).
async fn guard<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    workload: &Workload,
) -> Option<Skip> {
    // Only a record this controller sealed holds checks back; any other `rollout` value is reported by
    // reconcile and replaced by the next update.
    let sealed = workload
        .annotations
        .get(annotations::ROLLOUT)
        .is_some_and(|raw| record::open(&ctx.record_key, &binding(workload), raw).is_ok());
    if sealed {
        return Some(Skip::RolloutInFlight);
    }
    if workload.paused {
        return Some(Skip::Paused);
    }
    if workload.on_delete {
        let skip = Skip::OnDelete(key.kind);
        ctx.events
            .publish_once(
                &reference_of::<K>(key, Some(workload.uid.clone())),
                Reason::UnsupportedUpdateStrategy,
                skip.to_string(),
            )
            .await;
        return Some(skip);
    }
    if let Progress::InProgress(what) | Progress::Failed(what) = &workload.progress {
        return Some(Skip::Moving(what.clone()));
    }
    None
}

/// The cluster quarantine to decide with: empty with `QUARANTINE_SCOPE=workload`; read now otherwise, an
/// unreadable one reported once on the ConfigMap (the check then fails, naming it).
async fn cluster_quarantine(
    ctx: &Context,
) -> Result<Arc<crate::strategy::ClusterQuarantine>, Undecidable> {
    let Some(store) = &ctx.cluster_quarantine else {
        return Ok(Arc::default());
    };
    Ok(store.read_reported(&ctx.events).await?)
}

/// Decides, then records what the decision found (one Event per transition).
async fn plan<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    workload: &Workload,
    settings: &Settings,
    shared: &Shared,
    trigger: Trigger,
) -> Result<Findings, CheckFailure> {
    let reference = reference_of::<K>(key, Some(workload.uid.clone()));
    let known_revert = ctx.with_memory(key, |m| m.reverted.clone());
    let decided = match cluster_quarantine(ctx).await {
        Ok(cluster) => {
            let revert = known_revert.as_deref();
            let signatures = &ctx.signatures;
            decide(
                &shared.reads,
                &shared.registry,
                workload,
                settings,
                revert,
                &cluster,
                signatures,
            )
            .await
        }
        Err(unreadable) => Err(unreadable),
    };
    let findings = match decided {
        Ok(findings) => findings,
        Err(undecidable) => {
            let note = undecidable.to_string();
            tracing::warn!("{note}");
            let reason = match undecidable {
                Undecidable::Annotation(_) => Reason::InvalidAnnotation,
                Undecidable::Quarantine { .. } => Reason::RecordRejected,
                Undecidable::ClusterQuarantine(_) => Reason::QuarantineUnreadable,
            };
            ctx.events.publish_once(&reference, reason, note).await;
            return Err(CheckFailure::Undecidable(undecidable));
        }
    };
    if findings.missing_secrets.is_empty() {
        ctx.events.clear(&reference, Reason::PullSecretMissing);
    } else {
        let note = format!(
            "imagePullSecrets {} do not exist in namespace {}; skipped (cloud identity may apply to their registries)",
            findings.missing_secrets.join(", "),
            key.namespace
        );
        tracing::warn!("{note}");
        ctx.events
            .publish_once(&reference, Reason::PullSecretMissing, note)
            .await;
    }
    if !findings.skipped.is_empty() {
        ctx.events
            .publish_once(
                &reference,
                Reason::ContainersSkipped,
                findings.skipped.join("; "),
            )
            .await;
    }
    if let Some(revert) = &findings.reverted {
        let note = format!(
            "container {}: another writer set the image back to {}; {} is not applied again until a newer \
             image appears",
            revert.container, revert.theirs, revert.ours
        );
        tracing::warn!("{note}");
        ctx.events
            .publish_once(&reference, Reason::UpdateReverted, note)
            .await;
        ctx.with_memory(key, |m| m.reverted = Some(revert.ours.clone()));
    }
    report_rejections(ctx, key, &reference, &findings.signature_rejections).await;
    if findings.registry_errors.is_empty() {
        ctx.events.clear(&reference, Reason::RegistryError);
    } else if trigger == Trigger::Push && not_served_yet(&findings.registry_errors) {
        // distribution notifies while it is still linking the tag: a check woken by the push can list the
        // tag and get 404 for it. Retried shortly by reconcile, which tells this failure from a real one by
        // `not_served_yet`: reported as nothing new, the check would be retried once at most (as a push that
        // found nothing), and a push whose first check came too early was lost. A Warning would only be noise.
        tracing::debug!(errors = %join(&findings.registry_errors), "the pushed tag is not served yet");
        if findings.changes.is_empty() {
            return Err(CheckFailure::Registry(findings.registry_errors));
        }
    } else {
        report_registry_errors(ctx, &reference, &findings.registry_errors).await;
        if findings.changes.is_empty() {
            return Err(CheckFailure::Registry(findings.registry_errors));
        }
    }
    Ok(findings)
}

/// One Warning Event `SignatureRejected` per candidate and reason, not per tick: one reported already is
/// not reported again while it keeps being rejected; one that stops and comes back is.
async fn report_rejections(
    ctx: &Context,
    key: &WorkloadKey,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    rejections: &[SignatureRejection],
) {
    let identity = |r: &SignatureRejection| {
        format!("{} {} {}", r.container, r.image, r.rejection.kind.as_str())
    };
    let current: std::collections::BTreeSet<String> = rejections.iter().map(identity).collect();
    let new: Vec<&SignatureRejection> = ctx.with_memory(key, |m| {
        let new = rejections
            .iter()
            .filter(|r| !m.rejections_reported.contains(&identity(r)))
            .collect();
        m.rejections_reported = current;
        new
    });
    for rejection in new {
        let note = rejection.to_string();
        tracing::warn!(container = %rejection.container, image = %rejection.image, reason = rejection.rejection.kind.as_str(), "{note}");
        ctx.events
            .publish(reference, Reason::SignatureRejected, note)
            .await;
    }
}

/// One Event per distinct registry error, not per tick: the message may change every time (a rate limit's
/// end, a connection detail); the containers and categories say whether it is new.
async fn report_registry_errors(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    errors: &[RegistryFailure],
) {
    let identity = errors
        .iter()
        .map(|f| format!("{}:{}", f.container, f.reason))
        .collect::<Vec<_>>()
        .join(",");
    ctx.events
        .publish_once_keyed(reference, Reason::RegistryError, &identity, join(errors))
        .await;
}

fn new_record(workload: &Workload, changes: &[ContainerChange]) -> RolloutRecord {
    let started_at = Utc::now();
    let mut hasher = Sha256::new();
    for part in [workload.uid.as_str(), workload.resource_version.as_str()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for change in changes {
        hasher.update(change.to_image.as_bytes());
        hasher.update([0]);
    }
    hasher.update(started_at.timestamp_millis().to_le_bytes());
    let mut id = hex::encode(hasher.finalize());
    id.truncate(16);
    let from: BTreeMap<String, String> = changes
        .iter()
        .map(|c| (c.container.name.clone(), c.from_image.clone()))
        .collect();
    let to: BTreeMap<String, String> = changes
        .iter()
        .map(|c| (c.container.name.clone(), c.to_image.clone()))
        .collect();
    RolloutRecord {
        id,
        from,
        to,
        started_at,
        outcome: None,
    }
}

async fn remove_check_now<K: ManagedKind>(ctx: &Context, key: &WorkloadKey) {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let patch = json_patch::Patch(vec![patch::remove_annotation(annotations::CHECK_NOW)]);
    match update::apply(&api, &key.name, patch).await {
        // 422: already removed (the update patch removes it too).
        Ok(_) | Err(UpdateError::Conflict { .. }) => {}
        Err(error) => tracing::warn!(%error, "failed to remove the check-now annotation"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tracing::{Level, Subscriber};
    use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};

    /// Counts events by level: the subject here is the log itself (how loud a quiet check is).
    #[derive(Clone, Default)]
    struct Levels(Arc<Mutex<Vec<Level>>>);

    impl<S: Subscriber> Layer<S> for Levels {
        fn on_event(&self, event: &tracing::Event<'_>, _: LayerContext<'_, S>) {
            self.0.lock().unwrap().push(*event.metadata().level());
        }
    }

    fn info_lines_with(checked: &Checked, news: bool) -> usize {
        let levels = Levels::default();
        let subscriber = tracing_subscriber::registry().with(levels.clone());
        tracing::subscriber::with_default(subscriber, || log_outcome(checked, news));
        let seen = levels.0.lock().unwrap();
        seen.iter().filter(|l| **l == Level::INFO).count()
    }

    fn info_lines(checked: &Checked) -> usize {
        info_lines_with(checked, false)
    }

    #[test]
    fn a_scheduled_check_shares_the_reads_made_since_its_fire_time_and_any_other_check_reads_anew()
    {
        let annotations = BTreeMap::from([
            ("watch-cluster.io/enabled".to_owned(), "true".to_owned()),
            (
                "watch-cluster.io/cron".to_owned(),
                "*/20 * * * * ?".to_owned(),
            ),
        ]);
        let settings = Settings::from_annotations(&annotations, chrono_tz::UTC).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-12-06T10:00:41.5Z")
            .unwrap()
            .with_timezone(&Utc);
        // Fired at 10:00:40: reads that started since then are this window's.
        assert_eq!(
            read_max_age(&settings, Trigger::Schedule, now),
            Duration::from_millis(1500)
        );
        for other in [Trigger::Manual, Trigger::Push, Trigger::GateOpened] {
            assert_eq!(read_max_age(&settings, other, now), Duration::ZERO);
        }
        // Registry answers may be a whole interval old (docs/guarantees.md, "Registries").
        assert_eq!(
            answer_max_age(&settings, Trigger::Schedule, now),
            Duration::from_millis(21_500)
        );
    }

    #[test]
    fn a_check_that_found_nothing_new_logs_no_info_line_and_news_does() {
        let change = || Change {
            from: "a:1".into(),
            to: "a:2".into(),
        };
        assert_eq!(info_lines(&Checked::UpToDate(Vec::new())), 0);
        assert_eq!(info_lines(&Checked::Skipped(Skip::Gone)), 0);
        assert_eq!(info_lines(&Checked::Updated(change())), 1);
        assert_eq!(info_lines(&Checked::DryRun(change())), 1);
        let failed = Checked::Failed(CheckFailure::Registry(Vec::new()));
        assert_eq!(info_lines(&failed), 1);
        let held = Checked::Held(vec![Held::Hold], Some(change()));
        assert_eq!(info_lines_with(&held, true), 1, "a gate starts holding");
        assert_eq!(info_lines_with(&held, false), 0, "still held, said already");
    }
}
