//! Table tests of the version strategies against every rule of docs/annotations.md#version-tags.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use proptest::prelude::{prop_assert, prop_assert_eq, proptest};

use super::*;
use crate::gate::SkipList;
use crate::strategy::QuarantineEntry;

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| (*t).to_owned()).collect()
}

fn best(strategy: Strategy, current: &str, list: &[&str]) -> Option<String> {
    let eval = rank_candidates(strategy, current, &tags(list)).unwrap();
    eval.best().map(|v| v.as_str().to_owned())
}

fn rejection(eval: &Evaluation, tag: &str) -> Rejection {
    eval.rejected
        .iter()
        .find(|(t, _)| t == tag)
        .map(|(_, r)| r.clone())
        .unwrap_or_else(|| panic!("{tag} not rejected: {eval:?}"))
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

#[test]
fn best_candidate_follows_the_rules_of_spec_section_3() {
    use crate::strategy::Strategy::{Version, VersionLockMajor, VersionLockMinor};
    // (strategy, current, listed tags, expected best)
    let cases: &[(Strategy, &str, &[&str], Option<&str>)] = &[
        (
            Version,
            "1.0.0",
            &["1.0.0", "1.2.0", "1.10.0", "1.9.9"],
            Some("1.10.0"),
        ),
        (Version, "1.0.0", &["latest", "stable", "main"], None),
        // never a downgrade, never equal
        (Version, "2.0.0", &["1.9.0", "2.0", "v2.0.0", "2.0.0"], None),
        // variants: exactly the current one
        (
            Version,
            "1.2.3-alpine",
            &["1.2.4", "1.2.4-perl", "1.2.4-alpine", "1.3.0"],
            Some("1.2.4-alpine"),
        ),
        (Version, "1.2.3", &["1.2.4-alpine", "1.2.4-perl"], None),
        (
            Version,
            "1.25-alpine3.19",
            &["1.26-alpine3.20", "1.26-alpine3.19"],
            Some("1.26-alpine3.19"),
        ),
        // pre-releases: never candidates; a pre-release current moves to its release
        (
            Version,
            "1.0.0",
            &["1.1.0-rc1", "1.1.0-beta.3", "1.1.0-RC1", "1.1.0-alpha"],
            None,
        ),
        (Version, "1.0.0-rc1", &["1.0.0-rc2", "1.0.0"], Some("1.0.0")),
        (Version, "1.0.0-rc1", &["1.0.0-rc2", "0.9.0"], None),
        // lock scopes
        (
            VersionLockMajor,
            "1.2.3",
            &["1.9.0", "2.0.0"],
            Some("1.9.0"),
        ),
        (VersionLockMajor, "1.2.3", &["2.0.0", "0.9.0"], None),
        (
            VersionLockMinor,
            "1.2.3",
            &["1.2.9", "1.3.0", "2.0.0"],
            Some("1.2.9"),
        ),
        (VersionLockMinor, "1.2", &["1.2.1", "1.3"], Some("1.2.1")),
        (VersionLockMinor, "1.2.3", &["1.3.0"], None),
        // spellings: the current v style first, then the current number of parts
        (Version, "1.1", &["1.2", "1.2.0", "v1.2.0"], Some("1.2")),
        (Version, "1.1.0", &["1.2", "1.2.0", "v1.2.0"], Some("1.2.0")),
        (
            Version,
            "v1.1.0",
            &["1.2", "1.2.0", "v1.2", "v1.2.0"],
            Some("v1.2.0"),
        ),
        (Version, "v1.1", &["1.2.0", "v1.2.0"], Some("v1.2.0")),
        (Version, "v1.1.0", &["1.2.0", "1.2"], Some("1.2.0")),
        (Version, "1.1.0", &["v1.2"], Some("v1.2")),
        // a higher version in the other style beats a lower one in the current style
        (Version, "1.1.0", &["1.2.0", "v1.3.0"], Some("v1.3.0")),
    ];
    for (strategy, current, list, expected) in cases {
        assert_eq!(
            best(*strategy, current, list).as_deref(),
            *expected,
            "{strategy} from {current} among {list:?}"
        );
    }
}

#[test]
fn accepted_candidates_are_ordered_best_first_one_spelling_per_version() {
    let eval = rank_candidates(
        Strategy::Version,
        "1.0.0",
        &tags(&["1.1", "1.3.0", "1.1.0", "v1.2.0", "1.10.0", "1.3.0"]),
    )
    .unwrap();
    let accepted: Vec<&str> = eval.accepted.iter().map(VersionTag::as_str).collect();
    assert_eq!(accepted, ["1.10.0", "1.3.0", "v1.2.0", "1.1.0"]);
    assert_eq!(
        rejection(&eval, "1.1"),
        Rejection::OtherSpelling {
            preferred: "1.1.0".into()
        }
    );
}

#[test]
fn every_rejected_tag_carries_its_reason() {
    let eval = rank_candidates(
        Strategy::VersionLockMinor,
        "1.2.3-alpine",
        &tags(&[
            "latest",
            "1.2.4-rc1",
            "1.2.4",
            "1.2.3-alpine",
            "1.2.3.0",
            "1.2.2-alpine",
            "1.3.0-alpine",
        ]),
    )
    .unwrap();
    assert_eq!(rejection(&eval, "latest"), Rejection::NotAVersion);
    assert_eq!(rejection(&eval, "1.2.3.0"), Rejection::NotAVersion);
    assert_eq!(rejection(&eval, "1.2.4-rc1"), Rejection::PreRelease);
    assert_eq!(
        rejection(&eval, "1.2.4"),
        Rejection::OtherVariant {
            current: Some("alpine".into()),
            found: None
        }
    );
    assert_eq!(rejection(&eval, "1.2.3-alpine"), Rejection::Current);
    assert_eq!(rejection(&eval, "1.2.2-alpine"), Rejection::Older);
    assert_eq!(
        rejection(&eval, "1.3.0-alpine"),
        Rejection::OutsideScope(Scope::Minor(1, 2))
    );
    assert!(eval.accepted.is_empty());
    assert_eq!(eval.rejected.len(), 7);
    assert_eq!(
        rejection(&eval, "1.2.4").to_string(),
        "variant (none) differs from the current 'alpine'"
    );
    assert_eq!(rejection(&eval, "1.3.0-alpine").to_string(), "outside 1.2");
}

#[test]
fn another_spelling_of_the_current_version_is_the_same_version() {
    let eval = rank_candidates(Strategy::Version, "1.2.0", &tags(&["1.2", "v1.2.0"])).unwrap();
    assert_eq!(rejection(&eval, "1.2"), Rejection::SameVersion);
    assert_eq!(rejection(&eval, "v1.2.0"), Rejection::SameVersion);
}

#[test]
fn ranking_needs_a_version_strategy_and_a_version_tag() {
    let err = rank_candidates(Strategy::Latest, "1.0.0", &[]).unwrap_err();
    assert_eq!(err.reason(), "NotAVersionStrategy");
    let err = rank_candidates(Strategy::Version, "stable", &[]).unwrap_err();
    assert_eq!(err.reason(), "TagNotAVersion");
}

fn quarantine_of(container: &str, images: &[String]) -> Quarantine {
    let mut q = Quarantine::default();
    for image in images {
        q.add(QuarantineEntry {
            container: container.into(),
            image: image.clone(),
            at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        });
    }
    q
}

fn resolved(pairs: &[(&str, char)]) -> Vec<ResolvedCandidate> {
    pairs
        .iter()
        .map(|(tag, d)| ResolvedCandidate {
            tag: (*tag).into(),
            digest: digest(*d),
        })
        .collect()
}

#[test]
fn the_highest_candidate_is_written_pinned_in_the_users_spelling() {
    let current = ImageRef::parse("nginx:1.20.0").unwrap();
    let eval = rank_candidates(
        Strategy::Version,
        "1.20.0",
        &tags(&["1.20.0", "1.21.0", "1.22.0"]),
    )
    .unwrap();
    let decision = decide_version(
        &current,
        "web",
        &eval,
        &resolved(&[("1.22.0", 'b'), ("1.21.0", 'a')]),
        &Quarantine::default(),
    );
    assert_eq!(decision.to_string(), "Found newer version: 1.22.0");
    assert_eq!(
        decision.image_to_write(&current).unwrap(),
        format!("nginx:1.22.0@{}", digest('b'))
    );
}

#[test]
fn quarantined_tag_and_digest_pairs_are_skipped_for_the_next_highest() {
    let current = ImageRef::parse("docker.io/library/nginx:1.20.0").unwrap();
    let eval = rank_candidates(Strategy::Version, "1.20.0", &tags(&["1.21.0", "1.22.0"])).unwrap();
    let q = quarantine_of("web", &[format!("nginx:1.22.0@{}", digest('b'))]);
    let both = resolved(&[("1.22.0", 'b'), ("1.21.0", 'a')]);
    let decision = decide_version(&current, "web", &eval, &both, &q);
    assert_eq!(decision.to_string(), "Found newer version: 1.21.0");
    // The same tag with a new digest (a rebuilt 1.22.0) is no longer quarantined.
    let rebuilt = resolved(&[("1.22.0", 'c')]);
    assert_eq!(
        decide_version(&current, "web", &eval, &rebuilt, &q).to_string(),
        "Found newer version: 1.22.0"
    );
    // Another container's quarantine does not apply.
    assert_eq!(
        decide_version(&current, "other", &eval, &both, &q).to_string(),
        "Found newer version: 1.22.0"
    );
}

#[test]
fn when_every_candidate_is_quarantined_the_image_is_kept() {
    let current = ImageRef::parse("app:1.2.0").unwrap();
    let eval = rank_candidates(
        Strategy::VersionLockMajor,
        "1.2.0",
        &tags(&["1.3.0", "2.0.0"]),
    )
    .unwrap();
    let q = quarantine_of("app", &[format!("app:1.3.0@{}", digest('a'))]);
    let decision = decide_version(&current, "app", &eval, &resolved(&[("1.3.0", 'a')]), &q);
    assert_eq!(decision.reason(), "CandidatesQuarantined");
    assert_eq!(
        decision.to_string(),
        "No newer version available within major version 1: quarantined after a failed rollout: 1.3.0"
    );
}

#[test]
fn no_candidates_give_the_scope_in_the_reason() {
    let current = ImageRef::parse("app:1.2.0").unwrap();
    let cases = [
        (Strategy::Version, "No newer version available"),
        (
            Strategy::VersionLockMajor,
            "No newer version available within major version 1",
        ),
        (
            Strategy::VersionLockMinor,
            "No newer version available within 1.2",
        ),
    ];
    for (strategy, text) in cases {
        let eval = rank_candidates(strategy, "1.2.0", &tags(&["1.1.0"])).unwrap();
        let decision = decide_version(&current, "app", &eval, &[], &Quarantine::default());
        assert_eq!(decision.to_string(), text);
        assert_eq!(decision.reason(), "NoNewerVersion");
    }
}

#[test]
fn candidates_without_a_digest_are_not_written() {
    let current = ImageRef::parse("app:1.2.0").unwrap();
    let eval = rank_candidates(Strategy::Version, "1.2.0", &tags(&["1.3.0"])).unwrap();
    let decision = decide_version(
        &current,
        "app",
        &eval,
        &resolved(&[("9.9.9", 'a')]),
        &Quarantine::default(),
    );
    assert_eq!(decision.reason(), "DigestsUnknown");
}

proptest! {
    #[test]
    fn accepted_candidates_are_always_newer_release_tags_of_the_current_variant(
        current in "v?[0-9]\\.[0-9](\\.[0-9])?(-alpine|-rc1)?",
        list in proptest::collection::vec("v?[0-9]\\.[0-9](\\.[0-9])?(-alpine|-rc1|-perl)?|latest", 0..12),
    ) {
        let eval = rank_candidates(Strategy::Version, &current, &list).unwrap();
        let now = VersionTag::parse(&current).unwrap();
        for candidate in &eval.accepted {
            prop_assert!(candidate.is_newer_than(&now));
            prop_assert!(!candidate.is_prerelease());
            prop_assert_eq!(candidate.variant(), now.variant());
            prop_assert!(list.iter().any(|t| t == candidate.as_str()), "only listed tags");
        }
        for pair in eval.accepted.windows(2) {
            prop_assert!(pair[0].cmp_release(&pair[1]) == std::cmp::Ordering::Greater);
        }
        let distinct: BTreeSet<&String> = list.iter().collect();
        prop_assert_eq!(eval.accepted.len() + eval.rejected.len(), distinct.len());
    }
}

#[test]
fn the_tag_filter_applies_before_the_spelling_rules() {
    use crate::gate::TagFilter;
    let filter = TagFilter::parse(r"1\.2\.[0-9]+").unwrap();
    let list = tags(&["1.2", "1.2.0", "1.2.5", "1.3.0", "1.2.9-alpine"]);
    let eval = rank_candidates_filtered(Strategy::Version, "1.1.0", &list, Some(&filter)).unwrap();
    // Unfiltered, `1.2` would lose to `1.2.0` only by spelling; filtered, 1.3.0 is gone and `1.2` never competes.
    let accepted: Vec<&str> = eval.accepted.iter().map(VersionTag::as_str).collect();
    assert_eq!(accepted, ["1.2.5", "1.2.0"]);
    assert_eq!(rejection(&eval, "1.3.0"), Rejection::TagFilter);
    assert_eq!(rejection(&eval, "1.2"), Rejection::TagFilter);
    assert_eq!(
        Rejection::TagFilter.to_string(),
        "does not match the tag filter"
    );
    let unfiltered = rank_candidates(Strategy::Version, "1.1.0", &list).unwrap();
    assert_eq!(unfiltered.best().unwrap().as_str(), "1.3.0");
}

#[test]
fn skipped_tags_and_digests_are_passed_over_like_quarantined_ones() {
    let current = ImageRef::parse("nginx:1.20.0").unwrap();
    let eval = rank_candidates(
        Strategy::Version,
        "1.20.0",
        &tags(&["1.21.0", "1.22.0", "1.23.0"]),
    )
    .unwrap();
    let all = resolved(&[("1.23.0", 'c'), ("1.22.0", 'b'), ("1.21.0", 'a')]);
    let skip = SkipList::parse(&format!("1.23.0,1.22.0@{}", digest('b'))).unwrap();
    let quarantine = Quarantine::default();
    let excluded = Excluded {
        quarantine: &quarantine,
        skip: &skip,
    };
    let decision = decide_version_excluding(&current, "web", &eval, &all, excluded);
    assert_eq!(decision.to_string(), "Found newer version: 1.21.0");
    // Only one digest of 1.22.0 is skipped: a rebuild is taken.
    let rebuilt = resolved(&[("1.23.0", 'c'), ("1.22.0", 'd')]);
    assert_eq!(
        decide_version_excluding(&current, "web", &eval, &rebuilt, excluded).to_string(),
        "Found newer version: 1.22.0"
    );
    // All excluded: the reason names the skipped and the quarantined ones.
    let q = quarantine_of("web", &[format!("nginx:1.21.0@{}", digest('a'))]);
    let both = Excluded {
        quarantine: &q,
        skip: &skip,
    };
    let kept = decide_version_excluding(&current, "web", &eval, &all, both);
    assert_eq!(kept.reason(), "CandidatesSkipped");
    assert_eq!(
        kept.to_string(),
        "No newer version available: skipped by annotation: 1.23.0, 1.22.0; quarantined after a failed rollout: 1.21.0"
    );
}
