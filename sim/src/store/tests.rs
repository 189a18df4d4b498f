//! Unit tests of the store: metadata stamping, defaults, preconditions, history and paging.

use serde_json::json;

use super::*;

fn deployment(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}
            }
        }
    })
}

#[test]
fn create_stamps_metadata_and_defaults() {
    let store = Store::new();
    let d = store.create(Kind::Deployment, deployment("a")).unwrap();
    assert_eq!(d["metadata"]["generation"], 1);
    assert!(d["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    let again = store.create(Kind::Deployment, deployment("a")).unwrap_err();
    assert_eq!(again.code(), 409);
    assert_eq!(again.reason(), "AlreadyExists");
}

#[test]
fn generate_name_appends_a_suffix() {
    let store = Store::new();
    let obj = json!({"metadata": {"generateName": "cm-", "namespace": "x"}});
    let cm = store.create(Kind::ConfigMap, obj).unwrap();
    let name = name_of(&cm).unwrap();
    assert!(name.starts_with("cm-") && name.len() == 8, "{name}");
}

#[test]
fn update_bumps_generation_only_on_spec_change_and_checks_resource_version() {
    let store = Store::new();
    let d = store.create(Kind::Deployment, deployment("a")).unwrap();
    let mut labelled = d.clone();
    labelled["metadata"]["labels"] = json!({"x": "y"});
    let labelled = store.update(Kind::Deployment, labelled).unwrap();
    assert_eq!(labelled["metadata"]["generation"], 1);
    let mut changed = labelled.clone();
    changed["spec"]["template"]["metadata"]["annotations"] = json!({"k": "v"});
    let changed = store.update(Kind::Deployment, changed).unwrap();
    assert_eq!(changed["metadata"]["generation"], 2);
    // As kube-apiserver does for Deployments: an annotation change is a new generation.
    let mut annotated = changed.clone();
    annotated["metadata"]["annotations"] = json!({"watch-cluster.io/check-now": ""});
    let annotated = store.update(Kind::Deployment, annotated).unwrap();
    assert_eq!(annotated["metadata"]["generation"], 3);
    let stale = store.update(Kind::Deployment, d).unwrap_err();
    assert_eq!(stale.code(), 409);
    assert_eq!(stale.reason(), "Conflict");
}

#[test]
fn status_is_ignored_by_update_and_written_by_update_status() {
    let store = Store::new();
    let d = store.create(Kind::Deployment, deployment("a")).unwrap();
    let mut with_status = d.clone();
    with_status["status"] = json!({"replicas": 3});
    let updated = store.update(Kind::Deployment, with_status.clone()).unwrap();
    assert!(updated.get("status").is_none());
    assert_eq!(
        updated["metadata"]["resourceVersion"],
        d["metadata"]["resourceVersion"]
    );
    let updated = store.update_status(Kind::Deployment, with_status).unwrap();
    assert_eq!(updated["status"]["replicas"], 3);
    assert_eq!(updated["metadata"]["generation"], 1);
}

#[test]
fn watch_replays_history_and_expires_after_compaction() {
    let store = Store::new();
    let start = store.resource_version();
    store.create(Kind::Deployment, deployment("a")).unwrap();
    store
        .delete(Kind::Deployment, Some("default"), "a")
        .unwrap();
    let (replay, _rx) = store.watch_from(start).unwrap();
    let types: Vec<_> = replay.iter().map(|c| c.change_type).collect();
    assert_eq!(types, vec![ChangeType::Added, ChangeType::Deleted]);
    store.compact();
    assert!(store.watch_from(start).is_err());
    assert!(store.watch_from(store.resource_version()).is_ok());
}

#[test]
fn deleting_an_owner_deletes_what_it_owns() {
    let store = Store::new();
    let d = store.create(Kind::Deployment, deployment("a")).unwrap();
    let mut rs = deployment("a-1");
    rs["metadata"]["ownerReferences"] =
        json!([{"uid": d["metadata"]["uid"], "name": "a", "kind": "Deployment"}]);
    store.create(Kind::ReplicaSet, rs).unwrap();
    store
        .delete(Kind::Deployment, Some("default"), "a")
        .unwrap();
    assert!(store.list(Kind::ReplicaSet, None).is_empty());
}

#[test]
fn pages_continue_after_the_last_key() {
    let store = Store::new();
    for i in 0..5 {
        store
            .create(Kind::Deployment, deployment(&format!("d{i}")))
            .unwrap();
    }
    let first = store.page(Kind::Deployment, Some("default"), None, 2, |_| true);
    assert_eq!(first.items.len(), 2);
    let second = store.page(
        Kind::Deployment,
        Some("default"),
        first.next.as_ref(),
        10,
        |_| true,
    );
    assert_eq!(second.items.len(), 3);
    assert!(second.next.is_none());
    assert!(
        store
            .page(Kind::Deployment, Some("other"), None, 10, |_| true)
            .items
            .is_empty()
    );
}

#[test]
fn deleting_a_namespace_deletes_its_contents() {
    let store = Store::new();
    store
        .create(Kind::Namespace, json!({"metadata": {"name": "default"}}))
        .unwrap();
    store.create(Kind::Deployment, deployment("a")).unwrap();
    let other = json!({"metadata": {"name": "keep", "namespace": "other"}});
    store.create(Kind::ConfigMap, other).unwrap();
    store.delete(Kind::Namespace, None, "default").unwrap();
    assert!(store.list(Kind::Deployment, None).is_empty());
    assert_eq!(store.list(Kind::ConfigMap, None).len(), 1);
}

#[test]
fn names_must_be_lowercase_rfc1123_except_for_rbac_objects() {
    let store = Store::new();
    let bad = store.create(
        Kind::ConfigMap,
        json!({"metadata": {"name": "Bad_Name", "namespace": "a"}}),
    );
    assert_eq!(bad.unwrap_err().code(), 422);
    let role = json!({"metadata": {"name": "system:controller:x"}, "rules": []});
    store.create(Kind::ClusterRole, role).unwrap();
    let dotted = json!({"metadata": {"name": "web.1a2b", "namespace": "a"}});
    store.create(Kind::Event, dotted).unwrap();
}

#[test]
fn deleting_an_owner_deletes_what_it_owns_and_deleting_a_pod_deletes_nothing_else() {
    let store = Store::new();
    let d = store.create(Kind::Deployment, deployment("web")).unwrap();
    let owner = |o: &Value, kind: &str| {
        json!([{"apiVersion": "apps/v1", "kind": kind, "name": o["metadata"]["name"],
                "uid": o["metadata"]["uid"], "controller": true}])
    };
    let mut rs = deployment("web-abc");
    rs["metadata"]["ownerReferences"] = owner(&d, "Deployment");
    let rs = store.create(Kind::ReplicaSet, rs).unwrap();
    for name in ["web-abc-1", "web-abc-2"] {
        let pod = json!({"metadata": {"name": name, "namespace": "default",
                                      "ownerReferences": owner(&rs, "ReplicaSet")},
                         "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}});
        store.create(Kind::Pod, pod).unwrap();
    }
    store
        .delete(Kind::Pod, Some("default"), "web-abc-1")
        .unwrap();
    assert_eq!(store.list(Kind::Pod, Some("default")).len(), 1);
    assert_eq!(store.list(Kind::ReplicaSet, Some("default")).len(), 1);
    store
        .delete(Kind::Deployment, Some("default"), "web")
        .unwrap();
    assert!(store.list(Kind::ReplicaSet, Some("default")).is_empty());
    assert!(store.list(Kind::Pod, Some("default")).is_empty());
}
