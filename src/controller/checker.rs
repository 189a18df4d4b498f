//! One check of one workload: read → guard → resolve → decide → update (SPEC §5).
//!
//! Input: the workload key and its validated settings. Output: at most one guarded JSON Patch, the Events
//! and webhooks that describe it, and a rollout observer. A 409 or a failed `test` (422) means someone
//! changed the workload between read and write: read and decide again, at most [`ATTEMPTS`] times, with
//! no webhook and no Warning. Any other refusal is reported (`UpdateFailed`, `IMAGE_ROLLOUT_FAILED`).

use std::{collections::BTreeMap, sync::Arc};

use chrono::Utc;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::{Api, api::ListParams};
use sha2::{Digest, Sha256};

use super::{Context, ManagedKind, WorkloadKey, notify_ref, reference_of};
use crate::{
    annotations::{self, RolloutRecord, Settings},
    image::ImageRef,
    notify::{Event, Notification, events::Reason},
    registry::credentials::DockerConfig,
    resolve::{self, Resolution},
    rollout,
    strategy::{Decision, Quarantine, Strategy},
    update::{self, ContainerChange, UpdateError, patch, per_container},
    workload::{Container, Progress, Workload},
};

/// Read-decide-write attempts before a check gives up on a workload that keeps changing.
pub const ATTEMPTS: usize = 3;

/// Why a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Its cron fired.
    Schedule,
    /// `watch-cluster.io/check-now`.
    Manual,
}

/// What a check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The workload was patched: `from -> to`.
    Updated(String),
    /// Nothing newer: the reasons per container.
    NoUpdate(String),
    /// Not checked now (paused, mid-rollout, `OnDelete`...).
    Skipped(String),
    /// `DRY_RUN`: what would have changed.
    DryRun(String),
    /// The check failed (registry, invalid annotation, refused patch).
    Failed(String),
}

/// Checks one workload and records what happened.
#[tracing::instrument(skip_all, fields(kind = %key.kind, namespace = %key.namespace, name = %key.name, trigger = ?trigger))]
pub async fn check<K: ManagedKind>(ctx: &Arc<Context>, key: &WorkloadKey, settings: &Settings, trigger: Trigger) {
    let reference = reference_of::<K>(key, None);
    if trigger == Trigger::Manual {
        ctx.events
            .publish(&reference, Reason::ManualCheckRequested, "check requested with watch-cluster.io/check-now".into())
            .await;
    }
    let outcome = run::<K>(ctx, key, settings).await;
    tracing::info!(outcome = ?outcome, "check finished");
    if trigger == Trigger::Manual {
        let (reason, note) = match &outcome {
            Outcome::Updated(change) => (Reason::ManualCheckUpdated, change.clone()),
            Outcome::Failed(error) => (Reason::ManualCheckFailed, error.clone()),
            Outcome::NoUpdate(note) | Outcome::Skipped(note) | Outcome::DryRun(note) => {
                (Reason::ManualCheckNoUpdate, note.clone())
            }
        };
        ctx.events.publish(&reference, reason, note).await;
        if !matches!(outcome, Outcome::Updated(_)) {
            remove_check_now::<K>(ctx, key).await;
        }
    }
}

async fn run<K: ManagedKind>(ctx: &Arc<Context>, key: &WorkloadKey, settings: &Settings) -> Outcome {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.namespace);
    for _ in 0..ATTEMPTS {
        let obj = match api.get_opt(&key.name).await {
            Ok(Some(obj)) => obj,
            Ok(None) => return Outcome::Skipped("the workload no longer exists".into()),
            Err(e) => return Outcome::Failed(format!("failed to read the workload: {e}")),
        };
        let workload = obj.project();
        if let Some(reason) = guard::<K>(ctx, key, &workload).await {
            return Outcome::Skipped(reason);
        }
        let plan = match plan::<K>(ctx, key, &workload, settings).await {
            Ok(plan) => plan,
            Err(outcome) => return outcome,
        };
        if plan.changes.is_empty() {
            return Outcome::NoUpdate(plan.notes.join("; "));
        }
        let from = per_container(plan.changes.iter().map(|c| (c.container.name.as_str(), c.from_image.as_str())));
        let to = per_container(plan.changes.iter().map(|c| (c.container.name.as_str(), c.to_image.as_str())));
        let change = format!("{from} -> {to}");
        let reference = reference_of::<K>(key, Some(workload.uid.clone()));
        if ctx.config.dry_run {
            ctx.events
                .publish_once(&reference, Reason::DryRunWouldUpdate, change.clone())
                .await;
            return Outcome::DryRun(change);
        }
        let record = new_record(&workload, &plan.changes);
        let now = record.started_at;
        match update::apply(&api, &key.name, patch::update_patch(&workload, &plan.changes, &record, now)).await {
            Ok(_) => {
                tracing::info!(%change, "image updated");
                ctx.events.publish(&reference, Reason::ImageUpdated, change.clone()).await;
                ctx.notifier.try_notify(&Notification::new(
                    notify_ref(key),
                    to,
                    Event::ImageRolloutStarted { previous_image: from },
                    now,
                    &record.id,
                ));
                rollout::ensure_observed::<K>(ctx, key);
                return Outcome::Updated(change);
            }
            Err(UpdateError::Conflict { .. }) => {
                tracing::info!("the workload changed while deciding; reading it again");
                continue;
            }
            Err(error @ UpdateError::Refused { .. }) => {
                let message = error.to_string();
                tracing::warn!(%message, "update refused");
                ctx.events.publish(&reference, Reason::UpdateFailed, message.clone()).await;
                let delivery = ctx.notifier.deliver(&Notification::new(
                    notify_ref(key),
                    to,
                    Event::ImageRolloutFailed { error: message.clone(), rolled_back_to: None },
                    Utc::now(),
                    &record.id,
                ));
                tokio::spawn(delivery);
                return Outcome::Failed(message);
            }
        }
    }
    Outcome::Skipped(format!("the workload kept changing during {ATTEMPTS} attempts; next check on schedule"))
}

/// Reasons not to touch the workload now (SPEC §5).
async fn guard<K: ManagedKind>(ctx: &Context, key: &WorkloadKey, workload: &Workload) -> Option<String> {
    if workload.annotations.contains_key(annotations::ROLLOUT) {
        return Some("an update is still being rolled out".into());
    }
    if workload.paused {
        return Some("the workload is paused".into());
    }
    if workload.on_delete {
        let note = format!(
            "{} uses the OnDelete update strategy: watch-cluster does not manage it (use RollingUpdate)",
            key.kind
        );
        ctx.events
            .publish_once(&reference_of::<K>(key, Some(workload.uid.clone())), Reason::UnsupportedUpdateStrategy, note.clone())
            .await;
        return Some(note);
    }
    if let Progress::InProgress(what) | Progress::Failed(what) = &workload.progress {
        return Some(format!("a rollout is in progress or stuck: {what}"));
    }
    None
}

/// The decided changes of one workload, and a note per container kept.
struct Plan {
    changes: Vec<ContainerChange>,
    notes: Vec<String>,
}

async fn plan<K: ManagedKind>(
    ctx: &Context,
    key: &WorkloadKey,
    workload: &Workload,
    settings: &Settings,
) -> Result<Plan, Outcome> {
    let reference = reference_of::<K>(key, Some(workload.uid.clone()));
    let managed = managed_containers(workload, settings).map_err(|invalid| Outcome::Failed(invalid.to_string()));
    let managed = match managed {
        Ok(managed) => managed,
        Err(outcome) => {
            if let Outcome::Failed(note) = &outcome {
                tracing::warn!("{note}");
                ctx.events.publish_once(&reference, Reason::InvalidAnnotation, note.clone()).await;
            }
            return Err(outcome);
        }
    };
    if !managed.skipped.is_empty() {
        ctx.events
            .publish_once(&reference, Reason::ContainersSkipped, managed.skipped.join("; "))
            .await;
    }
    let quarantine = workload
        .annotations
        .get(annotations::QUARANTINE)
        .and_then(|v| Quarantine::from_annotation(v).ok())
        .unwrap_or_default();
    if let Some((container, ours, theirs)) = reverted_update(workload, &quarantine) {
        let note = format!(
            "container {container}: another writer set the image back to {theirs}; {ours} is not applied \
             again until a newer image appears"
        );
        tracing::warn!("{note}");
        ctx.events.publish_once(&reference, Reason::UpdateReverted, note).await;
        ctx.with_memory(key, |m| m.reverted = Some(ours));
    }
    let configs = pull_secrets(ctx, workload).await;
    let mut plan = Plan { changes: Vec::new(), notes: Vec::new() };
    let mut errors = Vec::new();
    for (container, image) in managed.containers {
        let credential = configs.iter().find_map(|c| c.credential_for(image.registry()));
        let current_digest = if settings.strategy == Strategy::Latest && image.digest().is_none() {
            running_digest(ctx, workload, &container.name).await
        } else {
            None
        };
        let resolution = resolve::resolve(
            &ctx.registry,
            settings.strategy,
            &container.name,
            &image,
            credential.as_ref(),
            current_digest.as_deref(),
            &quarantine,
        )
        .await;
        match resolution {
            Ok(resolution) => apply_resolution(ctx, key, &container, &image, resolution, current_digest, &mut plan),
            Err(error) => {
                let note = format!("container {}: {error}", container.name);
                tracing::warn!(image = %image, "{note}");
                errors.push(note);
            }
        }
    }
    if errors.is_empty() {
        ctx.events.clear(&reference, Reason::RegistryError);
    } else {
        ctx.events.publish_once(&reference, Reason::RegistryError, errors.join("; ")).await;
        if plan.changes.is_empty() {
            return Err(Outcome::Failed(errors.join("; ")));
        }
    }
    Ok(plan)
}

fn apply_resolution(
    ctx: &Context,
    key: &WorkloadKey,
    container: &Container,
    image: &ImageRef,
    resolution: Resolution,
    current_digest: Option<String>,
    plan: &mut Plan,
) {
    let Some(to_image) = resolution.decision.image_to_write(image) else {
        plan.notes.push(format!("{}: {}", container.name, resolution.decision));
        return;
    };
    let Decision::Update { digest, .. } = &resolution.decision else {
        return;
    };
    let reverted = ctx.with_memory(key, |m| m.reverted.as_deref() == Some(to_image.as_str()));
    if reverted {
        plan.notes.push(format!("{}: {to_image} was reverted by another writer; not applied again", container.name));
        return;
    }
    tracing::info!(container = %container.name, image = %image, to = %to_image, "{}", resolution.decision);
    plan.changes.push(ContainerChange {
        container: container.clone(),
        from_image: container.image.clone(),
        to_image,
        from_digest: image.digest().map(str::to_owned).or(current_digest),
        to_digest: digest.clone(),
    });
}

/// Our last update (`change` annotation) whose image another writer replaced with the previous one, e.g.
/// GitOps self-heal (SPEC §5). A rollback of ours looks the same but quarantines the image, so it is not
/// mistaken for another writer. Returns (container, our image, their image).
fn reverted_update(workload: &Workload, quarantine: &Quarantine) -> Option<(String, String, String)> {
    let change = workload.annotations.get(annotations::CHANGE)?;
    let (from, to) = change.split_once(" -> ")?;
    let pairs = |side: &str| -> Vec<(Option<String>, String)> {
        if side.contains('=') {
            side.split(',')
                .filter_map(|p| p.split_once('='))
                .map(|(n, i)| (Some(n.to_owned()), i.to_owned()))
                .collect()
        } else {
            vec![(None, side.to_owned())]
        }
    };
    let (from, to) = (pairs(from), pairs(to));
    for ((name, previous), (_, ours)) in from.iter().zip(to.iter()) {
        let container = match name {
            Some(name) => workload.container(name),
            None => workload.containers.iter().find(|c| c.image == *previous || c.image == *ours),
        }?;
        let rolled_back_by_us = quarantine.entries().iter().any(|e| e.image == *ours);
        if container.image == *previous && previous != ours && !rolled_back_by_us {
            return Some((container.name.clone(), ours.clone(), previous.clone()));
        }
    }
    None
}

/// The containers a check manages, and a note per container skipped.
struct Managed {
    containers: Vec<(Container, ImageRef)>,
    skipped: Vec<String>,
}

fn managed_containers(workload: &Workload, settings: &Settings) -> Result<Managed, annotations::InvalidAnnotation> {
    let mut managed = Managed { containers: Vec::new(), skipped: Vec::new() };
    let invalid = |problem: String| annotations::InvalidAnnotation {
        annotation: annotations::CONTAINERS,
        value: settings.containers.clone().unwrap_or_default().join(","),
        problem,
        example: workload.containers.iter().filter(|c| !c.init).map(|c| c.name.clone()).collect::<Vec<_>>().join(","),
    };
    match &settings.containers {
        Some(names) => {
            for name in names {
                let container = workload
                    .container(name)
                    .ok_or_else(|| invalid(format!("container {name:?} does not exist")))?;
                let image = ImageRef::parse(&container.image)
                    .map_err(|e| invalid(format!("container {name:?}: {e}")))?;
                settings
                    .strategy
                    .check_image(&image)
                    .map_err(|e| invalid(format!("container {name:?}: {e}")))?;
                managed.containers.push((container.clone(), image));
            }
        }
        None => {
            for container in workload.containers.iter().filter(|c| !c.init) {
                let checked = ImageRef::parse(&container.image)
                    .map_err(|e| e.to_string())
                    .and_then(|image| settings.strategy.check_image(&image).map(|_| ()).map_err(|e| e.to_string()).map(|()| image));
                match checked {
                    Ok(image) => managed.containers.push((container.clone(), image)),
                    Err(why) => managed.skipped.push(format!("{}: {why}", container.name)),
                }
            }
        }
    }
    Ok(managed)
}

/// Credentials of the workload's `imagePullSecrets` and its ServiceAccount's, read by name (`get` only).
async fn pull_secrets(ctx: &Context, workload: &Workload) -> Vec<DockerConfig> {
    let mut names = workload.image_pull_secrets.clone();
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &workload.namespace);
    match accounts.get_opt(&workload.service_account).await {
        Ok(Some(sa)) => names.extend(sa.image_pull_secrets.into_iter().flatten().map(|r| r.name).filter(|n| !n.is_empty())),
        Ok(None) => {}
        Err(error) => tracing::warn!(service_account = %workload.service_account, %error, "failed to read the service account's imagePullSecrets"),
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &workload.namespace);
    let mut configs = Vec::new();
    for name in names {
        match secrets.get_opt(&name).await {
            Ok(Some(secret)) => match DockerConfig::from_secret(&secret) {
                Ok(config) => configs.push(config),
                Err(error) => tracing::warn!(secret = %name, %error, "imagePullSecret is not usable"),
            },
            Ok(None) => tracing::warn!(secret = %name, "imagePullSecret does not exist"),
            Err(error) => tracing::warn!(secret = %name, %error, "failed to read an imagePullSecret"),
        }
    }
    configs
}

/// The digest every ready pod reports for `container`, if they agree (SPEC §5 `latest`).
async fn running_digest(ctx: &Context, workload: &Workload, container: &str) -> Option<String> {
    if workload.selector.is_empty() {
        return None;
    }
    let selector = workload.selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &workload.namespace);
    let list = pods.list(&ListParams::default().labels(&selector)).await.ok()?;
    let mut digest: Option<String> = None;
    for pod in list.items {
        let status = pod.status.unwrap_or_default();
        let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready {
            continue;
        }
        let id = status
            .container_statuses
            .iter()
            .flatten()
            .find(|s| s.name == container)
            .map(|s| s.image_id.clone())?;
        let found = id.rsplit_once('@').map(|(_, d)| d.to_owned())?;
        match &digest {
            None => digest = Some(found),
            Some(d) if *d == found => {}
            Some(_) => return None,
        }
    }
    digest
}

/// The image(s) a payload names for a workload: the managed containers' images.
pub fn workload_image(workload: &Workload, settings: &Settings) -> String {
    let containers: Vec<&Container> = match &settings.containers {
        Some(names) => workload.containers.iter().filter(|c| names.contains(&c.name)).collect(),
        None => workload.containers.iter().filter(|c| !c.init).collect(),
    };
    per_container(containers.iter().map(|c| (c.name.as_str(), c.image.as_str())))
}

fn new_record(workload: &Workload, changes: &[ContainerChange]) -> RolloutRecord {
    let started_at = Utc::now();
    let mut hasher = Sha256::new();
    for part in [workload.uid.as_str(), workload.resource_version.as_str()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for change in changes {
        hasher.update(change.to_image.as_bytes());
        hasher.update([0]);
    }
    hasher.update(started_at.timestamp_millis().to_le_bytes());
    let mut id = hex::encode(hasher.finalize());
    id.truncate(16);
    let from: BTreeMap<String, String> = changes.iter().map(|c| (c.container.name.clone(), c.from_image.clone())).collect();
    let to: BTreeMap<String, String> = changes.iter().map(|c| (c.container.name.clone(), c.to_image.clone())).collect();
    RolloutRecord { id, from, to, started_at, outcome: None }
}

async fn remove_check_now<K: ManagedKind>(ctx: &Context, key: &WorkloadKey) {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let patch = json_patch::Patch(vec![patch::remove_annotation(annotations::CHECK_NOW)]);
    match update::apply(&api, &key.name, patch).await {
        // 422: already removed (the update patch removes it too).
        Ok(_) | Err(UpdateError::Conflict { .. }) => {}
        Err(error) => tracing::warn!(%error, "failed to remove the check-now annotation"),
    }
}
