//! What the watch keeps of a workload (docs/architecture.md#watch): the slimmed object when it is opted in
//! or has an update in flight, only its metadata otherwise.
//!
//! Input: the object as the API server sends it. Output: [`Watched`], the reflector's item. A k8s-openapi
//! workload is ~2.4 KB before any of its content, whatever is left in it (`spec` and `status` are inline
//! `Option`s of structs of `Option`s), so 9,000 workloads that are not opted in cost 21 MiB as `Deployment`s
//! with no spec and ~4 MiB as their metadata (heap profile in BENCHMARKS.md).

use std::{borrow::Cow, fmt::Debug};

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use kube::{Resource, ResourceExt, api::ObjectMeta};
use serde::{Deserialize, Deserializer};

use super::ManagedKind;
use crate::{annotations::PREFIX, workload::Workload};

/// The reflector's copy of a workload.
#[derive(Debug, Clone)]
pub enum Watched<K> {
    /// As decoded, before [`compact`]: never stored.
    Object(Box<K>),
    /// Opted in or with an update in flight: its metadata and its projection, made once by [`compact`] of the
    /// object slimmed as [`ManagedKind::slim_spec`] does (the images, the status), instead of the object
    /// itself (~2.4 KB, and ~1 KB per container of inline `Option`s).
    Projected {
        /// Its metadata, slimmed.
        metadata: ObjectMeta,
        /// [`ManagedKind::project`] of the slimmed object.
        workload: Box<Workload>,
    },
    /// Any other workload: its name and annotations are all reconcile reads before it forgets it.
    Metadata(ObjectMeta),
}

impl<K: ManagedKind> Watched<K> {
    /// The compact projection, as [`ManagedKind::project`] makes it of the stored object (for a workload
    /// kept as metadata: of an object with no spec and no status, which is what was stored before).
    pub fn project(&self) -> Workload {
        match self {
            Watched::Object(obj) => obj.project(),
            Watched::Projected { workload, .. } => workload.as_ref().clone(),
            Watched::Metadata(meta) => {
                let mut obj = K::default();
                *obj.meta_mut() = meta.clone();
                obj.project()
            }
        }
    }
}

impl<K: ManagedKind> From<K> for Watched<K> {
    fn from(obj: K) -> Self {
        Watched::Object(Box::new(obj))
    }
}

/// Decoded as the workload itself; [`compact`] slims it before the reflector's store takes it.
impl<'de, K: ManagedKind> Deserialize<'de> for Watched<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        K::deserialize(deserializer).map(Watched::from)
    }
}

impl<K: ManagedKind> Resource for Watched<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Watched::Object(obj) => obj.meta(),
            Watched::Projected { metadata, .. } | Watched::Metadata(metadata) => metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Watched::Object(obj) => obj.meta_mut(),
            Watched::Projected { metadata, .. } | Watched::Metadata(metadata) => metadata,
        }
    }
}

/// Drops what the controller never reads, before the object reaches the reflector's store: managedFields,
/// labels and annotations but ours and the few that name a GitOps tool (the 4 KB `last-applied-configuration`
/// among them), all of the spec but the images, and all but the metadata for workloads not opted in.
pub fn compact<K: ManagedKind>(watched: &mut Watched<K>) {
    let meta = watched.meta_mut();
    meta.managed_fields = None;
    meta.owner_references = None;
    meta.finalizers = None;
    // The few keys that name a GitOps tool stay: the `ManagedByGitOps` Event reads them.
    if let Some(labels) = meta.labels.as_mut() {
        labels.retain(|k, _| crate::workload::GITOPS_LABELS.contains(&k.as_str()));
    }
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|k, _| {
            k.starts_with(PREFIX) || crate::workload::GITOPS_ANNOTATIONS.contains(&k.as_str())
        });
    }
    // A workload with an update in flight keeps what its rollout needs even when it was opted out
    // meanwhile: the update still finishes.
    let annotations = watched.annotations();
    let keep = crate::annotations::is_enabled(annotations)
        || annotations.contains_key(crate::annotations::ROLLOUT);
    let Watched::Object(obj) = watched else {
        return;
    };
    *watched = if keep {
        obj.slim_spec();
        let workload = Box::new(obj.project());
        Watched::Projected {
            metadata: std::mem::take(obj.meta_mut()),
            workload,
        }
    } else {
        Watched::Metadata(std::mem::take(obj.meta_mut()))
    };
}

/// Keeps, of a pod template, the containers' names and images (in order: patches address them by index),
/// the pull secrets and the service account.
pub fn slim_template(template: &mut PodTemplateSpec) {
    template.metadata = None;
    let Some(spec) = template.spec.take() else {
        return;
    };
    let slim = |c: Container| Container {
        name: c.name,
        image: c.image,
        ..Container::default()
    };
    template.spec = Some(PodSpec {
        containers: spec.containers.into_iter().map(slim).collect(),
        init_containers: spec
            .init_containers
            .map(|list| list.into_iter().map(slim).collect()),
        image_pull_secrets: spec.image_pull_secrets,
        service_account_name: spec.service_account_name,
        ..PodSpec::default()
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
    use serde_json::json;

    use super::*;

    fn decoded(annotations: serde_json::Value) -> Watched<Deployment> {
        let mut watched: Watched<Deployment> = serde_json::from_value(object(annotations)).unwrap();
        compact(&mut watched);
        watched
    }

    fn object(annotations: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "uid": "u1",
                "resourceVersion": "7",
                "labels": {"app": "web", "argocd.argoproj.io/instance": "shop"},
                "annotations": annotations,
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "serviceAccountName": "web",
                        "imagePullSecrets": [{"name": "pull"}],
                        "containers": [{
                            "name": "app",
                            "image": "registry.example.com/shop/web:1.4.0",
                            "env": [{"name": "A", "value": "a"}],
                        }],
                    },
                },
            },
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2},
        })
    }

    const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

    #[test]
    fn a_workload_not_opted_in_is_kept_as_its_name_and_our_annotations() {
        let watched = decoded(json!({LAST_APPLIED: "{}", "watch-cluster.io/cron": "0 * * * * ?"}));
        let Watched::Metadata(meta) = &watched else {
            panic!("kept whole: {watched:?}");
        };
        assert_eq!(meta.name.as_deref(), Some("web"));
        assert_eq!(meta.uid.as_deref(), Some("u1"));
        assert_eq!(meta.resource_version.as_deref(), Some("7"));
        assert_eq!(
            meta.annotations,
            Some(BTreeMap::from([(
                "watch-cluster.io/cron".to_owned(),
                "0 * * * * ?".to_owned()
            )]))
        );
        assert_eq!(meta.managed_fields, None);
        // What reconcile would read of it is what it read of the object without spec and status.
        let bare = Deployment {
            metadata: meta.clone(),
            ..Deployment::default()
        };
        assert_eq!(watched.project(), bare.project());
    }

    #[test]
    fn an_opted_in_workload_is_kept_as_its_metadata_and_the_projection_of_its_slimmed_object() {
        let annotations = json!({LAST_APPLIED: "{}", "watch-cluster.io/enabled": "true"});
        let watched = decoded(annotations.clone());
        let Watched::Projected { metadata, workload } = &watched else {
            panic!("not projected: {watched:?}");
        };
        assert_eq!(
            metadata.annotations,
            Some(BTreeMap::from([(
                "watch-cluster.io/enabled".to_owned(),
                "true".to_owned()
            )]))
        );
        assert_eq!(metadata.managed_fields, None);
        let mut obj: Deployment = serde_json::from_value(object(annotations)).unwrap();
        obj.metadata = metadata.clone();
        obj.slim_spec();
        assert_eq!(**workload, obj.project());
        assert_eq!(watched.project(), obj.project());
        assert_eq!(workload.containers.len(), 1);
        assert_eq!(workload.service_account, "web");
        assert_eq!(workload.gitops, Some(crate::workload::GitOps::ArgoCd));
        assert_eq!(workload.progress, crate::workload::Progress::Complete);
    }

    #[test]
    fn slimming_keeps_the_images_and_status_and_drops_the_rest() {
        let annotations = json!({LAST_APPLIED: "{}", "watch-cluster.io/enabled": "true"});
        let mut obj: Deployment = serde_json::from_value(object(annotations)).unwrap();
        let mut watched = Watched::from(obj.clone());
        compact(&mut watched);
        obj.metadata = watched.meta().clone();
        obj.slim_spec();
        assert_eq!(
            obj.metadata.annotations,
            Some(BTreeMap::from([(
                "watch-cluster.io/enabled".to_owned(),
                "true".to_owned()
            )]))
        );
        assert_eq!(
            obj.metadata.labels,
            Some(BTreeMap::from([(
                "argocd.argoproj.io/instance".to_owned(),
                "shop".to_owned()
            )]))
        );
        let spec: &DeploymentSpec = obj.spec.as_ref().unwrap();
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(spec.template.metadata, None);
        assert_eq!(pod.containers[0].env, None);
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("registry.example.com/shop/web:1.4.0")
        );
        assert_eq!(pod.service_account_name.as_deref(), Some("web"));
        assert_eq!(
            obj.status,
            Some(DeploymentStatus {
                observed_generation: Some(1),
                replicas: Some(2),
                updated_replicas: Some(2),
                available_replicas: Some(2),
                ..DeploymentStatus::default()
            })
        );
    }

    #[test]
    fn a_workload_opted_out_with_an_update_in_flight_keeps_its_projection() {
        let watched = decoded(json!({"watch-cluster.io/rollout": "{}"}));
        assert!(matches!(watched, Watched::Projected { .. }));
    }
}
