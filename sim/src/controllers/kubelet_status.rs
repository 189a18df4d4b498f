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
    /// Containers started, exited and wait to be restarted.
    CrashLoop,
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
        Stage::CrashLoop => {
            s["imageID"] = json!(rec.pulled.get(image).cloned().unwrap_or_default());
            s["restartCount"] = json!(1);
            s["started"] = json!(false);
            s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
                "message": format!("back-off restarting failed container {name}")}});
            s["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error",
                "startedAt": rec.started_ts.clone().unwrap_or_default(),
                "finishedAt": rec.started_ts.clone().unwrap_or_default()}});
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
    // A crash-looping pod is Running (its containers were started), as a kubelet reports it.
    let running = matches!(stage, Stage::Running | Stage::Ready | Stage::CrashLoop);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"uid": "u1"}, "spec": {"containers": [{"name": "c", "image": "app:1"}]}})
    }

    fn condition<'a>(s: &'a Value, kind: &str) -> &'a Value {
        s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == kind)
            .unwrap()
    }

    #[test]
    fn ready_pods_report_the_pulled_image_id_and_ready_conditions() {
        let s = pod_status(&pod(), &PodRecord::sample(), &Stage::Ready);
        assert_eq!(s["phase"], "Running");
        let c = &s["containerStatuses"][0];
        assert_eq!(c["imageID"], "docker.io/library/app@sha256:ab");
        assert_eq!(
            (c["ready"].as_bool(), c["started"].as_bool()),
            (Some(true), Some(true))
        );
        assert_eq!(c["state"]["running"]["startedAt"], "2026-01-01T00:00:01Z");
        let ready = condition(&s, "Ready");
        assert_eq!(
            (
                ready["status"].as_str(),
                ready["lastTransitionTime"].as_str()
            ),
            (Some("True"), Some("2026-01-01T00:00:02Z"))
        );
        assert_eq!(s["podIP"], "10.244.0.1");
    }

    #[test]
    fn running_pods_are_not_ready_and_say_which_containers() {
        let s = pod_status(&pod(), &PodRecord::sample(), &Stage::Running);
        let ready = condition(&s, "Ready");
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ContainersNotReady");
        assert_eq!(ready["message"], "containers with unready status: [c]");
        assert_eq!(s["containerStatuses"][0]["ready"], false);
    }

    #[test]
    fn failed_pulls_wait_in_image_pull_back_off_without_an_image_id() {
        let stage = Stage::BackOff {
            image: "app:1".into(),
            message: "failed to pull image: manifest unknown".into(),
        };
        let s = pod_status(&pod(), &PodRecord::sample(), &stage);
        assert_eq!(s["phase"], "Pending");
        let c = &s["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "ImagePullBackOff");
        assert_eq!(c["imageID"], "");
        assert!(s.get("podIP").is_none());
        let creating = pod_status(&pod(), &PodRecord::sample(), &Stage::Creating);
        assert_eq!(
            creating["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(condition(&creating, "PodScheduled")["status"], "True");
    }

    #[test]
    fn crashing_pods_run_not_ready_and_wait_in_crash_loop_back_off_with_a_restart() {
        let s = pod_status(&pod(), &PodRecord::sample(), &Stage::CrashLoop);
        assert_eq!(s["phase"], "Running");
        assert_eq!(condition(&s, "Ready")["status"], "False");
        let c = &s["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["restartCount"], 1);
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(c["ready"], false);
    }
}
