//! Reconcile one workload: validate → announce → observe → schedule → check.
//!
//! Input: the compact metadata of a workload that changed or whose requeue fired. Output: the next
//! `Action`: `requeue` at the next fire time, or `await_change` for a workload that is off or invalid
//! (no hot loop; fixing the annotation triggers a new reconcile).

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;

use super::{
    Context, ERROR_REQUEUE, ManagedKind, Poll, ScheduleState, Wake, Watched, WorkloadKey, checker,
    key_of, observe, reference_of, release,
};
use crate::{
    annotations::{self, Detected, Settings},
    notify::{Event, Facts, Notification, events::Reason},
    update::FIELD_MANAGER,
};

/// A reconcile that could not finish; retried after [`ERROR_REQUEUE`].
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Writing the `detected` annotation failed.
    #[error("failed to record the detected configuration of {key}")]
    Detect {
        /// The workload.
        key: String,
        /// The API server's answer.
        #[source]
        source: kube::Error,
    },
}

/// Checks woken by one push that may find the pushed tag not served yet before it counts as a failure.
const PUSH_NOT_FOUND_RETRIES: u8 = 5;

/// How soon a deferred `check-now` is looked at again if no status change arrives first.
const CHECK_NOW_RETRY: Duration = Duration::from_secs(1);

/// Reconciles one workload.
#[tracing::instrument(skip_all, fields(kind = %K::KIND, namespace = obj.namespace().unwrap_or_default(), name = obj.name_any()))]
pub async fn reconcile<K: ManagedKind>(
    obj: Arc<Watched<K>>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let key = key_of::<K>(obj.as_ref());
    let reference = reference_of::<K>(&key, obj.uid());
    let own = obj.annotations();
    let enabled = annotations::is_enabled(own);
    if !enabled && !own.contains_key(annotations::ROLLOUT) {
        ctx.forget(&key);
        ctx.events.forget(&reference);
        return Ok(Action::await_change());
    }
    if !ctx.may_act() {
        // Followers keep their watches warm and write nothing, Events included; becoming the leader
        // reconciles every workload again.
        return Ok(Action::await_change());
    }
    // An update in flight finishes whatever happened to the other annotations since: opted out, a broken
    // cron, an unknown strategy. Only its own sealed record drives it.
    let workload = obj.project();
    let rollout_wait = match observe::open_record::<K>(&ctx, &key, &workload).await {
        Some(sealed) => {
            let wait = observe::advance::<K>(&ctx, &key, &workload, &sealed).await;
            if sealed.record.outcome.is_some() {
                // An outcome frees its rollout slot (docs/settings.md#max_concurrent_rollouts).
                ctx.wake_next_in_line();
            }
            Some(wait)
        }
        None => None,
    };
    if rollout_wait.is_none() && enabled {
        let was_watching = ctx.with_memory(&key, |m| m.rollout.take().is_some());
        if was_watching {
            ctx.wake_next_in_line();
        }
    }
    if crate::observe::release::may_need_release(&workload) {
        release::release(&ctx, &key, &workload, &reference).await;
    }
    let settings = if enabled {
        valid_settings(&ctx, own, &reference).await
    } else {
        None
    };
    let Some(settings) = settings else {
        // Off or invalid: nothing is scheduled, but a rollout still in flight is followed to its end.
        return Ok(match rollout_wait {
            Some(wait) => requeue(wait),
            None => {
                ctx.forget(&key);
                Action::await_change()
            }
        });
    };
    ctx.with_memory(&key, |m| {
        m.repositories = crate::decide::repositories(&workload, &settings);
    });
    if let Some(tool) = workload.gitops {
        let reference = reference_of::<K>(&key, Some(workload.uid.clone()));
        ctx.events
            .publish_once(
                &reference,
                Reason::ManagedByGitOps,
                tool.advice().to_owned(),
            )
            .await;
    }
    if let Err(error) = announce::<K>(&ctx, &key, &obj, &settings).await {
        // No check before the announcement (receivers see DETECTED first), but a rollout in flight keeps
        // its own pace: a failing `detected` write must not stretch its retries to ERROR_REQUEUE.
        tracing::warn!(%error, "failed to record the detected configuration; retrying");
        return Ok(requeue(
            rollout_wait.map_or(ERROR_REQUEUE, |r| r.min(ERROR_REQUEUE)),
        ));
    }
    let wait = schedule_and_check::<K>(&ctx, &key, &workload, &settings).await;
    Ok(requeue(rollout_wait.map_or(wait, |r| r.min(wait))))
}

fn requeue(wait: Duration) -> Action {
    Action::requeue(wait.max(Duration::from_millis(10)))
}

/// The workload's settings, or `None` after reporting why they cannot be used.
async fn valid_settings(
    ctx: &Context,
    own: &std::collections::BTreeMap<String, String>,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
) -> Option<Settings> {
    let settings = Settings::from_annotations(own, ctx.config.time_zone)
        .map(|s| s.with_keys(ctx.signatures.has_keys()));
    match settings {
        Ok(settings) if !settings.gate_errors.is_empty() => {
            // Checks go on and report what they would do; no update starts until the gate is fixed.
            let note = settings
                .gate_errors
                .iter()
                .map(|e| format!("{e}; no update starts until it is fixed"))
                .collect::<Vec<_>>()
                .join("; ");
            tracing::warn!("{note}");
            ctx.events
                .publish_once(reference, Reason::InvalidAnnotation, note)
                .await;
            Some(settings)
        }
        Ok(settings) => {
            ctx.events.clear(reference, Reason::InvalidAnnotation);
            Some(settings)
        }
        Err(invalid) => {
            tracing::warn!(annotation = invalid.annotation, value = %invalid.value, "{invalid}");
            ctx.events
                .publish_once(reference, Reason::InvalidAnnotation, invalid.to_string())
                .await;
            None
        }
    }
}

/// Runs a check when one is due (or requested) and returns how long until the next look.
async fn schedule_and_check<K: ManagedKind>(
    ctx: &Arc<Context>,
    key: &WorkloadKey,
    workload: &crate::workload::Workload,
    settings: &Settings,
) -> Duration {
    let now = Utc::now();
    let poll = ctx.with_memory(key, |memory| {
        let mut state = match memory.schedule.take() {
            Some(state) if state.is_for(&settings.cron) => state,
            _ => ScheduleState::new(&settings.cron, &settings.schedule, now),
        };
        let poll = state.poll(&settings.schedule, now);
        memory.schedule = Some(state);
        poll
    });
    let (due, wait) = match poll {
        Poll::Due(wait) => (true, wait),
        Poll::Wait(wait) => (false, wait),
    };
    // Checks before the next tick: a push event, a gate that opened, a freed rollout slot.
    let (woken, gate_opened, recheck_at) = ctx.with_memory(key, |m| {
        let opened = m.recheck_at.is_some_and(|at| at <= now);
        if opened {
            m.recheck_at = None;
        }
        (m.woken.take(), opened, m.recheck_at)
    });
    let early = match woken {
        Some(Wake::Push) => Some(checker::Trigger::Push),
        Some(Wake::GateOpened | Wake::SlotFreed) => Some(checker::Trigger::GateOpened),
        None if gate_opened => Some(checker::Trigger::GateOpened),
        None => None,
    };
    // Writing an annotation bumps a Deployment's generation (Kubernetes copies annotations to ReplicaSets),
    // so right after `check-now` is set its controller has not observed the "new" spec yet and a check
    // would be skipped as mid-rollout, using the request up. It waits for that status instead, which the
    // watch brings within moments (docs/design.md, "check-now").
    let check_now_waits = settings.check_now && !workload.generation_observed;
    let trigger = if settings.check_now && !check_now_waits {
        Some(checker::Trigger::Manual)
    } else if (due || early.is_some()) && ctx.with_memory(key, |m| m.backoff.allows(now)) {
        Some(if due {
            checker::Trigger::Schedule
        } else {
            early.unwrap_or(checker::Trigger::Schedule)
        })
    } else {
        if due || early.is_some() {
            tracing::debug!("check skipped: backing off after failed checks");
        }
        None
    };
    // A wake-up that meets a backoff is kept for when the backoff ends, not dropped: the push it stands for
    // would otherwise wait for the next cron tick.
    let mut backoff_ends = None;
    if trigger.is_none()
        && let Some(wake) = woken
    {
        ctx.with_memory(key, |m| m.woken = Some(wake));
        backoff_ends = ctx.with_memory(key, |m| m.backoff.resumes_at());
    }
    let mut recheck_at = recheck_at;
    let mut rearmed = false;
    if let Some(trigger) = trigger {
        let outcome = checker::check::<K>(ctx, key, settings, trigger, workload).await;
        // A push or an opened gate that met a passing state (the workload's controller has not observed our
        // own annotation write yet, a rollout in flight, a concurrent edit) is not used up: the check runs
        // when that state ends, which the watch reports, and not at the next cron tick a year away.
        let wake = woken.or(gate_opened.then_some(Wake::GateOpened));
        if let (Some(wake), checker::Checked::Skipped(skip)) = (wake, &outcome)
            && matches!(
                skip,
                checker::Skip::Moving(_)
                    | checker::Skip::RolloutInFlight
                    | checker::Skip::KeptChanging
            )
        {
            tracing::debug!(%skip, "the early check waits for the workload to settle");
            ctx.with_memory(key, |m| m.woken = Some(wake));
            // Each of these ends with a change the watch brings (the observed generation, our outcome write,
            // the other writer's edit). Polling bounds the short ones only: a rollout stuck for days must not
            // turn a pending push into a check every second.
            rearmed = match skip {
                checker::Skip::Moving(_) => !workload.generation_observed,
                checker::Skip::KeptChanging => true,
                _ => false,
            };
        }
        let mut failed = matches!(outcome, checker::Checked::Failed(_));
        let not_served_yet = trigger == checker::Trigger::Push
            && matches!(&outcome, checker::Checked::Failed(checker::CheckFailure::Registry(f)) if checker::not_served_yet(f));
        // distribution may also notify before the tag is listed at all: a check woken by a push that finds
        // nothing new looks once more, a moment later, before the push counts as seen.
        let found_nothing =
            trigger == checker::Trigger::Push && matches!(&outcome, checker::Checked::UpToDate(_));
        let retry_push = ctx.with_memory(key, |m| {
            if not_served_yet && m.push_not_found < PUSH_NOT_FOUND_RETRIES {
                m.push_not_found += 1;
                m.woken = Some(Wake::Push);
                true
            } else if found_nothing && !m.push_confirmed {
                m.push_confirmed = true;
                m.woken = Some(Wake::Push);
                true
            } else {
                m.push_not_found = 0;
                m.push_confirmed = false;
                false
            }
        });
        if retry_push {
            // Not a failure of the registry: the pushed tag is being written. Checked again in a moment.
            failed = false;
            rearmed = true;
        }
        // A gate that holds with a known end: the workload is checked again right then (SPEC: a held
        // update is decided again when its gate opens, not at the next tick).
        let until = match &outcome {
            checker::Checked::Held(held, _) => held.iter().filter_map(|h| h.until()).min(),
            _ => None,
        };
        recheck_at = until;
        ctx.with_memory(key, |m| {
            m.backoff.record(failed, Utc::now());
            m.recheck_at = until;
        });
    }
    let wait = match recheck_at.into_iter().chain(backoff_ends).min() {
        Some(at) => wait.min((at - Utc::now()).to_std().unwrap_or_default()),
        None => wait,
    };
    if check_now_waits || rearmed {
        wait.min(CHECK_NOW_RETRY)
    } else {
        wait
    }
}

/// What to do after a reconcile error.
pub fn error_policy<K: ManagedKind>(
    obj: Arc<Watched<K>>,
    error: &ReconcileError,
    _ctx: Arc<Context>,
) -> Action {
    tracing::warn!(namespace = obj.namespace().unwrap_or_default(), name = obj.name_any(), %error, "reconcile failed; retrying");
    Action::requeue(ERROR_REQUEUE)
}

/// Sends `DEPLOYMENT_DETECTED` when the effective (cron, strategy) differs from the announced pair (docs/notifications.md).
///
/// The pair is stored in the workload's `detected` annotation first, so a restart or a new leader never
/// announces the same configuration twice.
async fn announce<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    obj: &Watched<K>,
    settings: &Settings,
) -> Result<(), ReconcileError> {
    let detected = settings.detected();
    if Detected::from_annotations(obj.annotations()).as_ref() == Some(&detected) {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.namespace);
    // The resourceVersion makes the write conditional: the watch cache may still show the object as it
    // was before our last `detected` write, and announcing from a stale copy would announce twice.
    let patch = json!({"metadata": {
        "resourceVersion": obj.resource_version(),
        "annotations": {annotations::DETECTED: detected.to_value()},
    }});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let updated = match api.patch(&key.name, &params, &Patch::Merge(&patch)).await {
        Ok(updated) => updated,
        // Changed since this copy was cached: the newer copy is on its way and reconciles again.
        Err(kube::Error::Api(status)) if status.code == 409 => return Ok(()),
        Err(source) => {
            return Err(ReconcileError::Detect {
                key: key.to_string(),
                source,
            });
        }
    };
    let projected = updated.project();
    let image = crate::decide::workload_image(&projected, settings);
    tracing::info!(cron = %detected.cron, strategy = %detected.strategy, "workload detected");
    let notification = Notification::new(
        super::notify_ref(key),
        image,
        Event::DeploymentDetected {
            cron_expression: detected.cron.clone(),
            update_strategy: detected.strategy.clone(),
        },
        Utc::now(),
        &detection_id(&updated, &detected),
    )
    .with_facts(Facts {
        to: crate::decide::workload_images(&projected, settings),
        ..Facts::default()
    });
    ctx.notifier.try_notify(&notification);
    Ok(())
}

/// What the `DEPLOYMENT_DETECTED` delivery id derives from: this announcement and no other. The workload's
/// uid tells a re-created workload from the old one; the resourceVersion of our own `detected` write tells
/// "A, then B, then A again" apart, while a retry of the same delivery keeps its id.
fn detection_id(updated: &impl ResourceExt, detected: &Detected) -> String {
    format!(
        "{}/{}/{}",
        updated.uid().unwrap_or_default(),
        updated.resource_version().unwrap_or_default(),
        detected.to_value()
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::ObjectMeta;

    use super::*;

    fn written(uid: &str, resource_version: &str) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                uid: Some(uid.into()),
                resource_version: Some(resource_version.into()),
                ..ObjectMeta::default()
            },
            ..Deployment::default()
        }
    }

    fn detected(cron: &str) -> Detected {
        Detected {
            cron: cron.into(),
            strategy: "version".into(),
        }
    }

    #[test]
    fn each_announcement_has_its_own_delivery_id_and_a_retry_keeps_it() {
        let a = detected("0 */5 * * * ?");
        let first = detection_id(&written("u1", "10"), &a);
        assert_eq!(first, detection_id(&written("u1", "10"), &a), "a retry");
        // A, then B, then A again: the third announcement is new.
        assert_ne!(first, detection_id(&written("u1", "12"), &a));
        // The same name re-created: another workload.
        assert_ne!(first, detection_id(&written("u2", "10"), &a));
    }
}
