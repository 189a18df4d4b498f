//! The benchmark's workloads and registry contents, and the minimum number of requests a check window needs.
//!
//! Input: the number of annotated workloads `n`. Output: [`Scenario`]: `n` Deployments with two containers
//! over `n / 20` repositories (60 % on `version*` strategies, 40 % on `latest` over `n / 5` distinct tags),
//! the tags each repository lists, and what "updates due" changes (a newer patch release in every
//! repository, every `latest` tag moved to a new digest). The minimum per window is derived from the same
//! definitions, independently of the controller: one tag list per (repository, credential) that a version
//! strategy needs, one HEAD per distinct tag whose digest a decision needs.

use std::collections::BTreeSet;

use sha2::{Digest as _, Sha256};

/// `version*` strategies and the tag each starts on (the newest its strategy allows, so nothing is due until
/// new tags are published).
pub const VERSION_STRATEGIES: [(&str, &str); 3] = [
    ("version", "2.0.1"),
    ("version-lock-major", "1.1.1"),
    ("version-lock-minor", "1.0.1"),
];
/// The tag each version strategy moves to once updates are due.
pub const DUE_TAGS: [&str; 3] = ["2.0.2", "1.1.2", "1.0.2"];

/// One container of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// `app` or `sidecar`.
    pub name: &'static str,
    /// Repository path, e.g. `bench/r07`.
    pub repository: String,
    /// The tag it starts on.
    pub tag: String,
}

/// One annotated Deployment.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    /// Its name (namespace from [`Scenario::namespace_of`]).
    pub name: String,
    /// The `watch-cluster.io/strategy` value.
    pub strategy: &'static str,
    /// Two containers.
    pub containers: [ContainerSpec; 2],
}

impl WorkloadSpec {
    /// Whether the strategy is one of `version*`.
    pub fn is_version(&self) -> bool {
        self.strategy != "latest"
    }
}

/// Requests a window needs at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Minimum {
    /// Distinct (repository, credential) pairs whose tags a version strategy needs.
    pub tag_lists: usize,
    /// Distinct (repository, tag) pairs whose digest a decision needs.
    pub heads: usize,
    /// Index manifests to read once per new index digest (an unpinned `latest` whose pods run another digest).
    pub gets: usize,
}

/// Everything the benchmark creates.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Annotated workloads.
    pub workloads: Vec<WorkloadSpec>,
    /// Repositories, `bench/r00`…
    pub repositories: Vec<String>,
    /// `latest` tags as (repository, tag).
    pub latest_tags: Vec<(String, String)>,
}

impl Scenario {
    /// The scenario for `n` annotated workloads.
    pub fn new(n: usize) -> Self {
        let repo_count = (n / 20).max(2);
        let repositories: Vec<String> = (0..repo_count).map(|r| format!("bench/r{r:02}")).collect();
        let latest_count = (n * 2 / 5).max(1);
        let version_count = n.saturating_sub(latest_count);
        let tag_count = (n / 5).max(1);
        let latest_tags: Vec<(String, String)> = (0..tag_count)
            .map(|t| {
                (
                    repositories[t % repo_count].clone(),
                    format!("edge-{}", t / repo_count),
                )
            })
            .collect();
        let mut workloads = Vec::with_capacity(n);
        for v in 0..version_count {
            let (strategy, tag) = VERSION_STRATEGIES[v % VERSION_STRATEGIES.len()];
            let container = |name, offset: usize| ContainerSpec {
                name,
                repository: repositories[(v + offset) % repo_count].clone(),
                tag: tag.to_owned(),
            };
            workloads.push(WorkloadSpec {
                name: format!("app-{v:05}"),
                strategy,
                containers: [container("app", 0), container("sidecar", 7)],
            });
        }
        for l in 0..latest_count {
            let container = |name, index: usize| {
                let (repository, tag) = latest_tags[index % tag_count].clone();
                ContainerSpec {
                    name,
                    repository,
                    tag,
                }
            };
            workloads.push(WorkloadSpec {
                name: format!("app-{:05}", version_count + l),
                strategy: "latest",
                containers: [container("app", 2 * l), container("sidecar", 2 * l + 1)],
            });
        }
        Self {
            workloads,
            repositories,
            latest_tags,
        }
    }

    /// Namespaces hold 100 workloads each.
    pub fn namespace_of(index: usize) -> String {
        format!("bench-{}", index / 100)
    }

    /// The version tags every repository lists before updates are due: a long history of old releases (as
    /// real repositories have), variants, pre-releases, and the tags the workloads start on.
    pub fn initial_version_tags() -> Vec<String> {
        let mut tags: Vec<String> = (0..40).map(|m| format!("0.{m}.0")).collect();
        for base in ["1.0.0", "1.0.1", "1.1.0", "1.1.1", "2.0.0", "2.0.1"] {
            tags.push(base.to_owned());
            tags.push(format!("{base}-alpine"));
        }
        tags.push("3.0.0-rc1".to_owned());
        tags
    }

    /// The minimum requests of a window; `due` when new tags were published before it.
    pub fn minimum(&self, due: bool) -> Minimum {
        let mut lists = BTreeSet::new();
        let mut heads = BTreeSet::new();
        let mut gets = BTreeSet::new();
        for w in &self.workloads {
            for c in &w.containers {
                if w.is_version() {
                    lists.insert(c.repository.clone());
                    if due {
                        heads.insert((c.repository.clone(), due_tag(w.strategy)));
                    }
                } else {
                    heads.insert((c.repository.clone(), c.tag.clone()));
                    if due {
                        gets.insert((c.repository.clone(), c.tag.clone()));
                    }
                }
            }
        }
        Minimum {
            tag_lists: lists.len(),
            heads: heads.len(),
            gets: gets.len(),
        }
    }
}

/// The tag a version strategy moves to once updates are due.
pub fn due_tag(strategy: &str) -> String {
    VERSION_STRATEGIES
        .iter()
        .position(|(s, _)| *s == strategy)
        .map(|i| DUE_TAGS[i].to_owned())
        .unwrap_or_default()
}

/// A small, valid OCI image index for `repository:tag` at `generation`, with two platform children, so
/// that a manifest GET returns something the controller can parse (and digests differ per generation).
pub fn index_body(repository: &str, tag: &str, generation: u32) -> Vec<u8> {
    let child = |arch: &str| {
        let hash = Sha256::digest(format!("{repository}:{tag}:{generation}:{arch}").as_bytes());
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", hex::encode(hash)),
            "size": 1024,
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [child("amd64"), child("arm64")],
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_workloads_use_fifty_repositories_and_two_hundred_latest_tags() {
        let s = Scenario::new(1000);
        assert_eq!(s.workloads.len(), 1000);
        assert_eq!(s.repositories.len(), 50);
        assert_eq!(s.workloads.iter().filter(|w| w.is_version()).count(), 600);
        let latest: BTreeSet<_> = s
            .workloads
            .iter()
            .filter(|w| !w.is_version())
            .flat_map(|w| w.containers.iter().map(|c| (&c.repository, &c.tag)))
            .collect();
        assert_eq!(latest.len(), 200);
    }

    #[test]
    fn the_minimum_is_one_list_per_repository_and_one_head_per_needed_tag() {
        let s = Scenario::new(1000);
        assert_eq!(
            s.minimum(false),
            Minimum {
                tag_lists: 50,
                heads: 200,
                gets: 0
            }
        );
        assert_eq!(
            s.minimum(true),
            Minimum {
                tag_lists: 50,
                heads: 200 + 50 * 3,
                gets: 200
            }
        );
    }

    #[test]
    fn index_digests_change_with_the_generation() {
        assert_ne!(index_body("r", "t", 0), index_body("r", "t", 1));
        assert_eq!(index_body("r", "t", 0), index_body("r", "t", 0));
    }
}
