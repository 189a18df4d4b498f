//! The steps of a Deployment rollout (RollingUpdate, Recreate, paused) and the status write that
//! ends every reconcile.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::plan::{self, RsInfo};
use super::status::{self, Inputs, NEW_RS_AVAILABLE, PROGRESSING, TIMED_OUT};
use super::{DESIRED_REPLICAS, MAX_REPLICAS, Snapshot};
use crate::controllers::ctx::{Ctx, Requeue, WriteError};
use crate::controllers::meta::{self, ObjRef};
use crate::store::Kind;

/// Records `DeploymentPaused` / `DeploymentResumed`; returns whether it wrote.
pub(super) fn sync_paused_condition(
    ctx: &mut Ctx<'_>,
    snap: &Snapshot,
) -> Result<bool, WriteError> {
    let paused = snap.d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
    let empty = json!({});
    let status = snap.d.get("status").unwrap_or(&empty);
    let reason = meta::condition(status, PROGRESSING).and_then(|c| c["reason"].as_str());
    let now = meta::now_timestamp();
    let cond = match (paused, reason) {
        (true, r) if r != Some("DeploymentPaused") => status::condition(
            PROGRESSING,
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            &now,
        ),
        (false, Some("DeploymentPaused")) => status::condition(
            PROGRESSING,
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed",
            &now,
        ),
        _ => return Ok(false),
    };
    if !super::has_deadline(&snap.d) {
        return Ok(false);
    }
    write_condition(ctx, &snap.d, cond)?;
    Ok(true)
}

/// Paused: only scaling of a settled Deployment; no rollout, no progress conditions.
pub(super) fn paused(ctx: &mut Ctx<'_>, snap: &Snapshot) -> Requeue {
    let active_olds = snap.olds.iter().any(|rs| RsInfo::of(rs).spec_replicas > 0);
    if let (Some(rs), false) = (&snap.new_rs, active_olds)
        && scale(ctx, snap, rs, snap.replicas())?
    {
        return Ok(None);
    }
    sync_status(ctx, snap, false)
}

/// RollingUpdate: grow the new ReplicaSet within maxSurge, shrink old ones within maxUnavailable.
pub(super) fn rolling(ctx: &mut Ctx<'_>, snap: &Snapshot) -> Requeue {
    let want = snap.replicas();
    let strategy = snap.strategy();
    let surge = plan::max_surge(&strategy, want);
    let max_unavailable = plan::max_unavailable(&strategy, want);
    let total: i64 = snap
        .all()
        .iter()
        .map(|rs| RsInfo::of(rs).spec_replicas)
        .sum();
    let Some(new_rs) = &snap.new_rs else {
        let replicas = plan::new_rs_replicas(want, surge, total, 0);
        return super::create_new_rs(ctx, snap, replicas, want + surge);
    };
    let new = RsInfo::of(new_rs);
    let target = if new.spec_replicas > want {
        want
    } else {
        plan::new_rs_replicas(want, surge, total, new.spec_replicas)
    };
    if scale(ctx, snap, new_rs, target)? {
        return sync_status(ctx, snap, true);
    }
    let olds: Vec<RsInfo> = snap.olds.iter().map(RsInfo::of).collect();
    let targets = plan::scale_down_old(want, max_unavailable, Some(&new), &olds);
    let mut scaled = false;
    for (rs, target) in snap.olds.iter().zip(targets) {
        scaled |= scale(ctx, snap, rs, target)?;
    }
    if !scaled {
        cleanup_if_complete(ctx, snap)?;
    }
    sync_status(ctx, snap, true)
}

/// Recreate: scale every old ReplicaSet to zero, wait for their pods to go, then scale up.
pub(super) fn recreate(ctx: &mut Ctx<'_>, snap: &Snapshot) -> Requeue {
    let mut scaled = false;
    for rs in &snap.olds {
        scaled |= scale(ctx, snap, rs, 0)?;
    }
    let old_pods_running = snap
        .olds
        .iter()
        .any(|rs| RsInfo::of(rs).status_replicas > 0);
    if scaled || old_pods_running {
        return sync_status(ctx, snap, true);
    }
    let want = snap.replicas();
    let Some(new_rs) = &snap.new_rs else {
        return super::create_new_rs(ctx, snap, want, want);
    };
    if scale(ctx, snap, new_rs, want)? {
        return sync_status(ctx, snap, true);
    }
    cleanup_if_complete(ctx, snap)?;
    sync_status(ctx, snap, true)
}

/// Sets `spec.replicas` of a ReplicaSet (and its replica annotations); returns whether it wrote.
fn scale(
    ctx: &mut Ctx<'_>,
    snap: &Snapshot,
    rs: &Value,
    replicas: i64,
) -> Result<bool, WriteError> {
    if RsInfo::of(rs).spec_replicas == replicas {
        return Ok(false);
    }
    let want = snap.replicas();
    let max = want + plan::max_surge(&snap.strategy(), want);
    let mut rs = rs.clone();
    rs["spec"]["replicas"] = json!(replicas);
    meta::set_meta_map(&mut rs, "annotations", DESIRED_REPLICAS, &want.to_string());
    meta::set_meta_map(&mut rs, "annotations", MAX_REPLICAS, &max.to_string());
    ctx.update(Kind::ReplicaSet, rs)?;
    Ok(true)
}

/// Deletes old, empty ReplicaSets beyond `spec.revisionHistoryLimit` once the rollout is done.
fn cleanup_if_complete(ctx: &mut Ctx<'_>, snap: &Snapshot) -> Result<(), WriteError> {
    let empty = json!({});
    if !status::is_complete(&snap.d, snap.d.get("status").unwrap_or(&empty)) {
        return Ok(());
    }
    let limit = meta::i64_at(&snap.d, "/spec/revisionHistoryLimit")
        .unwrap_or(10)
        .max(0);
    let idle: Vec<&Value> = snap
        .olds
        .iter()
        .filter(|rs| {
            let i = RsInfo::of(rs);
            i.spec_replicas == 0 && i.status_replicas == 0
        })
        .collect();
    let excess = idle
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    for rs in idle.into_iter().take(excess) {
        ctx.delete(&ObjRef::of(Kind::ReplicaSet, rs))?;
    }
    Ok(())
}

/// Writes one condition into the Deployment's status (nothing else changes).
pub(super) fn write_condition(ctx: &mut Ctx<'_>, d: &Value, cond: Value) -> Result<(), WriteError> {
    let mut next = d.get("status").cloned().unwrap_or_else(|| json!({}));
    status::set_condition(&mut next, cond);
    write_status(ctx, d, next)
}

fn write_status(ctx: &mut Ctx<'_>, d: &Value, next: Value) -> Result<(), WriteError> {
    let last_update = |s: Option<&Value>| {
        s.and_then(|s| meta::condition(s, PROGRESSING))
            .and_then(|c| c["lastUpdateTime"].as_str())
            .map(str::to_string)
    };
    let before = last_update(d.get("status"));
    let after = last_update(Some(&next));
    let mut obj = d.clone();
    obj["status"] = next;
    ctx.update_status(Kind::Deployment, obj)?;
    let r = ObjRef::of(Kind::Deployment, d);
    match after {
        Some(ts) if before.as_ref() != Some(&ts) || !ctx.marks.contains_key(&r) => {
            ctx.marks.insert(r, (ts, Instant::now()));
        }
        Some(_) => {}
        None => {
            ctx.marks.remove(&r);
        }
    }
    Ok(())
}

/// Seconds since the `Progressing` condition's `lastUpdateTime`, precise when we wrote it.
fn since_progress(ctx: &Ctx<'_>, d: &Value) -> f64 {
    let Some(ts) = d
        .get("status")
        .and_then(|s| meta::condition(s, PROGRESSING))
        .and_then(|c| c["lastUpdateTime"].as_str())
    else {
        return 0.0;
    };
    match ctx.marks.get(&ObjRef::of(Kind::Deployment, d)) {
        Some((mark, at)) if mark == ts => at.elapsed().as_secs_f64(),
        _ => meta::seconds_since(ts),
    }
}

/// Computes and (if changed) writes the status; requeues for the progress deadline.
pub(super) fn sync_status(ctx: &mut Ctx<'_>, snap: &Snapshot, track_progress: bool) -> Requeue {
    // Re-read: a step of this reconcile may have updated the Deployment or its ReplicaSets.
    let r = ObjRef::of(Kind::Deployment, &snap.d);
    let d = ctx.cache.get(&r).cloned().unwrap_or_else(|| snap.d.clone());
    let fresh = |rs: &Value| {
        ctx.cache
            .get(&ObjRef::of(Kind::ReplicaSet, rs))
            .map(RsInfo::of)
            .unwrap_or_else(|| RsInfo::of(rs))
    };
    let new = snap.new_rs.as_ref().map(fresh);
    let all: Vec<RsInfo> = snap.all().into_iter().map(fresh).collect();
    let want = snap.replicas();
    let deadline = super::has_deadline(&d).then(|| {
        meta::i64_at(&d, "/spec/progressDeadlineSeconds").unwrap_or(600) as f64 * ctx.cfg.time_scale
    });
    let since = since_progress(ctx, &d);
    let now = meta::now_timestamp();
    let next = status::next_status(&Inputs {
        deployment: &d,
        new_rs: new.as_ref(),
        all: &all,
        max_unavailable: plan::max_unavailable(&snap.strategy(), want),
        now: &now,
        since_progress: since,
        deadline,
        track_progress,
    });
    if d.get("status") != Some(&next) {
        write_status(ctx, &d, next.clone())?;
    }
    let pending = meta::condition(&next, PROGRESSING)
        .and_then(|c| c["reason"].as_str())
        .is_some_and(|r| r != NEW_RS_AVAILABLE && r != TIMED_OUT && r != "DeploymentPaused");
    let since = ctx.cache.get(&r).map_or(since, |d| since_progress(ctx, d));
    Ok(deadline
        .filter(|_| pending && track_progress)
        .map(|dl| Duration::from_secs_f64((dl - since).max(0.0)) + Duration::from_millis(5)))
}
