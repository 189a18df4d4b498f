//! Resolve: ask the registry what a strategy would choose for one container (docs/architecture.md#resolve).
//!
//! Input: the container's [`ImageRef`], the [`Strategy`], the credential for its registry, the digest the
//! workload is known to run, the workload's [`Quarantine`] and its candidate gates ([`CandidateGates`]:
//! `tag-filter`, `skip`, `min-age` with the container's `pending` entries). Output: a [`Resolution`]: the
//! pure [`Decision`] of `strategy/` plus the digests involved and, with `min-age`, the container's new
//! pending entries and the better candidates still waiting.
//!
//! The only I/O is the [`RegistryClient`]: one shared tag list per repository, HEADs only for the
//! candidates actually considered (best first, stopping at the first one that may be taken; with
//! `min-age`, at most [`PENDING_LIMIT`] + 1 candidates that are not excluded), a HEAD by digest for an
//! older `latest` digest before pinning it, and a child-manifest GET only when a pod reports a platform
//! digest. [`resolve_signed`] adds signature verification (docs/signatures.md): the candidate that would
//! be taken is verified first, and a rejected one is passed over for the next lower.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{
    gate::{AgeCandidate, AgeSelection, PENDING_LIMIT, PendingEntry, SkipList, TagFilter, select},
    image::ImageRef,
    registry::{Credential, RegistryClient, RegistryError, Repository},
    strategy::{
        Decision, Evaluation, Excluded, KeepReason, Quarantine, RankError, ResolvedCandidate,
        Strategy, decide_latest, decide_latest_excluding, decide_version_excluding,
        rank_candidates_filtered,
    },
};

/// The gates that change which candidate is chosen, for one container.
#[derive(Debug, Clone, Copy)]
pub struct CandidateGates<'a> {
    /// Candidate tags must match it (version strategies).
    pub tag_filter: Option<&'a TagFilter>,
    /// Tags and digests never taken.
    pub skip: &'a SkipList,
    /// How long a candidate must have been seen; `None` without `min-age` or under `check-now: force`.
    pub min_age: Option<Duration>,
    /// The container's entries of the `pending` annotation.
    pub pending: &'a [PendingEntry],
    /// The time the candidates' ages are measured at.
    pub now: DateTime<Utc>,
}

/// Borrowed by [`CandidateGates::open`] for any lifetime (a `static`: a `Vec` inside is not promoted).
static NO_SKIP: SkipList = SkipList::EMPTY;

impl CandidateGates<'static> {
    /// No gate: every candidate may be taken at once.
    pub fn open(now: DateTime<Utc>) -> Self {
        CandidateGates {
            tag_filter: None,
            skip: &NO_SKIP,
            min_age: None,
            pending: &[],
            now,
        }
    }
}

/// A candidate better than the one chosen (or than the current image) that waits for `min-age`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The candidate, pinned: `repo:tag@sha256:…`.
    pub image: String,
    /// When the controller first saw it.
    pub first_seen: DateTime<Utc>,
    /// When it becomes old enough.
    pub ripens_at: DateTime<Utc>,
}

/// What `min-age` found for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeOutcome {
    /// The container's new `pending` entries, oldest first.
    pub pending: Vec<PendingEntry>,
    /// The better candidates waiting, best first.
    pub held: Vec<Held>,
}

/// What the registry and the strategy decided for one container.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The decision and its human-readable reason.
    pub decision: Decision,
    /// The ranking, for version strategies (the `check` command prints it).
    pub evaluation: Option<Evaluation>,
    /// The digests fetched for candidates, best first.
    pub resolved: Vec<ResolvedCandidate>,
    /// With `min-age`: the new pending entries and what waits.
    pub age: Option<AgeOutcome>,
    /// With signature verification: what was verified or rejected ([`resolve_signed`]).
    pub signatures: Signatures,
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

/// One container to resolve: what it runs and what it may not take.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The container's name (the quarantine is per container).
    pub container: &'a str,
    /// Its image.
    pub image: &'a ImageRef,
    /// The credential for the image's registry.
    pub credential: Option<&'a Credential>,
    /// The digest the workload is known to run (pinned in the spec, or agreed by its ready pods);
    /// `latest` pins once when it is `None`.
    pub current_digest: Option<&'a str>,
}

/// Resolves one container's next image.
pub async fn resolve(
    registry: &RegistryClient,
    strategy: Strategy,
    target: Target<'_>,
    quarantine: &Quarantine,
    gates: CandidateGates<'_>,
) -> Result<Resolution, ResolveError> {
    let excluded = Excluded {
        quarantine,
        skip: gates.skip,
    };
    let Some(tag) = target.image.effective_tag() else {
        return Ok(Resolution {
            decision: decide_latest(target.image, target.container, None, "", quarantine),
            evaluation: None,
            resolved: Vec::new(),
            age: None,
            signatures: Signatures::default(),
        });
    };
    if strategy.is_version() {
        resolve_version(registry, strategy, target, tag, excluded, gates).await
    } else {
        resolve_latest(registry, target, tag, excluded, gates).await
    }
}

async fn resolve_version(
    registry: &RegistryClient,
    strategy: Strategy,
    target: Target<'_>,
    tag: &str,
    excluded: Excluded<'_>,
    gates: CandidateGates<'_>,
) -> Result<Resolution, ResolveError> {
    let Target {
        container,
        image,
        credential,
        ..
    } = target;
    let repository = repository_of(image);
    let tags = registry.list_tags(&repository, credential).await?;
    let evaluation = rank_candidates_filtered(strategy, tag, &tags, gates.tag_filter)?;
    let resolved =
        head_candidates(registry, &repository, target, &evaluation, excluded, gates).await?;
    let (decision, age) = match gates.min_age {
        None => (
            decide_version_excluding(image, container, &evaluation, &resolved, excluded),
            None,
        ),
        Some(min_age) => {
            let candidates: Vec<AgeCandidate> = resolved
                .iter()
                .map(|r| age_candidate(target, &r.tag, &r.digest, excluded))
                .collect();
            let selection = select(&candidates, gates.pending, min_age, gates.now);
            let decision = age_decision(
                &selection,
                &candidates,
                |index| {
                    let chosen = &resolved[index..=index];
                    decide_version_excluding(image, container, &evaluation, chosen, excluded)
                },
                // Nothing waits: every candidate looked at is excluded, or there is none.
                || decide_version_excluding(image, container, &evaluation, &resolved, excluded),
            );
            (decision, Some(age_outcome(&candidates, selection)))
        }
    };
    Ok(Resolution {
        decision,
        evaluation: Some(evaluation),
        resolved,
        age,
        signatures: Signatures::default(),
    })
}

/// HEADs the ranked candidates best-first until one may be taken now (not excluded and, with `min-age`,
/// old enough); with `min-age`, also stops after [`PENDING_LIMIT`] + 1 that are too new: more would not
/// fit in `pending` and would only start over at the next check.
async fn head_candidates(
    registry: &RegistryClient,
    repository: &Repository,
    target: Target<'_>,
    evaluation: &Evaluation,
    excluded: Excluded<'_>,
    gates: CandidateGates<'_>,
) -> Result<Vec<ResolvedCandidate>, RegistryError> {
    let mut resolved = Vec::new();
    let mut waiting = 0;
    for candidate in &evaluation.accepted {
        let tag = candidate.as_str();
        let digest = registry
            .head_digest(repository, tag, target.credential)
            .await?;
        let takeable = excluded
            .why(target.container, target.image, tag, &digest)
            .is_none();
        let ripe = gates.min_age.is_none_or(|min_age| {
            let pinned = target.image.with_tag_and_digest(tag, &digest);
            is_ripe(gates.pending, &pinned, min_age, gates.now)
        });
        resolved.push(ResolvedCandidate {
            tag: tag.to_owned(),
            digest,
        });
        if takeable {
            waiting += usize::from(!ripe);
            if ripe || waiting > PENDING_LIMIT {
                break;
            }
        }
    }
    Ok(resolved)
}

/// The decision once `min-age` has selected: `take` the chosen candidate, else hold for the best waiting
/// one, else (nothing waits) what the strategy says `otherwise`.
fn age_decision(
    selection: &AgeSelection,
    candidates: &[AgeCandidate],
    take: impl FnOnce(usize) -> Decision,
    otherwise: impl FnOnce() -> Decision,
) -> Decision {
    match (selection.chosen, selection.held.first()) {
        (Some(index), _) => take(index),
        (None, Some(best)) => Decision::Keep(KeepReason::HeldByMinAge {
            image: candidates[best.index].image.clone(),
            ripens_at: best.ripens_at,
        }),
        (None, None) => otherwise(),
    }
}

async fn resolve_latest(
    registry: &RegistryClient,
    target: Target<'_>,
    tag: &str,
    excluded: Excluded<'_>,
    gates: CandidateGates<'_>,
) -> Result<Resolution, ResolveError> {
    let Target {
        container,
        image,
        credential,
        current_digest,
    } = target;
    let repository = repository_of(image);
    let digest = registry.head_digest(&repository, tag, credential).await?;
    // A digest pinned in the spec is the one the tag pointed to: compare it as is, with no GET.
    let current = match image.digest() {
        Some(pinned) => Some(pinned.to_owned()),
        None => {
            effective_current_digest(registry, &repository, credential, current_digest, &digest)
                .await
        }
    };
    let resolved = vec![ResolvedCandidate {
        tag: tag.to_owned(),
        digest: digest.clone(),
    }];
    let Some(min_age) = gates.min_age else {
        return Ok(Resolution {
            decision: decide_latest_excluding(
                image,
                container,
                current.as_deref(),
                &digest,
                excluded,
            ),
            evaluation: None,
            resolved,
            age: None,
            signatures: Signatures::default(),
        });
    };
    let mut candidates =
        latest_candidates(target, tag, &digest, current.as_deref(), gates, excluded);
    let selection = select_served(
        registry,
        &repository,
        target,
        &mut candidates,
        gates,
        min_age,
    )
    .await?;
    let current = current.as_deref();
    let decision = age_decision(
        &selection,
        &candidates,
        |index| {
            decide_latest_excluding(
                image,
                container,
                current,
                &candidates[index].digest,
                excluded,
            )
        },
        || decide_latest_excluding(image, container, current, &digest, excluded),
    );
    Ok(Resolution {
        decision,
        evaluation: None,
        resolved,
        age: Some(age_outcome(&candidates, selection)),
        signatures: Signatures::default(),
    })
}

/// [`select`] for `latest`, checking that an older digest chosen is still served (one HEAD by digest);
/// one that is not is forgotten (marked excluded, so it leaves `pending`) and the choice is made again.
/// Each round forgets one candidate, so there are at most as many rounds as candidates.
async fn select_served(
    registry: &RegistryClient,
    repository: &Repository,
    target: Target<'_>,
    candidates: &mut [AgeCandidate],
    gates: CandidateGates<'_>,
    min_age: Duration,
) -> Result<AgeSelection, RegistryError> {
    loop {
        let selection = select(candidates, gates.pending, min_age, gates.now);
        // Index 0 is the tag's digest now: the registry has just served it.
        let Some(index) = selection.chosen.filter(|i| *i > 0) else {
            return Ok(selection);
        };
        let older = &candidates[index].digest;
        if registry
            .digest_exists(repository, older, target.credential)
            .await?
        {
            return Ok(selection);
        }
        tracing::info!(container = target.container, digest = %older, "an older digest of the tag is no longer served: forgotten");
        candidates[index].excluded = true;
    }
}

/// `latest`'s candidates newest first: the tag's digest now, then the digests it pointed to before (from
/// `pending`, newest first), down to but not including the digest the workload runs: what it runs, and
/// anything seen before that, is no longer a candidate.
fn latest_candidates(
    target: Target<'_>,
    tag: &str,
    registry_digest: &str,
    current: Option<&str>,
    gates: CandidateGates<'_>,
    excluded: Excluded<'_>,
) -> Vec<AgeCandidate> {
    let mut earlier: Vec<(&PendingEntry, ImageRef)> = gates
        .pending
        .iter()
        .filter_map(|entry| Some((entry, ImageRef::parse(&entry.image).ok()?)))
        .filter(|(_, seen)| {
            seen.registry() == target.image.registry()
                && seen.repository() == target.image.repository()
                && seen.tag() == Some(tag)
                && seen.digest().is_some_and(|d| d != registry_digest)
        })
        .collect();
    earlier.sort_by_key(|(entry, _)| std::cmp::Reverse(entry.first_seen));
    let mut candidates = vec![age_candidate(target, tag, registry_digest, excluded)];
    candidates.extend(
        earlier
            .iter()
            .filter_map(|(_, seen)| seen.digest())
            .map(|digest| age_candidate(target, tag, digest, excluded)),
    );
    if let Some(at) = current.and_then(|c| candidates.iter().position(|a| a.digest == c)) {
        candidates.truncate(at);
    }
    candidates.truncate(PENDING_LIMIT + 1);
    candidates
}

fn age_candidate(
    target: Target<'_>,
    tag: &str,
    digest: &str,
    excluded: Excluded<'_>,
) -> AgeCandidate {
    AgeCandidate {
        image: target.image.with_tag_and_digest(tag, digest),
        tag: tag.to_owned(),
        digest: digest.to_owned(),
        excluded: excluded
            .why(target.container, target.image, tag, digest)
            .is_some(),
    }
}

fn is_ripe(pending: &[PendingEntry], image: &str, min_age: Duration, now: DateTime<Utc>) -> bool {
    let min_age = chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
    pending
        .iter()
        .find(|e| e.image == image)
        .and_then(|e| e.first_seen.checked_add_signed(min_age))
        .is_some_and(|ripe| ripe <= now)
}

fn age_outcome(candidates: &[AgeCandidate], selection: AgeSelection) -> AgeOutcome {
    AgeOutcome {
        held: selection
            .held
            .iter()
            .map(|h| Held {
                image: candidates[h.index].image.clone(),
                first_seen: h.first_seen,
                ripens_at: h.ripens_at,
            })
            .collect(),
        pending: selection.pending,
    }
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

mod signed;

pub use signed::{MAX_VERIFIED, RejectedCandidate, Signatures, resolve_signed};

#[cfg(test)]
mod tests;
