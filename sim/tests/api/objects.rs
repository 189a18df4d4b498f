//! Discovery, reads, writes and errors as kube and raw HTTP clients see them.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent};
use k8s_openapi::api::events::v1::Event;
use kube::Resource;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::{Event as RecorderEvent, EventType, Recorder, Reporter};
use serde_json::{Value, json};

use crate::support::*;

async fn get_json(url: &str) -> (u16, Value) {
    let response = http().get(url).send().await.unwrap();
    let code = response.status().as_u16();
    (code, response.json().await.unwrap())
}

#[tokio::test]
async fn discovery_reports_version_groups_and_resources_with_status_subresources() {
    let sim = sim().await;
    let (_, version) = get_json(&format!("{}/version", sim.url())).await;
    assert!(
        version["gitVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.33.")
    );
    let (_, groups) = get_json(&format!("{}/apis", sim.url())).await;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for group in [
        "apps",
        "coordination.k8s.io",
        "rbac.authorization.k8s.io",
        "events.k8s.io",
    ] {
        assert!(names.contains(&group), "{names:?}");
    }
    let (_, apps) = get_json(&format!("{}/apis/apps/v1", sim.url())).await;
    let resources = apps["resources"].as_array().unwrap();
    let deployments = resources
        .iter()
        .find(|r| r["name"] == "deployments")
        .unwrap();
    assert_eq!(deployments["kind"], "Deployment");
    assert_eq!(deployments["singularName"], "deployment");
    assert_eq!(deployments["namespaced"], true);
    assert_eq!(deployments["shortNames"], json!(["deploy"]));
    assert!(
        deployments["verbs"]
            .as_array()
            .unwrap()
            .contains(&json!("watch"))
    );
    assert!(resources.iter().any(|r| r["name"] == "deployments/status"));
    let (_, core) = get_json(&format!("{}/api/v1", sim.url())).await;
    assert!(
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods/status")
    );
}

#[tokio::test]
async fn errors_are_status_objects_with_reason_code_and_details() {
    let sim = sim().await;
    let (code, status) = get_json(&format!(
        "{}/apis/apps/v1/namespaces/default/deployments/missing",
        sim.url()
    ))
    .await;
    assert_eq!(code, 404);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["apiVersion"], "v1");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["code"], 404);
    assert_eq!(status["message"], "deployments.apps \"missing\" not found");
    assert_eq!(
        status["details"],
        json!({"name": "missing", "group": "apps", "kind": "deployments"})
    );
}

#[tokio::test]
async fn created_deployments_get_server_defaults() {
    let sim = sim().await;
    let api: Api<Deployment> = Api::namespaced(client(&sim), "default");
    let created = api
        .create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    let json = serde_json::to_value(&created).unwrap();
    let spec = &json["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    let containers = &spec["template"]["spec"]["containers"];
    assert_eq!(containers[0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(containers[1]["imagePullPolicy"], "Always");
    assert_eq!(
        containers[0]["terminationMessagePath"],
        "/dev/termination-log"
    );
    assert_eq!(json["metadata"]["generation"], 1);
}

#[tokio::test]
async fn creating_twice_conflicts_and_generate_name_makes_unique_names() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&sim), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    let err = api.create(&PostParams::default(), &cm).await.unwrap_err();
    assert_eq!(api_status(err), (409, "AlreadyExists".to_string()));
    let generated: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-"}})).unwrap();
    let a = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let b = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    assert!(a.metadata.name.as_deref().unwrap().starts_with("gen-"));
    assert_ne!(a.metadata.name, b.metadata.name);
}

#[tokio::test]
async fn lease_replace_with_a_stale_resource_version_conflicts() {
    let sim = sim().await;
    let api: Api<Lease> = Api::namespaced(client(&sim), "default");
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}}),
    )
    .unwrap();
    let created = api.create(&PostParams::default(), &lease).await.unwrap();
    let mut mine = created.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let replaced = api
        .replace("leader", &PostParams::default(), &mine)
        .await
        .unwrap();
    assert_eq!(replaced.spec.unwrap().holder_identity.as_deref(), Some("b"));
    let mut stale = created;
    stale.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let err = api
        .replace("leader", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_status(err), (409, "Conflict".to_string()));
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&sim), "default");
    for (name, tier) in [("a", Some("web")), ("b", Some("db")), ("c", None)] {
        let mut cm = json!({"metadata": {"name": name, "labels": {"team": "x"}}});
        if let Some(tier) = tier {
            cm["metadata"]["labels"]["tier"] = json!(tier);
        }
        api.create(&PostParams::default(), &serde_json::from_value(cm).unwrap())
            .await
            .unwrap();
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect()
    };
    let lp = |s: &str| ListParams::default().labels(s);
    assert_eq!(
        names(api.list(&lp("tier in (web,db)")).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        names(api.list(&lp("tier notin (web)")).await.unwrap()),
        ["b", "c"]
    );
    assert_eq!(
        names(api.list(&lp("tier,team=x")).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(names(api.list(&lp("!tier")).await.unwrap()), ["c"]);
    assert_eq!(names(api.list(&lp("tier!=web")).await.unwrap()), ["b", "c"]);
    let by_name = ListParams::default().fields("metadata.name=b");
    assert_eq!(names(api.list(&by_name).await.unwrap()), ["b"]);
}

#[tokio::test]
async fn all_namespace_lists_span_namespaces_and_pages_continue() {
    let sim = sim().await;
    let client = client(&sim);
    for ns in ["ns-a", "ns-b"] {
        create_namespace(&sim, ns);
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        for name in ["x", "y"] {
            let cm = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
            api.create(&PostParams::default(), &cm).await.unwrap();
        }
    }
    let all: Api<ConfigMap> = Api::all(client);
    let first = all.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(first.items.len(), 3);
    let token = first.metadata.continue_.clone().unwrap();
    let rest = all
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(
        rest.metadata
            .continue_
            .as_deref()
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(
        rest.metadata.resource_version,
        first.metadata.resource_version
    );
    assert_eq!(rest.items[0].metadata.namespace.as_deref(), Some("ns-b"));
}

#[tokio::test]
async fn recorder_creates_an_event_then_patches_its_series_seen_in_both_event_apis() {
    let sim = sim().await;
    let client = client(&sim);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d = deployments
        .create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    let reporter = Reporter {
        controller: "watch-cluster".into(),
        instance: Some("pod-1".into()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let event = RecorderEvent {
        type_: EventType::Normal,
        reason: "Updated".into(),
        note: Some("image changed".into()),
        action: "Update".into(),
        secondary: None,
    };
    let reference = d.object_ref(&());
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();

    let writes = sim.request_log().matching(|r| {
        r.path
            .starts_with("/apis/events.k8s.io/v1/namespaces/default/events")
    });
    assert_eq!(writes.len(), 2);
    assert_eq!((writes[0].method.as_str(), writes[0].status), ("POST", 201));
    assert_eq!(
        (writes[1].method.as_str(), writes[1].status),
        ("PATCH", 200)
    );
    assert_eq!(
        writes[1].content_type.as_deref(),
        Some("application/merge-patch+json")
    );

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let stored = events.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].series.as_ref().unwrap().count, 2);
    assert_eq!(stored[0].note.as_deref(), Some("image changed"));
    let core: Api<CoreEvent> = Api::namespaced(client, "default");
    let core_events = core.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(core_events[0].message.as_deref(), Some("image changed"));
    assert_eq!(core_events[0].involved_object.name.as_deref(), Some("web"));
}

#[tokio::test]
async fn objects_cannot_be_created_in_a_missing_namespace_or_at_a_missing_subresource() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&sim), "nowhere");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    let err = api.create(&PostParams::default(), &cm).await.unwrap_err();
    assert_eq!(api_status(err), (404, "NotFound".to_string()));
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps/c/status",
        sim.url()
    );
    assert_eq!(http().get(&url).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn table_requests_get_rows_with_columns_and_object_metadata() {
    let sim = sim().await;
    let api: Api<Deployment> = Api::namespaced(client(&sim), "default");
    api.create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let url = format!("{}/apis/apps/v1/namespaces/default/deployments", sim.url());
    let table: Value = http()
        .get(&url)
        .header("accept", accept)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "Ready", "Up-to-date", "Available", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "web");
    assert_eq!(table["rows"][0]["cells"][1], "0/1");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert!(table["metadata"]["resourceVersion"].is_string());
}
