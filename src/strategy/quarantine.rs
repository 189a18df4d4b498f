//! The quarantine (docs/annotations.md#quarantine): images whose rollout failed and were rolled back.
//!
//! Input: the `watch-cluster.io/quarantine` annotation, a JSON array of
//! `{"container","image":"repo:tag@sha256:…","at"}`. Output: a [`Quarantine`] the strategies ask
//! "was this (tag, digest) of this container's repository rolled back before?", and the annotation to write
//! back after adding an entry. At most [`Quarantine::LIMIT`] newest entries are kept so the annotation stays
//! small however long the controller runs.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ClusterQuarantine;
use crate::image::ImageRef;

/// One image whose rollout failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    /// The container the image was written to.
    pub container: String,
    /// The image written, pinned: `repo:tag@sha256:…`.
    pub image: String,
    /// When the rollout was rolled back (RFC 3339).
    pub at: DateTime<Utc>,
}

/// The annotation could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// The annotation is not a JSON array of entries.
    #[error(
        "failed to read the quarantine annotation: expected a JSON array like \
         [{{\"container\":\"app\",\"image\":\"app:1.2.0@sha256:…\",\"at\":\"2026-01-01T00:00:00Z\"}}]"
    )]
    Read(#[source] serde_json::Error),
    /// The entries could not be serialised.
    #[error("failed to write the quarantine annotation")]
    Write(#[source] serde_json::Error),
}

impl QuarantineError {
    /// A short, bounded category for Event reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            QuarantineError::Read(_) => "QuarantineUnreadable",
            QuarantineError::Write(_) => "QuarantineUnwritable",
        }
    }
}

/// The quarantined images of one workload, oldest first, and (with `QUARANTINE_SCOPE=cluster`) the
/// digests quarantined for every workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Quarantine {
    entries: Vec<QuarantineEntry>,
    /// Shared, not copied, between the workloads of a check round; never part of the annotation.
    #[serde(skip)]
    cluster: Arc<ClusterQuarantine>,
}

impl Quarantine {
    /// How many entries are kept (the newest).
    pub const LIMIT: usize = 20;

    /// Reads the annotation value; an empty value is an empty quarantine.
    pub fn from_annotation(value: &str) -> Result<Quarantine, QuarantineError> {
        if value.trim().is_empty() {
            return Ok(Quarantine::default());
        }
        let mut quarantine: Quarantine =
            serde_json::from_str(value).map_err(QuarantineError::Read)?;
        quarantine.normalise();
        Ok(quarantine)
    }

    /// The annotation value to write.
    pub fn to_annotation(&self) -> Result<String, QuarantineError> {
        serde_json::to_string(self).map_err(QuarantineError::Write)
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[QuarantineEntry] {
        &self.entries
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an entry (replacing an older one for the same container and image) and keeps the newest
    /// [`Quarantine::LIMIT`].
    pub fn add(&mut self, entry: QuarantineEntry) {
        self.entries
            .retain(|e| !(e.container == entry.container && e.image == entry.image));
        self.entries.push(entry);
        self.normalise();
    }

    /// This quarantine, also holding every digest of `cluster` (`QUARANTINE_SCOPE=cluster`).
    pub fn with_cluster(self, cluster: Arc<ClusterQuarantine>) -> Self {
        Self { cluster, ..self }
    }

    /// Whether `container` running `current`'s repository at `tag@digest` is quarantined: on this workload
    /// for that container and tag, or for the whole cluster for that digest whatever the tag.
    ///
    /// Entries are compared by registry and repository after normalisation, so `nginx` and
    /// `docker.io/library/nginx` match. An entry that does not parse matches nothing.
    pub fn contains(&self, container: &str, current: &ImageRef, tag: &str, digest: &str) -> bool {
        if self.cluster.find(current, digest).is_some() {
            return true;
        }
        self.entries.iter().any(|entry| {
            entry.container == container
                && ImageRef::parse(&entry.image).is_ok_and(|image| {
                    image.registry() == current.registry()
                        && image.repository() == current.repository()
                        && image.tag() == Some(tag)
                        && image.digest() == Some(digest)
                })
        })
    }

    /// Sorts oldest first (stable, so equal times keep their order) and drops all but the newest.
    fn normalise(&mut self) {
        self.entries.sort_by_key(|e| e.at);
        let excess = self.entries.len().saturating_sub(Self::LIMIT);
        self.entries.drain(..excess);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn entry(container: &str, image: &str, second: u32) -> QuarantineEntry {
        QuarantineEntry {
            container: container.into(),
            image: image.into(),
            at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, second).unwrap(),
        }
    }

    #[test]
    fn annotation_round_trips_as_a_json_array() {
        let mut q = Quarantine::default();
        q.add(entry("app", &format!("app:1.2.0@{}", digest('a')), 0));
        let text = q.to_annotation().unwrap();
        assert_eq!(
            text,
            format!(
                r#"[{{"container":"app","image":"app:1.2.0@{}","at":"2026-01-01T00:00:00Z"}}]"#,
                digest('a')
            )
        );
        assert_eq!(Quarantine::from_annotation(&text).unwrap(), q);
    }

    #[test]
    fn empty_annotation_is_an_empty_quarantine_and_garbage_is_an_error() {
        assert!(Quarantine::from_annotation("").unwrap().is_empty());
        let err = Quarantine::from_annotation("{not json").unwrap_err();
        assert_eq!(err.reason(), "QuarantineUnreadable");
        assert!(err.to_string().contains("JSON array"), "{err}");
    }

    #[test]
    fn only_the_newest_twenty_entries_are_kept() {
        let mut q = Quarantine::default();
        for i in 0..25 {
            q.add(entry("app", &format!("app:1.{i}.0@{}", digest('a')), i));
        }
        assert_eq!(q.entries().len(), Quarantine::LIMIT);
        assert!(q.entries()[0].image.starts_with("app:1.5.0@"));
        assert!(q.entries()[19].image.starts_with("app:1.24.0@"));
    }

    #[test]
    fn an_oversized_annotation_is_trimmed_to_the_newest_when_read() {
        let entries: Vec<_> = (0..30)
            .rev()
            .map(|i| entry("app", &format!("app:{i}.0"), i))
            .collect();
        let q = Quarantine::from_annotation(&serde_json::to_string(&entries).unwrap()).unwrap();
        assert_eq!(q.entries().len(), Quarantine::LIMIT);
        assert_eq!(q.entries()[0].image, "app:10.0");
    }

    #[test]
    fn re_adding_an_image_replaces_its_entry() {
        let mut q = Quarantine::default();
        q.add(entry("app", "app:1.0@x", 0));
        q.add(entry("app", "app:1.0@x", 5));
        assert_eq!(q.entries().len(), 1);
        assert_eq!(q.entries()[0].at.timestamp() % 60, 5);
    }

    #[test]
    fn matching_compares_container_normalised_repository_tag_and_digest() {
        let mut q = Quarantine::default();
        q.add(entry("web", &format!("nginx:1.2.0@{}", digest('a')), 0));
        let current = ImageRef::parse("docker.io/library/nginx:1.1.0").unwrap();
        assert!(q.contains("web", &current, "1.2.0", &digest('a')));
        assert!(
            !q.contains("web", &current, "1.2.0", &digest('b')),
            "other digest"
        );
        assert!(
            !q.contains("web", &current, "1.2.1", &digest('a')),
            "other tag"
        );
        assert!(
            !q.contains("sidecar", &current, "1.2.0", &digest('a')),
            "other container"
        );
        let other = ImageRef::parse("quay.io/nginx:1.1.0").unwrap();
        assert!(
            !q.contains("web", &other, "1.2.0", &digest('a')),
            "other registry"
        );
    }

    #[test]
    fn a_cluster_digest_is_quarantined_for_every_container_and_tag_but_never_written_back() {
        let mut cluster = ClusterQuarantine::default();
        cluster.add(crate::strategy::ClusterEntry {
            registry: "docker.io".into(),
            repository: "library/nginx".into(),
            digest: digest('c'),
            image: format!("nginx:1.3.0@{}", digest('c')),
            kind: "Deployment".into(),
            namespace: "other".into(),
            name: "front".into(),
            reason: "ErrImagePull".into(),
            at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        });
        let q = Quarantine::default().with_cluster(Arc::new(cluster));
        let current = ImageRef::parse("nginx:1.1.0").unwrap();
        assert!(q.contains("web", &current, "1.3.0", &digest('c')));
        assert!(
            q.contains("sidecar", &current, "latest", &digest('c')),
            "any container, any tag"
        );
        assert!(
            !q.contains("web", &current, "1.3.0", &digest('d')),
            "other digest"
        );
        let other = ImageRef::parse("quay.io/nginx:1.1.0").unwrap();
        assert!(
            !q.contains("web", &other, "1.3.0", &digest('c')),
            "other registry"
        );
        assert_eq!(
            q.to_annotation().unwrap(),
            "[]",
            "only the workload's own entries are written"
        );
    }
}
