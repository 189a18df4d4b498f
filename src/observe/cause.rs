//! Whose fault a failed rollout is: the image's, or the workload's (SPEC §11, `QUARANTINE_SCOPE`).
//!
//! Input: the workload, the rollout record (the images it wrote) and the workload's pods. Output: a
//! [`Cause`]. A new pod (one running an image the record wrote) whose container waits in `ErrImagePull`,
//! `ImagePullBackOff` or `CrashLoopBackOff` blames that container's image: the same bits would fail
//! anywhere, so `QUARANTINE_SCOPE=cluster` keeps its digest from every workload. Pods that run but never
//! become Ready (a probe, a quota, a missing ConfigMap) blame nothing but this workload's setup, so the image
//! is quarantined on this workload only. Pure; the controller lists the pods.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::ResourceExt as _;

use chrono::{DateTime, Utc};

use crate::{
    annotations::RolloutRecord,
    image::ImageRef,
    strategy::ClusterEntry,
    workload::{Kind, Workload},
};

/// A container waiting reason that blames the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ImageFault {
    /// The image could not be pulled.
    ErrImagePull,
    /// The pull is being retried after failing.
    ImagePullBackOff,
    /// The container keeps exiting.
    CrashLoopBackOff,
}

impl ImageFault {
    /// The waiting reason as Kubernetes writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFault::ErrImagePull => "ErrImagePull",
            ImageFault::ImagePullBackOff => "ImagePullBackOff",
            ImageFault::CrashLoopBackOff => "CrashLoopBackOff",
        }
    }

    fn of(reason: &str) -> Option<Self> {
        match reason {
            "ErrImagePull" => Some(ImageFault::ErrImagePull),
            "ImagePullBackOff" => Some(ImageFault::ImagePullBackOff),
            "CrashLoopBackOff" => Some(ImageFault::CrashLoopBackOff),
            _ => None,
        }
    }
}

impl std::fmt::Display for ImageFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One image a failed rollout's new pods blamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blamed {
    /// The container.
    pub container: String,
    /// The image the record wrote to it (`repo:tag@sha256:…`).
    pub image: String,
    /// What a pod showed.
    pub fault: ImageFault,
    /// The pod that showed it, for the log and Events.
    pub pod: String,
}

/// Why a rollout failed, as far as its pods tell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cause {
    /// The images of these containers cannot be pulled or crash: quarantined cluster-wide when
    /// `QUARANTINE_SCOPE=cluster`.
    Image(Vec<Blamed>),
    /// Nothing blames an image (pods run but are not Ready, the pods were not looked at, or someone
    /// else's image replaced ours): quarantined on this workload only.
    #[default]
    Workload,
}

/// The workload whose rollout failed, as cluster quarantine entries name it.
#[derive(Debug, Clone, Copy)]
pub struct Failed<'a> {
    /// Its kind.
    pub kind: Kind,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
}

impl std::fmt::Display for Failed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The cluster quarantine entries for what the pods blamed: one per image that names a digest (the
/// controller always writes pinned images; one that is not cannot be told apart from its next push).
pub fn cluster_entries(
    failed: &Failed<'_>,
    blamed: &[Blamed],
    now: DateTime<Utc>,
) -> Vec<ClusterEntry> {
    blamed
        .iter()
        .filter_map(|b| {
            let image = ImageRef::parse(&b.image).ok()?;
            Some(ClusterEntry {
                registry: image.registry().to_owned(),
                repository: image.repository().to_owned(),
                digest: image.digest()?.to_owned(),
                image: b.image.clone(),
                kind: failed.kind.as_str().to_owned(),
                namespace: failed.namespace.to_owned(),
                name: failed.name.to_owned(),
                reason: b.fault.as_str().to_owned(),
                at: now,
            })
        })
        .collect()
}

/// Classifies a failed rollout from the workload's pods. Each container the record wrote is blamed at most
/// once, by the first new pod that shows a fault for it.
pub fn classify(workload: &Workload, record: &RolloutRecord, pods: &[Pod]) -> Cause {
    let mut blamed: Vec<Blamed> = Vec::new();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() || !selected(workload, pod) {
            continue;
        }
        for (container, image) in &record.to {
            if blamed.iter().any(|b| b.container == *container) || !runs(pod, container, image) {
                continue;
            }
            if let Some(fault) = fault_of(pod, container) {
                blamed.push(Blamed {
                    container: container.clone(),
                    image: image.clone(),
                    fault,
                    pod: pod.name_any(),
                });
            }
        }
    }
    if blamed.is_empty() {
        Cause::Workload
    } else {
        Cause::Image(blamed)
    }
}

/// The pod carries every label of the workload's selector: a label list already narrows it, this keeps a
/// pod of another workload out when the caller's list was wider.
fn selected(workload: &Workload, pod: &Pod) -> bool {
    let labels = pod.labels();
    !workload.selector.is_empty()
        && workload
            .selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
}

/// The pod's spec gives `container` exactly the image the record wrote: a new pod, not an old one.
fn runs(pod: &Pod, container: &str, image: &str) -> bool {
    pod.spec.iter().any(|spec| {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .any(|c| c.name == container && c.image.as_deref() == Some(image))
    })
}

fn fault_of(pod: &Pod, container: &str) -> Option<ImageFault> {
    let status = pod.status.as_ref()?;
    let statuses: Vec<&ContainerStatus> = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .filter(|s| s.name == container)
        .collect();
    statuses.iter().find_map(|s| {
        let reason = s.state.as_ref()?.waiting.as_ref()?.reason.as_deref()?;
        ImageFault::of(reason)
    })
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;

    const NEW: &str = "r/app:1.1.0@sha256:new";
    const OLD: &str = "r/app:1.0.0@sha256:old";

    fn workload() -> Workload {
        let object: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "team", "uid": "web-uid"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": NEW}, {"name": "proxy", "image": "r/proxy:2"}]}}},
        }))
        .expect("deployment");
        Workload::from(&object)
    }

    fn record() -> RolloutRecord {
        RolloutRecord {
            id: "id".into(),
            started_at: Utc::now(),
            from: BTreeMap::from([("app".into(), OLD.into())]),
            to: BTreeMap::from([("app".into(), NEW.into())]),
            outcome: None,
        }
    }

    fn pod(name: &str, app: &str, image: &str, state: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "team", "labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "image": image}, {"name": "proxy", "image": "r/proxy:2"}]},
            "status": {"containerStatuses": [
                {"name": "app", "image": image, "imageID": "", "ready": false, "restartCount": 3, "state": state},
                {"name": "proxy", "image": "r/proxy:2", "imageID": "", "ready": true, "restartCount": 0,
                    "state": {"running": {}}},
            ]},
        }))
        .expect("pod")
    }

    fn waiting(reason: &str) -> Value {
        json!({"waiting": {"reason": reason}})
    }

    #[test]
    fn a_new_pod_that_cannot_pull_or_keeps_crashing_blames_the_image() {
        for (reason, fault) in [
            ("ErrImagePull", ImageFault::ErrImagePull),
            ("ImagePullBackOff", ImageFault::ImagePullBackOff),
            ("CrashLoopBackOff", ImageFault::CrashLoopBackOff),
        ] {
            let pods = [
                pod("web-old", "web", OLD, json!({"running": {}})),
                pod("web-new", "web", NEW, waiting(reason)),
            ];
            assert_eq!(
                classify(&workload(), &record(), &pods),
                Cause::Image(vec![Blamed {
                    container: "app".into(),
                    image: NEW.into(),
                    fault,
                    pod: "web-new".into(),
                }]),
                "{reason}"
            );
        }
    }

    #[test]
    fn pods_that_run_but_are_never_ready_blame_the_workload_only() {
        let pods = [
            pod("web-new", "web", NEW, json!({"running": {}})),
            pod("web-new-2", "web", NEW, waiting("ContainerCreating")),
        ];
        assert_eq!(classify(&workload(), &record(), &pods), Cause::Workload);
        assert_eq!(classify(&workload(), &record(), &[]), Cause::Workload);
    }

    #[test]
    fn old_pods_and_other_workloads_pods_blame_nothing() {
        let pods = [
            // Someone else's pod on our new image (another selector).
            pod("api-1", "api", NEW, waiting("ErrImagePull")),
            // An old pod of ours crashing on the previous image is not the new image's fault.
            pod("web-old", "web", OLD, waiting("CrashLoopBackOff")),
        ];
        assert_eq!(classify(&workload(), &record(), &pods), Cause::Workload);
    }

    #[test]
    fn a_terminating_pod_blames_nothing() {
        let mut gone = serde_json::to_value(pod("web-new", "web", NEW, waiting("ErrImagePull")))
            .expect("pod json");
        gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let gone: Pod = serde_json::from_value(gone).expect("pod");
        assert_eq!(classify(&workload(), &record(), &[gone]), Cause::Workload);
    }

    #[test]
    fn each_blamed_pinned_image_becomes_one_entry_keyed_by_its_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let blamed = [
            Blamed {
                container: "app".into(),
                image: format!("nginx:1.27.0@{digest}"),
                fault: ImageFault::CrashLoopBackOff,
                pod: "web-1".into(),
            },
            // Not pinned: nothing names the bits that failed.
            Blamed {
                container: "proxy".into(),
                image: "r/proxy:2".into(),
                fault: ImageFault::ErrImagePull,
                pod: "web-1".into(),
            },
        ];
        let failed = Failed {
            kind: Kind::StatefulSet,
            namespace: "team",
            name: "db",
        };
        let now = Utc::now();
        let entries = cluster_entries(&failed, &blamed, now);
        assert_eq!(
            entries,
            [ClusterEntry {
                registry: "docker.io".into(),
                repository: "library/nginx".into(),
                digest,
                image: blamed[0].image.clone(),
                kind: "StatefulSet".into(),
                namespace: "team".into(),
                name: "db".into(),
                reason: "CrashLoopBackOff".into(),
                at: now,
            }]
        );
        assert_eq!(failed.to_string(), "StatefulSet team/db");
    }
}
