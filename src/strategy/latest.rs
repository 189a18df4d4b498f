//! The `latest` strategy (docs/annotations.md#strategy): keep the current tag, whatever it is, and follow its digest.
//!
//! Input: the current image, the digest it runs (pinned in the spec, or agreed by the ready pods; `None`
//! when unknown), the digest the registry reports for the tag, and the quarantine. Output: a [`Decision`].
//!
//! An unknown current digest is pinned once to the registry's digest, so that later checks compare
//! exactly and every node runs the same bits without relying on `imagePullPolicy: Always`. A digest that
//! failed a rollout before is never reapplied.

use super::{Decision, Excluded, Exclusion, KeepReason, Quarantine, UpdateReason};
use crate::{gate::SkipList, image::ImageRef};

/// Decides whether `current` (in `container`) moves to `registry_digest`.
pub fn decide_latest(
    current: &ImageRef,
    container: &str,
    current_digest: Option<&str>,
    registry_digest: &str,
    quarantine: &Quarantine,
) -> Decision {
    let excluded = Excluded {
        quarantine,
        skip: &SkipList::EMPTY,
    };
    decide_latest_excluding(
        current,
        container,
        current_digest,
        registry_digest,
        excluded,
    )
}

/// [`decide_latest`] that also never takes what the `skip` annotation names. `registry_digest` is the
/// digest to move to: the tag's now, or with `min-age` the newest one old enough.
pub fn decide_latest_excluding(
    current: &ImageRef,
    container: &str,
    current_digest: Option<&str>,
    registry_digest: &str,
    excluded: Excluded<'_>,
) -> Decision {
    let Some(tag) = current.effective_tag() else {
        return Decision::Keep(KeepReason::DigestOnly);
    };
    if current_digest == Some(registry_digest) {
        return Decision::Keep(KeepReason::DigestUnchanged);
    }
    match excluded.why(container, current, tag, registry_digest) {
        Some(Exclusion::Quarantined) => {
            return Decision::Keep(KeepReason::DigestQuarantined {
                tag: tag.to_owned(),
                digest: registry_digest.to_owned(),
            });
        }
        Some(Exclusion::Skipped) => {
            return Decision::Keep(KeepReason::DigestSkipped {
                tag: tag.to_owned(),
                digest: registry_digest.to_owned(),
            });
        }
        None => {}
    }
    let reason = match current_digest {
        Some(_) => UpdateReason::NewDigest {
            tag: tag.to_owned(),
        },
        None => UpdateReason::PinDigest {
            tag: tag.to_owned(),
        },
    };
    Decision::Update {
        tag: tag.to_owned(),
        digest: registry_digest.to_owned(),
        reason,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::strategy::QuarantineEntry;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn image(text: &str) -> ImageRef {
        ImageRef::parse(text).unwrap()
    }

    fn quarantined(container: &str, image: &str) -> Quarantine {
        let mut q = Quarantine::default();
        q.add(QuarantineEntry {
            container: container.into(),
            image: image.into(),
            at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        });
        q
    }

    #[test]
    fn a_new_digest_for_the_tag_is_written_pinned_with_the_same_tag() {
        let current = image(&format!("nginx:stable@{}", digest('a')));
        let decision = decide_latest(
            &current,
            "web",
            Some(&digest('a')),
            &digest('b'),
            &Quarantine::default(),
        );
        assert_eq!(decision.to_string(), "Tag 'stable' has a new digest");
        assert_eq!(decision.reason(), "NewDigest");
        assert_eq!(
            decision.image_to_write(&current).unwrap(),
            format!("nginx:stable@{}", digest('b'))
        );
    }

    #[test]
    fn an_unchanged_digest_is_kept() {
        let current = image("ghcr.io/o/app:main");
        let decision = decide_latest(
            &current,
            "app",
            Some(&digest('a')),
            &digest('a'),
            &Quarantine::default(),
        );
        assert_eq!(decision, Decision::Keep(KeepReason::DigestUnchanged));
        assert_eq!(decision.to_string(), "Digest unchanged");
    }

    #[test]
    fn an_unknown_current_digest_is_pinned_once_to_the_registry_digest() {
        let current = image("python:3.11-slim");
        let decision = decide_latest(&current, "py", None, &digest('c'), &Quarantine::default());
        assert_eq!(decision.reason(), "PinDigest");
        assert_eq!(
            decision.image_to_write(&current).unwrap(),
            format!("python:3.11-slim@{}", digest('c'))
        );
        // Once pinned, the next check compares exactly and keeps it.
        let pinned = image(&decision.image_to_write(&current).unwrap());
        let next = decide_latest(
            &pinned,
            "py",
            pinned.digest(),
            &digest('c'),
            &Quarantine::default(),
        );
        assert_eq!(next, Decision::Keep(KeepReason::DigestUnchanged));
    }

    #[test]
    fn a_bare_name_follows_latest() {
        let current = image("nginx");
        let decision = decide_latest(&current, "web", None, &digest('d'), &Quarantine::default());
        assert_eq!(
            decision.image_to_write(&current).unwrap(),
            format!("nginx:latest@{}", digest('d'))
        );
    }

    #[test]
    fn a_quarantined_digest_is_never_reapplied() {
        let current = image(&format!("nginx:stable@{}", digest('a')));
        let q = quarantined("web", &format!("nginx:stable@{}", digest('b')));
        let decision = decide_latest(&current, "web", Some(&digest('a')), &digest('b'), &q);
        assert_eq!(decision.reason(), "DigestQuarantined");
        assert!(decision.to_string().contains("quarantined"), "{decision}");
        // Unknown current digest: still not pinned to the quarantined one.
        let unpinned = image("nginx:stable");
        assert_eq!(
            decide_latest(&unpinned, "web", None, &digest('b'), &q).reason(),
            "DigestQuarantined"
        );
        // A newer digest after the quarantined one is applied.
        assert_eq!(
            decide_latest(&current, "web", Some(&digest('a')), &digest('c'), &q).reason(),
            "NewDigest"
        );
    }

    #[test]
    fn a_skipped_digest_is_not_pinned_but_a_later_one_is() {
        let current = image("nginx:stable");
        let skip = SkipList::parse(&format!("stable@{}", digest('b'))).unwrap();
        let excluded = Excluded {
            quarantine: &Quarantine::default(),
            skip: &skip,
        };
        let held = decide_latest_excluding(&current, "web", None, &digest('b'), excluded);
        assert_eq!(held.reason(), "DigestSkipped");
        assert!(held.to_string().contains("skip"), "{held}");
        let next = decide_latest_excluding(&current, "web", None, &digest('c'), excluded);
        assert_eq!(next.reason(), "PinDigest");
    }

    #[test]
    fn digest_only_references_are_kept() {
        let current = image(&format!("app@{}", digest('a')));
        let decision = decide_latest(
            &current,
            "app",
            current.digest(),
            &digest('b'),
            &Quarantine::default(),
        );
        assert_eq!(decision, Decision::Keep(KeepReason::DigestOnly));
    }
}
