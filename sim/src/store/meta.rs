//! Object metadata bookkeeping done by the store: names, namespaces, uids, timestamps,
//! resourceVersion and generation, and what an update carries over from the stored object.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};

use super::{Kind, StoreError};

/// `metadata.name`.
pub fn name_of(object: &Value) -> Option<&str> {
    object.pointer("/metadata/name").and_then(Value::as_str)
}

/// `metadata.namespace`.
pub fn namespace_of(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
}

/// `metadata.resourceVersion` as a number.
pub fn resource_version_of(object: &Value) -> Option<u64> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|rv| rv.parse().ok())
}

fn ensure_object(object: &mut Value) {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
}

/// Runs `f` on `metadata` (made an object first when missing or malformed).
fn with_metadata<R>(object: &mut Value, f: impl FnOnce(&mut Map<String, Value>) -> R) -> Option<R> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let meta = object
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().map(f)
}

/// Normalises a new object: type fields, scope, no stale resourceVersion, status reset like
/// the real `PrepareForCreate`; rejects objects without a name or (when namespaced) namespace.
pub(crate) fn prepare_new(kind: Kind, object: &mut Value) -> Result<(), StoreError> {
    let info = kind.info();
    ensure_object(object);
    object["apiVersion"] = json!(kind.api_version());
    object["kind"] = json!(info.kind);
    let checked = with_metadata(object, |meta| {
        for field in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
        ] {
            meta.remove(field);
        }
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let generated = meta
            .get("generateName")
            .and_then(Value::as_str)
            .is_some_and(|g| !g.is_empty());
        if name.is_empty() && !generated {
            return Err(StoreError::invalid(
                kind,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
        if !info.namespaced {
            meta.remove("namespace");
        } else if meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(StoreError::invalid(
                kind,
                &name,
                "metadata.namespace: Required value",
            ));
        }
        Ok(())
    });
    checked.unwrap_or(Ok(()))?;
    match kind {
        Kind::Pod => object["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"}),
        Kind::Namespace => {}
        _ if info.has_status => {
            if let Value::Object(o) = object {
                o.remove("status");
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether the object asks for a generated name.
pub(crate) fn has_generate_name_only(object: &Value) -> bool {
    name_of(object).is_none_or(str::is_empty)
}

/// Sets `metadata.name` to `generateName` plus five random characters not yet taken.
pub(crate) fn generate_name(
    object: &mut Value,
    taken: impl Fn(&(String, String)) -> bool,
    kind: Kind,
) {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let prefix = object
        .pointer("/metadata/generateName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let namespace = if kind.info().namespaced {
        namespace_of(object).unwrap_or_default()
    } else {
        ""
    }
    .to_string();
    loop {
        let mut bits = random_u64();
        let suffix: String = (0..5)
            .map(|_| {
                let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char;
                bits /= ALPHABET.len() as u64;
                c
            })
            .collect();
        let name = format!("{prefix}{suffix}");
        if !taken(&(namespace.clone(), name.clone())) {
            with_metadata(object, |m| m.insert("name".into(), json!(name)));
            return;
        }
    }
}

/// Sets uid, creationTimestamp and (for workloads) generation 1.
pub(crate) fn stamp_created(kind: Kind, object: &mut Value) {
    with_metadata(object, |meta| {
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if kind.info().has_generation {
            meta.insert("generation".into(), json!(1));
        }
    });
}

/// Keeps the server-owned metadata of `old` in the replacement `new`.
pub(crate) fn carry_over(kind: Kind, old: &Value, new: &mut Value) {
    ensure_object(new);
    new["apiVersion"] = json!(kind.api_version());
    new["kind"] = json!(kind.info().kind);
    let old_meta = old.get("metadata").cloned().unwrap_or_default();
    with_metadata(new, |meta| {
        for field in [
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "namespace",
        ] {
            match old_meta.get(field) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
    });
}

/// Copies (or removes, when absent in `from`) one top-level field.
pub(crate) fn copy_field(from: &Value, to: &mut Value, field: &str) {
    if let Value::Object(to) = to {
        match from.get(field) {
            Some(v) => to.insert(field.to_string(), v.clone()),
            None => to.remove(field),
        };
    }
}

pub(crate) fn set_resource_version(object: &mut Value, rv: u64) {
    with_metadata(object, |m| {
        m.insert("resourceVersion".into(), json!(rv.to_string()))
    });
}

pub(crate) fn bump_generation(object: &mut Value) {
    with_metadata(object, |meta| {
        let generation = meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
        meta.insert("generation".into(), json!(generation + 1));
    });
}

/// Whether `object` has an ownerReference with this uid.
pub(crate) fn is_owned_by(object: &Value, uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
        })
}

/// Current time as Kubernetes writes timestamps (RFC 3339, seconds, `Z`).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A random-looking RFC 4122 version-4 formatted uid.
pub fn new_uid() -> String {
    let a = random_u64();
    let b = random_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48 & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// SplitMix64 over a counter seeded from the clock: unique per process, unpredictable enough
/// for names and uids in a test cluster (no cryptographic use).
fn random_u64() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = STATE.load(Ordering::Relaxed);
    if seed == 0 {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64;
        let _ = STATE.compare_exchange(0, nanos | 1, Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut z = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
