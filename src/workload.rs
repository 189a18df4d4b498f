//! A compact, kind-independent view of a Deployment, StatefulSet or DaemonSet (docs/architecture.md#workload-kinds).
//!
//! Input: the Kubernetes object. Output: [`Workload`], holding only what deciding and updating need, and
//! [`Progress`], the rollout state decided exactly as `kubectl rollout status` does (docs/guarantees.md#when-a-rollout-is-complete). Keeping
//! the projection small is what lets the controller watch thousands of workloads in a few MiB.

use std::{collections::BTreeMap, fmt};

use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, StatefulSet},
    core::v1::PodSpec,
};
use kube::ResourceExt;

use crate::annotations::PREFIX;

/// The workload kinds the controller manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
}

impl Kind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One container of the pod template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Image as written in the spec.
    pub image: String,
    /// Whether it is an init container.
    pub init: bool,
    /// Index in its list, for JSON Patch paths.
    pub index: usize,
}

impl Container {
    /// The JSON Pointer of this container's image in the workload.
    pub fn image_path(&self) -> String {
        let list = if self.init {
            "initContainers"
        } else {
            "containers"
        };
        format!("/spec/template/spec/{list}/{}/image", self.index)
    }
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Every replica runs the current template and is available.
    Complete,
    /// Still moving; the message says what it waits for.
    InProgress(String),
    /// The workload controller gave up (Deployment `ProgressDeadlineExceeded`).
    Failed(String),
}

/// The compact projection of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Its kind.
    pub kind: Kind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// Only the `watch-cluster.io/` annotations.
    pub annotations: BTreeMap<String, String>,
    /// Init and regular containers.
    pub containers: Vec<Container>,
    /// `spec.paused` (Deployments).
    pub paused: bool,
    /// Uses the `OnDelete` update strategy (StatefulSets, DaemonSets).
    pub on_delete: bool,
    /// `imagePullSecrets` names of the pod template.
    pub image_pull_secrets: Vec<String>,
    /// The pod template's service account (`default` when unset).
    pub service_account: String,
    /// `spec.selector.matchLabels`, to find the workload's pods.
    pub selector: BTreeMap<String, String>,
    /// The rollout state.
    pub progress: Progress,
    /// `progressDeadlineSeconds` (Deployments; 600 by default).
    pub progress_deadline_seconds: Option<i32>,
    /// The workload's controller has observed its current spec (`status.observedGeneration`).
    pub generation_observed: bool,
    /// The GitOps tool that manages it, if its labels or annotations say so.
    pub gitops: Option<GitOps>,
}

/// A GitOps tool that may put back the image the controller writes (docs/guarantees.md#gitops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitOps {
    /// Argo CD: annotation `argocd.argoproj.io/tracking-id` or label `argocd.argoproj.io/instance`.
    ArgoCd,
    /// Flux: label `kustomize.toolkit.fluxcd.io/name` or `helm.toolkit.fluxcd.io/name`.
    Flux,
}

/// The labels and annotations that name a GitOps tool; the watch keeps them when it slims an object.
pub const GITOPS_LABELS: [&str; 3] = [
    "argocd.argoproj.io/instance",
    "kustomize.toolkit.fluxcd.io/name",
    "helm.toolkit.fluxcd.io/name",
];
/// See [`GITOPS_LABELS`].
pub const GITOPS_ANNOTATIONS: [&str; 1] = ["argocd.argoproj.io/tracking-id"];

impl GitOps {
    /// The tool named by these labels and annotations.
    pub fn detect(
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Option<GitOps> {
        if annotations.contains_key(GITOPS_ANNOTATIONS[0]) || labels.contains_key(GITOPS_LABELS[0])
        {
            Some(GitOps::ArgoCd)
        } else if labels.contains_key(GITOPS_LABELS[1]) || labels.contains_key(GITOPS_LABELS[2]) {
            Some(GitOps::Flux)
        } else {
            None
        }
    }

    /// What the user can do so that the controller's updates stand.
    pub fn advice(self) -> &'static str {
        match self {
            GitOps::ArgoCd => {
                "managed by Argo CD: its self-heal may put back the image watch-cluster writes. To let \
                 external updates stand, add ignoreDifferences with jsonPointers \
                 /spec/template/spec/containers/*/image (jqPathExpressions \
                 .spec.template.spec.containers[].image) to the Application and the sync option \
                 RespectIgnoreDifferences=true. watch-cluster proceeds; a reverted update is reported as \
                 UpdateReverted and not applied again"
            }
            GitOps::Flux => {
                "managed by Flux: its reconciliation may put back the image watch-cluster writes. To let \
                 external updates stand, annotate the object in Git with \
                 kustomize.toolkit.fluxcd.io/ssa: IfNotPresent, or use Flux's own image automation. \
                 watch-cluster proceeds; a reverted update is reported as UpdateReverted and not applied again"
            }
        }
    }

    /// The tool's name.
    pub fn name(self) -> &'static str {
        match self {
            GitOps::ArgoCd => "Argo CD",
            GitOps::Flux => "Flux",
        }
    }
}

impl Workload {
    /// `spec.selector.matchLabels` as a label selector (`a=b,c=d`) to list its pods; `None` when empty, as
    /// an empty selector would list every pod of the namespace.
    pub fn label_selector(&self) -> Option<String> {
        if self.selector.is_empty() {
            return None;
        }
        Some(
            self.selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        )
    }

    /// Finds a container by name.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.name == name)
    }

    fn from_parts(
        kind: Kind,
        meta: &impl ResourceExt,
        pod_spec: Option<&PodSpec>,
        selector: BTreeMap<String, String>,
        progress: Progress,
    ) -> Self {
        let annotations = meta
            .annotations()
            .iter()
            .filter(|(k, _)| k.starts_with(PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut containers = Vec::new();
        if let Some(spec) = pod_spec {
            for (index, c) in spec.init_containers.iter().flatten().enumerate() {
                containers.push(Container {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    init: true,
                    index,
                });
            }
            for (index, c) in spec.containers.iter().enumerate() {
                containers.push(Container {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    init: false,
                    index,
                });
            }
        }
        let gitops = GitOps::detect(meta.labels(), meta.annotations());
        Self {
            gitops,
            kind,
            namespace: meta.namespace().unwrap_or_default(),
            name: meta.name_any(),
            uid: meta.uid().unwrap_or_default(),
            resource_version: meta.resource_version().unwrap_or_default(),
            annotations,
            containers,
            paused: false,
            on_delete: false,
            image_pull_secrets: pod_spec
                .and_then(|s| s.image_pull_secrets.as_ref())
                .into_iter()
                .flatten()
                .map(|r| r.name.clone())
                .filter(|n| !n.is_empty())
                .collect(),
            service_account: pod_spec
                .and_then(|s| s.service_account_name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into()),
            selector,
            progress,
            progress_deadline_seconds: None,
            generation_observed: false,
        }
    }
}

impl From<&Deployment> for Workload {
    fn from(d: &Deployment) -> Self {
        let spec = d.spec.as_ref();
        let mut w = Self::from_parts(
            Kind::Deployment,
            d,
            spec.and_then(|s| s.template.spec.as_ref()),
            spec.and_then(|s| s.selector.match_labels.clone())
                .unwrap_or_default(),
            deployment_progress(d),
        );
        w.generation_observed = observed(
            d.metadata.generation,
            d.status.as_ref().and_then(|s| s.observed_generation),
        );
        w.paused = spec.and_then(|s| s.paused).unwrap_or(false);
        w.progress_deadline_seconds = Some(
            spec.and_then(|s| s.progress_deadline_seconds)
                .unwrap_or(600),
        );
        w
    }
}

impl From<&StatefulSet> for Workload {
    fn from(s: &StatefulSet) -> Self {
        let spec = s.spec.as_ref();
        let mut w = Self::from_parts(
            Kind::StatefulSet,
            s,
            spec.and_then(|s| s.template.spec.as_ref()),
            spec.and_then(|s| s.selector.match_labels.clone())
                .unwrap_or_default(),
            statefulset_progress(s),
        );
        w.generation_observed = observed(
            s.metadata.generation,
            s.status.as_ref().and_then(|s| s.observed_generation),
        );
        w.on_delete = spec
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.type_.as_deref())
            == Some("OnDelete");
        w
    }
}

impl From<&DaemonSet> for Workload {
    fn from(d: &DaemonSet) -> Self {
        let spec = d.spec.as_ref();
        let mut w = Self::from_parts(
            Kind::DaemonSet,
            d,
            spec.and_then(|s| s.template.spec.as_ref()),
            spec.and_then(|s| s.selector.match_labels.clone())
                .unwrap_or_default(),
            daemonset_progress(d),
        );
        w.generation_observed = observed(
            d.metadata.generation,
            d.status.as_ref().and_then(|s| s.observed_generation),
        );
        w.on_delete = spec
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.type_.as_deref())
            == Some("OnDelete");
        w
    }
}

fn observed(generation: Option<i64>, observed: Option<i64>) -> bool {
    observed.unwrap_or(0) >= generation.unwrap_or(0)
}

/// kubectl's `DeploymentStatusViewer`.
pub fn deployment_progress(d: &Deployment) -> Progress {
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = d.status.as_ref() else {
        return Progress::InProgress("waiting for deployment spec update to be observed".into());
    };
    if generation > status.observed_generation.unwrap_or(0) {
        return Progress::InProgress("waiting for deployment spec update to be observed".into());
    }
    let deadline_exceeded = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if deadline_exceeded {
        return Progress::Failed(format!(
            "deployment {:?} exceeded its progress deadline",
            d.metadata.name.as_deref().unwrap_or_default()
        ));
    }
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        return Progress::InProgress(format!(
            "{updated} out of {desired} new replicas have been updated"
        ));
    }
    if replicas > updated {
        return Progress::InProgress(format!(
            "{} old replicas are pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return Progress::InProgress(format!(
            "{available} of {updated} updated replicas are available"
        ));
    }
    Progress::Complete
}

/// kubectl's `StatefulSetStatusViewer` (RollingUpdate; OnDelete is never managed).
pub fn statefulset_progress(s: &StatefulSet) -> Progress {
    let generation = s.metadata.generation.unwrap_or(0);
    let Some(status) = s.status.as_ref() else {
        return Progress::InProgress("waiting for statefulset spec update to be observed".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Progress::InProgress("waiting for statefulset spec update to be observed".into());
    }
    let spec = s.spec.as_ref();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    if ready < desired {
        return Progress::InProgress(format!("{ready} of {desired} pods are ready"));
    }
    let partition = spec
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    if partition > 0 {
        let expected = desired - partition;
        let updated = status.updated_replicas.unwrap_or(0);
        if updated < expected {
            return Progress::InProgress(format!(
                "{updated} of {expected} partitioned pods have been updated"
            ));
        }
        return Progress::Complete;
    }
    if status.update_revision != status.current_revision {
        let updated = status.updated_replicas.unwrap_or(0);
        return Progress::InProgress(format!(
            "{updated} of {desired} pods have been updated to the new revision"
        ));
    }
    Progress::Complete
}

/// kubectl's `DaemonSetStatusViewer`.
pub fn daemonset_progress(d: &DaemonSet) -> Progress {
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = d.status.as_ref() else {
        return Progress::InProgress("waiting for daemon set spec update to be observed".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Progress::InProgress("waiting for daemon set spec update to be observed".into());
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    if updated < desired {
        return Progress::InProgress(format!(
            "{updated} out of {desired} new pods have been updated"
        ));
    }
    let available = status.number_available.unwrap_or(0);
    if available < desired {
        return Progress::InProgress(format!(
            "{available} of {desired} updated pods are available"
        ));
    }
    Progress::Complete
}

#[cfg(test)]
mod tests;
