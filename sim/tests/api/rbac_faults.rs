//! RBAC from the project's own manifests, authentication, fault injection and the request log.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use watch_cluster_sim::{Fault, Kind, UserInfo};

use crate::support::*;

const SA_TOKEN: &str = "sa-token";
const ADMIN_TOKEN: &str = "admin-token";

fn manifest(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../k8s/base/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

async fn rbac_sim() -> watch_cluster_sim::SimCluster {
    let sim = sim_with(|o| {
        o.api.rbac = true;
        o.api.tokens.insert(
            SA_TOKEN.into(),
            UserInfo::service_account("watch-cluster", "watch-cluster"),
        );
        o.api
            .tokens
            .insert(ADMIN_TOKEN.into(), UserInfo::admin("root"));
    })
    .await;
    for file in [
        "namespace.yaml",
        "clusterrole.yaml",
        "clusterrolebinding.yaml",
        "leader-election-role.yaml",
    ] {
        sim.load_yaml(&manifest(file), "watch-cluster").unwrap();
    }
    sim.store()
        .create(
            Kind::Deployment,
            deployment_json("web").tap_namespace("default"),
        )
        .unwrap();
    sim
}

trait TapNamespace {
    fn tap_namespace(self, ns: &str) -> Self;
}

impl TapNamespace for serde_json::Value {
    fn tap_namespace(mut self, ns: &str) -> Self {
        self["metadata"]["namespace"] = json!(ns);
        self
    }
}

#[tokio::test]
async fn the_service_account_may_do_what_its_cluster_role_grants_and_nothing_else() {
    let sim = rbac_sim().await;
    let client = client_with_token(&sim, SA_TOKEN).await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.get("web").await.unwrap();
    let patch = json!({"metadata": {"annotations": {"a": "b"}}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    let err = api.delete("web", &Default::default()).await.unwrap_err();
    assert_eq!(api_status(err), (403, "Forbidden".to_string()));
    let status_patch = json!({"status": {"replicas": 3}});
    let err = api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(status_patch))
        .await
        .unwrap_err();
    assert_eq!(api_status(err).0, 403, "deployments/status is not granted");

    let denied = sim.request_log().matching(|r| r.status == 403);
    assert_eq!(denied.len(), 2);
    assert_eq!(
        denied[0].identity.as_deref(),
        Some("system:serviceaccount:watch-cluster:watch-cluster")
    );
    assert_eq!(denied[0].method, "DELETE");
}

#[tokio::test]
async fn leases_are_granted_only_in_the_controllers_namespace() {
    let sim = rbac_sim().await;
    let client = client_with_token(&sim, SA_TOKEN).await;
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "leader"}})).unwrap();
    let own: Api<Lease> = Api::namespaced(client.clone(), "watch-cluster");
    own.create(&PostParams::default(), &lease).await.unwrap();
    let other: Api<Lease> = Api::namespaced(client, "default");
    let err = other
        .create(&PostParams::default(), &lease)
        .await
        .unwrap_err();
    assert_eq!(api_status(err).0, 403);
}

#[tokio::test]
async fn unknown_tokens_are_unauthorized_and_admins_bypass_rbac() {
    let sim = rbac_sim().await;
    let stranger: Api<Deployment> =
        Api::namespaced(client_with_token(&sim, "nope").await, "default");
    assert_eq!(api_status(stranger.get("web").await.unwrap_err()).0, 401);
    let version = http()
        .get(format!("{}/version", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(version.status(), 200, "/version is public");
    let admin: Api<Deployment> =
        Api::namespaced(client_with_token(&sim, ADMIN_TOKEN).await, "default");
    admin.delete("web", &Default::default()).await.unwrap();
}

#[tokio::test]
async fn injected_errors_answer_the_next_matching_requests_with_retry_after() {
    let sim = sim().await;
    sim.store()
        .create(
            Kind::Deployment,
            deployment_json("web").tap_namespace("default"),
        )
        .unwrap();
    sim.faults().inject(
        Fault::status("/apis/apps/v1/namespaces/*/deployments/*", 429, 2)
            .method("GET")
            .retry_after(7),
    );
    let url = format!(
        "{}/apis/apps/v1/namespaces/default/deployments/web",
        sim.url()
    );
    for _ in 0..2 {
        let response = http().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "7");
        let status: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(status["details"]["retryAfterSeconds"], 7);
    }
    assert_eq!(http().get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn injected_delays_hold_the_answer_back() {
    let sim = sim().await;
    sim.faults()
        .inject(Fault::delay("/version", Duration::from_millis(300), 1));
    let started = Instant::now();
    let response = http()
        .get(format!("{}/version", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn the_request_log_records_method_path_query_type_body_and_status() {
    let sim = sim().await;
    let api: Api<Deployment> = Api::namespaced(client(&sim), "default");
    api.create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    let patch = json!({"metadata": {"labels": {"l": "v"}}});
    let err = api
        .patch(
            "web",
            &PatchParams::default().dry_run(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_status(err).0,
        400,
        "dry runs are refused, not performed"
    );
    let entries = sim.request_log().entries();
    let post = &entries[0];
    assert_eq!(
        (post.method.as_str(), post.path.as_str(), post.status),
        ("POST", "/apis/apps/v1/namespaces/default/deployments", 201)
    );
    assert!(post.body.contains("\"sidecar\""));
    let patch_entry = &entries[1];
    assert_eq!(
        patch_entry.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(patch_entry.query_param("dryRun").as_deref(), Some("All"));
    assert_eq!(patch_entry.body, patch.to_string());
    let labels = api.get("web").await.unwrap().metadata.labels.unwrap();
    assert!(!labels.contains_key("l"), "the dry run wrote nothing");
}
