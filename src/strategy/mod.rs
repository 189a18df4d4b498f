//! Update strategies (docs/annotations.md#strategy): from what runs and what the registry lists, what to write.
//!
//! Input: the current [`ImageRef`] of a container, the registry's tags (and later the digests of the chosen
//! candidates), and the workload's [`Quarantine`]. Output: a [`Decision`] with a human-readable reason.
//! Nothing here does I/O: the caller fetches tags and digests and feeds them in.
//!
//! One family per file, dispatched through [`Strategy`] (the shape of mini-redis `cmd/mod.rs`):
//! - [`version`]: `version` / `semver`, `version-lock-major`, `version-lock-minor`: rank newer version tags
//!   ([`rank_candidates`]), then, once the caller has their digests, pick the highest one that is not
//!   quarantined ([`decide_version`]). Split in two because digests are only fetched for chosen tags.
//! - [`latest`]: keep the tag, follow its digest ([`decide_latest`]).
//!
//! An unknown strategy name is an error naming the accepted values, never a silent fallback (docs/annotations.md#invalid-values).

use std::{fmt, str::FromStr};

use crate::{gate::SkipList, image::ImageRef, version::VersionTag};

pub mod cluster_quarantine;
mod decision;
pub mod latest;
pub mod quarantine;
pub mod version;

pub use decision::{Decision, KeepReason, Scope, UpdateReason};

pub use cluster_quarantine::{ClusterEntry, ClusterQuarantine, ClusterQuarantineError};
pub use latest::{decide_latest, decide_latest_excluding};
pub use quarantine::{Quarantine, QuarantineEntry, QuarantineError};
pub use version::{
    Evaluation, RankError, Rejection, ResolvedCandidate, decide_version, decide_version_excluding,
    rank_candidates, rank_candidates_filtered,
};

/// What a strategy never takes for a container: its quarantined images and the `skip` annotation's.
#[derive(Debug, Clone, Copy)]
pub struct Excluded<'a> {
    /// Images rolled back after a failed rollout.
    pub quarantine: &'a Quarantine,
    /// Tags and digests the user excluded.
    pub skip: &'a SkipList,
}

/// Why a candidate is never taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusion {
    /// Its rollout failed before.
    Quarantined,
    /// The `skip` annotation names it.
    Skipped,
}

impl Excluded<'_> {
    /// Why `container` (running `current`'s repository) never takes `tag@digest`, if it does not.
    pub fn why(
        &self,
        container: &str,
        current: &ImageRef,
        tag: &str,
        digest: &str,
    ) -> Option<Exclusion> {
        if self.quarantine.contains(container, current, tag, digest) {
            Some(Exclusion::Quarantined)
        } else if self.skip.matches(tag, digest) {
            Some(Exclusion::Skipped)
        } else {
            None
        }
    }
}

/// How a workload follows its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Move to the highest newer version tag (`version`, alias `semver`).
    #[default]
    Version,
    /// Same, within the current major version (`version-lock-major`).
    VersionLockMajor,
    /// Same, within the current major.minor (`version-lock-minor`).
    VersionLockMinor,
    /// Keep the tag, follow its digest (`latest`).
    Latest,
}

/// The values [`Strategy::from_str`] accepts, for error messages and help texts.
pub const ACCEPTED_STRATEGIES: &str =
    "version (alias semver), version-lock-major, version-lock-minor, latest";

/// The strategy name is not one we know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "failed to read strategy '{}': accepted values are {ACCEPTED_STRATEGIES} (e.g. 'version')",
    crate::untrusted::echo(.value)
)]
pub struct UnknownStrategy {
    /// The value that was given.
    pub value: String,
}

impl UnknownStrategy {
    /// A short, bounded category for Event reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        "UnknownStrategy"
    }
}

/// The strategy cannot handle this image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedImage {
    /// `app@sha256:…` without a tag is never managed (docs/annotations.md).
    #[error(
        "failed to manage '{image}': a reference pinned by digest without a tag is never updated"
    )]
    DigestOnly { image: String },
    /// A version strategy needs a version tag.
    #[error(
        "failed to manage '{image}' with strategy '{strategy}': tag '{tag}' is not a version like \
         1.2.3 (use strategy 'latest' to follow the tag's digest)"
    )]
    NotAVersion {
        image: String,
        strategy: Strategy,
        tag: String,
    },
}

impl UnsupportedImage {
    /// A short, bounded category for Event reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            UnsupportedImage::DigestOnly { .. } => "DigestOnlyImage",
            UnsupportedImage::NotAVersion { .. } => "TagNotAVersion",
        }
    }
}

impl Strategy {
    /// The canonical annotation value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Strategy::Version => "version",
            Strategy::VersionLockMajor => "version-lock-major",
            Strategy::VersionLockMinor => "version-lock-minor",
            Strategy::Latest => "latest",
        }
    }

    /// Whether the strategy ranks version tags (every strategy but `latest`).
    pub fn is_version(&self) -> bool {
        !matches!(self, Strategy::Latest)
    }

    /// Checks that the strategy can manage `image`; `Ok` carries the tag it follows.
    pub fn check_image<'a>(&self, image: &'a ImageRef) -> Result<&'a str, UnsupportedImage> {
        let tag = image
            .effective_tag()
            .ok_or_else(|| UnsupportedImage::DigestOnly {
                image: image.to_string(),
            })?;
        if self.is_version() && VersionTag::parse(tag).is_err() {
            return Err(UnsupportedImage::NotAVersion {
                image: image.to_string(),
                strategy: *self,
                tag: tag.to_owned(),
            });
        }
        Ok(tag)
    }
}

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    /// Case-insensitive; surrounding whitespace is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "version" | "semver" => Ok(Strategy::Version),
            "version-lock-major" => Ok(Strategy::VersionLockMajor),
            "version-lock-minor" => Ok(Strategy::VersionLockMinor),
            "latest" => Ok(Strategy::Latest),
            _ => Err(UnknownStrategy {
                value: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_are_read_case_insensitively_with_the_semver_alias() {
        let cases = [
            ("version", Strategy::Version),
            ("VERSION", Strategy::Version),
            ("semver", Strategy::Version),
            ("SemVer", Strategy::Version),
            ("version-lock-major", Strategy::VersionLockMajor),
            ("Version-Lock-Minor", Strategy::VersionLockMinor),
            (" latest ", Strategy::Latest),
            ("LATEST", Strategy::Latest),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<Strategy>().unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn display_is_the_canonical_name_and_parses_back() {
        for s in [
            Strategy::Version,
            Strategy::VersionLockMajor,
            Strategy::VersionLockMinor,
            Strategy::Latest,
        ] {
            assert_eq!(s.to_string().parse::<Strategy>().unwrap(), s);
        }
        assert_eq!(Strategy::default().to_string(), "version");
    }

    #[test]
    fn unknown_strategy_names_the_accepted_values() {
        for input in ["", "newest", "version-lock-patch", "major"] {
            let err = input.parse::<Strategy>().unwrap_err();
            assert_eq!(err.reason(), "UnknownStrategy");
            let text = err.to_string();
            assert!(text.contains(&format!("'{input}'")), "{text}");
            assert!(
                text.contains("version-lock-major") && text.contains("latest"),
                "{text}"
            );
        }
    }

    #[test]
    fn version_strategies_need_a_version_tag_and_latest_takes_any_tag() {
        let stable = ImageRef::parse("nginx:stable").unwrap();
        let err = Strategy::Version.check_image(&stable).unwrap_err();
        assert_eq!(err.reason(), "TagNotAVersion");
        assert!(err.to_string().contains("'stable'"), "{err}");
        assert_eq!(Strategy::Latest.check_image(&stable).unwrap(), "stable");
        let bare = ImageRef::parse("nginx").unwrap();
        assert_eq!(Strategy::Latest.check_image(&bare).unwrap(), "latest");
        let versioned = ImageRef::parse("nginx:1.25.3-alpine").unwrap();
        assert_eq!(
            Strategy::VersionLockMinor.check_image(&versioned).unwrap(),
            "1.25.3-alpine"
        );
    }

    #[test]
    fn digest_only_references_are_never_managed() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let image = ImageRef::parse(&format!("app@{digest}")).unwrap();
        for s in [Strategy::Version, Strategy::Latest] {
            assert_eq!(
                s.check_image(&image).unwrap_err().reason(),
                "DigestOnlyImage"
            );
        }
    }

    #[test]
    fn decisions_render_their_reasons() {
        let update = Decision::Update {
            tag: "1.2.0".into(),
            digest: "sha256:x".into(),
            reason: UpdateReason::NewerVersion {
                tag: "1.2.0".into(),
            },
        };
        assert_eq!(update.to_string(), "Found newer version: 1.2.0");
        assert_eq!(update.reason(), "NewerVersion");
        let image = ImageRef::parse("nginx:1.1.0").unwrap();
        assert_eq!(
            update.image_to_write(&image).unwrap(),
            "nginx:1.2.0@sha256:x"
        );
        let keep = |scope| Decision::Keep(KeepReason::NoNewerVersion { scope }).to_string();
        assert_eq!(keep(Scope::Any), "No newer version available");
        assert_eq!(
            keep(Scope::Major(1)),
            "No newer version available within major version 1"
        );
        assert_eq!(
            keep(Scope::Minor(1, 2)),
            "No newer version available within 1.2"
        );
        assert_eq!(
            Decision::Keep(KeepReason::DigestUnchanged).to_string(),
            "Digest unchanged"
        );
        assert_eq!(
            Decision::Keep(KeepReason::DigestUnchanged).image_to_write(&image),
            None
        );
    }
}
