#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The cluster quarantine's ConfigMap, read and written against the simulated API served in process: an
//! absent ConfigMap reads as empty, entries are added with an update that a conflict only retries, and data
//! that does not parse, or a refusal, is an error and is never overwritten.

use chrono::{TimeZone, Utc};
use serde_json::json;
use watch_cluster::{
    config::QuarantineScope,
    image::ImageRef,
    quarantine_store::{CONFIGMAP_NAME, QuarantineStore, StoreError},
    strategy::ClusterEntry,
};
use watch_cluster_sim::{ApiConfig, Fault, InProcess, Kind};

const NS: &str = "default";

fn api() -> InProcess {
    watch_cluster::install_crypto_provider();
    InProcess::new(ApiConfig::default()).unwrap()
}

fn store(api: &InProcess) -> QuarantineStore {
    QuarantineStore::for_scope(api.client.clone(), QuarantineScope::Cluster, NS)
        .expect("a store with the cluster scope")
}

/// The ConfigMap as `k8s/` ships it: no data.
fn ship(api: &InProcess) {
    api.store
        .create(
            Kind::ConfigMap,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": CONFIGMAP_NAME, "namespace": NS}}),
        )
        .unwrap();
}

fn entry(digest: char, name: &str) -> ClusterEntry {
    let digest = format!("sha256:{}", digest.to_string().repeat(64));
    ClusterEntry {
        registry: "r.example".into(),
        repository: "team/app".into(),
        image: format!("r.example/team/app:1.1.0@{digest}"),
        digest,
        kind: "Deployment".into(),
        namespace: "shop".into(),
        name: name.into(),
        reason: "ErrImagePull".into(),
        at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    }
}

fn stored_data(api: &InProcess) -> Option<String> {
    api.store.get(Kind::ConfigMap, Some(NS), CONFIGMAP_NAME)?["data"]["entries.json"]
        .as_str()
        .map(str::to_owned)
}

fn path() -> String {
    format!("/api/v1/namespaces/{NS}/configmaps/{CONFIGMAP_NAME}")
}

#[tokio::test]
async fn the_workload_scope_reads_no_configmap() {
    let api = api();
    assert!(
        QuarantineStore::for_scope(api.client.clone(), QuarantineScope::Workload, NS).is_none()
    );
}

#[tokio::test]
async fn an_absent_configmap_reads_as_empty_but_cannot_take_an_entry() {
    let api = api();
    let store = store(&api);
    assert!(store.read().await.unwrap().is_empty());
    let error = store.add(&[entry('a', "web")]).await.unwrap_err();
    assert!(error.to_string().contains("does not exist"), "{error}");
    assert!(error.to_string().contains("apply k8s/"), "{error}");
}

#[tokio::test]
async fn entries_are_added_once_and_read_back_for_any_tag() {
    let api = api();
    ship(&api);
    let store = store(&api);
    assert_eq!(store.add(&[entry('a', "web")]).await.unwrap(), 1);
    assert_eq!(
        store
            .add(&[entry('a', "api"), entry('b', "api")])
            .await
            .unwrap(),
        1,
        "the digest already listed keeps its first entry"
    );
    let read = store.read().await.unwrap();
    assert_eq!(read.entries().len(), 2);
    let other_tag = ImageRef::parse("r.example/team/app:stable").unwrap();
    let found = read
        .find(&other_tag, &format!("sha256:{}", "a".repeat(64)))
        .expect("listed whatever the tag");
    assert_eq!(found.name, "web");
    assert_eq!(
        stored_data(&api).unwrap().lines().count(),
        4,
        "one entry per line"
    );
}

#[tokio::test]
async fn a_conflicting_write_is_read_again_and_retried() {
    let api = api();
    ship(&api);
    let store = store(&api);
    api.faults
        .inject(Fault::status(&path(), 409, 1).method("PUT"));
    assert_eq!(store.add(&[entry('a', "web")]).await.unwrap(), 1);
    let puts = api
        .log
        .entries()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path == path())
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(puts, [409, 200]);
    assert!(stored_data(&api).unwrap().contains("\"name\":\"web\""));
}

#[tokio::test]
async fn unparseable_data_is_an_error_and_is_never_overwritten() {
    let api = api();
    ship(&api);
    let mut map = api
        .store
        .get(Kind::ConfigMap, Some(NS), CONFIGMAP_NAME)
        .unwrap();
    map["data"] = json!({"entries.json": "[{\"oops\""});
    api.store.update(Kind::ConfigMap, map).unwrap();
    let store = store(&api);
    let error = store.read().await.unwrap_err();
    assert!(matches!(error, StoreError::Unparseable { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("kubectl edit configmap watch-cluster-quarantine -n default"),
        "{error}"
    );
    assert!(store.add(&[entry('a', "web")]).await.is_err());
    assert_eq!(stored_data(&api).as_deref(), Some("[{\"oops\""));
}

#[tokio::test]
async fn a_refused_read_is_an_error_that_names_the_role() {
    let api = api();
    ship(&api);
    api.faults
        .inject(Fault::status(&path(), 403, 1).method("GET"));
    let error = store(&api).read().await.unwrap_err();
    assert!(error.to_string().contains("403"), "{error}");
    assert!(
        error.to_string().contains("quarantine-role.yaml"),
        "{error}"
    );
}
