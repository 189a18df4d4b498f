//! The ReplicaSet controller: keeps `spec.replicas` pods of a ReplicaSet's template and reports
//! them in `status`.
//!
//! Input: a ReplicaSet and the pods it controls. Output: pods created (template labels,
//! controlling owner reference) or deleted (not-ready and newest first), and `status.replicas`,
//! `fullyLabeledReplicas`, `readyReplicas`, `availableReplicas` (ready for `minReadySeconds`,
//! scaled) and `observedGeneration`.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::ctx::{Ctx, Requeue};
use super::meta::{self, ObjRef};
use super::pods::{self, PodHealth, PodName};
use crate::store::Kind;

/// Reconciles one ReplicaSet.
pub(crate) fn reconcile(ctx: &mut Ctx<'_>, r: &ObjRef) -> Requeue {
    let Some(rs) = ctx.cache.get(r).cloned() else {
        return Ok(None);
    };
    if meta::is_deleting(&rs) {
        return Ok(None);
    }
    let mut pods: Vec<Value> = ctx
        .cache
        .children(meta::uid(&rs), Kind::Pod)
        .into_iter()
        .filter(|p| !meta::is_deleting(p))
        .cloned()
        .collect();
    let want = meta::i64_at(&rs, "/spec/replicas").unwrap_or(1).max(0) as usize;
    if pods.len() < want {
        for _ in pods.len()..want {
            let template = rs.pointer("/spec/template").cloned().unwrap_or_default();
            let pod = pods::new_pod(
                &rs,
                Kind::ReplicaSet,
                &template,
                PodName::Generate,
                &[],
                None,
            );
            ctx.create(Kind::Pod, pod)?;
        }
    } else if pods.len() > want {
        pods.sort_by_key(deletion_rank);
        for pod in pods.iter().take(pods.len() - want) {
            ctx.delete(&ObjRef::of(Kind::Pod, pod))?;
        }
    }
    sync_status(ctx, &rs, &pods)
}

/// Pods to delete first sort first: unscheduled, pending, not ready, then the newest.
fn deletion_rank(pod: &Value) -> (u8, std::cmp::Reverse<String>) {
    let rank = match pods::health(pod) {
        PodHealth::Pending => 0,
        PodHealth::Running => 1,
        PodHealth::Ready(_) => 2,
    };
    let created = meta::str_at(pod, "/metadata/creationTimestamp").unwrap_or_default();
    (rank, std::cmp::Reverse(created.to_string()))
}

fn sync_status(ctx: &mut Ctx<'_>, rs: &Value, pods: &[Value]) -> Requeue {
    let min_ready = ctx.scaled(meta::i64_at(rs, "/spec/minReadySeconds").unwrap_or(0) as f64);
    let template_labels = rs
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let (mut ready, mut available, mut labeled) = (0, 0, 0);
    let mut next_available: Option<Duration> = None;
    for pod in pods {
        if has_labels(pod, &template_labels) {
            labeled += 1;
        }
        if let PodHealth::Ready(for_secs) = pods::health(pod) {
            ready += 1;
            let ready_for = Duration::from_secs_f64(for_secs);
            if ready_for >= min_ready {
                available += 1;
            } else {
                let left = min_ready - ready_for;
                next_available = Some(next_available.map_or(left, |n| n.min(left)));
            }
        }
    }
    let mut status = Map::new();
    status.insert("replicas".into(), json!(pods.len()));
    meta::put_count(&mut status, "fullyLabeledReplicas", labeled);
    meta::put_count(&mut status, "readyReplicas", ready);
    meta::put_count(&mut status, "availableReplicas", available);
    status.insert("observedGeneration".into(), json!(meta::generation(rs)));
    let status = Value::Object(status);
    if rs.get("status") != Some(&status) {
        let r = ObjRef::of(Kind::ReplicaSet, rs);
        let mut obj = ctx.cache.get(&r).cloned().unwrap_or_else(|| rs.clone());
        obj["status"] = status;
        ctx.update_status(Kind::ReplicaSet, obj)?;
    }
    Ok(next_available)
}

fn has_labels(pod: &Value, want: &Map<String, Value>) -> bool {
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    want.iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}
