//! The outcome of a strategy: a [`Decision`] per container, with a reason for people and a bounded
//! category for Events and metrics.
//!
//! Input: what a strategy found. Output: "write `tag@digest`" ([`Decision::Update`]) or "keep"
//! ([`Decision::Keep`]), each with an [`UpdateReason`] or [`KeepReason`] whose `Display` is the sentence
//! shown to users (`Found newer version: 1.2.0`, `No newer version available within 1.2`, `Digest unchanged`)
//! and whose `as_str()` is a short fixed name.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::{image::ImageRef, version::VersionTag};

/// Which versions a version strategy may move to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Any newer version.
    Any,
    /// Newer versions with this major.
    Major(u64),
    /// Newer versions with this major.minor.
    Minor(u64, u64),
}

impl Scope {
    /// Whether `candidate` lies in the scope.
    pub fn contains(&self, candidate: &VersionTag) -> bool {
        match *self {
            Scope::Any => true,
            Scope::Major(major) => candidate.major() == major,
            Scope::Minor(major, minor) => candidate.major() == major && candidate.minor() == minor,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Any => Ok(()),
            Scope::Major(major) => write!(f, " within major version {major}"),
            Scope::Minor(major, minor) => write!(f, " within {major}.{minor}"),
        }
    }
}

/// What to do with one container's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write `tag@digest` (in the user's spelling of the name, see [`Decision::image_to_write`]).
    Update {
        tag: String,
        digest: String,
        reason: UpdateReason,
    },
    /// Leave the image as it is.
    Keep(KeepReason),
}

impl Decision {
    /// The image string to write, or `None` when the image is kept.
    pub fn image_to_write(&self, current: &ImageRef) -> Option<String> {
        match self {
            Decision::Update { tag, digest, .. } => Some(current.with_tag_and_digest(tag, digest)),
            Decision::Keep(_) => None,
        }
    }

    /// A short, bounded category for Event reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Update { reason, .. } => reason.as_str(),
            Decision::Keep(reason) => reason.as_str(),
        }
    }
}

/// The human-readable reason, e.g. `Found newer version: 1.2.0`.
impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Update { reason, .. } => reason.fmt(f),
            Decision::Keep(reason) => reason.fmt(f),
        }
    }
}

/// Why an image is updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateReason {
    /// A version strategy found a newer tag.
    NewerVersion { tag: String },
    /// `latest`: the tag now points to another digest.
    NewDigest { tag: String },
    /// `latest`: the current digest is unknown; pin the tag once so later checks compare exactly.
    PinDigest { tag: String },
}

impl UpdateReason {
    /// A short, bounded category.
    pub fn as_str(&self) -> &'static str {
        match self {
            UpdateReason::NewerVersion { .. } => "NewerVersion",
            UpdateReason::NewDigest { .. } => "NewDigest",
            UpdateReason::PinDigest { .. } => "PinDigest",
        }
    }
}

impl fmt::Display for UpdateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateReason::NewerVersion { tag } => write!(f, "Found newer version: {tag}"),
            UpdateReason::NewDigest { tag } => write!(f, "Tag '{tag}' has a new digest"),
            UpdateReason::PinDigest { tag } => {
                write!(
                    f,
                    "Current digest of tag '{tag}' is unknown: pinning it to the registry's digest"
                )
            }
        }
    }
}

/// Why an image is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepReason {
    /// No tag passes the rules of docs/annotations.md#version-tags.
    NoNewerVersion { scope: Scope },
    /// Every newer candidate whose digest is known is quarantined.
    CandidatesQuarantined { scope: Scope, skipped: Vec<String> },
    /// Newer candidates exist but none of their digests were supplied.
    DigestsUnknown { best: String },
    /// `latest`: the registry's digest is the current one.
    DigestUnchanged,
    /// `latest`: the registry's digest failed a rollout before.
    DigestQuarantined { tag: String, digest: String },
    /// The reference has no tag (`app@sha256:…`): never managed.
    DigestOnly,
    /// Every newer candidate whose digest is known is quarantined or named by `skip`, some by `skip`.
    CandidatesSkipped {
        scope: Scope,
        skipped: Vec<String>,
        quarantined: Vec<String>,
    },
    /// `latest`: the registry's digest is named by `skip`.
    DigestSkipped { tag: String, digest: String },
    /// The best candidate (`repo:tag@sha256:…`) has not been seen for `min-age` yet, nor has any lower one.
    HeldByMinAge {
        image: String,
        ripens_at: DateTime<Utc>,
    },
    /// `verify`: the best candidate (`repo:tag@sha256:…`) and every lower one considered were rejected by
    /// signature verification; `why` is the best one's rejection (docs/signatures.md).
    SignatureRejected { image: String, why: String },
}

impl KeepReason {
    /// A short, bounded category.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeepReason::NoNewerVersion { .. } => "NoNewerVersion",
            KeepReason::CandidatesQuarantined { .. } => "CandidatesQuarantined",
            KeepReason::DigestsUnknown { .. } => "DigestsUnknown",
            KeepReason::DigestUnchanged => "DigestUnchanged",
            KeepReason::DigestQuarantined { .. } => "DigestQuarantined",
            KeepReason::DigestOnly => "DigestOnly",
            KeepReason::CandidatesSkipped { .. } => "CandidatesSkipped",
            KeepReason::DigestSkipped { .. } => "DigestSkipped",
            KeepReason::HeldByMinAge { .. } => "HeldByMinAge",
            KeepReason::SignatureRejected { .. } => "SignatureRejected",
        }
    }
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::NoNewerVersion { scope } => write!(f, "No newer version available{scope}"),
            KeepReason::CandidatesQuarantined { scope, skipped } => write!(
                f,
                "No newer version available{scope}: quarantined after a failed rollout: {}",
                skipped.join(", ")
            ),
            KeepReason::DigestsUnknown { best } => {
                write!(f, "Newer version {best} found but its digest is unknown")
            }
            KeepReason::DigestUnchanged => f.write_str("Digest unchanged"),
            KeepReason::DigestQuarantined { tag, digest } => write!(
                f,
                "Tag '{tag}' points to {digest}, quarantined after a failed rollout"
            ),
            KeepReason::DigestOnly => {
                f.write_str("Reference pinned by digest without a tag is not managed")
            }
            KeepReason::CandidatesSkipped {
                scope,
                skipped,
                quarantined,
            } => {
                write!(
                    f,
                    "No newer version available{scope}: skipped by annotation: {}",
                    skipped.join(", ")
                )?;
                if !quarantined.is_empty() {
                    write!(
                        f,
                        "; quarantined after a failed rollout: {}",
                        quarantined.join(", ")
                    )?;
                }
                Ok(())
            }
            KeepReason::DigestSkipped { tag, digest } => write!(
                f,
                "Tag '{tag}' points to {digest}, which the skip annotation excludes"
            ),
            KeepReason::HeldByMinAge { image, ripens_at } => write!(
                f,
                "{image} is held by min-age until {}",
                ripens_at.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            KeepReason::SignatureRejected { image, why } => {
                write!(
                    f,
                    "{image} is not taken: its signature was rejected ({why})"
                )
            }
        }
    }
}
