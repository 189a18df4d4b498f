//! Patches of every supported type, status subresources and generation bookkeeping.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::*;

async fn setup() -> (watch_cluster_sim::SimCluster, Api<Deployment>) {
    let sim = sim().await;
    let api: Api<Deployment> = Api::namespaced(client(&sim), "default");
    api.create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    (sim, api)
}

fn images(d: &Deployment) -> Vec<(String, String)> {
    let spec = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    spec.containers
        .iter()
        .map(|c| (c.name.clone(), c.image.clone().unwrap()))
        .collect()
}

#[tokio::test]
async fn strategic_merge_changes_one_image_and_keeps_the_sidecar() {
    let (_sim, api) = setup().await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.test/app:2.0"}]}}}});
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    assert_eq!(
        images(&patched),
        [
            ("app".into(), "registry.test/app:2.0".into()),
            ("sidecar".into(), "registry.test/sidecar:latest".into())
        ]
    );
    assert_eq!(patched.metadata.generation, Some(2));
}

#[tokio::test]
async fn merge_patch_sets_and_null_deletes_keys() {
    let (_sim, api) = setup().await;
    let add = json!({"metadata": {"annotations": {"a": "1", "b": "2"}}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(add))
        .await
        .unwrap();
    let remove = json!({"metadata": {"annotations": {"a": null}}});
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Merge(remove))
        .await
        .unwrap();
    let annotations = patched.metadata.annotations.unwrap();
    assert!(!annotations.contains_key("a"));
    assert_eq!(annotations["b"], "2");
}

#[tokio::test]
async fn json_patch_applies_when_its_test_holds() {
    let (_sim, api) = setup().await;
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/template/spec/containers/0/image", "value": "registry.test/app:1.0"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "registry.test/app:3.0"}
    ]))
    .unwrap();
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .unwrap();
    assert_eq!(images(&patched)[0].1, "registry.test/app:3.0");
}

#[tokio::test]
async fn json_patch_with_a_failing_test_is_rejected_with_422_and_changes_nothing() {
    let (_sim, api) = setup().await;
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/template/spec/containers/0/image", "value": "registry.test/app:0.9"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "registry.test/app:3.0"}
    ]))
    .unwrap();
    let err = api
        .patch("web", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .unwrap_err();
    assert_eq!(api_status(err), (422, "Invalid".to_string()));
    assert_eq!(
        images(&api.get("web").await.unwrap())[0].1,
        "registry.test/app:1.0"
    );
}

#[tokio::test]
async fn server_side_apply_is_answered_415() {
    let (_sim, api) = setup().await;
    let apply = Patch::Apply(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
    );
    let err = api
        .patch("web", &PatchParams::apply("test"), &apply)
        .await
        .unwrap_err();
    assert_eq!(api_status(err).0, 415);
}

#[tokio::test]
async fn a_resource_version_in_a_patch_is_a_precondition() {
    let (_sim, api) = setup().await;
    let current = api.get("web").await.unwrap();
    let rv = current.metadata.resource_version.unwrap();
    let guarded = json!({"metadata": {"resourceVersion": rv, "labels": {"x": "1"}}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(&guarded))
        .await
        .unwrap();
    let err = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&guarded))
        .await
        .unwrap_err();
    assert_eq!(api_status(err), (409, "Conflict".to_string()));
}

#[tokio::test]
async fn status_changes_only_through_the_status_subresource() {
    let (_sim, api) = setup().await;
    let status = json!({"status": {"observedGeneration": 1, "replicas": 1}});
    let patched = api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(patched.status.as_ref().unwrap().replicas, Some(1));
    assert_eq!(patched.metadata.generation, Some(1));
    let via_main = json!({"status": {"replicas": 5}, "metadata": {"labels": {"y": "2"}}});
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&via_main))
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().replicas, Some(1));
    assert_eq!(patched.metadata.labels.unwrap()["y"], "2");
    let spec_via_status = json!({"spec": {"replicas": 4}, "status": {"replicas": 2}});
    let patched = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&spec_via_status),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(1));
    assert_eq!(patched.status.unwrap().replicas, Some(2));
}

#[tokio::test]
async fn a_deployments_generation_follows_its_spec_and_annotations_as_kube_apiserver_does() {
    let (_sim, api) = setup().await;
    let labels_only = json!({"metadata": {"labels": {"team": "a"}}});
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Merge(labels_only))
        .await
        .unwrap();
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "labels are not a generation"
    );
    // kube-apiserver copies a Deployment's annotations to its ReplicaSets: a new generation.
    let annotation = json!({"metadata": {"annotations": {"note": "x"}}});
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Merge(annotation))
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(2));
    let template =
        json!({"spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}}}}});
    let patched = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(template.clone()),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(3));
    let unchanged = api
        .patch("web", &PatchParams::default(), &Patch::Merge(template))
        .await
        .unwrap();
    assert_eq!(unchanged.metadata.generation, Some(3));
    assert_eq!(
        unchanged.metadata.resource_version, patched.metadata.resource_version,
        "a no-op write is not a write"
    );
}
