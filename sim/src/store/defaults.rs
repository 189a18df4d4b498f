//! Defaulting as the real API server applies it on create and update (apps/v1 and core/v1
//! `SetDefaults_*`), limited to the fields clients of this project observe.
//!
//! Input: a JSON object of a known kind; output: the same object with missing defaults filled in.
//! Defaulting matters because a client that compares "what it wrote" with "what it reads back"
//! (for example kubectl's strategic merge or a controller's template hash) must see the same
//! extra fields a real cluster adds.

use serde_json::{Map, Value, json};

use super::Kind;

/// Fills in the defaults of `kind` on `obj` (in place).
pub(crate) fn apply(kind: Kind, obj: &mut Value) {
    match kind {
        Kind::Deployment => deployment(obj),
        Kind::StatefulSet => stateful_set(obj),
        Kind::DaemonSet => daemon_set(obj),
        Kind::ReplicaSet => {
            let spec = child(obj, "spec");
            set_default(spec, "replicas", json!(1));
            pod_template(spec);
        }
        Kind::Pod => {
            let spec = child(obj, "spec");
            pod_spec(spec);
            set_default(spec, "enableServiceLinks", json!(true));
        }
        Kind::Secret => set_default(obj, "type", json!("Opaque")),
        Kind::Namespace => namespace(obj),
        _ => {}
    }
}

fn deployment(obj: &mut Value) {
    let spec = child(obj, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    let strategy = child(spec, "strategy");
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = child(strategy, "rollingUpdate");
        set_default(ru, "maxUnavailable", json!("25%"));
        set_default(ru, "maxSurge", json!("25%"));
    }
    pod_template(spec);
}

fn stateful_set(obj: &mut Value) {
    let spec = child(obj, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    let strategy = child(spec, "updateStrategy");
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = child(strategy, "rollingUpdate");
        set_default(ru, "partition", json!(0));
    }
    let retention = child(spec, "persistentVolumeClaimRetentionPolicy");
    set_default(retention, "whenDeleted", json!("Retain"));
    set_default(retention, "whenScaled", json!("Retain"));
    pod_template(spec);
}

fn daemon_set(obj: &mut Value) {
    let spec = child(obj, "spec");
    set_default(spec, "revisionHistoryLimit", json!(10));
    let strategy = child(spec, "updateStrategy");
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = child(strategy, "rollingUpdate");
        set_default(ru, "maxUnavailable", json!(1));
        set_default(ru, "maxSurge", json!(0));
    }
    pod_template(spec);
}

fn namespace(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(name) = name {
        let labels = child(child(obj, "metadata"), "labels");
        set_default(labels, "kubernetes.io/metadata.name", json!(name));
    }
    set_default(child(obj, "spec"), "finalizers", json!(["kubernetes"]));
    set_default(child(obj, "status"), "phase", json!("Active"));
}

fn pod_template(spec: &mut Value) {
    let template = child(spec, "template");
    pod_spec(child(template, "spec"));
}

fn pod_spec(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(containers)) = spec.get_mut(list) {
            containers.iter_mut().for_each(container);
        }
    }
}

fn container(c: &mut Value) {
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    let policy = c
        .get("image")
        .and_then(Value::as_str)
        .map(default_pull_policy);
    if let Some(policy) = policy {
        set_default(c, "imagePullPolicy", json!(policy));
    }
    if let Some(Value::Array(ports)) = c.get_mut("ports") {
        for port in ports {
            set_default(port, "protocol", json!("TCP"));
        }
    }
}

/// `Always` for an image without a tag or with `:latest` (and no digest), else `IfNotPresent`.
pub(crate) fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    match last_segment.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// The object at `key` under `obj`, created as `{}` when missing or not an object.
fn child<'a>(obj: &'a mut Value, key: &str) -> &'a mut Value {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    if !obj.get(key).is_some_and(Value::is_object) {
        obj[key] = Value::Object(Map::new());
    }
    &mut obj[key]
}

fn set_default(obj: &mut Value, key: &str, value: Value) {
    if let Value::Object(map) = obj {
        match map.get(key) {
            None | Some(Value::Null) => {
                map.insert(key.to_string(), value);
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_and_latest_images_are_always_pulled() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/nginx:1.2"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn deployment_gets_rolling_update_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}});
        apply(Kind::Deployment, &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }
}
