//! The push bench's world: the simulated cluster whose kubelet resolves tags at the real registry, its
//! Deployments, and the controller's environment.
//!
//! Input: the registry host, the listener address and how many storm Deployments. Output: a running
//! [`SimCluster`] holding the namespaces and the enabled Deployments (`@yearly`, strategy `version`), and the
//! controller's variables.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use watch_cluster_sim::controllers::{ControllerConfig, HttpResolver, RolloutControl};
use watch_cluster_sim::{ApiConfig, Kind, SimCluster, SimOptions, Store};

use super::{LATENCY_NAME, LATENCY_REPO, NAMESPACE, STORM_REPO, TOKEN};

/// The simulated cluster; its kubelet resolves tags at the real registry (a loopback host, reached directly).
pub(super) async fn start_sim() -> anyhow::Result<SimCluster> {
    let resolver = HttpResolver::new(Default::default(), None)
        .context("failed to build the simulated kubelet's resolver")?;
    let controllers = ControllerConfig {
        pod_start_delay: Duration::from_millis(20),
        pod_ready_delay: Duration::from_millis(30),
        image_pull_backoff: Duration::from_millis(500),
        time_scale: 1.0,
        resolver: std::sync::Arc::new(resolver),
        control: RolloutControl::new(),
    };
    SimCluster::start(SimOptions {
        api: ApiConfig {
            bookmark_interval: Duration::from_secs(5),
            ..ApiConfig::default()
        },
        controllers: Some(controllers),
        ..SimOptions::default()
    })
    .await
}

/// The namespaces and the Deployments: the latency one first, then the storm's. Returns their names.
pub(super) fn create_objects(
    store: &Store,
    host: &str,
    storm: usize,
) -> anyhow::Result<Vec<String>> {
    for namespace in ["watch-cluster", NAMESPACE] {
        store
            .create(Kind::Namespace, json!({"metadata": {"name": namespace}}))
            .context("failed to create a namespace")?;
    }
    store
        .create(
            Kind::ServiceAccount,
            json!({"metadata": {"name": "default", "namespace": NAMESPACE}}),
        )
        .context("failed to create the service account")?;
    let mut names = vec![LATENCY_NAME.to_owned()];
    names.extend((0..storm).map(|i| format!("storm-{i:03}")));
    for name in &names {
        let repository = if name == LATENCY_NAME {
            LATENCY_REPO
        } else {
            STORM_REPO
        };
        store
            .create(
                Kind::Deployment,
                deployment(name, &format!("{host}/{repository}:1.0.0")),
            )
            .with_context(|| format!("failed to create Deployment {name}"))?;
    }
    Ok(names)
}

/// An enabled Deployment with one container, checked once a year by its cron, on strategy `version`.
fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": {
            "watch-cluster.io/enabled": "true",
            "watch-cluster.io/cron": "@yearly",
            "watch-cluster.io/strategy": "version",
        }},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": image}]}},
        },
    })
}

pub(super) fn environment(
    kubeconfig: &std::path::Path,
    host: &str,
    events: &str,
) -> Vec<(String, String)> {
    [
        ("KUBECONFIG", kubeconfig.to_string_lossy().into_owned()),
        ("INSECURE_REGISTRIES", host.to_owned()),
        ("EVENTS_ADDR", events.to_owned()),
        ("EVENTS_TOKEN_DISTRIBUTION", TOKEN.to_owned()),
        ("LEADER_ELECTION", "false".into()),
        ("LOG_FORMAT", "json".into()),
        ("RUST_LOG", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}
