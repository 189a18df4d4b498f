//! After a rollback: free a StatefulSet from the pods its failed revision left behind.
//!
//! A StatefulSet with the default `OrderedReady` policy never replaces a pod that is not Running and Ready:
//! after its template is restored, the pod that crashed on the bad image stays as it is and the rollback
//! never completes (Kubernetes documents this as the "forced rollback" step: delete the pods that ran the bad
//! configuration; found on the real control plane, see docs/testbed.md). Deployments and DaemonSets replace
//! such pods on their own.
//!
//! Input: a StatefulSet whose controller has observed its current spec, still in progress, with a
//! `quarantine` annotation, and its pods. Output: the pods to delete: owned by it, not Ready, and running, in
//! a container, an image that is quarantined for that container and is no longer the template's. Nothing
//! else is ever deleted, so a healthy pod, a pod of a newer update, or another owner's pod is never touched.
//! Pure; the controller lists the pods and deletes what this names.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;

use crate::{
    annotations,
    strategy::Quarantine,
    workload::{Kind, Progress, Workload},
};

/// Whether `workload` may hold pods a rollback left behind; cheap, so reconcile asks on every change.
pub fn may_need_release(workload: &Workload) -> bool {
    workload.kind == Kind::StatefulSet
        && !workload.on_delete
        && workload.generation_observed
        && matches!(workload.progress, Progress::InProgress(_))
        && workload.annotations.contains_key(annotations::QUARANTINE)
}

/// The names of the pods to delete, with the quarantined image each runs.
pub fn stuck_pods(
    workload: &Workload,
    quarantine: &Quarantine,
    pods: &[Pod],
) -> Vec<(String, String)> {
    let mut stuck = Vec::new();
    for pod in pods {
        let owned = pod
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && o.uid == workload.uid);
        if !owned || pod.metadata.deletion_timestamp.is_some() || is_ready(pod) {
            continue;
        }
        let bad = pod.spec.iter().flat_map(|s| &s.containers).find_map(|c| {
            let image = c.image.as_deref()?;
            let template = workload.container(&c.name)?;
            let quarantined = quarantine
                .entries()
                .iter()
                .any(|e| e.container == c.name && e.image == image);
            (quarantined && template.image != image).then(|| image.to_owned())
        });
        if let Some(image) = bad {
            stuck.push((pod.name_any(), image));
        }
    }
    stuck
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::strategy::QuarantineEntry;

    fn sts(image: &str) -> Workload {
        let object: k8s_openapi::api::apps::v1::StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "ns", "uid": "sts-uid", "generation": 2,
                "annotations": {"watch-cluster.io/quarantine": "[]"}},
            "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "db", "image": image}]}}},
            "status": {"observedGeneration": 2, "replicas": 2, "readyReplicas": 1},
        }))
        .expect("statefulset");
        Workload::from(&object)
    }

    fn pod(name: &str, owner: &str, image: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("{name}-uid"),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                    "uid": owner, "controller": true}]},
            "spec": {"containers": [{"name": "db", "image": image}]},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .expect("pod")
    }

    fn quarantined(image: &str) -> Quarantine {
        let mut q = Quarantine::default();
        q.add(QuarantineEntry {
            container: "db".into(),
            image: image.into(),
            at: Utc::now(),
        });
        q
    }

    #[test]
    fn only_unready_owned_pods_on_a_quarantined_image_the_template_left_are_released() {
        let workload = sts("r/db:1.0.0");
        assert!(may_need_release(&workload));
        let q = quarantined("r/db:1.1.0@sha256:bad");
        let pods = [
            pod("db-0", "sts-uid", "r/db:1.0.0", true),
            pod("db-1", "sts-uid", "r/db:1.1.0@sha256:bad", false),
            pod("other-1", "other-uid", "r/db:1.1.0@sha256:bad", false),
            pod("db-2", "sts-uid", "r/db:1.1.0@sha256:bad", true),
            pod("db-3", "sts-uid", "r/db:1.2.0", false),
        ];
        assert_eq!(
            stuck_pods(&workload, &q, &pods),
            [("db-1".to_owned(), "r/db:1.1.0@sha256:bad".to_owned())]
        );
    }

    #[test]
    fn a_template_still_on_the_quarantined_image_keeps_its_pods() {
        // Someone put the bad image back on purpose: its pods are theirs to handle.
        let workload = sts("r/db:1.1.0@sha256:bad");
        let q = quarantined("r/db:1.1.0@sha256:bad");
        let pods = [pod("db-1", "sts-uid", "r/db:1.1.0@sha256:bad", false)];
        assert!(stuck_pods(&workload, &q, &pods).is_empty());
    }

    #[test]
    fn nothing_is_released_before_the_statefulset_controller_saw_the_rollback() {
        let mut workload = sts("r/db:1.0.0");
        workload.generation_observed = false;
        assert!(!may_need_release(&workload));
        let mut workload = sts("r/db:1.0.0");
        workload.progress = Progress::Complete;
        assert!(!may_need_release(&workload));
        let mut workload = sts("r/db:1.0.0");
        workload.kind = Kind::Deployment;
        assert!(!may_need_release(&workload));
    }
}
