//! Frees a StatefulSet from the pods a rollback left behind: lists its pods, deletes what
//! [`crate::observe::release::stuck_pods`] names, each guarded by its uid, with one Event each.

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, ResourceExt as _,
    api::{DeleteParams, ListParams, Preconditions},
};

use super::{Context, WorkloadKey};
use crate::{
    annotations, notify::events::Reason, observe::release::stuck_pods, strategy::Quarantine,
    workload::Workload,
};

/// Deletes the pods [`stuck_pods`] names, each guarded by its uid, with one Event each.
#[tracing::instrument(skip_all, fields(kind = %key.kind, namespace = %key.namespace, name = %key.name))]
pub async fn release(
    ctx: &Context,
    key: &WorkloadKey,
    workload: &Workload,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
) {
    if ctx.config.dry_run {
        return;
    }
    let Some(selector) = workload.label_selector() else {
        return;
    };
    let Some(quarantine) = workload
        .annotations
        .get(annotations::QUARANTINE)
        .and_then(|v| Quarantine::from_annotation(v).ok())
    else {
        return;
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let pods = match api.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list.items,
        Err(error) => {
            tracing::warn!(%error, "cannot list the StatefulSet's pods to release them; retrying on the next change");
            return;
        }
    };
    for (name, image) in stuck_pods(workload, &quarantine, &pods) {
        let uid = pods
            .iter()
            .find(|p| p.name_any() == name)
            .and_then(|p| p.uid());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(pod = %name, %image, "deleted a pod stuck on a quarantined image");
                ctx.events
                    .publish(
                        reference,
                        Reason::StuckPodDeleted,
                        format!(
                            "deleted pod {name}: not Ready on quarantined {image}; the StatefulSet recreates it \
                             from the restored template"
                        ),
                    )
                    .await;
            }
            // Gone already, or replaced by a new pod of the same name: nothing left to free.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(error) => {
                tracing::warn!(pod = %name, %error, "failed to delete a pod stuck on a quarantined image")
            }
        }
    }
}
