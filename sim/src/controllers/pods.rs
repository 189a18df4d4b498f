//! Pods as workload controllers make them, and how healthy a pod is.
//!
//! Input: an owner and a pod template. Output: the pod object to create (template labels and
//! annotations, controlling owner reference, phase `Pending`), or a pod's [`PodHealth`] read
//! from the status the simulated kubelet wrote.

use serde_json::{Value, json};

use super::meta;
use crate::store::Kind;

/// How a new pod is named.
pub(crate) enum PodName {
    /// `<owner>-<random suffix>`, chosen by the store (`metadata.generateName`).
    Generate,
    /// A fixed name (StatefulSet pods).
    Fixed(String),
}

/// A new pod from `template`, controlled by `owner` (a `owner_kind` object), with extra labels
/// and, for DaemonSet pods, the node it is bound to.
pub(crate) fn new_pod(
    owner: &Value,
    owner_kind: Kind,
    template: &Value,
    name: PodName,
    extra_labels: &[(&str, &str)],
    node: Option<&str>,
) -> Value {
    let mut metadata = template
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(m) = metadata.as_object_mut() {
        m.retain(|k, _| k == "labels" || k == "annotations");
    }
    match name {
        PodName::Generate => metadata["generateName"] = json!(format!("{}-", meta::name(owner))),
        PodName::Fixed(n) => metadata["name"] = json!(n),
    }
    metadata["namespace"] = json!(meta::namespace(owner));
    metadata["ownerReferences"] = meta::owner_reference(owner_kind, owner);
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    });
    for (k, v) in extra_labels {
        meta::set_meta_map(&mut pod, "labels", k, v);
    }
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    pod
}

/// How far a pod has come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PodHealth {
    /// Not running yet (scheduling, pulling, creating containers).
    Pending,
    /// Running, not ready.
    Running,
    /// Ready for this many seconds.
    Ready(f64),
}

/// The health of a pod from its status.
pub(crate) fn health(pod: &Value) -> PodHealth {
    let ready = pod
        .get("status")
        .and_then(|s| meta::condition(s, "Ready"))
        .filter(|c| c["status"] == "True");
    match (ready, meta::str_at(pod, "/status/phase")) {
        (Some(c), _) => PodHealth::Ready(meta::seconds_since(
            c["lastTransitionTime"].as_str().unwrap_or_default(),
        )),
        (None, Some("Running")) => PodHealth::Running,
        _ => PodHealth::Pending,
    }
}

/// Whether a pod is ready (and so, without `minReadySeconds`, available).
pub(crate) fn is_ready(pod: &Value) -> bool {
    matches!(health(pod), PodHealth::Ready(_))
}

/// Whether a pod has been ready for at least `min_ready_secs`.
pub(crate) fn is_available(pod: &Value, min_ready_secs: f64) -> bool {
    matches!(health(pod), PodHealth::Ready(s) if s >= min_ready_secs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pods_carry_template_labels_extra_labels_and_a_controlling_owner() {
        let rs = json!({"metadata": {"name": "web-abc", "namespace": "ns", "uid": "u1"}});
        let template = json!({"metadata": {"labels": {"app": "web"}, "name": "ignored"},
            "spec": {"containers": [{"name": "c", "image": "app:1"}]}});
        let pod = new_pod(
            &rs,
            Kind::ReplicaSet,
            &template,
            PodName::Generate,
            &[("x", "y")],
            Some("n1"),
        );
        assert_eq!(pod["metadata"]["generateName"], "web-abc-");
        assert!(pod["metadata"].get("name").is_none());
        assert_eq!(pod["metadata"]["labels"], json!({"app": "web", "x": "y"}));
        assert_eq!(
            meta::controller_of(&pod),
            Some(("ReplicaSet", "web-abc", "u1"))
        );
        assert_eq!(pod["spec"]["nodeName"], "n1");
        assert_eq!(health(&pod), PodHealth::Pending);
    }

    #[test]
    fn health_follows_phase_and_ready_condition() {
        let running = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}});
        assert_eq!(health(&running), PodHealth::Running);
        let ready = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2000-01-01T00:00:00Z"}]}});
        assert!(is_ready(&ready) && is_available(&ready, 30.0));
    }
}
