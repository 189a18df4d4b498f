//! Timestamps of what happens in the cluster and in the controller's log.
//!
//! Input: the simulated store's change stream, and the controller's JSON log. Output: when each Deployment's
//! images changed (the update patch landing in the store), when its rollout became complete by `kubectl
//! rollout status` rules, and when each check finished. The recorder runs on its own task and does nothing
//! but note times, so it keeps up with the stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use watch_cluster_sim::{ChangeType, Kind, Store};

/// What happened to one Deployment, with wall-clock times.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Each change of the pod template's images.
    pub patches: Vec<SystemTime>,
    /// Each time the rollout of a new template became complete.
    pub completions: Vec<SystemTime>,
    images: String,
    awaiting: Option<i64>,
}

/// Shared record of every Deployment's history, keyed by `namespace/name`.
#[derive(Clone, Default)]
pub struct Recorder {
    histories: Arc<Mutex<HashMap<String, History>>>,
    lagged: Arc<Mutex<u64>>,
}

impl Recorder {
    /// Starts recording the store's changes.
    pub fn start(store: &Store) -> Self {
        let recorder = Self::default();
        let mut rx = store.subscribe();
        let r = recorder.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(change) if change.kind == Kind::Deployment => {
                        if change.change_type != ChangeType::Deleted {
                            r.note(&change.object, SystemTime::now());
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        *r.lagged.lock().unwrap_or_else(|e| e.into_inner()) += n;
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
        recorder
    }

    /// Notes one sighting of a Deployment at `at`.
    pub fn note(&self, object: &Value, at: SystemTime) {
        let key = format!(
            "{}/{}",
            object["metadata"]["namespace"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default()
        );
        let images = images_of(object);
        let mut histories = self.histories.lock().unwrap_or_else(|e| e.into_inner());
        let history = histories.entry(key).or_default();
        if history.images.is_empty() {
            history.images = images;
        } else if history.images != images {
            history.images = images;
            history.patches.push(at);
            history.awaiting = object["metadata"]["generation"].as_i64();
        }
        if let Some(generation) = history.awaiting
            && rollout_complete(object, generation)
        {
            history.completions.push(at);
            history.awaiting = None;
        }
    }

    /// A copy of every history.
    pub fn histories(&self) -> HashMap<String, History> {
        self.histories
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the recorder missed because it fell behind (should be 0; reported when not).
    pub fn lagged(&self) -> u64 {
        *self.lagged.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The template's container images, joined.
fn images_of(object: &Value) -> String {
    object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// `kubectl rollout status` says "successfully rolled out" for template generation `generation`.
pub fn rollout_complete(object: &Value, generation: i64) -> bool {
    let status = &object["status"];
    let count = |field: &str| status[field].as_i64().unwrap_or(0);
    let wanted = object["spec"]["replicas"].as_i64().unwrap_or(1);
    status["observedGeneration"].as_i64().unwrap_or(0) >= generation
        && count("updatedReplicas") >= wanted
        && count("replicas") <= count("updatedReplicas")
        && count("availableReplicas") >= count("updatedReplicas")
}

/// Finish times of the controller's checks ("check finished" lines of its JSON log).
pub fn check_times(log: &str) -> Vec<DateTime<Utc>> {
    log.lines()
        .filter(|l| l.contains("check finished"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "check finished")
        .filter_map(|v| {
            DateTime::parse_from_rfc3339(v["timestamp"].as_str()?)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn check_finish_times_come_from_json_log_lines_only() {
        let log = r#"{"timestamp":"2026-11-23T19:00:05.250000Z","level":"INFO","message":"check finished","outcome":"NoUpdate(\"\")"}
not json: check finished
{"timestamp":"2026-11-23T19:00:05.300000Z","level":"INFO","message":"image updated"}
{"timestamp":"2026-11-23T19:00:06.000001Z","level":"INFO","message":"check finished"}"#;
        let times = check_times(log);
        assert_eq!(times.len(), 2);
        assert_eq!(
            times[1].timestamp_micros() - times[0].timestamp_micros(),
            750_001
        );
    }

    #[test]
    fn a_rollout_is_complete_when_every_replica_is_updated_and_available() {
        let mut d = json!({"spec": {"replicas": 2}, "status": {"observedGeneration": 3,
            "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}});
        assert!(!rollout_complete(&d, 3), "an old replica is still there");
        d["status"]["replicas"] = json!(2);
        assert!(rollout_complete(&d, 3));
        assert!(
            !rollout_complete(&d, 4),
            "the new generation is not observed yet"
        );
    }

    #[test]
    fn image_changes_and_completions_are_recorded_per_deployment() {
        let r = Recorder::default();
        let t = SystemTime::now();
        let obj = |image: &str, generation: i64, done: bool| {
            json!({"metadata": {"namespace": "n", "name": "a", "generation": generation},
                   "spec": {"replicas": 1, "template": {"spec": {"containers": [{"image": image}]}}},
                   "status": if done { json!({"observedGeneration": generation, "replicas": 1,
                       "updatedReplicas": 1, "availableReplicas": 1}) } else { json!({}) }})
        };
        r.note(&obj("a:1", 1, true), t);
        r.note(&obj("a:2", 2, false), t);
        r.note(&obj("a:2", 2, true), t);
        r.note(&obj("a:2", 2, true), t);
        let h = &r.histories()["n/a"];
        assert_eq!((h.patches.len(), h.completions.len()), (1, 1));
    }
}
