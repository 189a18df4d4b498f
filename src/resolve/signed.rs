//! Resolving with signature verification (SPEC §13, docs/signatures.md).
//!
//! Input: what [`resolve`] takes, plus the [`Verifier`] when the container's candidates must be signed.
//! Output: the [`Resolution`] with its [`Signatures`]: the candidate to take has a verified signature, or
//! nothing is taken. A rejected candidate is passed over (as if `skip` named its digest) and the next lower
//! one considered, at most [`MAX_VERIFIED`] per check; when none is left the container keeps its image with
//! [`KeepReason::SignatureRejected`] (for `latest`: the unsigned new digest is held).
//!
//! A registry failure while reading signatures fails the resolution like any registry failure: the check
//! is retried, nothing is rejected.

use super::{CandidateGates, Resolution, ResolveError, Target, repository_of, resolve};
use crate::{
    strategy::{Decision, KeepReason, Quarantine, Strategy},
    verify::{Rejection, Verdict, Verified, Verifier},
};

/// Candidates verified per check at most: each costs a few registry requests.
pub const MAX_VERIFIED: usize = 3;

/// A candidate whose signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedCandidate {
    /// Its tag.
    pub tag: String,
    /// The candidate, pinned: `repo:tag@sha256:…`.
    pub image: String,
    /// Why.
    pub rejection: Rejection,
}

/// What signature verification found for one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signatures {
    /// The signature of the candidate taken.
    pub verified: Option<Verified>,
    /// The candidates passed over, best first.
    pub rejected: Vec<RejectedCandidate>,
}

/// [`resolve`], verifying the candidate it would take when `verifier` is given.
pub async fn resolve_signed(
    registry: &crate::registry::RegistryClient,
    strategy: Strategy,
    target: Target<'_>,
    quarantine: &Quarantine,
    gates: CandidateGates<'_>,
    verifier: Option<&Verifier>,
) -> Result<Resolution, ResolveError> {
    let Some(verifier) = verifier else {
        return resolve(registry, strategy, target, quarantine, gates).await;
    };
    let repository = repository_of(target.image);
    let mut skip = gates.skip.clone();
    let mut rejected: Vec<RejectedCandidate> = Vec::new();
    loop {
        let gates = CandidateGates {
            skip: &skip,
            ..gates
        };
        let mut resolution = resolve(registry, strategy, target, quarantine, gates).await?;
        let Decision::Update { tag, digest, .. } = &resolution.decision else {
            return Ok(finish(resolution, rejected));
        };
        let image = target.image.with_tag_and_digest(tag, digest);
        if rejected.len() >= MAX_VERIFIED {
            tracing::info!(container = target.container, image = %image, "not verified: {MAX_VERIFIED} candidates were rejected in this check");
            resolution.decision = Decision::Keep(signature_rejected(&rejected));
            return Ok(finish(resolution, rejected));
        }
        match verifier
            .verify(&repository, digest, target.credential)
            .await?
        {
            Verdict::Verified(verified) => {
                tracing::debug!(container = target.container, image = %image, key = %verified.key, "candidate signature verified");
                resolution.signatures.verified = Some(verified);
                return Ok(finish(resolution, rejected));
            }
            Verdict::Rejected(rejection) => {
                tracing::info!(container = target.container, image = %image, reason = rejection.kind.as_str(), "candidate signature rejected: {}", rejection.message);
                skip = skip.with_digest(tag, digest);
                rejected.push(RejectedCandidate {
                    tag: tag.clone(),
                    image,
                    rejection,
                });
            }
        }
    }
}

/// The resolution with what was rejected; a keep caused only by the rejections says so.
fn finish(mut resolution: Resolution, rejected: Vec<RejectedCandidate>) -> Resolution {
    let excluded_only = matches!(
        &resolution.decision,
        Decision::Keep(
            KeepReason::CandidatesSkipped { .. }
                | KeepReason::DigestSkipped { .. }
                | KeepReason::CandidatesQuarantined { .. }
        )
    );
    if excluded_only && !rejected.is_empty() {
        resolution.decision = Decision::Keep(signature_rejected(&rejected));
    }
    resolution.signatures.rejected = rejected;
    resolution
}

fn signature_rejected(rejected: &[RejectedCandidate]) -> KeepReason {
    let best = &rejected[0];
    KeepReason::SignatureRejected {
        image: best.image.clone(),
        why: best.rejection.to_string(),
    }
}

#[cfg(test)]
mod tests;
