//! The simulated kubelet: takes each pod from `Pending` to `Running` and `Ready`.
//!
//! Input: pods (from the cache), the [`RolloutControl`](super::RolloutControl) outcome, and image
//! pulls answered by the configured [`ImageResolver`]. Output: pod `status` — phase, conditions,
//! `containerStatuses` with `imageID` = `<repo>@<digest pulled>`. A pod whose image cannot be
//! pulled stays `Pending` in `ImagePullBackOff` and is retried after a back-off, as a real
//! kubelet does. Pulls run as tasks (the registry is real I/O); concurrent pulls of one image
//! share one request, and each result comes back through a channel to the runner.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

use super::control::Outcome;
use super::ctx::{Ctx, Requeue};
use super::images::{ImageRef, ImageResolver};
use super::kubelet_status::{self, Stage};
use super::meta::{self, ObjRef};
use crate::store::Kind;

/// The answer to one image pull.
#[derive(Debug)]
pub(crate) struct PullResult {
    image: String,
    /// The `imageID`, or the message of the failure.
    result: Result<String, String>,
}

/// What the kubelet remembers about one pod.
pub(crate) struct PodRecord {
    uid: String,
    seen: Instant,
    pub seen_ts: String,
    outcome: Outcome,
    /// image → imageID.
    pub pulled: HashMap<String, String>,
    /// image, message, when to retry.
    failed: Option<(String, String, Instant)>,
    /// Failed pulls in a row: the back-off doubles with each, up to 32 times the base.
    pull_failures: u32,
    pub started_ts: Option<String>,
    pub ready_ts: Option<String>,
    pub ip: String,
}

pub(crate) struct Kubelet {
    resolver: Arc<dyn ImageResolver>,
    tx: mpsc::UnboundedSender<PullResult>,
    pods: HashMap<ObjRef, PodRecord>,
    in_flight: HashSet<String>,
    waiting: HashMap<String, HashSet<ObjRef>>,
    next_ip: u32,
}

fn images(pod: &Value) -> Vec<String> {
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array);
    containers
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// The workload a pod belongs to: its controller, or the Deployment above its ReplicaSet.
fn workload(ctx: &Ctx<'_>, pod: &Value) -> Option<ObjRef> {
    let (kind, name, _) = meta::controller_of(pod)?;
    let ns = meta::namespace(pod);
    match kind {
        "ReplicaSet" => {
            let rs = ctx.cache.get(&ObjRef::new(Kind::ReplicaSet, ns, name))?;
            match meta::controller_of(rs) {
                Some(("Deployment", d, _)) => Some(ObjRef::new(Kind::Deployment, ns, d)),
                _ => Some(ObjRef::new(Kind::ReplicaSet, ns, name)),
            }
        }
        "StatefulSet" => Some(ObjRef::new(Kind::StatefulSet, ns, name)),
        "DaemonSet" => Some(ObjRef::new(Kind::DaemonSet, ns, name)),
        _ => None,
    }
}

impl Kubelet {
    pub fn new(resolver: Arc<dyn ImageResolver>, tx: mpsc::UnboundedSender<PullResult>) -> Self {
        Self {
            resolver,
            tx,
            pods: HashMap::new(),
            in_flight: HashSet::new(),
            waiting: HashMap::new(),
            next_ip: 0,
        }
    }

    /// Keeps only the records of pods for which `keep` holds.
    pub fn retain(&mut self, keep: impl Fn(&ObjRef) -> bool) {
        self.pods.retain(|r, _| keep(r));
    }

    /// Records a finished pull; returns the pods waiting for it.
    pub fn on_pull(&mut self, done: PullResult, backoff: Duration) -> Vec<ObjRef> {
        self.in_flight.remove(&done.image);
        let waiting: Vec<ObjRef> = self
            .waiting
            .remove(&done.image)
            .into_iter()
            .flatten()
            .collect();
        for r in &waiting {
            if let Some(rec) = self.pods.get_mut(r) {
                match &done.result {
                    Ok(id) => {
                        rec.pulled.insert(done.image.clone(), id.clone());
                        rec.failed = None;
                        rec.pull_failures = 0;
                    }
                    Err(msg) => {
                        let delay = backoff.saturating_mul(1 << rec.pull_failures.min(5));
                        rec.pull_failures = rec.pull_failures.saturating_add(1);
                        rec.failed =
                            Some((done.image.clone(), msg.clone(), Instant::now() + delay));
                    }
                }
            }
        }
        waiting
    }

    fn start_pull(&mut self, image: &str, r: &ObjRef) {
        self.waiting
            .entry(image.to_string())
            .or_default()
            .insert(r.clone());
        if !self.in_flight.insert(image.to_string()) {
            return;
        }
        let resolver = self.resolver.clone();
        let tx = self.tx.clone();
        let image = image.to_string();
        tokio::spawn(async move {
            let result = match ImageRef::parse(&image) {
                Ok(reference) => resolver
                    .resolve(&reference)
                    .await
                    .map(|digest| reference.image_id(&digest))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            // The runner is gone when this fails: nothing is left to tell.
            let _ = tx.send(PullResult { image, result });
        });
    }

    fn record(&mut self, ctx: &Ctx<'_>, r: &ObjRef, pod: &Value) -> &mut PodRecord {
        let uid = meta::uid(pod).to_string();
        let stale = self.pods.get(r).is_none_or(|rec| rec.uid != uid);
        if stale {
            self.next_ip = self.next_ip.wrapping_add(1);
        }
        let ip = format!(
            "10.244.{}.{}",
            (self.next_ip >> 8) & 0xff,
            self.next_ip & 0xff
        );
        match self.pods.entry(r.clone()) {
            Entry::Occupied(o) if !stale => o.into_mut(),
            e => e.insert_entry(new_record(ctx, pod, uid, ip)).into_mut(),
        }
    }

    /// Moves one pod along; writes its status when it changed.
    pub fn reconcile(&mut self, ctx: &mut Ctx<'_>, r: &ObjRef) -> Requeue {
        let Some(pod) = ctx.cache.get(r).cloned() else {
            self.pods.remove(r);
            return Ok(None);
        };
        if meta::is_deleting(&pod) {
            return Ok(None);
        }
        let (stage, requeue) = self.stage(ctx, r, &pod);
        let Some(rec) = self.pods.get(r) else {
            return Ok(None);
        };
        let status = kubelet_status::pod_status(&pod, rec, &stage);
        if pod.get("status") != Some(&status) {
            let mut obj = pod;
            obj["status"] = status;
            ctx.update_status(Kind::Pod, obj)?;
        }
        Ok(requeue)
    }

    fn stage(&mut self, ctx: &Ctx<'_>, r: &ObjRef, pod: &Value) -> (Stage, Option<Duration>) {
        let now = Instant::now();
        let cfg = ctx.cfg;
        let rec = self.record(ctx, r, pod);
        if rec.outcome == Outcome::PullFails {
            // No request reaches the registry: the fault is the image's, whatever the registry holds.
            let image = images(pod).into_iter().next().unwrap_or_default();
            let message = "simulated: failed to pull and unpack image".to_string();
            return (Stage::BackOff { image, message }, None);
        }
        let missing: Vec<String> = images(pod)
            .into_iter()
            .filter(|i| !rec.pulled.contains_key(i))
            .collect();
        if !missing.is_empty() {
            // While a failed pull is retried the pod keeps showing the back-off, like a kubelet.
            let failed = rec.failed.clone();
            if let Some((image, message, retry)) = &failed
                && now < *retry
            {
                let stage = Stage::BackOff {
                    image: image.clone(),
                    message: message.clone(),
                };
                return (stage, Some(*retry - now));
            }
            for image in &missing {
                self.start_pull(image, r);
            }
            let stage = failed.map_or(Stage::Creating, |(image, message, _)| Stage::BackOff {
                image,
                message,
            });
            return (stage, None);
        }
        let factor = rec.outcome.delay_factor();
        let start_at = rec.seen + cfg.pod_start_delay.mul_f64(factor);
        if rec.outcome == Outcome::Stuck {
            return (Stage::Creating, None);
        }
        if now < start_at {
            return (Stage::Creating, Some(start_at - now));
        }
        rec.started_ts.get_or_insert_with(meta::now_timestamp);
        let ready_at = start_at + cfg.pod_ready_delay.mul_f64(factor);
        if rec.outcome == Outcome::NeverReady {
            return (Stage::Running, None);
        }
        if rec.outcome == Outcome::Crash {
            return (Stage::CrashLoop, None);
        }
        if now < ready_at {
            return (Stage::Running, Some(ready_at - now));
        }
        rec.ready_ts.get_or_insert_with(meta::now_timestamp);
        (Stage::Ready, None)
    }
}

fn new_record(ctx: &Ctx<'_>, pod: &Value, uid: String, ip: String) -> PodRecord {
    let imgs = images(pod);
    let refs: Vec<&str> = imgs.iter().map(String::as_str).collect();
    let owner = workload(ctx, pod);
    let outcome = ctx.cfg.control.outcome_for(
        owner
            .as_ref()
            .map(|o| (o.kind, o.namespace.as_str(), o.name.as_str())),
        &refs,
    );
    PodRecord {
        uid,
        seen: Instant::now(),
        seen_ts: meta::now_timestamp(),
        outcome,
        pulled: HashMap::new(),
        failed: None,
        pull_failures: 0,
        started_ts: None,
        ready_ts: None,
        ip,
    }
}

#[cfg(test)]
impl PodRecord {
    /// A record as the kubelet keeps it, for status tests.
    pub(crate) fn sample() -> Self {
        let mut rec = PodRecord {
            uid: "u1".to_string(),
            seen: Instant::now(),
            seen_ts: "2026-01-01T00:00:00Z".to_string(),
            outcome: Outcome::Complete,
            pulled: HashMap::new(),
            failed: None,
            pull_failures: 0,
            started_ts: Some("2026-01-01T00:00:01Z".to_string()),
            ready_ts: Some("2026-01-01T00:00:02Z".to_string()),
            ip: "10.244.0.1".to_string(),
        };
        rec.pulled.insert(
            "app:1".to_string(),
            "docker.io/library/app@sha256:ab".to_string(),
        );
        rec
    }
}
