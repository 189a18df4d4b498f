//! The version strategies (`version`/`semver`, `version-lock-major`, `version-lock-minor`; docs/annotations.md#version-tags).
//!
//! Two pure steps, because digests are fetched only for the tags worth fetching:
//! 1. [`rank_candidates`]: from the current tag and the registry's tag list, the newer candidates best-first,
//!    and for every other tag the [`Rejection`] that ruled it out (printed by `watch-cluster check`).
//! 2. [`decide_version`]: given the digests the caller fetched for the leading candidates, the highest
//!    candidate whose (tag, digest) is not quarantined, as a [`Decision`].
//!
//! Rules (docs/annotations.md#version-tags): same variant as the current tag (none for a plain or pre-release tag); never a
//! pre-release; never older or equal; inside the lock scope; among spellings of one version (`1.2`, `1.2.0`,
//! `v1.2.0`) prefer the current `v` style, then the current number of parts, else whatever is listed.

use std::{cmp::Reverse, collections::BTreeSet, fmt};

use super::{Decision, Excluded, Exclusion, KeepReason, Quarantine, Scope, Strategy, UpdateReason};
use crate::{
    gate::{SkipList, TagFilter},
    image::ImageRef,
    version::{VersionTag, VersionTagError},
};

#[cfg(test)]
mod tests;

/// The outcome of ranking a tag list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The current tag.
    pub current: VersionTag,
    /// Where candidates may lie.
    pub scope: Scope,
    /// Newer candidates, best (highest) first; one spelling per version.
    pub accepted: Vec<VersionTag>,
    /// Every other listed tag with the reason it was ruled out, in list order.
    pub rejected: Vec<(String, Rejection)>,
}

impl Evaluation {
    /// The best candidate, if any.
    pub fn best(&self) -> Option<&VersionTag> {
        self.accepted.first()
    }
}

/// Why a listed tag is not a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not `v?MAJOR.MINOR[.PATCH][-SUFFIX]`.
    NotAVersion,
    /// Pre-releases are never candidates.
    PreRelease,
    /// The variant differs from the current tag's.
    OtherVariant {
        current: Option<String>,
        found: Option<String>,
    },
    /// The tag is the current tag.
    Current,
    /// Same version as the current tag, spelt differently.
    SameVersion,
    /// Older than the current tag: never a downgrade.
    Older,
    /// Newer, but outside the lock scope.
    OutsideScope(Scope),
    /// Another spelling of the same version fits the current style better.
    OtherSpelling { preferred: String },
    /// The `tag-filter` annotation does not match it.
    TagFilter,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NotAVersion => f.write_str("not a version tag"),
            Rejection::PreRelease => f.write_str("pre-release"),
            Rejection::OtherVariant { current, found } => write!(
                f,
                "variant {} differs from the current {}",
                describe_variant(found.as_deref()),
                describe_variant(current.as_deref())
            ),
            Rejection::Current => f.write_str("current tag"),
            Rejection::SameVersion => f.write_str("same version as the current tag"),
            Rejection::Older => f.write_str("older than the current tag"),
            Rejection::OutsideScope(Scope::Major(major)) => {
                write!(f, "outside major version {major}")
            }
            Rejection::OutsideScope(Scope::Minor(major, minor)) => {
                write!(f, "outside {major}.{minor}")
            }
            Rejection::OutsideScope(Scope::Any) => f.write_str("outside the allowed versions"),
            Rejection::TagFilter => f.write_str("does not match the tag filter"),
            Rejection::OtherSpelling { preferred } => {
                write!(
                    f,
                    "same version as '{preferred}', which matches the current spelling better"
                )
            }
        }
    }
}

fn describe_variant(variant: Option<&str>) -> String {
    variant.map_or_else(|| "(none)".to_owned(), |v| format!("'{v}'"))
}

/// Ranking is impossible for this strategy or current tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RankError {
    /// `latest` follows digests; it does not rank tags.
    #[error("failed to rank tags: strategy 'latest' follows the current tag's digest")]
    NotAVersionStrategy,
    /// The current tag is not a version tag.
    #[error("failed to rank tags against the current tag")]
    CurrentNotAVersion(#[source] VersionTagError),
}

impl RankError {
    /// A short, bounded category for Event reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            RankError::NotAVersionStrategy => "NotAVersionStrategy",
            RankError::CurrentNotAVersion(_) => "TagNotAVersion",
        }
    }
}

/// A candidate tag with the digest the registry reported for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCandidate {
    /// The candidate tag, as listed.
    pub tag: String,
    /// Its digest (`sha256:…`).
    pub digest: String,
}

/// Ranks `tags` against `current_tag` under a version `strategy` (see the module docs for the rules).
pub fn rank_candidates(
    strategy: Strategy,
    current_tag: &str,
    tags: &[String],
) -> Result<Evaluation, RankError> {
    rank_candidates_filtered(strategy, current_tag, tags, None)
}

/// [`rank_candidates`] after the `tag-filter`: tags it does not match are rejected before any other rule,
/// so the spelling and variant rules only choose among matching tags.
pub fn rank_candidates_filtered(
    strategy: Strategy,
    current_tag: &str,
    tags: &[String],
    filter: Option<&TagFilter>,
) -> Result<Evaluation, RankError> {
    let current = VersionTag::parse(current_tag).map_err(RankError::CurrentNotAVersion)?;
    let scope = match strategy {
        Strategy::Version => Scope::Any,
        Strategy::VersionLockMajor => Scope::Major(current.major()),
        Strategy::VersionLockMinor => Scope::Minor(current.major(), current.minor()),
        Strategy::Latest => return Err(RankError::NotAVersionStrategy),
    };
    let mut seen = BTreeSet::new();
    let mut rejected = Vec::new();
    let mut newer = Vec::new();
    for tag in tags.iter().filter(|t| seen.insert(t.as_str())) {
        if filter.is_some_and(|f| !f.matches(tag)) {
            rejected.push((tag.clone(), Rejection::TagFilter));
            continue;
        }
        match screen(&current, scope, tag) {
            Ok(version) => newer.push(version),
            Err(rejection) => rejected.push((tag.clone(), rejection)),
        }
    }
    let accepted = pick_spellings(&current, newer, &mut rejected);
    Ok(Evaluation {
        current,
        scope,
        accepted,
        rejected,
    })
}

/// Applies every per-tag rule; `Ok` is a newer version in scope.
fn screen(current: &VersionTag, scope: Scope, tag: &str) -> Result<VersionTag, Rejection> {
    let version = VersionTag::parse(tag).map_err(|_| Rejection::NotAVersion)?;
    if version.is_prerelease() {
        return Err(Rejection::PreRelease);
    }
    if version.variant() != current.variant() {
        return Err(Rejection::OtherVariant {
            current: current.variant().map(str::to_owned),
            found: version.variant().map(str::to_owned),
        });
    }
    if tag == current.as_str() {
        return Err(Rejection::Current);
    }
    if !version.is_newer_than(current) {
        return Err(
            if version.numbers() == current.numbers() && !current.is_prerelease() {
                Rejection::SameVersion
            } else {
                Rejection::Older
            },
        );
    }
    if !scope.contains(&version) {
        return Err(Rejection::OutsideScope(scope));
    }
    Ok(version)
}

/// Keeps one spelling per version, ordered highest first; the others are recorded as rejected.
fn pick_spellings(
    current: &VersionTag,
    mut newer: Vec<VersionTag>,
    rejected: &mut Vec<(String, Rejection)>,
) -> Vec<VersionTag> {
    // Highest version first; within a version the preferred spelling first; the tag text breaks ties
    // so the result never depends on the registry's listing order.
    newer.sort_by_key(|v| {
        (
            Reverse(v.numbers()),
            v.has_v_prefix() != current.has_v_prefix(),
            v.part_count() != current.part_count(),
            v.as_str().to_owned(),
        )
    });
    let mut accepted: Vec<VersionTag> = Vec::new();
    for version in newer {
        match accepted.last() {
            Some(best) if best.numbers() == version.numbers() => rejected.push((
                version.as_str().to_owned(),
                Rejection::OtherSpelling {
                    preferred: best.as_str().to_owned(),
                },
            )),
            _ => accepted.push(version),
        }
    }
    accepted
}

/// Picks the highest candidate of `evaluation` whose digest is in `resolved` and whose (tag, digest) is
/// not quarantined for `container`.
///
/// `resolved` may hold digests for only the leading candidates (fetch them best-first until one is not
/// quarantined); candidates without a digest are passed over.
pub fn decide_version(
    current: &ImageRef,
    container: &str,
    evaluation: &Evaluation,
    resolved: &[ResolvedCandidate],
    quarantine: &Quarantine,
) -> Decision {
    let excluded = Excluded {
        quarantine,
        skip: &SkipList::EMPTY,
    };
    decide_version_excluding(current, container, evaluation, resolved, excluded)
}

/// [`decide_version`] that also passes over what the `skip` annotation names.
pub fn decide_version_excluding(
    current: &ImageRef,
    container: &str,
    evaluation: &Evaluation,
    resolved: &[ResolvedCandidate],
    excluded: Excluded<'_>,
) -> Decision {
    let Some(best) = evaluation.best() else {
        return Decision::Keep(KeepReason::NoNewerVersion {
            scope: evaluation.scope,
        });
    };
    let mut quarantined = Vec::new();
    let mut skipped = Vec::new();
    for candidate in &evaluation.accepted {
        let Some(found) = resolved.iter().find(|r| r.tag == candidate.as_str()) else {
            continue;
        };
        match excluded.why(container, current, &found.tag, &found.digest) {
            Some(Exclusion::Quarantined) => quarantined.push(found.tag.clone()),
            Some(Exclusion::Skipped) => skipped.push(found.tag.clone()),
            None => {
                return Decision::Update {
                    tag: found.tag.clone(),
                    digest: found.digest.clone(),
                    reason: UpdateReason::NewerVersion {
                        tag: found.tag.clone(),
                    },
                };
            }
        }
    }
    if !skipped.is_empty() {
        Decision::Keep(KeepReason::CandidatesSkipped {
            scope: evaluation.scope,
            skipped,
            quarantined,
        })
    } else if !quarantined.is_empty() {
        Decision::Keep(KeepReason::CandidatesQuarantined {
            scope: evaluation.scope,
            skipped: quarantined,
        })
    } else {
        Decision::Keep(KeepReason::DigestsUnknown {
            best: best.as_str().to_owned(),
        })
    }
}
