//! Shared helpers: a cluster per test, kube and HTTP clients, object builders, raw watch reading.

use std::time::Duration;

use futures::Future;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Client, Config};
use serde_json::{Value, json};
use watch_cluster_sim::{SimCluster, SimOptions};

pub const TIMEOUT: Duration = Duration::from_secs(15);

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A cluster without controllers, with fast bookmarks.
pub async fn sim() -> SimCluster {
    sim_with(|_| {}).await
}

pub async fn sim_with(configure: impl FnOnce(&mut SimOptions)) -> SimCluster {
    install_crypto();
    let mut options = SimOptions::default();
    options.api.bookmark_interval = Duration::from_millis(100);
    configure(&mut options);
    SimCluster::start(options).await.unwrap()
}

pub fn client(sim: &SimCluster) -> Client {
    sim.client().unwrap()
}

/// A kube client configured from a kubeconfig the cluster writes for `token`.
pub async fn client_with_token(sim: &SimCluster, token: &str) -> Client {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path, token).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

pub fn http() -> reqwest::Client {
    install_crypto();
    reqwest::Client::new()
}

/// Runs `f` under the test timeout.
pub async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, f).await.expect("timed out")
}

/// A Deployment with an `app` container and a `sidecar`.
pub fn deployment_json(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": "app", "image": "registry.test/app:1.0"},
                    {"name": "sidecar", "image": "registry.test/sidecar:latest"}
                ]}
            }
        }
    })
}

pub fn deployment(name: &str) -> Deployment {
    serde_json::from_value(deployment_json(name)).unwrap()
}

/// Reads watch events from `url` until `done` holds for what was read, or the stream ends.
/// Returns the events and whether the stream ended.
pub async fn read_watch(url: &str, done: impl Fn(&[Value]) -> bool) -> (Vec<Value>, bool) {
    let mut response = http().get(url).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "watch answered {}",
        response.status()
    );
    let mut buffer = Vec::new();
    let mut events = Vec::new();
    within(async {
        loop {
            if done(&events) {
                return (events, false);
            }
            match response.chunk().await.unwrap() {
                Some(chunk) => {
                    buffer.extend_from_slice(&chunk);
                    while let Some(newline) = buffer.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=newline).collect();
                        events.push(serde_json::from_slice(&line).unwrap());
                    }
                }
                None => return (events, true),
            }
        }
    })
    .await
}

/// The `Status` of a kube API error.
pub fn api_status(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Creates a Namespace (objects can only be created in existing ones).
pub fn create_namespace(sim: &SimCluster, name: &str) {
    let ns = json!({"metadata": {"name": name}});
    sim.store()
        .create(watch_cluster_sim::Kind::Namespace, ns)
        .unwrap();
}
