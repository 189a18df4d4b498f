//! The controllers' event loop: one task that keeps the cache from the store's change stream,
//! maps each change to the objects it concerns, and reconciles them one at a time.
//!
//! Input: [`Change`]s (relisting everything when the stream lagged), timers, finished image
//! pulls. Output: calls into the Deployment, ReplicaSet, StatefulSet and DaemonSet controllers
//! and the kubelet. It sleeps when there is nothing to do (no polling).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;

use super::cache::Cache;
use super::ctx::{Ctx, Requeue};
use super::kubelet::{Kubelet, PullResult};
use super::meta::{self, ObjRef};
use super::queue::WorkQueue;
use super::{ControllerConfig, daemonset, deployment, replicaset, statefulset};
use crate::store::{Change, Kind, Store};

/// How long to wait before retrying a reconcile whose write failed (usually a conflict);
/// doubled on every further failure of the same object, up to `MAX_RETRY`.
const RETRY: Duration = Duration::from_millis(20);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// Reconciles between yields to the runtime, so a burst does not starve other tasks.
const BATCH: usize = 64;

struct Runner {
    store: Store,
    cfg: ControllerConfig,
    cache: Cache,
    queue: WorkQueue,
    kubelet: Kubelet,
    marks: HashMap<ObjRef, (String, Instant)>,
    /// Consecutive failed reconciles per object.
    failures: HashMap<ObjRef, u32>,
}

/// Runs the controllers until the task is aborted.
pub(crate) async fn run(store: Store, cfg: ControllerConfig) {
    let mut rx = store.subscribe();
    let (pull_tx, mut pull_rx) = mpsc::unbounded_channel();
    let kubelet = Kubelet::new(cfg.resolver.clone(), pull_tx);
    let mut r = Runner {
        store,
        cfg,
        cache: Cache::default(),
        queue: WorkQueue::default(),
        kubelet,
        marks: HashMap::new(),
        failures: HashMap::new(),
    };
    r.relist();
    let mut done = 0usize;
    loop {
        loop {
            match rx.try_recv() {
                Ok(change) => r.on_change(&change),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(_)) => r.relist(),
                Err(TryRecvError::Closed) => return,
            }
        }
        while let Ok(pull) = pull_rx.try_recv() {
            r.on_pull(pull);
        }
        r.queue.promote_due(Instant::now());
        if let Some(obj) = r.queue.pop() {
            r.reconcile(&obj);
            done += 1;
            if done.is_multiple_of(BATCH) {
                tokio::task::yield_now().await;
            }
            continue;
        }
        let due = r.queue.next_due().map(tokio::time::Instant::from_std);
        tokio::select! {
            change = rx.recv() => match change {
                Ok(change) => r.on_change(&change),
                Err(RecvError::Lagged(_)) => r.relist(),
                Err(RecvError::Closed) => return,
            },
            Some(pull) = pull_rx.recv() => r.on_pull(pull),
            () = sleep_until(due) => {}
        }
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Runner {
    fn relist(&mut self) {
        tracing::debug!("controllers relisting the store");
        self.cache.relist(&self.store);
        // Forget what belonged to objects that vanished while we were not listening.
        let cache = &self.cache;
        self.kubelet.retain(|pod| cache.get(pod).is_some());
        self.marks.retain(|d, _| cache.get(d).is_some());
        for kind in [
            Kind::Deployment,
            Kind::ReplicaSet,
            Kind::StatefulSet,
            Kind::DaemonSet,
            Kind::Pod,
        ] {
            let refs: Vec<ObjRef> = self.cache.all(kind).map(|o| ObjRef::of(kind, o)).collect();
            refs.into_iter().for_each(|o| self.queue.add(o));
        }
    }

    fn on_pull(&mut self, pull: PullResult) {
        for pod in self.kubelet.on_pull(pull, self.cfg.image_pull_backoff) {
            self.queue.add(pod);
        }
    }

    fn on_change(&mut self, change: &Change) {
        if !self.cache.apply(change) {
            return;
        }
        let obj = &change.object;
        let me = ObjRef::of(change.kind, obj);
        match change.kind {
            Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet => self.queue.add(me),
            Kind::ReplicaSet | Kind::Pod => {
                if let Some(owner) = owner_ref(obj) {
                    self.queue.add(owner);
                }
                self.queue.add(me);
            }
            Kind::Node => {
                let all: Vec<ObjRef> = self
                    .cache
                    .all(Kind::DaemonSet)
                    .map(|d| ObjRef::of(Kind::DaemonSet, d))
                    .collect();
                all.into_iter().for_each(|d| self.queue.add(d));
            }
            _ => {}
        }
    }

    fn reconcile(&mut self, obj: &ObjRef) {
        let mut ctx = Ctx {
            store: &self.store,
            cache: &mut self.cache,
            cfg: &self.cfg,
            marks: &mut self.marks,
        };
        let result: Requeue = match obj.kind {
            Kind::Deployment => deployment::reconcile(&mut ctx, obj),
            Kind::ReplicaSet => replicaset::reconcile(&mut ctx, obj),
            Kind::StatefulSet => statefulset::reconcile(&mut ctx, obj),
            Kind::DaemonSet => daemonset::reconcile(&mut ctx, obj),
            Kind::Pod => self.kubelet.reconcile(&mut ctx, obj),
            _ => Ok(None),
        };
        match result {
            Ok(requeue) => {
                self.failures.remove(obj);
                if let Some(after) = requeue {
                    self.queue.add_after(obj.clone(), after);
                }
            }
            Err(e) => {
                let n = self.failures.entry(obj.clone()).or_insert(0);
                *n = n.saturating_add(1);
                let delay = RETRY.saturating_mul(1 << (*n - 1).min(16)).min(MAX_RETRY);
                tracing::debug!(error = %e, source = ?std::error::Error::source(&e), ?delay, "reconcile will be retried");
                self.queue.add_after(obj.clone(), delay);
            }
        }
    }
}

/// The workload controller of a ReplicaSet or Pod, as a queue key.
fn owner_ref(obj: &serde_json::Value) -> Option<ObjRef> {
    let (kind, name, _) = meta::controller_of(obj)?;
    let kind = match kind {
        "Deployment" => Kind::Deployment,
        "ReplicaSet" => Kind::ReplicaSet,
        "StatefulSet" => Kind::StatefulSet,
        "DaemonSet" => Kind::DaemonSet,
        _ => return None,
    };
    Some(ObjRef::new(kind, meta::namespace(obj), name))
}
