//! The StatefulSet controller: pods `<name>-<ordinal>`, created in order (or in parallel) and
//! replaced from the highest ordinal down on a RollingUpdate (ordinals below `partition` keep
//! the current revision); OnDelete replaces nothing until a pod is deleted.
//!
//! Input: a StatefulSet, its pods and ControllerRevisions. Output: pods created/deleted,
//! revisions created, and `status` (replicas, readyReplicas, availableReplicas,
//! currentReplicas, updatedReplicas, currentRevision, updateRevision, observedGeneration) as
//! `kubectl rollout status` reads it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::ctx::{Ctx, Requeue, WriteError};
use super::hash;
use super::meta::{self, ObjRef};
use super::pods::{self, PodName};
use super::revisions;
use crate::store::Kind;

const REVISION_LABEL: &str = "controller-revision-hash";

struct Plan {
    replicas: i64,
    rolling: bool,
    partition: i64,
    ordered: bool,
    current: String,
    update: String,
}

/// Reconciles one StatefulSet.
pub(crate) fn reconcile(ctx: &mut Ctx<'_>, r: &ObjRef) -> Requeue {
    let Some(sts) = ctx.cache.get(r).cloned() else {
        return Ok(None);
    };
    if meta::is_deleting(&sts) {
        return Ok(None);
    }
    let template = sts.pointer("/spec/template").cloned().unwrap_or_default();
    let update = revisions::ensure(
        ctx,
        Kind::StatefulSet,
        &sts,
        &template,
        &hash::template_hash(&template),
    )?;
    let rolling = meta::str_at(&sts, "/spec/updateStrategy/type") != Some("OnDelete");
    let plan = Plan {
        replicas: meta::i64_at(&sts, "/spec/replicas").unwrap_or(1).max(0),
        rolling,
        partition: if rolling {
            meta::i64_at(&sts, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0)
        } else {
            0
        },
        ordered: meta::str_at(&sts, "/spec/podManagementPolicy") != Some("Parallel"),
        current: meta::str_at(&sts, "/status/currentRevision")
            .unwrap_or(&update)
            .to_string(),
        update,
    };
    let pods = pods_by_ordinal(ctx, &sts);
    step(ctx, &sts, &plan, &pods)?;
    sync_status(ctx, &sts, &plan)
}

fn pods_by_ordinal(ctx: &Ctx<'_>, sts: &Value) -> BTreeMap<i64, Value> {
    let prefix = format!("{}-", meta::name(sts));
    ctx.cache
        .children(meta::uid(sts), Kind::Pod)
        .into_iter()
        .filter_map(|p| {
            let ord = meta::name(p).strip_prefix(&prefix)?.parse().ok()?;
            Some((ord, p.clone()))
        })
        .collect()
}

/// Makes one step: create, delete for scale-down, or delete for update.
fn step(
    ctx: &mut Ctx<'_>,
    sts: &Value,
    plan: &Plan,
    pods: &BTreeMap<i64, Value>,
) -> Result<(), WriteError> {
    let healthy = |p: &Value| !meta::is_deleting(p) && pods::is_ready(p);
    for ord in 0..plan.replicas {
        match pods.get(&ord) {
            None => {
                create(ctx, sts, plan, ord)?;
                if plan.ordered {
                    return Ok(());
                }
            }
            Some(p) if plan.ordered && !healthy(p) => return Ok(()),
            Some(_) => {}
        }
    }
    let condemned: Vec<&Value> = pods.range(plan.replicas..).rev().map(|(_, p)| p).collect();
    if !condemned.is_empty() {
        if !plan.ordered || pods.values().all(healthy) {
            let victims = if plan.ordered {
                &condemned[..1]
            } else {
                &condemned[..]
            };
            for v in victims {
                ctx.delete(&ObjRef::of(Kind::Pod, v))?;
            }
        }
        return Ok(());
    }
    if !plan.rolling || pods.len() < usize::try_from(plan.replicas).unwrap_or(0) {
        return Ok(());
    }
    for ord in (plan.partition.max(0)..plan.replicas).rev() {
        let Some(p) = pods.get(&ord) else {
            return Ok(());
        };
        if meta::label(p, REVISION_LABEL) != Some(plan.update.as_str()) {
            return ctx.delete(&ObjRef::of(Kind::Pod, p));
        }
        if !healthy(p) {
            return Ok(());
        }
    }
    Ok(())
}

fn create(ctx: &mut Ctx<'_>, sts: &Value, plan: &Plan, ord: i64) -> Result<(), WriteError> {
    let revision = if plan.rolling && ord < plan.partition {
        &plan.current
    } else {
        &plan.update
    };
    let template = revisions::template(ctx, meta::namespace(sts), revision)
        .or_else(|| sts.pointer("/spec/template").cloned())
        .unwrap_or_default();
    let name = format!("{}-{ord}", meta::name(sts));
    let ord_s = ord.to_string();
    let labels = [
        (REVISION_LABEL, revision.as_str()),
        ("statefulset.kubernetes.io/pod-name", name.as_str()),
        ("apps.kubernetes.io/pod-index", ord_s.as_str()),
    ];
    let mut pod = pods::new_pod(
        sts,
        Kind::StatefulSet,
        &template,
        PodName::Fixed(name.clone()),
        &labels,
        None,
    );
    pod["spec"]["hostname"] = json!(name);
    if let Some(svc) = meta::str_at(sts, "/spec/serviceName") {
        pod["spec"]["subdomain"] = json!(svc);
    }
    ctx.create(Kind::Pod, pod).map(|_| ())
}

fn sync_status(ctx: &mut Ctx<'_>, sts: &Value, plan: &Plan) -> Requeue {
    let min_ready = ctx
        .scaled(meta::i64_at(sts, "/spec/minReadySeconds").unwrap_or(0) as f64)
        .as_secs_f64();
    let pods = pods_by_ordinal(ctx, sts);
    let count = |f: &dyn Fn(&Value) -> bool| pods.values().filter(|p| f(p)).count() as i64;
    let replicas = pods.len() as i64;
    let ready = count(&pods::is_ready);
    let available = count(&|p| pods::is_available(p, min_ready));
    let rev = |want: &str| count(&|p| meta::label(p, REVISION_LABEL) == Some(want));
    let updated = rev(&plan.update);
    let (current_revision, current) = if plan.rolling && updated == replicas && ready == replicas {
        (plan.update.clone(), updated)
    } else {
        (plan.current.clone(), rev(&plan.current))
    };
    let mut status = json!({"observedGeneration": meta::generation(sts), "replicas": replicas,
        "availableReplicas": available, "currentRevision": current_revision,
        "updateRevision": plan.update, "collisionCount": 0});
    if let Some(m) = status.as_object_mut() {
        meta::put_count(m, "readyReplicas", ready);
        meta::put_count(m, "currentReplicas", current);
        meta::put_count(m, "updatedReplicas", updated);
    }
    let requeue =
        (ready > available).then(|| ctx.scaled(1.0).max(std::time::Duration::from_millis(10)));
    let r = ObjRef::of(Kind::StatefulSet, sts);
    let fresh = ctx.cache.get(&r).cloned().unwrap_or_else(|| sts.clone());
    if fresh.get("status") != Some(&status) {
        let mut obj = fresh;
        obj["status"] = status;
        ctx.update_status(Kind::StatefulSet, obj)?;
    }
    Ok(requeue)
}
