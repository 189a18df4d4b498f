//! Registry push events (SPEC §12, docs/push-events.md): registries tell us a tag was pushed, so the
//! workloads using that repository are checked now instead of at their next cron tick.
//!
//! Input: HTTP requests on `EVENTS_ADDR` from five kinds of sender (CNCF distribution, Docker Hub,
//! GitHub, Harbor, Quay), each authenticated its own way. Output: one [`RepositoryPushed`] per
//! (registry, repository) per accepted event, sent to the consumer that maps repositories to workloads,
//! and the registry cache entries of that repository dropped.
//!
//! Why an event is only a hint: it drops cached answers and asks for a check; the digest is always
//! resolved from the registry, never taken from the event, so a forged or stale event can at worst cost
//! one registry lookup. Why only the leader serves: the leader is the replica that acts; a follower
//! answers 503 so the sender retries, and the events Service routes to the Pod carrying the leader
//! label ([`label`]).
//!
//! - [`payload`]: per-provider parsing into [`Push`]es, pure.
//! - [`auth`]: tokens and their constant-time checks, GitHub's HMAC.
//! - [`dedup`]: the bounded store of delivery ids already seen.
//! - [`server`]: the listener.
//! - [`label`]: the leader label on the controller's own Pod.
//! - `metrics`: events by provider and result.

pub mod auth;
pub mod dedup;
pub mod label;
mod metrics;
pub mod payload;
pub mod server;

use std::collections::HashMap;

pub use auth::Token;
pub use metrics::{EventResult, Metrics};
pub use payload::{PayloadError, Provider, Push};

/// One repository named by an accepted event: what the controller's consumer receives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepositoryPushed {
    /// The registry as workloads name it (aliases applied), e.g. `docker.io`, `registry.example.com:5000`.
    pub registry: String,
    /// The repository path, e.g. `library/nginx`.
    pub repository: String,
    /// At least one push of this repository in the event was a signature tag (`sha256-<hex>.sig`,
    /// `sha256-<hex>`): cached signature rejections of the repository are stale. A check is due either way.
    pub signature: bool,
}

/// `EVENTS_HOST_ALIASES`: the host a registry reports → the host workloads use (both lowercase).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAliases(HashMap<String, String>);

impl HostAliases {
    /// Aliases from `(reported, used)` pairs; hosts are compared lowercase.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(from, to)| (from.to_ascii_lowercase(), to.to_ascii_lowercase()))
                .collect(),
        )
    }

    /// Whether no alias is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `push` with its host replaced by the alias, if any, and normalised again (an alias to Docker Hub
    /// gets Docker Hub's `library/` rule).
    pub fn apply(&self, mut push: Push) -> Push {
        if let Some(to) = self.0.get(&push.host) {
            let (host, repository) = payload::normalise(to, &push.repository);
            push.host = host;
            push.repository = repository;
        }
        push
    }
}

/// One [`RepositoryPushed`] per (registry, repository) of `pushes`, in first-seen order.
pub fn by_repository(pushes: &[Push]) -> Vec<RepositoryPushed> {
    let mut out: Vec<RepositoryPushed> = Vec::new();
    for push in pushes {
        match out
            .iter_mut()
            .find(|r| r.registry == push.host && r.repository == push.repository)
        {
            Some(seen) => seen.signature |= push.signature,
            None => out.push(RepositoryPushed {
                registry: push.host.clone(),
                repository: push.repository.clone(),
                signature: push.signature,
            }),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn push(host: &str, repository: &str, tag: &str, signature: bool) -> Push {
        Push {
            host: host.into(),
            repository: repository.into(),
            tag: tag.into(),
            digest: None,
            signature,
            id: tag.into(),
        }
    }

    #[test]
    fn an_alias_maps_the_reported_host_to_the_one_workloads_use() {
        let aliases = HostAliases::new([
            (
                "Internal:5000".to_owned(),
                "registry.example.com".to_owned(),
            ),
            ("mirror.local".to_owned(), "docker.io".to_owned()),
        ]);
        let mapped = aliases.apply(push("internal:5000", "team/app", "1.0", false));
        assert_eq!(mapped.host, "registry.example.com");
        assert_eq!(mapped.repository, "team/app");
        let hub = aliases.apply(push("mirror.local", "nginx", "1.0", false));
        assert_eq!(
            (hub.host.as_str(), hub.repository.as_str()),
            ("docker.io", "library/nginx")
        );
        let other = aliases.apply(push("ghcr.io", "o/a", "1", false));
        assert_eq!(other.host, "ghcr.io");
    }

    #[test]
    fn pushes_of_one_repository_make_one_item_that_is_a_signature_if_any_push_was() {
        let items = by_repository(&[
            push("ghcr.io", "o/a", "1.0", false),
            push("ghcr.io", "o/b", "1.0", false),
            push("ghcr.io", "o/a", "sha256-00.sig", true),
        ]);
        assert_eq!(
            items,
            vec![
                RepositoryPushed {
                    registry: "ghcr.io".into(),
                    repository: "o/a".into(),
                    signature: true
                },
                RepositoryPushed {
                    registry: "ghcr.io".into(),
                    repository: "o/b".into(),
                    signature: false
                },
            ]
        );
    }
}
