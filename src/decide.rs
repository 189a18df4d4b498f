//! Decide: which of a workload's containers move to which image, and why the others do not (docs/guarantees.md#updates).
//!
//! Input: the workload projection, its settings, the cluster reads ([`ClusterReads`]: `imagePullSecrets` by
//! name, shared by the checks of a window, and, for `latest`, the digests the ready pods run) and the
//! registry client. Output: [`Findings`]: the changes to apply and everything worth telling the user
//! (skipped containers, registry errors, an update another writer reverted). No Events and no writes here: the checker records the findings, and the
//! `plan` command prints them, from the same code.

use std::sync::Arc;

mod reads;

pub use reads::ClusterReads;

use chrono::{DateTime, Utc};

use crate::{
    annotations::{self, InvalidAnnotation, Settings},
    gate::{Pending, PendingError},
    image::ImageRef,
    registry::{Credential, RegistryClient, RegistryError, credentials::DockerConfig},
    resolve::{self, CandidateGates, Resolution, Target},
    strategy::{ClusterQuarantine, Decision, Quarantine, Strategy},
    update::{ContainerChange, per_container},
    verify::SignaturePolicy,
    workload::{Container, Workload},
};

/// An update of ours that another writer undid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revert {
    /// The container.
    pub container: String,
    /// The image we wrote.
    pub ours: String,
    /// The image they put back.
    pub theirs: String,
}

/// A registry lookup that failed for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryFailure {
    /// The container.
    pub container: String,
    /// The bounded category (`NotFound`, `RateLimited`…): what makes two failures "the same error".
    pub reason: &'static str,
    /// The full message for people.
    pub message: String,
}

impl std::fmt::Display for RegistryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "container {}: {}", self.container, self.message)
    }
}

/// A container that keeps its image, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The container.
    pub container: String,
    /// Why.
    pub why: KeptBecause,
}

/// Why a container keeps its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptBecause {
    /// The strategy found nothing to move to.
    Strategy(crate::strategy::KeepReason),
    /// The image it would move to was reverted by another writer and is not applied again.
    Reverted {
        /// That image.
        image: String,
    },
    /// A gate annotation is invalid: no update starts until it is fixed (the error is in
    /// [`Settings::gate_errors`]).
    InvalidGate {
        /// The image it would otherwise move to.
        image: String,
        /// The invalid annotations' keys.
        annotations: Vec<&'static str>,
    },
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.why {
            KeptBecause::Strategy(reason) => write!(f, "{}: {reason}", self.container),
            KeptBecause::Reverted { image } => write!(
                f,
                "{}: {image} was reverted by another writer; not applied again",
                self.container
            ),
            KeptBecause::InvalidGate { image, annotations } => write!(
                f,
                "{}: {image} is not applied while {} is invalid",
                self.container,
                annotations.join(", ")
            ),
        }
    }
}

/// What deciding found for one workload.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Images to write.
    pub changes: Vec<ContainerChange>,
    /// Why each other managed container keeps its image.
    pub kept: Vec<Kept>,
    /// Containers the strategy cannot handle, with the reason (only when `containers` is not set).
    pub skipped: Vec<String>,
    /// Registry failures, one per container.
    pub registry_errors: Vec<RegistryFailure>,
    /// Our last update, undone by another writer.
    pub reverted: Option<Revert>,
    /// The new value of the `pending` annotation, when it differs from the current one: `Some("")` means
    /// remove the annotation. `None`: leave it as it is.
    pub pending: Option<String>,
    /// The current `pending` annotation could not be read; it is rewritten from scratch (which can only
    /// make updates later, never earlier). Report it.
    pub pending_error: Option<String>,
    /// Containers whose best candidate waits for `min-age`.
    pub held: Vec<HeldByAge>,
    /// `imagePullSecrets` entries naming a Secret that does not exist (skipped; report them).
    pub missing_secrets: Vec<String>,
    /// Candidates passed over because their signature was rejected (docs/signatures.md).
    pub signature_rejections: Vec<SignatureRejection>,
    /// The signature each verified change was taken with, by container.
    pub signed: Vec<(String, crate::verify::Verified)>,
}

impl Findings {
    /// `; container app: signature verified with release.pub (SHA256:…) (cosign signature tag)` for each
    /// change taken with a verified signature: the key is named in the update's Event (docs/signatures.md).
    pub fn signed_note(&self) -> String {
        self.signed
            .iter()
            .filter(|(container, _)| self.changes.iter().any(|c| &c.container.name == container))
            .map(|(container, v)| {
                format!(
                    "; container {container}: signature verified with {} ({})",
                    v.key, v.layout
                )
            })
            .collect()
    }
}

/// A candidate of one container whose signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRejection {
    /// The container.
    pub container: String,
    /// The candidate, pinned: `repo:tag@sha256:…`.
    pub image: String,
    /// Why.
    pub rejection: crate::verify::Rejection,
}

impl std::fmt::Display for SignatureRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "container {}: {} not taken, signature rejected ({}): {}",
            self.container,
            self.image,
            self.rejection.kind.as_str(),
            self.rejection.message
        )
    }
}

/// A container whose best candidate waits for `min-age` (a lower one may still be taken meanwhile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldByAge {
    /// The container.
    pub container: String,
    /// The best waiting candidate, pinned: `repo:tag@sha256:…`.
    pub image: String,
    /// When the controller first saw it.
    pub first_seen: DateTime<Utc>,
    /// When it becomes old enough.
    pub ripens_at: DateTime<Utc>,
    /// The earliest time any waiting candidate of this container ripens: when to check again.
    pub recheck_at: DateTime<Utc>,
}

impl std::fmt::Display for HeldByAge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} held by min-age until {}",
            self.container,
            self.image,
            self.ripens_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

/// As a reason an update waits (`admit`'s vocabulary, for Events, logs and `plan`).
impl From<&HeldByAge> for crate::admit::Held {
    fn from(held: &HeldByAge) -> Self {
        crate::admit::Held::MinAge {
            container: held.container.clone(),
            image: held.image.clone(),
            ripens_at: held.ripens_at,
            recheck_at: held.recheck_at,
        }
    }
}

impl Findings {
    /// The `pending` change as a JSON merge-patch value for `metadata.annotations`: `null` removes the
    /// annotation; `None` when nothing changes.
    pub fn pending_merge_value(&self) -> Option<serde_json::Value> {
        self.pending.as_ref().map(|value| {
            if value.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::Value::String(value.clone())
            }
        })
    }

    /// When a `min-age` hold next expires, to check again then.
    pub fn recheck_at(&self) -> Option<DateTime<Utc>> {
        self.held.iter().map(|h| h.recheck_at).min()
    }
}

/// Why nothing can be decided for a workload.
#[derive(Debug, thiserror::Error)]
pub enum Undecidable {
    /// A setting annotation cannot be used.
    #[error(transparent)]
    Annotation(#[from] InvalidAnnotation),
    /// The `quarantine` annotation cannot be read: treating it as empty could re-apply an image that was
    /// rolled back, so no update is decided until it is fixed or removed.
    #[error(
        "{source}; no update is made until it is fixed or removed (kubectl annotate … watch-cluster.io/quarantine-)"
    )]
    Quarantine {
        /// The parse error.
        #[source]
        source: crate::strategy::QuarantineError,
    },
    /// The cluster quarantine (`QUARANTINE_SCOPE=cluster`) cannot be read: any of its digests could be
    /// the candidate, so no update is decided until it can.
    #[error("{0}; no update is made until it can be read")]
    ClusterQuarantine(#[from] crate::quarantine_store::StoreError),
}

/// Decides for every managed container of `workload`.
///
/// `known_revert` is an image another writer reverted earlier: it is not proposed again. `cluster` holds
/// the digests quarantined for every workload (empty unless `QUARANTINE_SCOPE=cluster`). `signatures`
/// says which containers' candidates must have a verified signature.
pub async fn decide(
    reads: &ClusterReads,
    registry: &RegistryClient,
    workload: &Workload,
    settings: &Settings,
    known_revert: Option<&str>,
    cluster: &Arc<ClusterQuarantine>,
    signatures: &SignaturePolicy,
) -> Result<Findings, Undecidable> {
    let managed = managed_containers(workload, settings)?;
    let quarantine = match workload.annotations.get(annotations::QUARANTINE) {
        Some(value) => Quarantine::from_annotation(value)
            .map_err(|source| Undecidable::Quarantine { source })?,
        None => Quarantine::default(),
    }
    .with_cluster(cluster.clone());
    let mut findings = Findings {
        skipped: managed.skipped,
        reverted: reverted_update(workload, &quarantine),
        ..Findings::default()
    };
    let current_pending = workload.annotations.get(annotations::PENDING);
    let pending = match current_pending.map(|v| Pending::from_annotation(v)) {
        None => Pending::default(),
        Some(Ok(pending)) => pending,
        Some(Err(error)) => {
            tracing::warn!(%error, "the pending annotation is unreadable: min-age starts over");
            findings.pending_error = Some(error_chain(&error));
            Pending::default()
        }
    };
    let now = Utc::now();
    // `check-now: force` skips min-age, and an invalid min-age leaves the ages as they are.
    let min_age = settings.gates.min_age.filter(|_| !settings.force);
    let keep_pending = settings.force
        || settings
            .gate_errors
            .iter()
            .any(|e| e.annotation == annotations::MIN_AGE);
    let mut new_pending = Pending::default();
    let revert = findings.reverted.as_ref().map(|r| r.ours.clone());
    let revert = revert.as_deref().or(known_revert);
    let secrets = reads.pull_secrets(workload).await;
    findings.missing_secrets = secrets.missing;
    for (container, image) in managed.containers {
        let chosen = choose_credential(
            registry,
            &workload.namespace,
            &secrets.found,
            image.registry(),
        )
        .await;
        let (credential, secret) = match chosen {
            Ok(chosen) => chosen,
            Err(error) => {
                new_pending.set(&container.name, pending.entries(&container.name).to_vec());
                push_failure(
                    &mut findings,
                    &container.name,
                    &image,
                    error.reason(),
                    &error,
                );
                continue;
            }
        };
        let current_digest = if settings.strategy == Strategy::Latest && image.digest().is_none() {
            reads.running_digest(workload, &container.name).await
        } else {
            None
        };
        let target = Target {
            container: &container.name,
            image: &image,
            credential: credential.as_ref(),
            current_digest: current_digest.as_deref(),
        };
        let gates = CandidateGates {
            tag_filter: settings.gates.tag_filter.as_ref(),
            skip: &settings.gates.skip,
            min_age,
            pending: pending.entries(&container.name),
            now,
        };
        let verifier = signatures.verifier_for(settings.gates.verify, &image);
        let resolution = resolve::resolve_signed(
            registry,
            settings.strategy,
            target,
            &quarantine,
            gates,
            verifier,
        )
        .await
        .map_err(|error| match error {
            resolve::ResolveError::Registry(e) => {
                resolve::ResolveError::Registry(name_refused_secret(e, secret.as_deref()))
            }
            other => other,
        });
        match resolution {
            Ok(mut resolution) => {
                if let Some(verified) = resolution.signatures.verified.take() {
                    findings.signed.push((container.name.clone(), verified));
                }
                findings.signature_rejections.extend(
                    std::mem::take(&mut resolution.signatures.rejected)
                        .into_iter()
                        .map(|r| SignatureRejection {
                            container: container.name.clone(),
                            image: r.image,
                            rejection: r.rejection,
                        }),
                );
                if let Some(age) = resolution.age.take() {
                    note_age(&container.name, &age, &mut findings);
                    new_pending.set(&container.name, age.pending);
                }
                apply_resolution(
                    &container,
                    &image,
                    resolution,
                    current_digest,
                    revert,
                    &mut findings,
                );
            }
            Err(error) => {
                // A registry failure must not reset the ages of this container's candidates.
                new_pending.set(&container.name, pending.entries(&container.name).to_vec());
                push_failure(
                    &mut findings,
                    &container.name,
                    &image,
                    error.reason(),
                    &error,
                );
            }
        }
    }
    if !keep_pending {
        findings.pending = pending_change(current_pending.map(String::as_str), &new_pending);
    }
    if !settings.gate_errors.is_empty() {
        hold_for_invalid_gates(settings, &mut findings);
    }
    Ok(findings)
}

fn push_failure(
    findings: &mut Findings,
    container: &str,
    image: &ImageRef,
    reason: &'static str,
    error: &dyn std::fmt::Display,
) {
    let failure = RegistryFailure {
        container: container.to_owned(),
        reason,
        message: error.to_string(),
    };
    tracing::warn!(image = %image, reason = failure.reason, "{failure}");
    findings.registry_errors.push(failure);
}

/// The credential for `registry` and the Secret it came from (docs/cloud-registries.md): a matching pull
/// secret wins; without one, the controller's cloud identity when enabled and allowed in `namespace`;
/// otherwise anonymous.
async fn choose_credential(
    registry: &RegistryClient,
    namespace: &str,
    secrets: &[(String, DockerConfig)],
    host: &str,
) -> Result<(Option<Credential>, Option<String>), RegistryError> {
    let from_secret = secrets.iter().find_map(|(name, config)| {
        config
            .credential_for(host)
            .map(|c| (c.clone(), name.clone()))
    });
    if let Some((credential, secret)) = from_secret {
        return Ok((Some(credential), Some(secret)));
    }
    match registry.cloud_credential(namespace, host).await {
        Some(Ok(credential)) => Ok((Some(credential), None)),
        Some(Err(error)) => Err(error),
        None => Ok((None, None)),
    }
}

/// A registry that refuses a pull secret's credentials is reported naming the Secret; no other credential
/// (cloud identity, anonymous) is tried, so a wrong secret is fixed rather than silently bypassed.
fn name_refused_secret(error: RegistryError, secret: Option<&str>) -> RegistryError {
    match (error, secret) {
        (RegistryError::Unauthorized { target, detail }, Some(secret)) => {
            RegistryError::SecretRefused {
                target,
                secret: format!("Secret {secret}"),
                detail,
            }
        }
        (error, _) => error,
    }
}

/// The new `pending` value when it differs (by content, not spelling) from the current one.
fn pending_change(current: Option<&str>, new: &Pending) -> Option<String> {
    let unchanged = match current {
        None => new.is_empty(),
        Some(value) => Pending::from_annotation(value).is_ok_and(|p| p == *new),
    };
    (!unchanged).then(|| new.to_annotation())
}

fn note_age(container: &str, age: &resolve::AgeOutcome, findings: &mut Findings) {
    let (Some(best), Some(recheck_at)) =
        (age.held.first(), age.held.iter().map(|h| h.ripens_at).min())
    else {
        return;
    };
    findings.held.push(HeldByAge {
        container: container.to_owned(),
        image: best.image.clone(),
        first_seen: best.first_seen,
        ripens_at: best.ripens_at,
        recheck_at,
    });
}

/// No update starts while a gate annotation is invalid (docs/annotations.md#invalid-values): the changes
/// found are reported as kept.
fn hold_for_invalid_gates(settings: &Settings, findings: &mut Findings) {
    let annotations: Vec<&'static str> =
        settings.gate_errors.iter().map(|e| e.annotation).collect();
    for change in findings.changes.drain(..) {
        findings.kept.push(Kept {
            container: change.container.name,
            why: KeptBecause::InvalidGate {
                image: change.to_image,
                annotations: annotations.clone(),
            },
        });
    }
}

fn error_chain(error: &PendingError) -> String {
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

fn apply_resolution(
    container: &Container,
    image: &ImageRef,
    resolution: Resolution,
    current_digest: Option<String>,
    reverted: Option<&str>,
    plan: &mut Findings,
) {
    let (to_image, digest) = match &resolution.decision {
        Decision::Keep(reason) => {
            plan.kept.push(Kept {
                container: container.name.clone(),
                why: KeptBecause::Strategy(reason.clone()),
            });
            return;
        }
        Decision::Update { tag, digest, .. } => (image.with_tag_and_digest(tag, digest), digest),
    };
    if reverted == Some(to_image.as_str()) {
        plan.kept.push(Kept {
            container: container.name.clone(),
            why: KeptBecause::Reverted { image: to_image },
        });
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
/// GitOps self-heal (docs/guarantees.md#updates). A rollback of ours looks the same but quarantines the image, so it is not
/// mistaken for another writer.
fn reverted_update(workload: &Workload, quarantine: &Quarantine) -> Option<Revert> {
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
            None => workload
                .containers
                .iter()
                .find(|c| c.image == *previous || c.image == *ours),
        }?;
        let rolled_back_by_us = quarantine.entries().iter().any(|e| e.image == *ours);
        if container.image == *previous && previous != ours && !rolled_back_by_us {
            return Some(Revert {
                container: container.name.clone(),
                ours: ours.clone(),
                theirs: previous.clone(),
            });
        }
    }
    None
}

/// The containers a check manages, and a note per container skipped.
struct Managed {
    containers: Vec<(Container, ImageRef)>,
    skipped: Vec<String>,
}

fn managed_containers(
    workload: &Workload,
    settings: &Settings,
) -> Result<Managed, InvalidAnnotation> {
    let mut managed = Managed {
        containers: Vec::new(),
        skipped: Vec::new(),
    };
    let invalid = |problem: String| InvalidAnnotation {
        annotation: annotations::CONTAINERS,
        value: settings.containers.clone().unwrap_or_default().join(","),
        problem,
        example: workload
            .containers
            .iter()
            .filter(|c| !c.init)
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
            .join(","),
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
                    .and_then(|image| {
                        settings
                            .strategy
                            .check_image(&image)
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                            .map(|()| image)
                    });
                match checked {
                    Ok(image) => managed.containers.push((container.clone(), image)),
                    Err(why) => managed.skipped.push(format!("{}: {why}", container.name)),
                }
            }
        }
    }
    Ok(managed)
}

/// The repositories the managed containers' images live in, for push events (images that do not parse are
/// left out: their checks report them).
pub fn repositories(workload: &Workload, settings: &Settings) -> Vec<crate::registry::Repository> {
    let mut repositories: Vec<crate::registry::Repository> = workload
        .containers
        .iter()
        .filter(|c| match &settings.containers {
            Some(names) => names.contains(&c.name),
            None => !c.init,
        })
        .filter_map(|c| ImageRef::parse(&c.image).ok())
        .map(|image| resolve::repository_of(&image))
        .collect();
    repositories.sort();
    repositories.dedup();
    repositories
}

/// The image(s) a payload names for a workload: the managed containers' images.
pub fn workload_image(workload: &Workload, settings: &Settings) -> String {
    per_container(managed(workload, settings).map(|c| (c.name.as_str(), c.image.as_str())))
}

/// The same containers' images by container name: what a chat message about DETECTED lists
/// (docs/notifications.md#formats).
pub fn workload_images(
    workload: &Workload,
    settings: &Settings,
) -> std::collections::BTreeMap<String, String> {
    managed(workload, settings)
        .map(|c| (c.name.clone(), c.image.clone()))
        .collect()
}

/// The containers a notification names: those listed in `containers`, else every non-init container.
fn managed<'a>(
    workload: &'a Workload,
    settings: &'a Settings,
) -> impl Iterator<Item = &'a Container> {
    workload
        .containers
        .iter()
        .filter(move |c| match &settings.containers {
            Some(names) => names.contains(&c.name),
            None => !c.init,
        })
}

#[cfg(test)]
mod tests;
