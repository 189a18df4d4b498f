//! The cluster quarantine (`QUARANTINE_SCOPE=cluster`, docs/annotations.md#cluster-quarantine): digests whose
//! pods could not be pulled or crashed on some workload, kept from every workload.
//!
//! Input: the `entries.json` key of the ConfigMap `watch-cluster-quarantine`, a JSON array of
//! `{"registry","repository","digest","image","kind","namespace","name","reason","at"}`, one entry per line so
//! a person can delete one with `kubectl edit`. Output: a [`ClusterQuarantine`] that [`super::Quarantine`]
//! consults for every workload, and the value to write back after adding entries. Entries are keyed by
//! (registry, repository, digest): the bits are bad whatever tag points to them. At most
//! [`ClusterQuarantine::LIMIT`] newest entries are kept so the ConfigMap stays far below its 1 MiB bound.
//! Pure; `crate::quarantine_store` reads and writes the ConfigMap.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::image::ImageRef;

/// One digest quarantined for the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEntry {
    /// The registry, normalised (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The repository, normalised (`library/nginx`).
    pub repository: String,
    /// The manifest digest (`sha256:…`).
    pub digest: String,
    /// The image as it was written to the workload, for people.
    pub image: String,
    /// The kind of the workload whose rollout failed.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// What its new pods showed (`ErrImagePull`, `ImagePullBackOff`, `CrashLoopBackOff`).
    pub reason: String,
    /// When it was quarantined.
    pub at: DateTime<Utc>,
}

impl ClusterEntry {
    fn same_digest(&self, registry: &str, repository: &str, digest: &str) -> bool {
        self.registry == registry && self.repository == repository && self.digest == digest
    }
}

/// The ConfigMap's data cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterQuarantineError {
    /// `entries.json` is not a JSON array of entries.
    #[error(
        "failed to read `{key}`: expected a JSON array like [{{\"registry\":\"docker.io\",\"repository\":\
         \"library/nginx\",\"digest\":\"sha256:…\",\"image\":\"nginx:1.27.0@sha256:…\",\"kind\":\"Deployment\",\
         \"namespace\":\"team\",\"name\":\"web\",\"reason\":\"ErrImagePull\",\"at\":\"2026-01-01T00:00:00Z\"}}]",
        key = ClusterQuarantine::DATA_KEY
    )]
    Read(#[source] serde_json::Error),
}

/// The cluster-wide quarantined digests, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterQuarantine {
    entries: Vec<ClusterEntry>,
}

impl ClusterQuarantine {
    /// How many entries are kept (the newest).
    pub const LIMIT: usize = 500;
    /// The ConfigMap data key holding the entries.
    pub const DATA_KEY: &'static str = "entries.json";

    /// Reads the ConfigMap's `entries.json`; absent or blank is empty (the shipped ConfigMap has no data).
    pub fn from_data(value: Option<&str>) -> Result<Self, ClusterQuarantineError> {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            return Ok(Self::default());
        };
        let entries = serde_json::from_str(value).map_err(ClusterQuarantineError::Read)?;
        let mut quarantine = Self { entries };
        quarantine.normalise();
        Ok(quarantine)
    }

    /// The value of `entries.json`: a JSON array with one entry per line, so that clearing an entry by
    /// hand is deleting one line (and the comma before it, for the last one).
    pub fn to_data(&self) -> String {
        let lines: Vec<String> = self
            .entries
            .iter()
            // Plain strings and a timestamp: serialising cannot fail; an empty object would only lose an entry.
            .map(|e| serde_json::to_string(e).unwrap_or_else(|_| "{}".into()))
            .collect();
        if lines.is_empty() {
            return "[]".into();
        }
        format!("[\n{}\n]\n", lines.join(",\n"))
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[ClusterEntry] {
        &self.entries
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an entry, replacing one for the same digest, and keeps the newest [`ClusterQuarantine::LIMIT`].
    /// Returns whether anything changed (an entry already there, from an earlier attempt, is kept as is so
    /// a retried write does not move its time).
    pub fn add(&mut self, entry: ClusterEntry) -> bool {
        if self
            .entries
            .iter()
            .any(|e| e.same_digest(&entry.registry, &entry.repository, &entry.digest))
        {
            return false;
        }
        self.entries.push(entry);
        self.normalise();
        true
    }

    /// The entry for `digest` of `image`'s (registry, repository), whatever tag points to it.
    pub fn find(&self, image: &ImageRef, digest: &str) -> Option<&ClusterEntry> {
        self.entries
            .iter()
            .find(|e| e.same_digest(image.registry(), image.repository(), digest))
    }

    /// Sorts oldest first (stable) and drops all but the newest.
    fn normalise(&mut self) {
        self.entries.sort_by_key(|e| e.at);
        let excess = self.entries.len().saturating_sub(Self::LIMIT);
        self.entries.drain(..excess);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn entry(image: &str, d: &str, second: u32) -> ClusterEntry {
        let parsed = ImageRef::parse(image).unwrap();
        ClusterEntry {
            registry: parsed.registry().to_owned(),
            repository: parsed.repository().to_owned(),
            digest: d.to_owned(),
            image: format!("{image}@{d}"),
            kind: "Deployment".into(),
            namespace: "team".into(),
            name: "web".into(),
            reason: "ErrImagePull".into(),
            at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
                + chrono::Duration::seconds(i64::from(second)),
        }
    }

    #[test]
    fn a_digest_is_quarantined_for_its_repository_whatever_the_tag_or_spelling() {
        let mut q = ClusterQuarantine::default();
        q.add(entry("nginx:1.27.0", &digest('a'), 0));
        let other_tag = ImageRef::parse("docker.io/library/nginx:stable").unwrap();
        assert!(q.find(&other_tag, &digest('a')).is_some());
        assert!(q.find(&other_tag, &digest('b')).is_none(), "other digest");
        let other_repo = ImageRef::parse("quay.io/nginx:1.27.0").unwrap();
        assert!(
            q.find(&other_repo, &digest('a')).is_none(),
            "other registry"
        );
    }

    #[test]
    fn the_data_round_trips_one_entry_per_line_and_empty_is_empty() {
        assert!(ClusterQuarantine::from_data(None).unwrap().is_empty());
        assert!(ClusterQuarantine::from_data(Some("  ")).unwrap().is_empty());
        assert_eq!(ClusterQuarantine::default().to_data(), "[]");
        let mut q = ClusterQuarantine::default();
        q.add(entry("r/app:1.1.0", &digest('a'), 0));
        q.add(entry("r/app:1.2.0", &digest('b'), 1));
        let data = q.to_data();
        assert_eq!(data.lines().count(), 4, "{data}");
        assert!(
            data.lines().nth(1).unwrap().starts_with(
                r#"{"registry":"docker.io","repository":"r/app","digest":"sha256:aaaa"#
            ),
            "{data}"
        );
        assert_eq!(ClusterQuarantine::from_data(Some(&data)).unwrap(), q);
    }

    #[test]
    fn unparseable_data_is_an_error_that_shows_the_format() {
        let error = ClusterQuarantine::from_data(Some("{oops")).unwrap_err();
        assert!(error.to_string().contains("entries.json"), "{error}");
        assert!(error.to_string().contains("\"digest\""), "{error}");
    }

    #[test]
    fn only_the_newest_500_are_kept_and_a_repeated_digest_keeps_its_first_entry() {
        let mut q = ClusterQuarantine::default();
        for i in 0..510u32 {
            let d = format!("sha256:{i:064}");
            assert!(q.add(entry("r/app:1.0.0", &d, i)));
        }
        assert_eq!(q.entries().len(), ClusterQuarantine::LIMIT);
        assert_eq!(q.entries()[0].digest, format!("sha256:{:064}", 10));
        let again = entry("r/app:9.9.9", &format!("sha256:{:064}", 509), 900);
        assert!(!q.add(again), "already quarantined");
        let kept = q.entries().last().unwrap();
        assert!(kept.image.starts_with("r/app:1.0.0@"), "{kept:?}");
    }

    #[test]
    fn the_format_shown_in_the_docs_is_the_one_read() {
        let docs = include_str!("../../docs/annotations.md");
        let section = docs
            .split("### Cluster quarantine")
            .nth(1)
            .expect("docs/annotations.md has the section");
        let example = section
            .split("```json\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a JSON example");
        let q = ClusterQuarantine::from_data(Some(example)).unwrap();
        assert_eq!(q.entries().len(), 1);
        assert_eq!(q.entries()[0].reason, "CrashLoopBackOff");
        // What the controller writes has the documented shape: one entry per line.
        assert_eq!(q.to_data().lines().count(), example.lines().count());
    }
}
