//! Checks that do not wait for the cron: a push event, a gate that opened, a rollout slot that freed
//! (docs/annotations.md#gates, docs/push-events.md).
//!
//! Input: a workload key and why it should be checked now. Output: the reason noted in the workload's
//! memory and the key handed to its kind's kube-runtime `Controller` (`reconcile_on`), whose reconcile then
//! runs the same check a tick runs, every gate included. kube-runtime merges requests for one object that is
//! already queued and never runs two reconciles of one object at once, so a storm of wake-ups costs at most
//! one check in flight and one queued per workload.

use std::sync::Mutex;

use tokio::{sync::mpsc::UnboundedSender, time::Instant};

use super::{Context, WorkloadKey};
use crate::{
    admit::Held,
    metrics::PushMatch,
    registry::Repository,
    schedule::slots::{Answer, RecordState},
    workload::Kind,
};

/// Why a workload is checked before its next tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A registry reported a push of a repository it uses.
    Push,
    /// A gate that held its update opened (a window started, a min-age expired).
    GateOpened,
    /// A rollout slot freed while it waited for one.
    SlotFreed,
}

/// A running `Controller`'s kind, namespace scope (`None`: all) and request channel.
type Waker = (Kind, Option<String>, UnboundedSender<WorkloadKey>);

/// One sender per running `Controller`.
#[derive(Default)]
pub(crate) struct Wakers(Mutex<Vec<Waker>>);

impl Wakers {
    pub(crate) fn register(
        &self,
        kind: Kind,
        namespace: Option<String>,
        sender: UnboundedSender<WorkloadKey>,
    ) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((kind, namespace, sender));
    }

    fn send(&self, key: &WorkloadKey) -> bool {
        let senders = self.0.lock().unwrap_or_else(|e| e.into_inner());
        senders
            .iter()
            .filter(|(kind, namespace, _)| {
                *kind == key.kind && namespace.as_ref().is_none_or(|ns| *ns == key.namespace)
            })
            .any(|(_, _, sender)| sender.send(key.clone()).is_ok())
    }
}

/// The sealed records every watch lists, for the rollout bound.
type Scan = Box<dyn Fn(&crate::record::RecordKey) -> Vec<(WorkloadKey, RecordState)> + Send + Sync>;

/// Each watch's view of the `rollout` records it stores (its reflector), so the rollout bound counts what the
/// cluster shows, including what a previous leader started.
#[derive(Default)]
pub(crate) struct Inventory(Mutex<Vec<Scan>>);

impl Inventory {
    pub(crate) fn register(&self, scan: Scan) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(scan);
    }

    /// Every watched workload's sealed record: its id and whether it has an outcome.
    pub(crate) fn records(
        &self,
        key: &crate::record::RecordKey,
    ) -> std::collections::HashMap<WorkloadKey, RecordState> {
        let scans = self.0.lock().unwrap_or_else(|e| e.into_inner());
        scans.iter().flat_map(|scan| scan(key)).collect()
    }
}

/// The sealed record of a stored object, if it carries one this controller wrote.
pub(crate) fn record_state(
    record_key: &crate::record::RecordKey,
    key: &WorkloadKey,
    uid: &str,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Option<RecordState> {
    let raw = annotations.get(crate::annotations::ROLLOUT)?;
    let binding = crate::record::Binding {
        kind: key.kind,
        namespace: &key.namespace,
        name: &key.name,
        uid,
    };
    let sealed = crate::record::open(record_key, &binding, raw).ok()?;
    Some(RecordState {
        done: sealed.record.outcome.is_some(),
        id: sealed.record.id,
    })
}

impl Context {
    /// Checks `key` now for `why` (a no-op on a follower: only the leader checks).
    pub(crate) fn wake(&self, key: &WorkloadKey, why: Wake) {
        if !self.may_act() {
            return;
        }
        self.with_memory(key, |m| m.woken = Some(why));
        if !self.wakers.send(key) {
            tracing::debug!(%key, "no watch to wake for this workload");
        }
    }

    /// Wakes the workloads next in line for a rollout slot, if any is free.
    pub(crate) fn wake_next_in_line(&self) {
        let next = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            if !slots.bounded() || slots.queue_len() == 0 {
                return;
            }
            let records = self.inventory.records(&self.record_key);
            slots.next_in_line(&records, tokio::time::Instant::now())
        };
        for key in next {
            tracing::debug!(%key, "a rollout slot is free");
            self.wake(&key, Wake::SlotFreed);
        }
    }
}

/// `MAX_CONCURRENT_ROLLOUTS` as the checks ask for it.
impl Context {
    /// A slot for `key`'s update, or why it waits (`None`: go ahead). Without a bound, always `None`.
    pub(crate) fn request_slot(&self, key: &WorkloadKey) -> Option<Held> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if !slots.bounded() {
            return None;
        }
        let records = self.inventory.records(&self.record_key);
        let answer = slots.request(key, chrono::Utc::now(), &records, Instant::now());
        self.metrics.set_rollout_queue(slots.queue_len());
        match answer {
            Answer::Granted => None,
            Answer::Wait {
                position,
                waiting,
                max,
                ..
            } => Some(Held::Slot {
                position,
                waiting,
                max,
            }),
        }
    }

    /// The granted update was written with record `id`.
    pub(crate) fn slot_written(&self, key: &WorkloadKey, id: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.written(key, id, Instant::now());
    }

    /// The granted update was not written: the slot goes to the next in line.
    pub(crate) fn release_slot(&self, key: &WorkloadKey) {
        {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.release(key);
        }
        self.wake_next_in_line();
    }

    /// `key` no longer waits for a slot.
    pub(crate) fn withdraw_from_queue(&self, key: &WorkloadKey) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.bounded() {
            slots.withdraw(key);
            self.metrics.set_rollout_queue(slots.queue_len());
        }
    }
}

/// A push of `repository` was reported: every enabled workload whose managed containers use it is checked
/// now. Returns how many were woken.
pub fn on_push(ctx: &Context, repository: &Repository) -> usize {
    let keys: Vec<WorkloadKey> = {
        let memory = ctx.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory
            .iter()
            .filter(|(_, m)| m.repositories.iter().any(|r| r == repository))
            .map(|(k, _)| k.clone())
            .collect()
    };
    if keys.is_empty() {
        tracing::debug!(%repository, "push of a repository no watched workload uses");
        ctx.metrics.pushed(PushMatch::unmatched, 1);
        return 0;
    }
    for key in &keys {
        ctx.wake(key, Wake::Push);
    }
    tracing::info!(%repository, workloads = keys.len(), "push event: checking the workloads that use it");
    ctx.metrics.pushed(PushMatch::woken, keys.len() as u64);
    keys.len()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(kind: Kind, namespace: &str) -> WorkloadKey {
        WorkloadKey {
            kind,
            namespace: namespace.into(),
            name: "app".into(),
        }
    }

    #[test]
    fn a_key_goes_to_the_watch_of_its_kind_and_namespace_only() {
        let wakers = Wakers::default();
        let (all_deployments, mut all_rx) = tokio::sync::mpsc::unbounded_channel();
        let (team_sets, mut team_rx) = tokio::sync::mpsc::unbounded_channel();
        wakers.register(Kind::Deployment, None, all_deployments);
        wakers.register(Kind::StatefulSet, Some("team".into()), team_sets);
        assert!(wakers.send(&key(Kind::Deployment, "anywhere")));
        assert_eq!(all_rx.try_recv().unwrap().namespace, "anywhere");
        assert!(team_rx.try_recv().is_err());
        assert!(wakers.send(&key(Kind::StatefulSet, "team")));
        assert_eq!(team_rx.try_recv().unwrap().kind, Kind::StatefulSet);
        assert!(
            !wakers.send(&key(Kind::StatefulSet, "elsewhere")),
            "not watched"
        );
        assert!(!wakers.send(&key(Kind::DaemonSet, "team")));
    }
}
