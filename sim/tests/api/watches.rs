//! Lists and watches as kube's watcher and raw clients see them.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PartialObjectMeta, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use watch_cluster_sim::Kind;

use crate::support::*;

async fn create_deployments(api: &Api<Deployment>, names: &[&str]) {
    for name in names {
        api.create(&PostParams::default(), &deployment(name))
            .await
            .unwrap();
    }
}

fn bump_global_resource_version(sim: &watch_cluster_sim::SimCluster) {
    let cm = json!({"metadata": {"generateName": "bump-", "namespace": "default"}});
    sim.store().create(Kind::ConfigMap, cm).unwrap();
}

#[tokio::test]
async fn watcher_pages_the_initial_list_then_watches_from_its_resource_version() {
    let sim = sim().await;
    let api: Api<Deployment> = Api::namespaced(client(&sim), "default");
    create_deployments(&api, &["d1", "d2", "d3", "d4", "d5"]).await;
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default().page_size(2)).boxed();
    let mut initial = 0;
    within(async {
        loop {
            match stream.try_next().await.unwrap().unwrap() {
                Event::InitApply(_) => initial += 1,
                Event::InitDone => break,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(initial, 5);
    api.create(&PostParams::default(), &deployment("d6"))
        .await
        .unwrap();
    let applied = within(stream.try_next()).await.unwrap().unwrap();
    assert!(matches!(applied, Event::Apply(d) if d.metadata.name.as_deref() == Some("d6")));

    let lists = sim
        .request_log()
        .matching(|r| r.method == "GET" && r.query_param("watch").is_none());
    assert_eq!(lists.len(), 3, "five objects in pages of two");
    assert!(
        lists
            .iter()
            .all(|r| r.query_param("limit").as_deref() == Some("2"))
    );
    assert!(lists[1].query_param("continue").is_some());
    let watches = sim
        .request_log()
        .matching(|r| r.query_param("watch").as_deref() == Some("true"));
    assert_eq!(
        watches[0].query_param("allowWatchBookmarks").as_deref(),
        Some("true")
    );
}

#[tokio::test]
async fn watcher_relists_after_history_compaction_and_a_dropped_watch() {
    let sim = sim().await;
    sim.faults().set_bookmarks(false);
    let api: Api<Deployment> = Api::namespaced(client(&sim), "default");
    create_deployments(&api, &["a"]).await;
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    let mut inits = 0;
    within(async {
        while inits < 2 {
            // Errors (the in-stream 410) are yielded too; the watcher then relists.
            if let Ok(Event::InitDone) = stream.next().await.unwrap() {
                inits += 1;
                if inits == 1 {
                    // Move the global resourceVersion past the watcher's, forget history, cut the stream.
                    bump_global_resource_version(&sim);
                    sim.store().compact();
                    sim.faults().drop_watches();
                }
            }
        }
    })
    .await;
    let entries = sim.request_log().entries();
    let kinds: Vec<&str> = entries
        .iter()
        .filter(|r| r.path.ends_with("/deployments") && r.method == "GET")
        .map(|r| {
            if r.query_param("watch").is_some() {
                "watch"
            } else {
                "list"
            }
        })
        .collect();
    assert_eq!(kinds[..3], ["list", "watch", "list"], "{kinds:?}");
}

#[tokio::test]
async fn streaming_lists_end_the_initial_events_with_a_marked_bookmark() {
    let sim = sim().await;
    let api: Api<Deployment> = Api::namespaced(client(&sim), "default");
    create_deployments(&api, &["s1", "s2"]).await;
    let mut stream = watcher::watcher(api, watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    within(async {
        loop {
            match stream.try_next().await.unwrap().unwrap() {
                Event::InitApply(d) => initial.push(d.metadata.name.unwrap()),
                Event::InitDone => break,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(initial, vec!["s1", "s2"]);
    let lists = sim
        .request_log()
        .matching(|r| r.method == "GET" && r.query_param("watch").is_none());
    assert!(lists.is_empty(), "a streaming list sends no list request");

    let url = format!(
        "{}/apis/apps/v1/namespaces/default/deployments?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=0",
        sim.url()
    );
    let (events, _) = read_watch(&url, |e| e.iter().any(|e| e["type"] == "BOOKMARK")).await;
    let bookmark = events.last().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(
        bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(bookmark["object"]["kind"], "Deployment");
}

#[tokio::test]
async fn bookmarks_carry_the_global_resource_version() {
    let sim = sim().await;
    let start = sim.store().resource_version();
    bump_global_resource_version(&sim);
    let global = sim.store().resource_version().to_string();
    let url = format!(
        "{}/apis/apps/v1/namespaces/default/deployments?watch=true&allowWatchBookmarks=true&resourceVersion={start}",
        sim.url()
    );
    let (events, _) = read_watch(&url, |e| !e.is_empty()).await;
    assert_eq!(events[0]["type"], "BOOKMARK");
    assert_eq!(
        events[0]["object"]["metadata"]["resourceVersion"],
        global.as_str()
    );
    assert_eq!(events[0]["object"]["apiVersion"], "apps/v1");
}

#[tokio::test]
async fn stopped_bookmarks_and_timeout_seconds_end_a_quiet_watch_without_events() {
    let sim = sim().await;
    sim.faults().set_bookmarks(false);
    let rv = sim.store().resource_version();
    let url = format!(
        "{}/apis/apps/v1/deployments?watch=true&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion={rv}",
        sim.url()
    );
    let (events, ended) = read_watch(&url, |_| false).await;
    assert!(ended);
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test]
async fn a_compacted_resource_version_is_an_in_stream_410_on_an_http_200() {
    let sim = sim().await;
    bump_global_resource_version(&sim);
    sim.store().compact();
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1",
        sim.url()
    );
    let (events, ended) = read_watch(&url, |_| false).await;
    assert!(ended);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
    assert_eq!(events[0]["object"]["kind"], "Status");
}

#[tokio::test]
async fn deletes_reach_watchers_with_a_newer_resource_version() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&sim), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let rv = created.metadata.resource_version.unwrap();
    api.delete("c", &Default::default()).await.unwrap();
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}",
        sim.url()
    );
    let (events, _) = read_watch(&url, |e| !e.is_empty()).await;
    assert_eq!(events[0]["type"], "DELETED");
    let deleted_rv: u64 = events[0]["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(deleted_rv > rv.parse().unwrap());
}

#[tokio::test]
async fn metadata_only_lists_and_watches_answer_partial_object_metadata() {
    let sim = sim().await;
    let api: Api<Deployment> = Api::namespaced(client(&sim), "default");
    create_deployments(&api, &["m1"]).await;
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("m1"));

    let url = format!("{}/apis/apps/v1/namespaces/default/deployments", sim.url());
    let accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
    let body: serde_json::Value = http()
        .get(&url)
        .header("accept", accept)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["kind"], "PartialObjectMetadataList");
    assert_eq!(body["items"][0]["kind"], "PartialObjectMetadata");
    assert!(body["items"][0].get("spec").is_none());

    let metadata: Api<PartialObjectMeta<Deployment>> = Api::namespaced(client(&sim), "default");
    let mut stream = watcher::watcher(metadata, watcher::Config::default()).boxed();
    let first = within(async {
        loop {
            if let Event::InitApply(m) = stream.try_next().await.unwrap().unwrap() {
                return m;
            }
        }
    })
    .await;
    assert_eq!(first.metadata.name.as_deref(), Some("m1"));
}

#[tokio::test]
async fn dropping_watches_closes_every_open_stream() {
    let sim = sim().await;
    let rv = sim.store().resource_version();
    let url = format!("{}/api/v1/pods?watch=true&resourceVersion={rv}", sim.url());
    let faults = sim.faults().clone();
    let reader = tokio::spawn(async move { read_watch(&url, |_| false).await });
    within(async {
        while sim
            .request_log()
            .matching(|r| r.path == "/api/v1/pods")
            .is_empty()
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    faults.drop_watches();
    let (events, ended) = within(reader).await.unwrap();
    assert!(ended && events.is_empty());
}

#[tokio::test]
async fn objects_leaving_a_label_selection_are_deleted_and_entering_ones_added() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&sim), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c", "labels": {"watched": "yes"}}}))
            .unwrap();
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let rv = created.metadata.resource_version.unwrap();
    let unlabel = json!({"metadata": {"labels": {"watched": null}}});
    api.patch("c", &Default::default(), &kube::api::Patch::Merge(&unlabel))
        .await
        .unwrap();
    let relabel = json!({"metadata": {"labels": {"watched": "yes"}}});
    api.patch("c", &Default::default(), &kube::api::Patch::Merge(&relabel))
        .await
        .unwrap();
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps?watch=true&labelSelector=watched%3Dyes&resourceVersion={rv}",
        sim.url()
    );
    let (events, _) = read_watch(&url, |e| e.len() >= 2).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["DELETED", "ADDED"]);
}

#[tokio::test]
async fn a_field_selected_watch_sees_only_the_named_object() {
    let sim = sim().await;
    let api: Api<Deployment> = Api::namespaced(client(&sim), "default");
    let rv = sim.store().resource_version();
    create_deployments(&api, &["other", "mine"]).await;
    for query in ["fieldSelector=metadata.name%3Dmine", ""] {
        let path = if query.is_empty() { "/mine" } else { "" };
        let url = format!(
            "{}/apis/apps/v1/namespaces/default/deployments{path}?watch=true&resourceVersion={rv}&{query}",
            sim.url()
        );
        let (events, _) = read_watch(&url, |e| !e.is_empty()).await;
        assert_eq!(events[0]["type"], "ADDED");
        assert_eq!(events[0]["object"]["metadata"]["name"], "mine", "{url}");
    }
}
