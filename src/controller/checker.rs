//! One check of one workload: read → guard → resolve → decide → update (SPEC §5).
//!
//! Input: the workload key and its validated settings. Output: at most one guarded JSON Patch, the Events
//! and webhooks that describe it, and a rollout observer. A 409 or a failed `test` (422) means someone
//! changed the workload between read and write: read and decide again, at most [`ATTEMPTS`] times, with
//! no webhook and no Warning. Any other refusal is reported (`UpdateFailed`, `IMAGE_ROLLOUT_FAILED`).

use std::{collections::BTreeMap, sync::Arc};

use chrono::Utc;
use kube::Api;
use sha2::{Digest, Sha256};

use super::{
    Context, ManagedKind, WorkloadKey,
    decide::{Findings, decide},
    notify_ref, reference_of,
};
use crate::{
    annotations::{self, RolloutOutcome, RolloutRecord, Settings},
    metrics::CheckOutcome,
    notify::{Event, Notification, events::Reason},
    update::{self, ContainerChange, UpdateError, patch, per_container},
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
}

/// What a check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The workload was patched: `from -> to`.
    Updated(String),
    /// Nothing newer: the reasons per container.
    NoUpdate(String),
    /// Not checked now (paused, mid-rollout, `OnDelete`...).
    Skipped(String),
    /// `DRY_RUN`: what would have changed.
    DryRun(String),
    /// The check failed (registry, invalid annotation, refused patch).
    Failed(String),
}

/// Checks one workload and records what happened.
#[tracing::instrument(skip_all, fields(kind = %key.kind, namespace = %key.namespace, name = %key.name, trigger = ?trigger))]
pub async fn check<K: ManagedKind>(
    ctx: &Arc<Context>,
    key: &WorkloadKey,
    settings: &Settings,
    trigger: Trigger,
) -> Outcome {
    let reference = reference_of::<K>(key, None);
    if trigger == Trigger::Manual {
        ctx.events
            .publish(
                &reference,
                Reason::ManualCheckRequested,
                "check requested with watch-cluster.io/check-now".into(),
            )
            .await;
    }
    let outcome = run::<K>(ctx, key, settings).await;
    tracing::info!(outcome = ?outcome, "check finished");
    ctx.metrics.check(match &outcome {
        Outcome::Updated(_) => CheckOutcome::updated,
        Outcome::NoUpdate(_) => CheckOutcome::no_update,
        Outcome::Skipped(_) => CheckOutcome::skipped,
        Outcome::DryRun(_) => CheckOutcome::dry_run,
        Outcome::Failed(_) => CheckOutcome::failed,
    });
    if trigger == Trigger::Manual {
        let (reason, note) = match &outcome {
            Outcome::Updated(change) => (Reason::ManualCheckUpdated, change.clone()),
            Outcome::Failed(error) => (Reason::ManualCheckFailed, error.clone()),
            Outcome::NoUpdate(note) | Outcome::Skipped(note) | Outcome::DryRun(note) => {
                (Reason::ManualCheckNoUpdate, note.clone())
            }
        };
        ctx.events.publish(&reference, reason, note).await;
        if !matches!(outcome, Outcome::Updated(_)) {
            remove_check_now::<K>(ctx, key).await;
        }
    }
    outcome
}

async fn run<K: ManagedKind>(
    ctx: &Arc<Context>,
    key: &WorkloadKey,
    settings: &Settings,
) -> Outcome {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.namespace);
    for _ in 0..ATTEMPTS {
        let obj = match api.get_opt(&key.name).await {
            Ok(Some(obj)) => obj,
            Ok(None) => return Outcome::Skipped("the workload no longer exists".into()),
            Err(e) => return Outcome::Failed(format!("failed to read the workload: {e}")),
        };
        let workload = obj.project();
        if let Some(reason) = guard::<K>(ctx, key, &workload).await {
            return Outcome::Skipped(reason);
        }
        let plan = match plan::<K>(ctx, key, &workload, settings).await {
            Ok(plan) => plan,
            Err(outcome) => return outcome,
        };
        if plan.changes.is_empty() {
            return Outcome::NoUpdate(plan.notes.join("; "));
        }
        let from = per_container(
            plan.changes
                .iter()
                .map(|c| (c.container.name.as_str(), c.from_image.as_str())),
        );
        let to = per_container(
            plan.changes
                .iter()
                .map(|c| (c.container.name.as_str(), c.to_image.as_str())),
        );
        let change = format!("{from} -> {to}");
        let reference = reference_of::<K>(key, Some(workload.uid.clone()));
        if ctx.config.dry_run {
            ctx.events
                .publish_once(&reference, Reason::DryRunWouldUpdate, change.clone())
                .await;
            return Outcome::DryRun(change);
        }
        let record = new_record(&workload, &plan.changes);
        let now = record.started_at;
        match update::apply(
            &api,
            &key.name,
            patch::update_patch(&workload, &plan.changes, &record, now),
        )
        .await
        {
            Ok(_) => {
                ctx.with_memory(key, |m| m.refused = None);
                ctx.metrics.update();
                tracing::info!(%change, "image updated");
                ctx.events
                    .publish(&reference, Reason::ImageUpdated, change.clone())
                    .await;
                ctx.notifier.try_notify(&Notification::new(
                    notify_ref(key),
                    to,
                    Event::ImageRolloutStarted {
                        previous_image: from,
                    },
                    now,
                    &record.id,
                ));
                return Outcome::Updated(change);
            }
            Err(UpdateError::Conflict { .. }) => {
                tracing::info!("the workload changed while deciding; reading it again");
                continue;
            }
            Err(error @ UpdateError::Refused { .. }) => {
                let message = error.to_string();
                report_refusal(ctx, key, &api, &reference, &plan.changes, record, &message).await;
                return Outcome::Failed(message);
            }
        }
    }
    Outcome::Skipped(format!(
        "the workload kept changing during {ATTEMPTS} attempts; next check on schedule"
    ))
}

/// Reports a refused update once per transition (SPEC §5): a Warning Event `UpdateFailed`, and the FAILED
/// outcome written into the `rollout` record by an annotation-only patch, from which it is delivered as any
/// outcome is (so a restart does not lose it). Where that patch is refused too, FAILED goes from memory.
async fn report_refusal<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    api: &Api<K>,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    changes: &[ContainerChange],
    record: RolloutRecord,
    message: &str,
) {
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
            at: Utc::now(),
            error: message.to_owned(),
            rolled_back_to: None,
        }),
        ..record
    };
    match update::apply(api, &key.name, patch::refused_patch(changes, &failed)).await {
        // Our own write comes back through the watch; the rollout observer delivers the outcome.
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(%error, "cannot record the refused update; sending FAILED from memory");
            ctx.tasks.spawn(ctx.notifier.deliver(&Notification::new(
                notify_ref(key),
                to,
                Event::ImageRolloutFailed {
                    error: message.to_owned(),
                    rolled_back_to: None,
                },
                Utc::now(),
                &failed.id,
            )));
        }
    }
}

/// Reasons not to touch the workload now (SPEC §5).
async fn guard<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    workload: &Workload,
) -> Option<String> {
    if workload.annotations.contains_key(annotations::ROLLOUT) {
        return Some("an update is still being rolled out".into());
    }
    if workload.paused {
        return Some("the workload is paused".into());
    }
    if workload.on_delete {
        let note = format!(
            "{} uses the OnDelete update strategy: watch-cluster does not manage it (use RollingUpdate)",
            key.kind
        );
        ctx.events
            .publish_once(
                &reference_of::<K>(key, Some(workload.uid.clone())),
                Reason::UnsupportedUpdateStrategy,
                note.clone(),
            )
            .await;
        return Some(note);
    }
    if let Progress::InProgress(what) | Progress::Failed(what) = &workload.progress {
        return Some(format!("a rollout is in progress or stuck: {what}"));
    }
    None
}

/// Decides, then records what the decision found (one Event per transition).
async fn plan<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    workload: &Workload,
    settings: &Settings,
) -> Result<Findings, Outcome> {
    let reference = reference_of::<K>(key, Some(workload.uid.clone()));
    let known_revert = ctx.with_memory(key, |m| m.reverted.clone());
    let findings = match decide(
        &ctx.client,
        &ctx.registry,
        workload,
        settings,
        known_revert.as_deref(),
    )
    .await
    {
        Ok(findings) => findings,
        Err(invalid) => {
            let note = invalid.to_string();
            tracing::warn!("{note}");
            ctx.events
                .publish_once(&reference, Reason::InvalidAnnotation, note.clone())
                .await;
            return Err(Outcome::Failed(note));
        }
    };
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
    if findings.registry_errors.is_empty() {
        ctx.events.clear(&reference, Reason::RegistryError);
    } else {
        let note = findings
            .registry_errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        // One Event per distinct error, not per tick: the message may change every time (a rate
        // limit's end, a connection detail); the containers and categories say whether it is new.
        let identity = findings
            .registry_errors
            .iter()
            .map(|f| format!("{}:{}", f.container, f.reason))
            .collect::<Vec<_>>()
            .join(",");
        ctx.events
            .publish_once_keyed(&reference, Reason::RegistryError, &identity, note.clone())
            .await;
        if findings.changes.is_empty() {
            return Err(Outcome::Failed(note));
        }
    }
    Ok(findings)
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
