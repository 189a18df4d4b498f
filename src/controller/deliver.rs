//! Delivers a recorded rollout outcome to each receiver, listing each one that has it in the record.
//!
//! Input: the workload as the API server holds it, with a sealed `rollout` record whose outcome is set.
//! Output: the outcome sent to every configured receiver whose events include its type and whose id is not
//! yet in the outcome's `delivered` list; after each success the record is rewritten with that id added;
//! once every such receiver is listed or has used up its retries, the record is removed (SPEC §15,
//! docs/notifications.md#delivery-records).
//!
//! Why per receiver and concurrently: a receiver that hangs until its timeout must not hold back the
//! others, nor the record update that saves them from a resend after a restart. Why the list lives in the
//! record: the record is the only state (docs/guarantees.md), so a new process or leader reads who already
//! has the outcome and sends only to the others. A receiver that exhausted its retries is not listed (it
//! never got it) but no longer holds the record: at-least-once means "tried to the configured limit".

use futures::{StreamExt, stream::FuturesUnordered};
use kube::Api;

use super::{Context, ManagedKind, WorkloadKey, observe::binding};
use crate::{
    annotations::RolloutRecord,
    notify::{DeliveryOutcome, Notification},
    record::{self, Sealed},
    update::{self, UpdateError, patch},
};

/// How many times a `delivered` update is retried after conflicts before the pass gives up on listing.
const LIST_ATTEMPTS: u32 = 5;

/// One pass: read the workload, deliver its recorded outcome to the receivers that lack it, list each,
/// remove the record. Reads first because a reconcile may run on a cached copy older than our own removal
/// of the record: only what the API server still holds is delivered, or an outcome would go out twice.
/// Returns false when it must be retried.
pub(super) async fn deliver_current<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    notification: impl Fn(&RolloutRecord) -> Option<Notification>,
) -> bool {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let (uid, mut current) = match read::<K>(ctx, &api, key).await {
        Found::Record { uid, sealed } => (uid, *sealed),
        Found::Nothing => return true,
        Found::Unreadable => return false,
    };
    let Some(notification) = notification(&current.record) else {
        return true;
    };
    let record_id = current.record.id.clone();
    let listed = |sealed: &Sealed, id: &str| {
        sealed
            .record
            .outcome
            .as_ref()
            .is_some_and(|o| o.delivered().contains(id))
    };
    let mut running: FuturesUnordered<_> = ctx
        .notifier
        .targets(notification.event_type())
        .into_iter()
        .filter(|id| !listed(&current, id))
        .map(|id| {
            let delivery = ctx.notifier.deliver_to(&id, &notification);
            async move { (id, delivery.await) }
        })
        .collect();
    let mut interrupted = false;
    let mut moved_on = false;
    while let Some((id, outcome)) = running.next().await {
        match outcome {
            DeliveryOutcome::Delivered if !moved_on => {
                match list_delivered::<K>(ctx, &api, key, &uid, current.clone(), &id).await {
                    Listed::Now(sealed) => current = *sealed,
                    Listed::MovedOn => moved_on = true,
                    Listed::Failed => {}
                }
            }
            DeliveryOutcome::Exhausted => tracing::warn!(
                receiver = %id,
                "the receiver did not take the outcome; giving up on it after the configured retries"
            ),
            // Shutdown cut the delivery short: keep the record so the next leader delivers it.
            DeliveryOutcome::Interrupted => interrupted = true,
            DeliveryOutcome::Delivered | DeliveryOutcome::Disabled => {}
        }
    }
    if interrupted || moved_on {
        return true;
    }
    tracing::debug!(record = %record_id, "every receiver has the outcome or gave up; removing the record");
    match update::apply(&api, &key.name, patch::record_patch(&current.raw, None)).await {
        // A conflict: someone (a new leader) already moved the record on.
        Ok(_) | Err(UpdateError::Conflict { .. }) => true,
        Err(error) => {
            tracing::warn!(%error, "failed to remove the rollout annotation; retrying");
            false
        }
    }
}

/// What the API server holds now.
enum Found {
    /// A record this controller sealed, on the workload with this uid.
    Record { uid: String, sealed: Box<Sealed> },
    /// No workload, no record, or a record that is not ours: nothing to deliver.
    Nothing,
    /// The workload could not be read: retry.
    Unreadable,
}

async fn read<K: ManagedKind>(ctx: &Context, api: &Api<K>, key: &WorkloadKey) -> Found {
    let workload = match api.get_opt(&key.name).await {
        Ok(Some(obj)) => obj.project(),
        Ok(None) => return Found::Nothing,
        Err(error) => {
            tracing::warn!(%error, "failed to read the workload before delivering its outcome");
            return Found::Unreadable;
        }
    };
    let Some(raw) = workload.annotations.get(crate::annotations::ROLLOUT) else {
        return Found::Nothing;
    };
    match record::open(&ctx.record_key, &binding(&workload), raw) {
        Ok(sealed) => Found::Record {
            uid: workload.uid.clone(),
            sealed: Box::new(sealed),
        },
        Err(_) => Found::Nothing,
    }
}

/// What became of listing a receiver in the record.
enum Listed {
    /// Written; the record as it is now.
    Now(Box<Sealed>),
    /// The record is gone or holds another rollout: someone else finished this one.
    MovedOn,
    /// Not written (the API server refused, or kept conflicting): the receiver may get it again later.
    Failed,
}

/// Rewrites the record with `receiver_id` in its outcome's `delivered`, guarded by a test of the value it
/// was computed from. A conflict means another writer changed the record (another receiver listed by a
/// leader we overlap with, a new rollout): reread and, if it is still this outcome, add the id to that.
async fn list_delivered<K: ManagedKind>(
    ctx: &Context,
    api: &Api<K>,
    key: &WorkloadKey,
    uid: &str,
    mut current: Sealed,
    receiver_id: &str,
) -> Listed {
    let binding = record::Binding {
        kind: key.kind,
        namespace: &key.namespace,
        name: &key.name,
        uid,
    };
    let id = current.record.id.clone();
    for _ in 0..LIST_ATTEMPTS {
        let Some(outcome) = current.record.outcome.clone() else {
            return Listed::MovedOn;
        };
        if outcome.delivered().contains(receiver_id) {
            return Listed::Now(Box::new(current));
        }
        let next = RolloutRecord {
            outcome: Some(outcome.with_delivered(receiver_id)),
            ..current.record.clone()
        };
        let value = record::seal(&ctx.record_key, &binding, &next);
        match update::apply(
            api,
            &key.name,
            patch::record_patch(&current.raw, Some(&value)),
        )
        .await
        {
            Ok(_) => {
                return Listed::Now(Box::new(Sealed {
                    record: next,
                    raw: value,
                }));
            }
            Err(UpdateError::Conflict { .. }) => match read::<K>(ctx, api, key).await {
                // Same uid: a re-created workload is another workload, whose record this is not.
                Found::Record {
                    uid: now_uid,
                    sealed,
                } if now_uid == uid && sealed.record.id == id => current = *sealed,
                Found::Record { .. } | Found::Nothing => return Listed::MovedOn,
                Found::Unreadable => return Listed::Failed,
            },
            Err(error) => {
                tracing::warn!(%error, receiver = %receiver_id, "failed to list the receiver in the rollout record");
                return Listed::Failed;
            }
        }
    }
    tracing::warn!(receiver = %receiver_id, "the rollout record kept changing; not listing the receiver");
    Listed::Failed
}
