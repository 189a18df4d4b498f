//! The DaemonSet controller: one pod per Node in the store, replaced on a RollingUpdate at most
//! `maxUnavailable` nodes at a time (unavailable old pods first); OnDelete replaces nothing
//! until a pod is deleted.
//!
//! Input: a DaemonSet, the Nodes and its pods. Output: pods created (bound with
//! `spec.nodeName`) or deleted, and `status` (desiredNumberScheduled, currentNumberScheduled,
//! updatedNumberScheduled, numberReady, numberAvailable, numberUnavailable,
//! observedGeneration). Node selectors, affinity and taints are not simulated: every node runs
//! every DaemonSet.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::ctx::{Ctx, Requeue, WriteError};
use super::hash;
use super::meta::{self, ObjRef};
use super::pods::{self, PodName};
use super::revisions;
use crate::store::Kind;

const REVISION_LABEL: &str = "controller-revision-hash";

/// Reconciles one DaemonSet.
pub(crate) fn reconcile(ctx: &mut Ctx<'_>, r: &ObjRef) -> Requeue {
    let Some(ds) = ctx.cache.get(r).cloned() else {
        return Ok(None);
    };
    if meta::is_deleting(&ds) {
        return Ok(None);
    }
    let template = ds.pointer("/spec/template").cloned().unwrap_or_default();
    let hash = hash::template_hash(&template);
    revisions::ensure(ctx, Kind::DaemonSet, &ds, &template, &hash)?;
    let nodes: Vec<String> = ctx
        .cache
        .all(Kind::Node)
        .map(|n| meta::name(n).to_string())
        .collect();
    let by_node = pods_by_node(ctx, &ds);
    let min_ready = ctx
        .scaled(meta::i64_at(&ds, "/spec/minReadySeconds").unwrap_or(0) as f64)
        .as_secs_f64();
    manage(ctx, &ds, &template, &hash, &nodes, &by_node)?;
    if meta::str_at(&ds, "/spec/updateStrategy/type") != Some("OnDelete") {
        roll(ctx, &ds, &hash, &nodes, &by_node, min_ready)?;
    }
    sync_status(ctx, &ds, &hash, &nodes, min_ready)
}

fn pods_by_node(ctx: &Ctx<'_>, ds: &Value) -> BTreeMap<String, Vec<Value>> {
    let mut by_node: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in ctx.cache.children(meta::uid(ds), Kind::Pod) {
        if meta::is_deleting(p) {
            continue;
        }
        let node = meta::str_at(p, "/spec/nodeName")
            .unwrap_or_default()
            .to_string();
        by_node.entry(node).or_default().push(p.clone());
    }
    for pods in by_node.values_mut() {
        pods.sort_by_key(|p| {
            meta::str_at(p, "/metadata/creationTimestamp")
                .unwrap_or_default()
                .to_string()
        });
    }
    by_node
}

/// Creates the missing pods, deletes extra ones and those on nodes that are gone.
fn manage(
    ctx: &mut Ctx<'_>,
    ds: &Value,
    template: &Value,
    hash: &str,
    nodes: &[String],
    by_node: &BTreeMap<String, Vec<Value>>,
) -> Result<(), WriteError> {
    let generation = meta::generation(ds).to_string();
    for node in nodes {
        if by_node.get(node).is_none_or(Vec::is_empty) {
            let labels = [
                (REVISION_LABEL, hash),
                ("pod-template-generation", generation.as_str()),
            ];
            let pod = pods::new_pod(
                ds,
                Kind::DaemonSet,
                template,
                PodName::Generate,
                &labels,
                Some(node),
            );
            ctx.create(Kind::Pod, pod)?;
        }
    }
    for (node, pods) in by_node {
        let keep = usize::from(nodes.contains(node));
        for p in pods.iter().skip(keep) {
            ctx.delete(&ObjRef::of(Kind::Pod, p))?;
        }
    }
    Ok(())
}

/// Deletes old pods: unavailable ones at once, available ones within `maxUnavailable`.
fn roll(
    ctx: &mut Ctx<'_>,
    ds: &Value,
    hash: &str,
    nodes: &[String],
    by_node: &BTreeMap<String, Vec<Value>>,
    min_ready: f64,
) -> Result<(), WriteError> {
    let desired = nodes.len() as i64;
    let max_v = ds.pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable");
    let max_unavailable = meta::scaled_value(max_v, desired, true, 1).max(1);
    let current: Vec<&Value> = nodes
        .iter()
        .filter_map(|n| by_node.get(n).and_then(|p| p.first()))
        .collect();
    let available = |p: &Value| pods::is_available(p, min_ready);
    let mut unavailable = desired - current.iter().filter(|p| available(p)).count() as i64;
    let old: Vec<&Value> = current
        .into_iter()
        .filter(|p| meta::label(p, REVISION_LABEL) != Some(hash))
        .collect();
    for p in old.iter().filter(|p| !available(p)) {
        ctx.delete(&ObjRef::of(Kind::Pod, p))?;
    }
    for p in old.iter().filter(|p| available(p)) {
        if unavailable >= max_unavailable {
            break;
        }
        ctx.delete(&ObjRef::of(Kind::Pod, p))?;
        unavailable += 1;
    }
    Ok(())
}

fn sync_status(
    ctx: &mut Ctx<'_>,
    ds: &Value,
    hash: &str,
    nodes: &[String],
    min_ready: f64,
) -> Requeue {
    let by_node = pods_by_node(ctx, ds);
    let on_nodes: Vec<&Value> = nodes
        .iter()
        .filter_map(|n| by_node.get(n).and_then(|p| p.first()))
        .collect();
    let count = |f: &dyn Fn(&Value) -> bool| on_nodes.iter().filter(|p| f(p)).count() as i64;
    let desired = nodes.len() as i64;
    let ready = count(&pods::is_ready);
    let available = count(&|p| pods::is_available(p, min_ready));
    let mut status = json!({"observedGeneration": meta::generation(ds), "desiredNumberScheduled": desired,
        "currentNumberScheduled": on_nodes.len(), "numberMisscheduled": 0, "numberReady": ready});
    if let Some(m) = status.as_object_mut() {
        meta::put_count(
            m,
            "updatedNumberScheduled",
            count(&|p| meta::label(p, REVISION_LABEL) == Some(hash)),
        );
        meta::put_count(m, "numberAvailable", available);
        meta::put_count(m, "numberUnavailable", desired - available);
    }
    let requeue =
        (ready > available).then(|| ctx.scaled(1.0).max(std::time::Duration::from_millis(10)));
    let r = ObjRef::of(Kind::DaemonSet, ds);
    let fresh = ctx.cache.get(&r).cloned().unwrap_or_else(|| ds.clone());
    if fresh.get("status") != Some(&status) {
        let mut obj = fresh;
        obj["status"] = status;
        ctx.update_status(Kind::DaemonSet, obj)?;
    }
    Ok(requeue)
}
