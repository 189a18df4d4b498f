//! A Deployment's next `status`: counts summed over its ReplicaSets, the `Available` condition,
//! and the `Progressing` condition that `kubectl rollout status` and watch-cluster read
//! (`NewReplicaSetCreated` → `ReplicaSetUpdated` on every step of progress →
//! `NewReplicaSetAvailable`, or `ProgressDeadlineExceeded` when no progress was made for
//! `spec.progressDeadlineSeconds`). Pure: time comes in as arguments.

use serde_json::{Map, Value, json};

use super::plan::RsInfo;
use crate::controllers::meta;

pub(crate) const PROGRESSING: &str = "Progressing";
pub(crate) const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub(crate) const TIMED_OUT: &str = "ProgressDeadlineExceeded";

/// What the next status is computed from.
pub(crate) struct Inputs<'a> {
    pub deployment: &'a Value,
    pub new_rs: Option<&'a RsInfo>,
    pub all: &'a [RsInfo],
    pub max_unavailable: i64,
    pub now: &'a str,
    /// Seconds since the current `Progressing` condition's `lastUpdateTime`.
    pub since_progress: f64,
    /// The (scaled) progress deadline in seconds, if the Deployment has one.
    pub deadline: Option<f64>,
    /// False while paused: conditions other than `Available` are left alone.
    pub track_progress: bool,
}

/// A condition object as Kubernetes writes it.
pub(crate) fn condition(kind: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": kind, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
        "reason": reason, "message": message})
}

/// Sets a condition unless one with the same status and reason is there; keeps
/// `lastTransitionTime` when only the reason changes.
pub(crate) fn set_condition(status: &mut Value, mut cond: Value) {
    let kind = cond["type"].clone();
    if let Some(cur) = meta::condition(status, kind.as_str().unwrap_or_default()) {
        if cur["status"] == cond["status"] && cur["reason"] == cond["reason"] {
            return;
        }
        if cur["status"] == cond["status"] {
            cond["lastTransitionTime"] = cur["lastTransitionTime"].clone();
        }
    }
    remove_condition(status, kind.as_str().unwrap_or_default());
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    if let Some(conds) = status["conditions"].as_array_mut() {
        conds.push(cond);
    }
}

fn remove_condition(status: &mut Value, kind: &str) {
    if let Some(conds) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        conds.retain(|c| c["type"] != kind);
    }
}

/// The counts part of a status; zero counts are omitted.
fn counts(d: &Value, new_rs: Option<&RsInfo>, all: &[RsInfo]) -> Map<String, Value> {
    let sum = |f: fn(&RsInfo) -> i64| all.iter().map(f).sum::<i64>();
    let replicas = sum(|r| r.status_replicas);
    let available = sum(|r| r.available);
    let mut m = Map::new();
    m.insert("observedGeneration".into(), json!(meta::generation(d)));
    meta::put_count(&mut m, "replicas", replicas);
    meta::put_count(
        &mut m,
        "updatedReplicas",
        new_rs.map_or(0, |n| n.status_replicas),
    );
    meta::put_count(&mut m, "readyReplicas", sum(|r| r.ready));
    meta::put_count(&mut m, "availableReplicas", available);
    meta::put_count(&mut m, "unavailableReplicas", (replicas - available).max(0));
    if let Some(c) = d.pointer("/status/collisionCount") {
        m.insert("collisionCount".into(), c.clone());
    }
    m
}

fn count(status: &Value, key: &str) -> i64 {
    status.get(key).and_then(Value::as_i64).unwrap_or(0)
}

/// Whether the rollout is done: every count at `spec.replicas`, generation observed.
pub(crate) fn is_complete(d: &Value, status: &Value) -> bool {
    let want = meta::i64_at(d, "/spec/replicas").unwrap_or(1);
    count(status, "updatedReplicas") == want
        && count(status, "replicas") == want
        && count(status, "availableReplicas") == want
        && count(status, "observedGeneration") >= meta::generation(d)
}

fn made_progress(old: &Value, new: &Value) -> bool {
    let old_olds = count(old, "replicas") - count(old, "updatedReplicas");
    let new_olds = count(new, "replicas") - count(new, "updatedReplicas");
    count(new, "updatedReplicas") > count(old, "updatedReplicas")
        || new_olds < old_olds
        || count(new, "readyReplicas") > count(old, "readyReplicas")
        || count(new, "availableReplicas") > count(old, "availableReplicas")
}

/// The next status of a Deployment.
pub(crate) fn next_status(i: &Inputs<'_>) -> Value {
    let d = i.deployment;
    let old = d.get("status").cloned().unwrap_or_else(|| json!({}));
    let mut status = Value::Object(counts(d, i.new_rs, i.all));
    if let Some(conds) = old.get("conditions") {
        status["conditions"] = conds.clone();
    }
    let want = meta::i64_at(d, "/spec/replicas").unwrap_or(1);
    let available = if count(&status, "availableReplicas") >= want - i.max_unavailable {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            i.now,
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            i.now,
        )
    };
    set_condition(&mut status, available);
    if i.deadline.is_none() {
        remove_condition(&mut status, PROGRESSING);
    } else if i.track_progress {
        progressing(i, &old, &mut status);
    }
    status
}

fn progressing(i: &Inputs<'_>, old: &Value, status: &mut Value) {
    let cur = meta::condition(old, PROGRESSING).cloned();
    let reason = cur
        .as_ref()
        .and_then(|c| c["reason"].as_str())
        .unwrap_or_default();
    let rs_name = i.new_rs.map(|r| r.name.as_str()).unwrap_or_default();
    let done =
        count(status, "replicas") == count(status, "updatedReplicas") && reason == NEW_RS_AVAILABLE;
    if done {
        return;
    }
    if is_complete(i.deployment, status) {
        let msg = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
        set_condition(
            status,
            condition(PROGRESSING, "True", NEW_RS_AVAILABLE, &msg, i.now),
        );
    } else if made_progress(old, status) {
        let msg = format!("ReplicaSet \"{rs_name}\" is progressing.");
        let mut c = condition(PROGRESSING, "True", "ReplicaSetUpdated", &msg, i.now);
        if let Some(cur) = cur.as_ref().filter(|c| c["status"] == "True") {
            c["lastTransitionTime"] = cur["lastTransitionTime"].clone();
        }
        remove_condition(status, PROGRESSING);
        set_condition(status, c);
    } else if cur.is_some()
        && (reason == TIMED_OUT || i.deadline.is_some_and(|dl| i.since_progress > dl))
    {
        let msg = format!("ReplicaSet \"{rs_name}\" has timed out progressing.");
        set_condition(
            status,
            condition(PROGRESSING, "False", TIMED_OUT, &msg, i.now),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rs(name: &str, replicas: i64, available: i64) -> RsInfo {
        RsInfo {
            name: name.into(),
            spec_replicas: replicas,
            status_replicas: replicas,
            ready: available,
            available,
            revision: 1,
        }
    }

    fn inputs<'a>(d: &'a Value, new: &'a RsInfo, all: &'a [RsInfo], since: f64) -> Inputs<'a> {
        Inputs {
            deployment: d,
            new_rs: Some(new),
            all,
            max_unavailable: 0,
            now: "2026-01-01T00:00:10Z",
            since_progress: since,
            deadline: Some(5.0),
            track_progress: true,
        }
    }

    fn created(d: &mut Value) {
        let mut s = json!({});
        set_condition(
            &mut s,
            condition(
                PROGRESSING,
                "True",
                "NewReplicaSetCreated",
                "m",
                "2026-01-01T00:00:00Z",
            ),
        );
        d["status"] = s;
    }

    #[test]
    fn progress_marks_replica_set_updated_and_keeps_the_transition_time() {
        let mut d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2}});
        created(&mut d);
        let (new, old) = (rs("web-new", 1, 0), rs("web-old", 2, 2));
        let all = [old, new.clone()];
        let s = next_status(&inputs(&d, &new, &all, 1.0));
        assert_eq!(s["replicas"], 3);
        assert_eq!(s["updatedReplicas"], 1);
        assert_eq!(s["unavailableReplicas"], 1);
        let p = meta::condition(&s, PROGRESSING).unwrap();
        assert_eq!(p["reason"], "ReplicaSetUpdated");
        assert_eq!(p["lastUpdateTime"], "2026-01-01T00:00:10Z");
        assert_eq!(p["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn completion_sets_new_replica_set_available_and_omits_zero_counts() {
        let mut d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2}});
        created(&mut d);
        let new = rs("web-new", 2, 2);
        let all = [rs("web-old", 0, 0), new.clone()];
        let s = next_status(&inputs(&d, &new, &all, 1.0));
        assert_eq!(
            meta::condition(&s, PROGRESSING).unwrap()["reason"],
            NEW_RS_AVAILABLE
        );
        assert_eq!(meta::condition(&s, "Available").unwrap()["status"], "True");
        assert!(s.get("unavailableReplicas").is_none());
        assert_eq!(s["availableReplicas"], 2);
    }

    #[test]
    fn no_progress_past_the_deadline_times_out() {
        let mut d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 1}});
        created(&mut d);
        let new = rs("web-new", 1, 0);
        let all = [rs("web-old", 1, 1), new.clone()];
        d["status"]["replicas"] = json!(2);
        d["status"]["updatedReplicas"] = json!(1);
        d["status"]["availableReplicas"] = json!(1);
        d["status"]["readyReplicas"] = json!(1);
        let early = next_status(&inputs(&d, &new, &all, 4.0));
        assert_eq!(
            meta::condition(&early, PROGRESSING).unwrap()["reason"],
            "NewReplicaSetCreated"
        );
        let late = next_status(&inputs(&d, &new, &all, 6.0));
        let p = meta::condition(&late, PROGRESSING).unwrap();
        assert_eq!(
            (p["status"].as_str(), p["reason"].as_str()),
            (Some("False"), Some(TIMED_OUT))
        );
    }
}
