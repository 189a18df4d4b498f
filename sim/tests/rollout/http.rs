//! The controllers behind the HTTP API, seen by a kube-rs client as watch-cluster sees them:
//! create, strategic-merge-patch the image, wait with kube-runtime's own rollout condition.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Api, Client};
use watch_cluster_sim::controllers::ControllerConfig;
use watch_cluster_sim::{SimCluster, SimOptions, UserInfo};

use super::*;

const TOKEN: &str = "rollout-test-token";

async fn cluster() -> (SimCluster, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut options = SimOptions {
        controllers: Some(ControllerConfig::fast()),
        ..SimOptions::default()
    };
    options
        .api
        .tokens
        .insert(TOKEN.to_string(), UserInfo::admin("test"));
    let cluster = SimCluster::start(options).await.unwrap();
    let kubeconfig = Kubeconfig::from_yaml(&cluster.kubeconfig_yaml(TOKEN)).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    (cluster, Client::try_from(config).unwrap())
}

/// kube-runtime's completion check, plus the generation having been observed.
fn rolled_out(revision: &'static str) -> impl Condition<Deployment> {
    move |d: Option<&Deployment>| {
        let observed = d.and_then(|d| d.status.as_ref()?.observed_generation);
        let generation = d.and_then(|d| d.metadata.generation);
        let rev = d
            .and_then(|d| {
                d.metadata
                    .annotations
                    .as_ref()?
                    .get("deployment.kubernetes.io/revision")
            })
            .map(String::as_str);
        observed >= generation
            && rev == Some(revision)
            && conditions::is_deployment_completed().matches_object(d)
    }
}

#[tokio::test]
async fn a_kube_client_sees_a_patched_deployment_roll_out_over_http() {
    let (_cluster, client) = cluster().await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let d: Deployment = serde_json::from_value(deployment("web", 2, "app:1")).unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    let wait = |rev| {
        tokio::time::timeout(
            Duration::from_secs(20),
            await_condition(api.clone(), "web", rolled_out(rev)),
        )
    };
    wait("1").await.unwrap().unwrap();

    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let d = wait("2").await.unwrap().unwrap().unwrap();
    let status = d.status.unwrap();
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.available_replicas
        ),
        (Some(2), Some(2), Some(2))
    );

    let pods: Api<Pod> = Api::namespaced(client, NS);
    let pods = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 2);
    for p in pods.items {
        let cs = &p.status.unwrap().container_statuses.unwrap()[0];
        assert_eq!(cs.image, "app:2");
        assert!(
            cs.image_id.starts_with("docker.io/library/app@sha256:"),
            "{}",
            cs.image_id
        );
        assert!(cs.ready);
    }
}
