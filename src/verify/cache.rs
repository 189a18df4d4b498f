//! Verdicts kept between checks (docs/signatures.md#cache).
//!
//! Input: verdicts per (repository, digest) for one key set, and the [`Evidence`] a rejection was made
//! from. Output: a verified verdict for the life of the process; a rejection only while the evidence is
//! unchanged (the caller compares a fresh [`Evidence`]). A push event drops a repository's rejections
//! ([`VerdictCache::forget_rejections`]).
//!
//! Bounded: beyond [`MAX_ENTRIES`], rejections are dropped first (they cost one look to rebuild), then all.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Rejection, Verified};
use crate::registry::{Repository, api_host};

/// Entries beyond this many are pruned.
pub(crate) const MAX_ENTRIES: usize = 16_384;

/// What a rejection was judged on: the `.sig` tag's digest and the referrers listing's digest (either
/// absent when there was none). A new signature changes one of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Evidence {
    pub(crate) signature_tag: Option<String>,
    pub(crate) referrers: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    host: String,
    name: String,
    digest: String,
}

impl Key {
    fn new(repo: &Repository, digest: &str) -> Self {
        Self {
            host: api_host(&repo.registry),
            name: repo.name.clone(),
            digest: digest.to_owned(),
        }
    }
}

/// A cached verdict.
#[derive(Debug, Clone)]
pub(crate) enum Cached {
    Verified(Verified),
    Rejected(Rejection, Evidence),
}

/// The verdicts of one [`super::Verifier`] (one key set).
#[derive(Debug, Default)]
pub(crate) struct VerdictCache {
    entries: Mutex<HashMap<Key, Cached>>,
}

impl VerdictCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Cached>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get(&self, repo: &Repository, digest: &str) -> Option<Cached> {
        self.lock().get(&Key::new(repo, digest)).cloned()
    }

    pub(crate) fn put(&self, repo: &Repository, digest: &str, verdict: Cached) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, v| matches!(v, Cached::Verified(_)));
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(Key::new(repo, digest), verdict);
    }

    /// Drops the rejections of `repo` (a push may have added a signature); verified verdicts stay.
    pub(crate) fn forget_rejections(&self, repo: &Repository) {
        let host = api_host(&repo.registry);
        self.lock().retain(|key, verdict| {
            matches!(verdict, Cached::Verified(_)) || key.host != host || key.name != repo.name
        });
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::verify::{KeyName, Layout, RejectionKind};

    fn verified() -> Cached {
        Cached::Verified(Verified {
            key: KeyName {
                file: "k.pub".into(),
                fingerprint: "SHA256:00".into(),
            },
            layout: Layout::SignatureTag,
        })
    }

    fn rejected() -> Cached {
        Cached::Rejected(
            Rejection {
                kind: RejectionKind::Unsigned,
                message: "no signature".into(),
            },
            Evidence::default(),
        )
    }

    #[test]
    fn forgetting_a_repository_drops_its_rejections_only() {
        let cache = VerdictCache::default();
        let app = Repository::new("docker.io", "team/app");
        let other = Repository::new("docker.io", "team/other");
        cache.put(&app, "sha256:1", verified());
        cache.put(&app, "sha256:2", rejected());
        cache.put(&other, "sha256:3", rejected());
        cache.forget_rejections(&Repository::new("index.docker.io", "team/app"));
        assert!(matches!(
            cache.get(&app, "sha256:1"),
            Some(Cached::Verified(_))
        ));
        assert!(cache.get(&app, "sha256:2").is_none());
        assert!(cache.get(&other, "sha256:3").is_some());
    }

    #[test]
    fn a_full_cache_drops_rejections_before_verdicts_that_verified() {
        let cache = VerdictCache::default();
        let repo = Repository::new("r", "a");
        cache.put(&repo, "kept", verified());
        for i in 0..MAX_ENTRIES - 1 {
            cache.put(&repo, &format!("r{i}"), rejected());
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        cache.put(&repo, "new", rejected());
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&repo, "kept").is_some());
    }
}
