//! Version tags (docs/annotations.md#version-tags): which image tags are versions, how they order, and what kind of suffix they carry.
//!
//! Input: a tag string such as `1.2`, `v1.2.3`, `1.2.3-alpine` or `1.0.0-rc1`.
//! Output: a [`VersionTag`] with numeric `MAJOR.MINOR[.PATCH]`, the `v` style, and an optional suffix that is
//! either a pre-release (its first word is `rc`, `alpha` or `beta`, in any case) or a variant (anything else).
//!
//! WHY not the `semver` crate: it rejects `v1.2.3` and `1.2`, treats `-alpine` as a pre-release that sorts
//! below `1.2.3`, and orders `rc10` below `rc2`. Image tags are not SemVer; this grammar is the one users
//! of the original tool rely on.

use std::{cmp::Ordering, fmt, str::FromStr};

/// A tag of the form `v?MAJOR.MINOR[.PATCH][-SUFFIX]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionTag {
    raw: String,
    v_prefix: bool,
    major: u64,
    minor: u64,
    patch: Option<u64>,
    suffix: Option<String>,
}

/// The tag is not a version tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "failed to read '{tag}' as a version tag: {problem} (expected e.g. '1.2', 'v1.2.3' or '1.2.3-alpine')"
)]
pub struct VersionTagError {
    /// The tag that was given.
    pub tag: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl VersionTagError {
    /// A short, bounded category for Event reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        "NotAVersionTag"
    }
}

/// Longest numeric part accepted; longer digit runs are dates or hashes, not versions.
const MAX_NUMBER_DIGITS: usize = 18;

impl VersionTag {
    /// Parses a tag; `Err` when it is not a version tag (e.g. `latest`, `1`, `1.2.3.4`).
    pub fn parse(tag: &str) -> Result<VersionTag, VersionTagError> {
        let fail = |problem| VersionTagError {
            tag: tag.to_owned(),
            problem,
        };
        let (v_prefix, body) = match tag.strip_prefix('v') {
            Some(body) => (true, body),
            None => (false, tag),
        };
        let (numbers, suffix) = match body.split_once('-') {
            Some((numbers, suffix)) => (numbers, Some(suffix)),
            None => (body, None),
        };
        if let Some(suffix) = suffix
            && !is_valid_suffix(suffix)
        {
            return Err(fail(
                "the suffix after '-' must be letters, digits, '.', '_' or '-'",
            ));
        }
        let parts = numbers
            .split('.')
            .map(parse_number)
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| fail("MAJOR.MINOR[.PATCH] must be numbers"))?;
        let (major, minor, patch) = match parts.as_slice() {
            [major, minor] => (*major, *minor, None),
            [major, minor, patch] => (*major, *minor, Some(*patch)),
            _ => return Err(fail("a version has two or three numeric parts")),
        };
        Ok(VersionTag {
            raw: tag.to_owned(),
            v_prefix,
            major,
            minor,
            patch,
            suffix: suffix.map(str::to_owned),
        })
    }

    /// The tag exactly as given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether the tag starts with `v`.
    pub fn has_v_prefix(&self) -> bool {
        self.v_prefix
    }

    /// The major number.
    pub fn major(&self) -> u64 {
        self.major
    }

    /// The minor number.
    pub fn minor(&self) -> u64 {
        self.minor
    }

    /// The patch number (`0` when the tag has two parts).
    pub fn patch(&self) -> u64 {
        self.patch.unwrap_or(0)
    }

    /// How many numeric parts the tag has: 2 or 3.
    pub fn part_count(&self) -> usize {
        if self.patch.is_some() { 3 } else { 2 }
    }

    /// `(major, minor, patch)`: `1.2` and `1.2.0` have the same numbers.
    pub fn numbers(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch())
    }

    /// The text after the first `-`, if any.
    pub fn suffix(&self) -> Option<&str> {
        self.suffix.as_deref()
    }

    /// Whether the suffix's first word is `rc`, `alpha` or `beta` (any case).
    pub fn is_prerelease(&self) -> bool {
        self.suffix.as_deref().is_some_and(is_prerelease_suffix)
    }

    /// The variant (`alpine`, `php8`), or `None` for a plain release or a pre-release.
    pub fn variant(&self) -> Option<&str> {
        self.suffix.as_deref().filter(|s| !is_prerelease_suffix(s))
    }

    /// Release order: numbers first; at equal numbers a release is above a pre-release.
    /// Two pre-releases (or two releases) with equal numbers compare equal.
    pub fn cmp_release(&self, other: &VersionTag) -> Ordering {
        self.numbers()
            .cmp(&other.numbers())
            .then_with(|| other.is_prerelease().cmp(&self.is_prerelease()))
    }

    /// Whether `self` is strictly newer than `current` in release order.
    pub fn is_newer_than(&self, current: &VersionTag) -> bool {
        self.cmp_release(current) == Ordering::Greater
    }
}

impl FromStr for VersionTag {
    type Err = VersionTagError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VersionTag::parse(s)
    }
}

impl fmt::Display for VersionTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn parse_number(part: &str) -> Option<u64> {
    let digits_only = !part.is_empty()
        && part.len() <= MAX_NUMBER_DIGITS
        && part.bytes().all(|b| b.is_ascii_digit());
    if digits_only { part.parse().ok() } else { None }
}

fn is_valid_suffix(suffix: &str) -> bool {
    !suffix.is_empty()
        && suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The first word is the leading run of ASCII letters: `rc` in `rc1`, `rc.2`, `RC1`.
fn is_prerelease_suffix(suffix: &str) -> bool {
    let end = suffix
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(suffix.len());
    let word = &suffix[..end];
    ["rc", "alpha", "beta"]
        .iter()
        .any(|p| word.eq_ignore_ascii_case(p))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(tag: &str) -> VersionTag {
        VersionTag::parse(tag).unwrap_or_else(|e| panic!("{e}"))
    }

    /// (tag, v, numbers, parts, suffix, pre-release, variant)
    type Row = (
        &'static str,
        bool,
        (u64, u64, u64),
        usize,
        Option<&'static str>,
        bool,
        Option<&'static str>,
    );

    #[test]
    fn version_tags_are_read_into_numbers_style_and_suffix() {
        #[rustfmt::skip]
        let cases: &[Row] = &[
            ("1.2", false, (1, 2, 0), 2, None, false, None),
            ("1.2.3", false, (1, 2, 3), 3, None, false, None),
            ("v1.2.3", true, (1, 2, 3), 3, None, false, None),
            ("1.2.3-alpine", false, (1, 2, 3), 3, Some("alpine"), false, Some("alpine")),
            ("1.25-alpine3.19", false, (1, 25, 0), 2, Some("alpine3.19"), false, Some("alpine3.19")),
            ("8.2.1-php8", false, (8, 2, 1), 3, Some("php8"), false, Some("php8")),
            ("1.0.0-ls393", false, (1, 0, 0), 3, Some("ls393"), false, Some("ls393")),
            ("1.0.0-rc1", false, (1, 0, 0), 3, Some("rc1"), true, None),
            ("1.0.0-rc.2", false, (1, 0, 0), 3, Some("rc.2"), true, None),
            ("1.0.0-beta.3", false, (1, 0, 0), 3, Some("beta.3"), true, None),
            ("1.0.0-RC1", false, (1, 0, 0), 3, Some("RC1"), true, None),
            ("v2.0-Alpha", true, (2, 0, 0), 2, Some("Alpha"), true, None),
            ("1.0.0-rcfoo", false, (1, 0, 0), 3, Some("rcfoo"), false, Some("rcfoo")),
            ("1.0.0-rc1-alpine", false, (1, 0, 0), 3, Some("rc1-alpine"), true, None),
            ("2024.01.15", false, (2024, 1, 15), 3, None, false, None),
        ];
        for (tag, v_prefix, numbers, parts, suffix, pre, variant) in cases {
            let parsed = v(tag);
            assert_eq!(parsed.has_v_prefix(), *v_prefix, "{tag}");
            assert_eq!(parsed.numbers(), *numbers, "{tag}");
            assert_eq!(parsed.part_count(), *parts, "{tag}");
            assert_eq!(parsed.suffix(), *suffix, "{tag}");
            assert_eq!(parsed.is_prerelease(), *pre, "{tag}");
            assert_eq!(parsed.variant(), *variant, "{tag}");
            assert_eq!(parsed.to_string(), *tag);
        }
    }

    #[test]
    fn tags_that_are_not_versions_are_rejected() {
        for tag in [
            "",
            "latest",
            "stable",
            "1",
            "v1",
            "1.2.3.4",
            "1..2",
            "1.2.",
            ".1.2",
            "1.2-",
            "V1.2",
            "1.x",
            "1.2.3+build",
            "vv1.2",
            "1.2.3 ",
            "1.-2",
            "99999999999999999999.0",
        ] {
            let err = VersionTag::parse(tag).expect_err(tag);
            assert_eq!(err.reason(), "NotAVersionTag");
            assert!(err.to_string().contains(&format!("'{tag}'")), "{err}");
        }
    }

    #[test]
    fn ordering_is_numeric_not_lexical() {
        assert!(v("1.10.0").is_newer_than(&v("1.9.0")));
        assert!(v("10.0").is_newer_than(&v("9.99.99")));
        assert!(v("1.2.10").is_newer_than(&v("1.2.9")));
        assert!(!v("1.9.0").is_newer_than(&v("1.10.0")));
    }

    #[test]
    fn two_and_three_part_spellings_of_a_version_are_equal() {
        assert_eq!(v("1.2").cmp_release(&v("1.2.0")), Ordering::Equal);
        assert_eq!(v("v1.2.0").cmp_release(&v("1.2")), Ordering::Equal);
        assert!(!v("1.2").is_newer_than(&v("1.2.0")));
    }

    #[test]
    fn a_release_is_newer_than_its_prerelease() {
        assert!(v("1.0.0").is_newer_than(&v("1.0.0-rc1")));
        assert!(!v("1.0.0-rc2").is_newer_than(&v("1.0.0")));
        assert!(v("1.0.1-rc1").is_newer_than(&v("1.0.0")));
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(tag in "\\PC{0,40}") {
            let _ = VersionTag::parse(&tag);
        }

        #[test]
        fn numbers_survive_a_round_trip(
            v_prefix in any::<bool>(),
            major in 0u64..100_000, minor in 0u64..1000, patch in proptest::option::of(0u64..1000),
            suffix in proptest::option::of("[a-zA-Z0-9][a-zA-Z0-9._-]{0,10}"),
        ) {
            let mut tag = format!("{}{major}.{minor}", if v_prefix { "v" } else { "" });
            if let Some(patch) = patch { tag.push_str(&format!(".{patch}")); }
            if let Some(suffix) = &suffix { tag.push('-'); tag.push_str(suffix); }
            let parsed = VersionTag::parse(&tag).unwrap();
            prop_assert_eq!(parsed.numbers(), (major, minor, patch.unwrap_or(0)));
            prop_assert_eq!(parsed.has_v_prefix(), v_prefix);
            prop_assert_eq!(parsed.suffix(), suffix.as_deref());
            prop_assert_eq!(parsed.as_str(), tag.as_str());
        }

        #[test]
        fn release_order_is_antisymmetric(a in "v?[0-9]{1,2}\\.[0-9]{1,2}(\\.[0-9])?(-rc[0-9])?",
                                          b in "v?[0-9]{1,2}\\.[0-9]{1,2}(\\.[0-9])?(-rc[0-9])?") {
            let (a, b) = (VersionTag::parse(&a).unwrap(), VersionTag::parse(&b).unwrap());
            prop_assert_eq!(a.cmp_release(&b), b.cmp_release(&a).reverse());
        }
    }
}
