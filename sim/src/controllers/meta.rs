//! Small readers and builders for Kubernetes objects held as JSON: names, owner references,
//! label selectors, int-or-percent values, conditions and timestamps.

use serde_json::{Map, Value, json};

use crate::store::Kind;

/// A reference to one object in the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjRef {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjRef {
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        Self {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The reference of `obj`, a `kind` object.
    pub fn of(kind: Kind, obj: &Value) -> Self {
        Self::new(kind, namespace(obj), name(obj))
    }

    /// The namespace as the store takes it (`None` for cluster-scoped kinds).
    pub fn ns(&self) -> Option<&str> {
        (!self.namespace.is_empty()).then_some(self.namespace.as_str())
    }
}

pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

pub(crate) fn i64_at(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

pub(crate) fn name(v: &Value) -> &str {
    str_at(v, "/metadata/name").unwrap_or_default()
}

pub(crate) fn namespace(v: &Value) -> &str {
    str_at(v, "/metadata/namespace").unwrap_or_default()
}

pub(crate) fn uid(v: &Value) -> &str {
    str_at(v, "/metadata/uid").unwrap_or_default()
}

pub(crate) fn generation(v: &Value) -> i64 {
    i64_at(v, "/metadata/generation").unwrap_or(0)
}

pub(crate) fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

pub(crate) fn label<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/labels")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// Sets `metadata.<field>.<key>` (`field` is `labels` or `annotations`).
pub(crate) fn set_meta_map(v: &mut Value, field: &str, key: &str, value: &str) {
    if !v["metadata"][field].is_object() {
        v["metadata"][field] = json!({});
    }
    v["metadata"][field][key] = json!(value);
}

pub(crate) fn is_deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// `metadata.resourceVersion` as a number, when it is one.
pub(crate) fn resource_version(v: &Value) -> Option<u64> {
    str_at(v, "/metadata/resourceVersion").and_then(|s| s.parse().ok())
}

/// The `(kind, name, uid)` of the controlling owner reference.
pub(crate) fn controller_of(v: &Value) -> Option<(&str, &str, &str)> {
    v.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
            (s("kind"), s("name"), s("uid"))
        })
}

/// A controlling owner reference to `owner`, a `kind` object.
pub(crate) fn owner_reference(kind: Kind, owner: &Value) -> Value {
    json!([{
        "apiVersion": kind.api_version(),
        "kind": kind.info().kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

/// Resolves an int-or-percent against `total`, rounding a percentage up or down.
pub(crate) fn scaled_value(v: Option<&Value>, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(pct) if round_up => (pct * total + 99) / 100,
            Some(pct) => pct * total / 100,
            None => s.parse().unwrap_or(default),
        },
        _ => default,
    }
}

/// Now, as Kubernetes writes timestamps (RFC 3339, whole seconds, `Z`).
pub(crate) fn now_timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Seconds elapsed since an RFC 3339 timestamp (0 when unparseable or in the future).
pub(crate) fn seconds_since(timestamp: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(timestamp)
        .map(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0
        })
        .unwrap_or(0.0)
        .max(0.0)
}

/// The condition of `type` in `status.conditions`.
pub(crate) fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// Inserts `value` under `key` unless it is zero (real status output omits zero counts).
pub(crate) fn put_count(map: &mut Map<String, Value>, key: &str, value: i64) {
    if value != 0 {
        map.insert(key.to_string(), json!(value));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_like_kubernetes_fenceposts() {
        assert_eq!(scaled_value(Some(&json!("25%")), 3, true, 0), 1);
        assert_eq!(scaled_value(Some(&json!("25%")), 3, false, 0), 0);
        assert_eq!(scaled_value(Some(&json!("25%")), 10, true, 0), 3);
        assert_eq!(scaled_value(Some(&json!("25%")), 10, false, 0), 2);
        assert_eq!(scaled_value(Some(&json!(2)), 10, false, 0), 2);
        assert_eq!(scaled_value(None, 10, false, 1), 1);
    }

    #[test]
    fn controller_owner_is_found_among_owner_references() {
        let pod = json!({"metadata": {"ownerReferences": [
            {"kind": "Other", "name": "x", "uid": "1"},
            {"kind": "ReplicaSet", "name": "web-abc", "uid": "2", "controller": true}]}});
        assert_eq!(controller_of(&pod), Some(("ReplicaSet", "web-abc", "2")));
    }
}
