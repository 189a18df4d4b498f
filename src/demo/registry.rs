//! The demo's local registry: Debian's `docker-registry` when installed, else the in-process fake.
//!
//! Input: which registry to use ([`RegistryChoice`]) and the images to publish. Output: a registry on
//! `127.0.0.1:<free port>` serving those tags, and the digest each tag points to. Both variants answer
//! the distribution API the same way for what the demo does (tag lists, `HEAD` by tag and by digest),
//! so the controller and the simulated kubelet cannot tell them apart.

use std::path::Path;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};
use watch_cluster_testkit::{FakeRegistry, ImageKind, RealRegistry, RegistryAuth};

/// Where Debian installs the registry (package `docker-registry`).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Chooses the registry: `docker-registry`, `in-process`, or (unset or empty) the first when installed.
pub const CHOICE_VAR: &str = "WATCH_CLUSTER_DEMO_REGISTRY";

/// Which registry the demo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryChoice {
    /// Debian's `docker-registry` as a child process.
    DockerRegistry,
    /// The in-process fake registry.
    InProcess,
}

impl RegistryChoice {
    /// From [`CHOICE_VAR`], else `docker-registry` when [`REGISTRY_BIN`] exists.
    pub fn from_env() -> anyhow::Result<Self> {
        let value = std::env::var(CHOICE_VAR).unwrap_or_default();
        match value.trim() {
            "" if Path::new(REGISTRY_BIN).exists() => Ok(Self::DockerRegistry),
            "" => Ok(Self::InProcess),
            "docker-registry" => Ok(Self::DockerRegistry),
            "in-process" => Ok(Self::InProcess),
            other => anyhow::bail!(
                "invalid {CHOICE_VAR}={other:?}: expected docker-registry or in-process \
                 (example: {CHOICE_VAR}=in-process)"
            ),
        }
    }
}

/// A running registry; stopped (the child process killed) when dropped.
pub enum DemoRegistry {
    /// Debian's `docker-registry`.
    Real(Box<RealRegistry>),
    /// The in-process fake.
    InProcess(FakeRegistry),
}

impl DemoRegistry {
    /// Starts the chosen registry, anonymous and plain HTTP.
    pub async fn start(choice: RegistryChoice) -> anyhow::Result<Self> {
        Ok(match choice {
            RegistryChoice::DockerRegistry => Self::Real(Box::new(
                RealRegistry::start(RegistryAuth::None)
                    .await
                    .with_context(|| format!("failed to start {REGISTRY_BIN}"))?,
            )),
            RegistryChoice::InProcess => Self::InProcess(
                FakeRegistry::start()
                    .await
                    .context("failed to start the in-process registry")?,
            ),
        })
    }

    /// `127.0.0.1:PORT`, as image references name it.
    pub fn host(&self) -> String {
        match self {
            Self::Real(r) => r.host(),
            Self::InProcess(r) => r.host(),
        }
    }

    /// One line saying which registry runs, and where.
    pub fn describe(&self) -> String {
        match self {
            Self::Real(r) => format!(
                "Debian's docker-registry ({REGISTRY_BIN}, pid {}) at http://{}",
                r.pid(),
                r.host()
            ),
            Self::InProcess(r) => {
                let why = if Path::new(REGISTRY_BIN).exists() {
                    format!("{CHOICE_VAR}=in-process")
                } else {
                    format!("{REGISTRY_BIN} is not installed")
                };
                format!("the in-process registry at http://{} ({why})", r.host())
            }
        }
    }

    /// Publishes `repo:tag` (content varies with `salt`) and returns the digest the tag points to.
    ///
    /// The real registry gets a multi-arch OCI index pushed through the distribution API; the fake is
    /// programmed with an OCI image manifest. Pushing an existing tag again moves it.
    pub async fn push(&self, repo: &str, tag: &str, salt: &str) -> anyhow::Result<String> {
        match self {
            Self::Real(r) => Ok(r
                .push(repo, tag, ImageKind::OciIndex, salt)
                .await
                .with_context(|| format!("failed to push {repo}:{tag}"))?
                .digest),
            Self::InProcess(r) => {
                let body = manifest_body(repo, tag, salt);
                Ok(r.set_manifest(
                    repo,
                    Some(tag),
                    watch_cluster_testkit::registry::OCI_MANIFEST,
                    body.as_bytes(),
                ))
            }
        }
    }
}

/// A plausible OCI image manifest whose bytes (and so digest) depend on repo, tag and salt.
fn manifest_body(repo: &str, tag: &str, salt: &str) -> String {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"demo.image": format!("{repo}:{tag}"), "demo.salt": salt}},
    })
    .to_string();
    let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(config.as_bytes())));
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": watch_cluster_testkit::registry::OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [],
    })
    .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn manifests_of_the_in_process_registry_differ_by_tag_and_salt() {
        let a = manifest_body("demo/web", "1.0.0", "one");
        assert_ne!(a, manifest_body("demo/web", "1.1.0", "one"));
        assert_ne!(a, manifest_body("demo/web", "1.0.0", "two"));
        let parsed: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(parsed["schemaVersion"], 2);
        assert!(
            parsed["config"]["digest"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
    }
}
