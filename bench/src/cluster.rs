//! The world the controller runs in: the simulated cluster (with workload controllers), the counting fake
//! registry, and the webhook receiver, all in this process.
//!
//! Input: a [`Scenario`] and the total number of Deployments. Output: a running [`World`] whose Deployments
//! carry a realistic ~4 KB `kubectl.kubernetes.io/last-applied-configuration` annotation (and the env vars
//! it describes), whose registry lists every tag, and whose simulated kubelet reports the digests the
//! registry serves (so `latest` workloads know what they run, as on a real node).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use watch_cluster_sim::controllers::images::ImageRef;
use watch_cluster_sim::controllers::{
    ControllerConfig, ImageResolver, PullError, RolloutControl, SyntheticResolver,
};
use watch_cluster_sim::{ApiConfig, Kind, SimCluster, SimOptions};
use watch_cluster_testkit::{FakeRegistry, TagListMode, WebhookReceiver};

use crate::scenario::{Scenario, WorkloadSpec, index_body};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Size the last-applied annotation is padded to, like a real `kubectl apply`-managed Deployment.
const LAST_APPLIED_BYTES: usize = 4096;

/// Digests the registry serves, by `repository:tag`, shared with the simulated kubelet.
#[derive(Clone, Default)]
pub struct Digests(Arc<RwLock<HashMap<String, String>>>);

impl Digests {
    fn set(&self, repository: &str, tag: &str, digest: String) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.insert(format!("{repository}:{tag}"), digest);
    }

    fn get(&self, repository: &str, tag: &str) -> Option<String> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        map.get(&format!("{repository}:{tag}")).cloned()
    }
}

/// The simulated kubelet pulls what the fake registry serves: a pinned digest as is, a tag at its digest.
struct RegistryResolver {
    digests: Digests,
}

impl ImageResolver for RegistryResolver {
    fn resolve<'a>(&'a self, image: &'a ImageRef) -> BoxFuture<'a, Result<String, PullError>> {
        let found = match (&image.digest, &image.tag) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(tag)) => self.digests.get(&image.repository, tag),
            (None, None) => None,
        };
        Box::pin(async move {
            match found {
                Some(d) => Ok(d),
                None => SyntheticResolver.resolve(image).await,
            }
        })
    }
}

/// Everything in-process.
pub struct World {
    /// The simulated API server and controllers.
    pub sim: SimCluster,
    /// The counting registry.
    pub registry: FakeRegistry,
    /// Receives the controller's webhooks.
    pub webhook: WebhookReceiver,
    digests: Digests,
}

impl World {
    /// Starts the servers (nothing in the cluster yet but namespaces and nodes).
    pub async fn start() -> anyhow::Result<Self> {
        let registry = FakeRegistry::start().await?;
        registry.set_tag_list_mode(TagListMode::Paginate);
        let webhook = WebhookReceiver::start().await?;
        let digests = Digests::default();
        let controllers = ControllerConfig {
            pod_start_delay: Duration::from_millis(20),
            pod_ready_delay: Duration::from_millis(30),
            image_pull_backoff: Duration::from_millis(500),
            // Real time for object durations: a slow machine must not fail rollouts on their 600 s deadline.
            time_scale: 1.0,
            resolver: Arc::new(RegistryResolver {
                digests: digests.clone(),
            }),
            control: RolloutControl::new(),
        };
        let sim = SimCluster::start(SimOptions {
            api: ApiConfig {
                bookmark_interval: Duration::from_secs(5),
                ..ApiConfig::default()
            },
            controllers: Some(controllers),
            ..SimOptions::default()
        })
        .await?;
        Ok(Self {
            sim,
            registry,
            webhook,
            digests,
        })
    }

    /// Programs the registry and creates `total` Deployments, the first `scenario.workloads.len()` annotated
    /// with `cron`.
    pub fn populate(&self, scenario: &Scenario, total: usize, cron: &str) -> anyhow::Result<()> {
        self.program_registry(scenario);
        self.create_objects(scenario, total, cron)
    }

    fn program_registry(&self, scenario: &Scenario) {
        program_registry(&self.registry, scenario, |r, t, d| {
            self.digests.set(r, t, d)
        });
    }

    /// Makes an update due for every workload (see [`publish_updates`]).
    pub fn publish_updates(&self, scenario: &Scenario) {
        publish_updates(&self.registry, scenario, |r, t, d| {
            self.digests.set(r, t, d)
        });
    }

    fn create_objects(&self, scenario: &Scenario, total: usize, cron: &str) -> anyhow::Result<()> {
        let store = self.sim.store();
        // The controller's own namespace, as `k8s/` makes it: its record key Secret lives there.
        store
            .create(
                Kind::Namespace,
                json!({"metadata": {"name": "watch-cluster"}}),
            )
            .context("failed to create the controller's namespace")?;
        let namespaces = total.div_ceil(100).max(1);
        for ns in 0..namespaces {
            let name = Scenario::namespace_of(ns * 100);
            store
                .create(Kind::Namespace, json!({"metadata": {"name": name}}))
                .context("failed to create a namespace")?;
            store
                .create(
                    Kind::ServiceAccount,
                    json!({"metadata": {"name": "default", "namespace": name}}),
                )
                .context("failed to create a service account")?;
        }
        let host = self.registry.host();
        for index in 0..total {
            let object = match scenario.workloads.get(index) {
                Some(spec) => annotated(spec, index, &host, cron),
                None => filler(index),
            };
            store
                .create(Kind::Deployment, object)
                .with_context(|| format!("failed to create Deployment {index}"))?;
        }
        Ok(())
    }

    /// Writes a kubeconfig for the controller.
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> anyhow::Result<()> {
        self.sim.write_kubeconfig(path, "bench-token")
    }
}

/// Pushes `repository:tag` at `generation` (an OCI index); returns its digest.
pub fn push_image(registry: &FakeRegistry, repository: &str, tag: &str, generation: u32) -> String {
    let body = index_body(repository, tag, generation);
    registry.set_manifest(repository, Some(tag), OCI_INDEX, &body)
}

/// Programs every tag the scenario starts with; `pushed(repository, tag, digest)` after each.
pub fn program_registry(
    registry: &FakeRegistry,
    scenario: &Scenario,
    mut pushed: impl FnMut(&str, &str, String),
) {
    for repository in &scenario.repositories {
        for tag in Scenario::initial_version_tags() {
            pushed(repository, &tag, push_image(registry, repository, &tag, 0));
        }
    }
    for (repository, tag) in &scenario.latest_tags {
        pushed(repository, tag, push_image(registry, repository, tag, 0));
    }
}

/// Makes an update due for every workload: a new patch release per strategy in every repository, and
/// every `latest` tag moved to a new digest.
pub fn publish_updates(
    registry: &FakeRegistry,
    scenario: &Scenario,
    mut pushed: impl FnMut(&str, &str, String),
) {
    for repository in &scenario.repositories {
        for tag in crate::scenario::DUE_TAGS {
            pushed(repository, tag, push_image(registry, repository, tag, 0));
        }
    }
    for (repository, tag) in &scenario.latest_tags {
        pushed(repository, tag, push_image(registry, repository, tag, 1));
    }
}

/// An annotated Deployment of the scenario (one replica), its images in the registry at `host`.
pub fn annotated(spec: &WorkloadSpec, index: usize, host: &str, cron: &str) -> Value {
    let containers: Vec<(String, String)> = spec
        .containers
        .iter()
        .map(|c| {
            (
                c.name.to_owned(),
                format!("{host}/{}:{}", c.repository, c.tag),
            )
        })
        .collect();
    let annotations = [
        ("watch-cluster.io/enabled", "true"),
        ("watch-cluster.io/cron", cron),
        ("watch-cluster.io/strategy", spec.strategy),
    ];
    deployment(&spec.name, index, &containers, &annotations, 1)
}

/// A Deployment nobody opted in (zero replicas: the simulator runs no pods for it either).
pub fn filler(index: usize) -> Value {
    let name = format!("other-{index:05}");
    let containers = vec![
        (
            "web".to_owned(),
            format!("docker.io/library/nginx:1.{}", index % 20),
        ),
        (
            "proxy".to_owned(),
            "docker.io/envoyproxy/envoy:v1.30.1".to_owned(),
        ),
    ];
    deployment(&name, index, &containers, &[], 0)
}

/// A Deployment as `kubectl apply` leaves it: env vars in every container and the last-applied copy of the
/// whole manifest in an annotation (~4 KB).
fn deployment(
    name: &str,
    index: usize,
    containers: &[(String, String)],
    annotations: &[(&str, &str)],
    replicas: u32,
) -> Value {
    let namespace = Scenario::namespace_of(index);
    let env: Vec<Value> = (0..12)
        .map(|i| json!({"name": format!("SETTING_{i:02}"), "value": format!("value-{name}-{i}")}))
        .collect();
    let containers: Vec<Value> = containers
        .iter()
        .map(|(n, image)| {
            json!({"name": n, "image": image, "env": env,
                   "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                   "ports": [{"containerPort": 8080, "name": "http"}]})
        })
        .collect();
    let labels = json!({"app": name, "team": format!("team-{}", index % 17), "tier": "backend"});
    let mut object = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}},
        },
    });
    let mut notes: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    notes.insert(
        "kubectl.kubernetes.io/last-applied-configuration".into(),
        json!(last_applied(&object)),
    );
    object["metadata"]["annotations"] = Value::Object(notes);
    object
}

/// The object as JSON, padded with a realistic comment-like field to [`LAST_APPLIED_BYTES`].
fn last_applied(object: &Value) -> String {
    let mut text = object.to_string();
    if text.len() < LAST_APPLIED_BYTES {
        let mut copy = object.clone();
        let pad = "x".repeat(LAST_APPLIED_BYTES - text.len());
        copy["metadata"]["annotations"] = json!({"description": pad});
        text = copy.to_string();
    }
    text
}
