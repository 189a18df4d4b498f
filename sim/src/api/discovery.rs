//! Discovery documents: `/version`, `/api`, `/apis` and per-group `APIResourceList`s, in the
//! legacy (unaggregated) format that kubectl falls back to when the aggregated format is not
//! served. Built from the same kind table the store uses.

use serde_json::{Value, json};

use super::route::{EVENTS_GROUP, served_groups};
use crate::store::Kind;

/// The Kubernetes version reported; kubectl's dispatcher picks its client by the minor.
pub const GIT_VERSION: &str = "v1.33.0";

const VERBS: [&str; 7] = [
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const STATUS_VERBS: [&str; 3] = ["get", "patch", "update"];

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

pub fn groups() -> Value {
    let groups: Vec<Value> = served_groups()
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The `APIResourceList` of one group at v1.
pub fn resource_list(group: &str) -> Value {
    let group_version = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/v1")
    };
    let mut resources = Vec::new();
    if group == EVENTS_GROUP {
        resources.push(resource(Kind::Event, &["ev"]));
    } else {
        for kind in Kind::ALL.into_iter().filter(|k| k.info().group == group) {
            let info = kind.info();
            resources.push(resource(kind, info.short_names));
            if info.has_status {
                resources.push(json!({
                    "name": format!("{}/status", info.plural),
                    "singularName": "",
                    "namespaced": info.namespaced,
                    "kind": info.kind,
                    "verbs": STATUS_VERBS,
                }));
            }
        }
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources
    })
}

fn resource(kind: Kind, short_names: &[&str]) -> Value {
    let info = kind.info();
    let mut r = json!({
        "name": info.plural,
        "singularName": info.singular,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": VERBS,
    });
    if !short_names.is_empty() {
        r["shortNames"] = json!(short_names);
    }
    if matches!(
        kind,
        Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet | Kind::ReplicaSet | Kind::Pod
    ) {
        r["categories"] = json!(["all"]);
    }
    r
}
