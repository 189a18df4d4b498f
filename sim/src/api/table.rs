//! `meta.k8s.io/v1` Table answers for kubectl's human-readable `get` (Accept `as=Table`):
//! the columns the real server prints for workloads and pods, and NAME/AGE for the rest.

use serde_json::{Value, json};

use crate::store::Kind;

/// A Table of `objects` (each row carries the object's metadata, like `includeObject=Metadata`).
pub fn table<'a>(
    kind: Kind,
    objects: impl Iterator<Item = &'a Value>,
    list_metadata: Value,
) -> Value {
    let columns: Vec<Value> = columns(kind)
        .iter()
        .map(|(name, kind)| {
            json!({"name": name, "type": kind, "format": if *name == "Name" { "name" } else { "" },
                "description": "", "priority": 0})
        })
        .collect();
    let rows: Vec<Value> = objects.map(|o| row(kind, o)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn columns(kind: Kind) -> &'static [(&'static str, &'static str)] {
    match kind {
        Kind::Deployment => &[
            ("Name", "string"),
            ("Ready", "string"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
            ("Age", "string"),
        ],
        Kind::ReplicaSet => &[
            ("Name", "string"),
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
            ("Age", "string"),
        ],
        Kind::StatefulSet => &[("Name", "string"), ("Ready", "string"), ("Age", "string")],
        Kind::DaemonSet => &[
            ("Name", "string"),
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
            ("Age", "string"),
        ],
        Kind::Pod => &[
            ("Name", "string"),
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "integer"),
            ("Age", "string"),
        ],
        _ => &[("Name", "string"), ("Age", "string")],
    }
}

fn row(kind: Kind, object: &Value) -> Value {
    let int = |path: &str| object.pointer(path).and_then(Value::as_i64).unwrap_or(0);
    let name = object
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null);
    let age = json!(age(object));
    let cells = match kind {
        Kind::Deployment => json!([
            name,
            format!("{}/{}", int("/status/readyReplicas"), int("/spec/replicas")),
            int("/status/updatedReplicas"),
            int("/status/availableReplicas"),
            age
        ]),
        Kind::ReplicaSet => json!([
            name,
            int("/spec/replicas"),
            int("/status/replicas"),
            int("/status/readyReplicas"),
            age
        ]),
        Kind::StatefulSet => json!([
            name,
            format!("{}/{}", int("/status/readyReplicas"), int("/spec/replicas")),
            age
        ]),
        Kind::DaemonSet => json!([
            name,
            int("/status/desiredNumberScheduled"),
            int("/status/currentNumberScheduled"),
            int("/status/numberReady"),
            int("/status/updatedNumberScheduled"),
            int("/status/numberAvailable"),
            age
        ]),
        Kind::Pod => pod_cells(object, name, age),
        _ => json!([name, age]),
    };
    let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}})
}

fn pod_cells(pod: &Value, name: Value, age: Value) -> Value {
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = statuses.iter().filter(|s| s["ready"] == true).count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|s| s["restartCount"].as_i64())
        .sum();
    let waiting = statuses
        .iter()
        .find_map(|s| s.pointer("/state/waiting/reason").and_then(Value::as_str));
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending");
    let status = if pod.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else {
        waiting.unwrap_or(phase)
    };
    json!([name, format!("{ready}/{total}"), status, restarts, age])
}

/// Age like kubectl prints it: `45s`, `12m`, `3h`, `5d`.
fn age(object: &Value) -> String {
    let created = object
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let Some(created) = created else {
        return "<unknown>".into();
    };
    let seconds = (chrono::Utc::now() - created.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
