//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets.
//!
//! Input: a Deployment and the ReplicaSets it controls (from the cache). Output: ReplicaSets
//! created and scaled step by step, the `deployment.kubernetes.io/revision` annotation on the
//! Deployment and its ReplicaSets, and the Deployment's `status`. Each reconcile makes at most
//! one kind of step and returns; the change events of its own writes bring the next step, as in
//! kube-controller-manager (`pkg/controller/deployment`), whose behaviour this follows.

mod plan;
mod rollout;
mod status;

use serde_json::{Value, json};

use super::ctx::{Ctx, Requeue, WriteError};
use super::hash;
use super::meta::{self, ObjRef};
use crate::store::Kind;

pub(crate) const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Deployment annotations not copied to its ReplicaSets.
const NOT_COPIED: [&str; 5] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS,
    MAX_REPLICAS,
];

/// A Deployment and its ReplicaSets, split into the one matching the template and the others.
pub(crate) struct Snapshot {
    pub d: Value,
    pub new_rs: Option<Value>,
    /// Oldest first.
    pub olds: Vec<Value>,
}

impl Snapshot {
    fn replicas(&self) -> i64 {
        meta::i64_at(&self.d, "/spec/replicas").unwrap_or(1)
    }

    fn strategy(&self) -> Value {
        self.d
            .pointer("/spec/strategy")
            .cloned()
            .unwrap_or_else(|| json!({}))
    }

    /// The new ReplicaSet followed by the old ones.
    fn all(&self) -> Vec<&Value> {
        self.new_rs.iter().chain(&self.olds).collect()
    }
}

/// Reconciles one Deployment.
pub(crate) fn reconcile(ctx: &mut Ctx<'_>, r: &ObjRef) -> Requeue {
    let Some(d) = ctx.cache.get(r).cloned() else {
        ctx.marks.remove(r);
        return Ok(None);
    };
    if meta::is_deleting(&d) {
        return Ok(None);
    }
    let snap = snapshot(ctx, d);
    if rollout::sync_paused_condition(ctx, &snap)? {
        return Ok(None);
    }
    if snap.d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return rollout::paused(ctx, &snap);
    }
    if sync_revision(ctx, &snap)? {
        return Ok(None);
    }
    if plan::is_rolling(&snap.strategy()) {
        rollout::rolling(ctx, &snap)
    } else {
        rollout::recreate(ctx, &snap)
    }
}

fn snapshot(ctx: &Ctx<'_>, d: Value) -> Snapshot {
    let mut rss: Vec<Value> = ctx
        .cache
        .children(meta::uid(&d), Kind::ReplicaSet)
        .into_iter()
        .cloned()
        .collect();
    rss.sort_by(|a, b| {
        let key = |v: &Value| {
            (
                meta::str_at(v, "/metadata/creationTimestamp").map(str::to_string),
                meta::name(v).to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    let template = d.pointer("/spec/template").cloned().unwrap_or_default();
    let pos = rss.iter().rposition(|rs| {
        hash::templates_equal(
            rs.pointer("/spec/template").unwrap_or(&Value::Null),
            &template,
        )
    });
    let new_rs = pos.map(|i| rss.remove(i));
    Snapshot {
        d,
        new_rs,
        olds: rss,
    }
}

fn revision_of(v: &Value) -> i64 {
    meta::annotation(v, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The revision the new ReplicaSet must carry: one more than any old one.
fn new_revision(snap: &Snapshot) -> i64 {
    snap.olds.iter().map(revision_of).max().unwrap_or(0) + 1
}

/// Brings the revision annotations of the new ReplicaSet and the Deployment up to date (a
/// rollback to an old template gives its ReplicaSet the next revision). Returns whether it wrote.
fn sync_revision(ctx: &mut Ctx<'_>, snap: &Snapshot) -> Result<bool, WriteError> {
    let Some(rs) = &snap.new_rs else {
        return Ok(false);
    };
    let want = new_revision(snap);
    if revision_of(rs) < want {
        let mut rs = rs.clone();
        meta::set_meta_map(&mut rs, "annotations", REVISION, &want.to_string());
        ctx.update(Kind::ReplicaSet, rs)?;
        return Ok(true);
    }
    let rs_revision = meta::annotation(rs, REVISION).unwrap_or_default();
    if meta::annotation(&snap.d, REVISION) != Some(rs_revision) {
        let mut d = snap.d.clone();
        meta::set_meta_map(&mut d, "annotations", REVISION, rs_revision);
        // Through /status, as Kubernetes' deployment controller does: no new generation.
        ctx.update_status(Kind::Deployment, d)?;
        return Ok(true);
    }
    let status = snap.d.get("status").cloned().unwrap_or_else(|| json!({}));
    if meta::condition(&status, status::PROGRESSING).is_none() && has_deadline(&snap.d) {
        let msg = format!("Found new replica set \"{}\"", meta::name(rs));
        let cond = status::condition(
            status::PROGRESSING,
            "True",
            "FoundNewReplicaSet",
            &msg,
            &meta::now_timestamp(),
        );
        rollout::write_condition(ctx, &snap.d, cond)?;
        return Ok(true);
    }
    Ok(false)
}

pub(crate) fn has_deadline(d: &Value) -> bool {
    meta::i64_at(d, "/spec/progressDeadlineSeconds").is_some_and(|s| s != i64::from(i32::MAX))
}

/// Creates the ReplicaSet for the current template with `replicas` pods, stamps the new
/// revision on the Deployment and records `NewReplicaSetCreated`.
pub(crate) fn create_new_rs(
    ctx: &mut Ctx<'_>,
    snap: &Snapshot,
    replicas: i64,
    max_replicas: i64,
) -> Requeue {
    let d = &snap.d;
    let revision = new_revision(snap).to_string();
    let template = d.pointer("/spec/template").cloned().unwrap_or_default();
    let hash = hash::template_hash(&template);
    let name = format!("{}-{hash}", meta::name(d));
    let mut template = template;
    meta::set_meta_map(&mut template, "labels", "pod-template-hash", &hash);
    let mut selector = d
        .pointer("/spec/selector")
        .cloned()
        .unwrap_or_else(|| json!({}));
    selector["matchLabels"]["pod-template-hash"] = json!(hash);
    let mut annotations = d
        .pointer("/metadata/annotations")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(a) = annotations.as_object_mut() {
        a.retain(|k, _| !NOT_COPIED.contains(&k.as_str()));
        a.insert(REVISION.into(), json!(revision));
        a.insert(DESIRED_REPLICAS.into(), json!(snap.replicas().to_string()));
        a.insert(MAX_REPLICAS.into(), json!(max_replicas.to_string()));
    }
    let rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": meta::namespace(d),
            "labels": template["metadata"]["labels"].clone(),
            "annotations": annotations,
            "ownerReferences": meta::owner_reference(Kind::Deployment, d),
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": d.pointer("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
            "selector": selector,
            "template": template,
        },
    });
    ctx.create(Kind::ReplicaSet, rs)?;
    let mut updated = d.clone();
    meta::set_meta_map(&mut updated, "annotations", REVISION, &revision);
    // Through /status, as Kubernetes' deployment controller does: no new generation.
    let updated = ctx.update_status(Kind::Deployment, updated)?;
    if has_deadline(d) {
        let msg = format!("Created new replica set \"{name}\"");
        let cond = status::condition(
            status::PROGRESSING,
            "True",
            "NewReplicaSetCreated",
            &msg,
            &meta::now_timestamp(),
        );
        rollout::write_condition(ctx, &updated, cond)?;
    }
    Ok(None)
}
