//! The pod `status` the simulated kubelet writes for each stage of a pod's life, shaped like a
//! real kubelet's (conditions in kubelet order, `containerStatuses` with `imageID`).
//! Pure: timestamps come from the kubelet's record of the pod, so an unchanged stage yields an
//! identical status and no write.

use serde_json::{Value, json};

use super::hash;
use super::kubelet::PodRecord;

/// Where a pod is in its life.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stage {
    /// Waiting for images or for its containers to start.
    Creating,
    /// An image could not be pulled.
    BackOff { image: String, message: String },
    /// Containers run; not ready.
    Running,
    /// Containers run and are ready.
    Ready,
}

fn cond(kind: &str, ok: bool, since: &str, reason: Option<&str>, message: Option<String>) -> Value {
    let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" },
        "lastProbeTime": null, "lastTransitionTime": since});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

fn container_status(c: &Value, uid: &str, rec: &PodRecord, stage: &Stage) -> Value {
    let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let running = matches!(stage, Stage::Running | Stage::Ready);
    let mut s = json!({"name": name, "image": image, "imageID": "", "ready": *stage == Stage::Ready,
        "restartCount": 0, "started": running});
    match stage {
        Stage::BackOff {
            image: failed,
            message,
        } if failed == image => {
            s["state"] = json!({"waiting": {"reason": "ImagePullBackOff",
                "message": format!("Back-off pulling image \"{image}\": {message}")}});
        }
        Stage::Creating | Stage::BackOff { .. } => {
            s["state"] = json!({"waiting": {"reason": "ContainerCreating"}});
        }
        Stage::Running | Stage::Ready => {
            s["imageID"] = json!(rec.pulled.get(image).cloned().unwrap_or_default());
            s["containerID"] = json!(format!(
                "containerd://{}",
                hash::name_suffix(&format!("{uid}/{name}"))
            ));
            s["state"] =
                json!({"running": {"startedAt": rec.started_ts.clone().unwrap_or_default()}});
        }
    }
    s
}

/// The status of `pod` at `stage`.
pub(crate) fn pod_status(pod: &Value, rec: &PodRecord, stage: &Stage) -> Value {
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let containers: Vec<&Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let running = matches!(stage, Stage::Running | Stage::Ready);
    let ready = *stage == Stage::Ready;
    let seen = rec.seen_ts.as_str();
    let started = rec.started_ts.as_deref().unwrap_or(seen);
    let ready_since = if ready {
        rec.ready_ts.as_deref().unwrap_or(started)
    } else {
        started
    };
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let not_ready =
        (!ready).then(|| format!("containers with unready status: [{}]", names.join(" ")));
    let reason = (!ready).then_some("ContainersNotReady");
    let mut status = json!({
        "phase": if running { "Running" } else { "Pending" },
        "conditions": [
            cond("PodReadyToStartContainers", running, started, None, None),
            cond("Initialized", true, seen, None, None),
            cond("Ready", ready, ready_since, reason, not_ready.clone()),
            cond("ContainersReady", ready, ready_since, reason, not_ready),
            cond("PodScheduled", true, seen, None, None),
        ],
        "hostIP": "10.0.0.1",
        "hostIPs": [{"ip": "10.0.0.1"}],
        "startTime": seen,
        "qosClass": "BestEffort",
        "containerStatuses": containers.iter().map(|c| container_status(c, uid, rec, stage)).collect::<Vec<_>>(),
    });
    if running {
        status["podIP"] = json!(rec.ip);
        status["podIPs"] = json!([{"ip": rec.ip}]);
    }
    status
}
