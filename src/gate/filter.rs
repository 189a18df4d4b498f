//! The candidate filters: `tag-filter` and `skip` (docs/annotations.md#tag-filter, #skip).
//!
//! Input: the annotation values. Output: a [`TagFilter`] that candidate tags must match before the strategy
//! ranks them, and a [`SkipList`] of tags and `tag@digest` pairs never to take (a manual quarantine).
//!
//! `tag-filter` is Rust `regex` syntax (no look-around or back-references, so matching time is linear in
//! the tag), implicitly anchored at both ends, at most [`MAX_TAG_FILTER_LEN`] bytes, compiled once with a
//! size limit so that a pathological pattern is refused rather than built.

use std::fmt;

use regex::{Regex, RegexBuilder};

/// The longest `tag-filter` accepted, in bytes.
pub const MAX_TAG_FILTER_LEN: usize = 1024;

/// The compiled size a `tag-filter` may reach (`regex`'s default is 10 MiB; a tag filter needs far less).
const COMPILED_SIZE_LIMIT: usize = 1 << 20;

/// A compiled `tag-filter`.
#[derive(Clone)]
pub struct TagFilter {
    source: String,
    regex: Regex,
}

/// Why a `tag-filter` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TagFilterError {
    /// Longer than [`MAX_TAG_FILTER_LEN`].
    #[error(
        "failed to read tag filter: it is {len} bytes long, at most {MAX_TAG_FILTER_LEN} are allowed"
    )]
    TooLong { len: usize },
    /// Not a valid pattern, or too large once compiled.
    #[error("failed to compile tag filter")]
    Regex(#[source] regex::Error),
}

impl TagFilter {
    /// Compiles `pattern`, anchored at both ends.
    pub fn parse(pattern: &str) -> Result<TagFilter, TagFilterError> {
        if pattern.len() > MAX_TAG_FILTER_LEN {
            return Err(TagFilterError::TooLong { len: pattern.len() });
        }
        let build = |text: &str| {
            RegexBuilder::new(text)
                .size_limit(COMPILED_SIZE_LIMIT)
                .dfa_size_limit(COMPILED_SIZE_LIMIT)
                .build()
                .map_err(TagFilterError::Regex)
        };
        // Compiled alone first: a pattern like `a)|(b` is invalid alone but balanced once wrapped, and
        // would otherwise escape the anchors.
        build(pattern)?;
        let regex = build(&format!("^(?:{pattern})$"))?;
        Ok(TagFilter {
            source: pattern.to_owned(),
            regex,
        })
    }

    /// Whether `tag` matches as a whole.
    pub fn matches(&self, tag: &str) -> bool {
        self.regex.is_match(tag)
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl PartialEq for TagFilter {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for TagFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TagFilter").field(&self.source).finish()
    }
}

/// One `skip` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SkipEntry {
    /// Every digest of this tag.
    Tag(String),
    /// One digest of this tag.
    Digest { tag: String, digest: String },
}

/// The `skip` annotation: tags and `tag@sha256:<64 hex>` pairs never to take. Empty skips nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkipList {
    entries: Vec<SkipEntry>,
}

/// A `skip` entry that is neither a tag nor `tag@sha256:<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "failed to read skip entry '{entry}': expected a tag (1.3.0) or a tag and digest (1.3.0@sha256:<64 hex digits>)"
)]
pub struct SkipError {
    /// The entry as written.
    pub entry: String,
}

impl SkipList {
    /// Skips nothing (a `const`, so callers without a `skip` annotation can borrow it for any lifetime).
    pub const EMPTY: SkipList = SkipList {
        entries: Vec::new(),
    };

    /// Parses comma-separated entries; blanks between commas are ignored.
    pub fn parse(value: &str) -> Result<SkipList, SkipError> {
        let mut entries = Vec::new();
        for raw in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let error = || SkipError {
                entry: raw.to_owned(),
            };
            let entry = match raw.split_once('@') {
                None => SkipEntry::Tag(raw.to_owned()),
                Some((tag, digest)) => {
                    let hex = digest.strip_prefix("sha256:").ok_or_else(error)?;
                    let valid = hex.len() == 64
                        && hex
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                    if !valid {
                        return Err(error());
                    }
                    SkipEntry::Digest {
                        tag: tag.to_owned(),
                        digest: digest.to_owned(),
                    }
                }
            };
            let tag = match &entry {
                SkipEntry::Tag(tag) | SkipEntry::Digest { tag, .. } => tag,
            };
            if !is_tag(tag) {
                return Err(error());
            }
            entries.push(entry);
        }
        Ok(SkipList { entries })
    }

    /// Whether `tag` at `digest` is never to be taken.
    pub fn matches(&self, tag: &str, digest: &str) -> bool {
        self.entries.iter().any(|entry| match entry {
            SkipEntry::Tag(t) => t == tag,
            SkipEntry::Digest { tag: t, digest: d } => t == tag && d == digest,
        })
    }

    /// This list plus `tag@digest`: a candidate whose signature was rejected is passed over like a
    /// skipped one while the next lower is considered (docs/signatures.md).
    pub fn with_digest(&self, tag: &str, digest: &str) -> SkipList {
        let mut entries = self.entries.clone();
        entries.push(SkipEntry::Digest {
            tag: tag.to_owned(),
            digest: digest.to_owned(),
        });
        SkipList { entries }
    }

    /// Whether nothing is skipped.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The OCI tag grammar: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn is_tag(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && text.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn a_tag_filter_matches_whole_tags_only() {
        let f = TagFilter::parse(r"1\.2\.[0-9]+").unwrap();
        assert!(f.matches("1.2.3"));
        assert!(f.matches("1.2.10"));
        assert!(!f.matches("1.2.3-alpine"));
        assert!(!f.matches("v1.2.3"));
        assert!(!f.matches("1.3.0"));
        // An alternation stays inside the anchors.
        let alt = TagFilter::parse("1\\..*|2\\.0").unwrap();
        assert!(alt.matches("2.0"));
        assert!(!alt.matches("2.0.1"));
    }

    #[test]
    fn a_tag_filter_cannot_escape_its_anchors_or_use_look_around() {
        assert!(matches!(
            TagFilter::parse("a)|(b"),
            Err(TagFilterError::Regex(_))
        ));
        assert!(TagFilter::parse("(?=1)1.*").is_err());
        assert!(TagFilter::parse("(").is_err());
    }

    #[test]
    fn a_tag_filter_over_one_kibibyte_or_too_large_compiled_is_refused() {
        let long = "a".repeat(MAX_TAG_FILTER_LEN + 1);
        assert!(matches!(
            TagFilter::parse(&long),
            Err(TagFilterError::TooLong { len: 1025 })
        ));
        assert!(TagFilter::parse(&"a".repeat(MAX_TAG_FILTER_LEN)).is_ok());
        // Short but huge once compiled: nested counted repetitions.
        let err = TagFilter::parse(r"(\w{1000}){1000}").unwrap_err();
        assert!(matches!(err, TagFilterError::Regex(_)), "{err}");
    }

    #[test]
    fn skip_matches_a_whole_tag_or_one_digest_of_it() {
        let skip = SkipList::parse(&format!("1.3.0, 1.4.0@{}", digest('a'))).unwrap();
        assert!(skip.matches("1.3.0", &digest('b')));
        assert!(skip.matches("1.4.0", &digest('a')));
        assert!(!skip.matches("1.4.0", &digest('b')));
        assert!(!skip.matches("1.3.1", &digest('a')));
        assert!(SkipList::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn bad_skip_entries_are_named() {
        for bad in [
            "1.3.0@sha256:abc",
            "1.3.0@md5:aaaa",
            &format!("1.3.0@sha256:{}", "A".repeat(64)),
            &format!("@{}", digest('a')),
            "-rc",
            "a b",
        ] {
            let err = SkipList::parse(&format!("1.0.0,{bad}")).unwrap_err();
            assert_eq!(err.entry, bad.trim());
        }
    }
}
