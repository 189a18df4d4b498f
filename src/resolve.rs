//! Resolve: ask the registry what a strategy would choose for one container (docs/architecture.md#resolve).
//!
//! Input: the container's [`ImageRef`], the [`Strategy`], the credential for its registry, the digest the
//! workload is known to run, and the workload's [`Quarantine`]. Output: a [`Resolution`]: the pure
//! [`Decision`] of `strategy/` plus the digests involved. The only I/O is the [`RegistryClient`]: one shared
//! tag list per repository, HEADs only for the candidates actually considered (best first, stopping at the
//! first one not quarantined), and a child-manifest GET only when a pod reports a platform digest.

use crate::{
    image::ImageRef,
    registry::{Credential, RegistryClient, RegistryError, Repository},
    strategy::{
        Decision, Evaluation, Quarantine, RankError, ResolvedCandidate, Strategy, decide_latest,
        decide_version, rank_candidates,
    },
};

/// What the registry and the strategy decided for one container.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The decision and its human-readable reason.
    pub decision: Decision,
    /// The ranking, for version strategies (the `check` command prints it).
    pub evaluation: Option<Evaluation>,
    /// The digests fetched for candidates, best first.
    pub resolved: Vec<ResolvedCandidate>,
}

/// Why resolving failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The registry could not answer.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The current tag cannot be ranked.
    #[error(transparent)]
    Rank(#[from] RankError),
}

impl ResolveError {
    /// A short, bounded reason for Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ResolveError::Registry(e) => e.reason(),
            ResolveError::Rank(e) => e.reason(),
        }
    }
}

/// The repository of an image, as the registry client addresses it.
pub fn repository_of(image: &ImageRef) -> Repository {
    Repository::new(image.registry(), image.repository())
}

/// Resolves one container's next image.
///
/// `current_digest` is the digest the workload runs for this container when known (pinned in the spec,
/// or agreed by its ready pods); `latest` pins once when it is `None`.
pub async fn resolve(
    registry: &RegistryClient,
    strategy: Strategy,
    container: &str,
    image: &ImageRef,
    credential: Option<&Credential>,
    current_digest: Option<&str>,
    quarantine: &Quarantine,
) -> Result<Resolution, ResolveError> {
    let repository = repository_of(image);
    let Some(tag) = image.effective_tag() else {
        return Ok(Resolution {
            decision: decide_latest(image, container, None, "", quarantine),
            evaluation: None,
            resolved: Vec::new(),
        });
    };
    if !strategy.is_version() {
        let digest = registry.head_digest(&repository, tag, credential).await?;
        // A digest pinned in the spec is the one the tag pointed to: compare it as is, with no GET.
        let current = match image.digest() {
            Some(pinned) => Some(pinned.to_owned()),
            None => {
                effective_current_digest(registry, &repository, credential, current_digest, &digest)
                    .await
            }
        };
        return Ok(Resolution {
            decision: decide_latest(image, container, current.as_deref(), &digest, quarantine),
            evaluation: None,
            resolved: vec![ResolvedCandidate {
                tag: tag.to_owned(),
                digest,
            }],
        });
    }
    let tags = registry.list_tags(&repository, credential).await?;
    let evaluation = rank_candidates(strategy, tag, &tags)?;
    let mut resolved = Vec::new();
    for candidate in &evaluation.accepted {
        let digest = registry
            .head_digest(&repository, candidate.as_str(), credential)
            .await?;
        resolved.push(ResolvedCandidate {
            tag: candidate.as_str().to_owned(),
            digest,
        });
        let decision = decide_version(image, container, &evaluation, &resolved, quarantine);
        if matches!(decision, Decision::Update { .. }) {
            return Ok(Resolution {
                decision,
                evaluation: Some(evaluation),
                resolved,
            });
        }
    }
    let decision = decide_version(image, container, &evaluation, &resolved, quarantine);
    Ok(Resolution {
        decision,
        evaluation: Some(evaluation),
        resolved,
    })
}

/// A pod may report the platform manifest it pulled rather than the index the tag points to (docs/guarantees.md#registries):
/// such a digest counts as the index's when it is one of the index's children. The child list is one GET
/// per index digest for the life of the process (digests are immutable).
async fn effective_current_digest(
    registry: &RegistryClient,
    repository: &Repository,
    credential: Option<&Credential>,
    current: Option<&str>,
    registry_digest: &str,
) -> Option<String> {
    let current = current?;
    if current == registry_digest {
        return Some(current.to_owned());
    }
    match registry
        .child_digests(repository, registry_digest, credential)
        .await
    {
        Ok(children) if children.iter().any(|c| c == current) => Some(registry_digest.to_owned()),
        _ => Some(current.to_owned()),
    }
}
