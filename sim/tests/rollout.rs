#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Rollouts of the simulated workload controllers: the Deployment condition sequence and
//! revisions, stuck and never-ready rollouts, missing images, image digests from the real
//! registry, StatefulSet and DaemonSet rollouts, `kubectl rollout status` against the standalone
//! binary, and a thousand Deployments at once. This file holds the shared harness.

#[path = "rollout/deployment.rs"]
mod deployment;
#[path = "rollout/http.rs"]
mod http;
#[path = "rollout/images.rs"]
mod images;
#[path = "rollout/kubectl.rs"]
mod kubectl;
#[path = "rollout/scale.rs"]
mod scale;
#[path = "rollout/workloads.rs"]
mod workloads;

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;
use watch_cluster_sim::controllers::{self, ControllerConfig};
use watch_cluster_sim::{Change, Kind, Store};

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(20);

/// A store with the controllers running; the controllers stop on drop.
struct Sim {
    store: Store,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sim {
    fn start(config: ControllerConfig) -> Self {
        let store = Store::new();
        let task = controllers::spawn(store.clone(), config);
        Sim { store, task }
    }

    fn get(&self, kind: Kind, name: &str) -> Value {
        self.store.get(kind, Some(NS), name).unwrap_or(Value::Null)
    }

    /// Waits until `check` holds for the object, re-checking on every change.
    async fn wait_for(
        &self,
        kind: Kind,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_longer(WAIT, kind, name, what, check).await
    }

    /// [`Sim::wait_for`] with another timeout.
    async fn wait_longer(
        &self,
        wait: Duration,
        kind: Kind,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut rx = self.store.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let obj = self.get(kind, name);
            if check(&obj) {
                return obj;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                _ => panic!(
                    "timed out waiting for {kind:?} {name}: {what}; last: {obj:#}\nreplica sets and pods: {:#}",
                    self.related(name)
                ),
            }
        }
    }

    /// The ReplicaSets and pods of workload `name` (for failure messages).
    fn related(&self, name: &str) -> Value {
        let mine = |o: &Value| {
            o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&format!("{name}-")))
        };
        let brief = |o: &Value| {
            json!({"name": o["metadata"]["name"], "spec": o["spec"]["replicas"],
            "status": o["status"], "deleting": o["metadata"]["deletionTimestamp"]})
        };
        let rss: Vec<Value> = self
            .store
            .list(Kind::ReplicaSet, Some(NS))
            .iter()
            .filter(|o| mine(o))
            .map(brief)
            .collect();
        let pods: Vec<Value> = self.store.list(Kind::Pod, Some(NS)).iter().filter(|o| mine(o))
            .map(|p| json!({"name": p["metadata"]["name"], "phase": p["status"]["phase"], "image": p["spec"]["containers"][0]["image"], "waiting": p["status"]["containerStatuses"][0]["state"]["waiting"]}))
            .collect();
        json!({"replicaSets": rss, "pods": pods})
    }

    fn pods(&self, label: (&str, &str)) -> Vec<Value> {
        self.store
            .list(Kind::Pod, Some(NS))
            .into_iter()
            .filter(|p| p["metadata"]["labels"][label.0] == label.1)
            .collect()
    }

    fn set_image(&self, kind: Kind, name: &str, image: &str) {
        let mut obj = self.get(kind, name);
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
        self.store.update(kind, obj).unwrap();
    }
}

fn workload(kind: Kind, name: &str, replicas: Option<i64>, image: &str) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": image}]}},
    });
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    json!({"apiVersion": "apps/v1", "kind": kind.info().kind,
        "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

fn deployment(name: &str, replicas: i64, image: &str) -> Value {
    workload(Kind::Deployment, name, Some(replicas), image)
}

fn count(v: &Value, key: &str) -> i64 {
    v["status"][key].as_i64().unwrap_or(0)
}

fn progressing(d: &Value) -> (String, String) {
    let conds = d["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    conds
        .iter()
        .find(|c| c["type"] == "Progressing")
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap().to_string(),
            )
        })
        .unwrap_or_default()
}

/// `kubectl rollout status`'s verdict on a Deployment (docs/guarantees.md#when-a-rollout-is-complete).
fn deployment_complete(d: &Value) -> bool {
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    d["metadata"]["generation"].as_i64() <= d["status"]["observedGeneration"].as_i64()
        && count(d, "updatedReplicas") == want
        && count(d, "replicas") == want
        && count(d, "availableReplicas") == want
}

fn revision(v: &Value) -> &str {
    v["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .unwrap_or_default()
}

/// Records the Deployment's `Progressing` reasons and largest `status.replicas` as they change.
fn record(
    rx: &mut broadcast::Receiver<Change>,
    name: &str,
    reasons: &mut Vec<String>,
    max_replicas: &mut i64,
) {
    while let Ok(c) = rx.try_recv() {
        if c.kind != Kind::Deployment || c.object["metadata"]["name"] != name {
            continue;
        }
        let (_, reason) = progressing(&c.object);
        if !reason.is_empty() && reasons.last() != Some(&reason) {
            reasons.push(reason);
        }
        *max_replicas = (*max_replicas).max(count(&c.object, "replicas"));
    }
}
