//! The demo's embedded cluster: the simulated API server with its workload controllers and kubelet.
//!
//! Input: the registry host (the simulated kubelet resolves images there, as a container runtime would)
//! and the demo's Deployments. Output: a cluster on `127.0.0.1:<free port>`, a kube client for it, and
//! read access to its objects (images, annotations, Events) for the narration. Durations taken from
//! objects run 100 times faster, so a `progressDeadlineSeconds` of 300 passes in 3 s.

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::Context as _;
use serde_json::{Value, json};
use watch_cluster_sim::{
    Kind, SimCluster, SimOptions, Store,
    controllers::{ControllerConfig, HttpResolver, RolloutControl},
};

/// The namespace of the demo's workloads.
pub const NAMESPACE: &str = "demo";
/// Replicas of each Deployment.
pub const REPLICAS: u64 = 2;
/// `progressDeadlineSeconds` of each Deployment: 3 s of real time at [`TIME_SCALE`].
const PROGRESS_DEADLINE_SECONDS: u64 = 300;
/// Real seconds per simulated second.
const TIME_SCALE: f64 = 0.01;

/// One Kubernetes Event as the narration shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The workload it is about.
    pub workload: String,
    /// `Normal` or `Warning`.
    pub event_type: String,
    /// E.g. `ImageUpdated`.
    pub reason: String,
    /// The note.
    pub message: String,
}

/// The running simulated cluster; stops when dropped.
pub struct DemoCluster {
    sim: SimCluster,
    control: RolloutControl,
}

impl DemoCluster {
    /// Starts the API server and controllers and creates the demo namespace.
    pub async fn start() -> anyhow::Result<Self> {
        let control = RolloutControl::new();
        // Loopback registries are reached directly over plain HTTP: no endpoint map needed.
        let resolver = HttpResolver::new(HashMap::new(), None)
            .context("failed to build the simulated kubelet's registry client")?;
        let sim = SimCluster::start(SimOptions {
            controllers: Some(ControllerConfig {
                pod_start_delay: Duration::from_millis(50),
                pod_ready_delay: Duration::from_millis(50),
                image_pull_backoff: Duration::from_millis(500),
                time_scale: TIME_SCALE,
                resolver: Arc::new(resolver),
                control: control.clone(),
            }),
            ..SimOptions::default()
        })
        .await
        .context("failed to start the simulated cluster")?;
        sim.store()
            .create(Kind::Namespace, json!({"metadata": {"name": NAMESPACE}}))
            .context("failed to create the demo namespace")?;
        Ok(Self { sim, control })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.sim.url()
    }

    /// The object store, to subscribe to changes.
    pub fn store(&self) -> &Store {
        self.sim.store()
    }

    /// Decides how rollouts turn out (a broken image never starts).
    pub fn control(&self) -> &RolloutControl {
        &self.control
    }

    /// A client for the cluster, as a kubeconfig without credentials would give (RBAC is off).
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        let url: http::Uri = self
            .url()
            .parse()
            .context("failed to parse the simulated cluster's URL")?;
        kube::Client::try_from(kube::Config::new(url))
            .context("failed to build the Kubernetes client for the simulated cluster")
    }

    /// Creates a Deployment with one container `app` running `image`, opted in with `annotations`.
    pub fn create_deployment(
        &self,
        name: &str,
        image: &str,
        annotations: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let annotations: serde_json::Map<String, Value> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        let object = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations},
            "spec": {
                "replicas": REPLICAS,
                "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": image}]},
                },
            },
        });
        self.store()
            .create(Kind::Deployment, object)
            .with_context(|| format!("failed to create Deployment {NAMESPACE}/{name}"))?;
        Ok(())
    }

    /// The Deployment, or `Null` when it does not exist.
    pub fn deployment(&self, name: &str) -> Value {
        self.store()
            .get(Kind::Deployment, Some(NAMESPACE), name)
            .unwrap_or(Value::Null)
    }

    /// The image of the Deployment's container `app`.
    pub fn image_of(&self, name: &str) -> String {
        self.deployment(name)["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The annotation `key` of the Deployment.
    pub fn annotation(&self, name: &str, key: &str) -> Option<String> {
        self.deployment(name)["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_owned)
    }

    /// Whether the Deployment's rollout is complete as `kubectl rollout status` decides.
    pub fn is_rolled_out(&self, name: &str) -> bool {
        let d = self.deployment(name);
        let status = &d["status"];
        let count = |field: &str| status[field].as_u64().unwrap_or(0);
        d["metadata"]["generation"].as_u64().is_some()
            && status["observedGeneration"] == d["metadata"]["generation"]
            && count("updatedReplicas") == REPLICAS
            && count("availableReplicas") == REPLICAS
            && count("replicas") == REPLICAS
    }

    /// The Events of the demo namespace, oldest first.
    pub fn events(&self) -> Vec<RecordedEvent> {
        let mut events = self.store().list(Kind::Event, Some(NAMESPACE));
        events.sort_by_key(|e| {
            e["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
        });
        events.iter().map(recorded).collect()
    }
}

/// Reads a stored Event (core v1 shape; the `events.k8s.io/v1` names are accepted too).
fn recorded(e: &Value) -> RecordedEvent {
    let text = |a: &str, b: &str| {
        e[a].as_str()
            .or_else(|| e[b].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    RecordedEvent {
        workload: e["involvedObject"]["name"]
            .as_str()
            .or_else(|| e["regarding"]["name"].as_str())
            .unwrap_or_default()
            .to_owned(),
        event_type: text("type", "type"),
        reason: text("reason", "reason"),
        message: text("message", "note"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_in_either_api_shape() {
        let core = json!({"involvedObject": {"name": "web"}, "type": "Normal",
            "reason": "ImageUpdated", "message": "a -> b"});
        let v1 = json!({"regarding": {"name": "web"}, "type": "Normal",
            "reason": "ImageUpdated", "note": "a -> b"});
        assert_eq!(recorded(&core), recorded(&v1));
        assert_eq!(recorded(&core).message, "a -> b");
    }
}
