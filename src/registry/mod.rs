//! What the registry has: tags, the digest a tag points to, and the children of an index (docs/guarantees.md#registries).
//!
//! Input: a [`Repository`] (registry as written in image references plus the repository name), an optional
//! [`Credential`] and a tag or digest. Output: `Arc`-shared answers or a typed [`RegistryError`] whose
//! [`RegistryError::reason`] is short and bounded (for Events and metric labels).
//!
//! # Why our own small client on reqwest
//!
//! The project was specified with `oci-distribution`; its maintained successor `oci-client` cannot carry
//! the behaviour docs/guarantees.md#registries requires:
//! - its errors hold only `{code, url, message}`, so the response headers that drive rate limiting
//!   (`Retry-After`, `RateLimit-Remaining`) are lost;
//! - its tag listing does not follow `Link`, and "page until empty" never ends against distribution 2.8,
//!   which ignores `n`/`last`;
//! - stored auth is first-wins per registry host (oci-client issue #221,
//!   <https://github.com/oras-project/rust-oci-client/issues/221>), so two namespaces with different
//!   secrets for one registry would share credentials.
//!
//! The Distribution API subset we need (tag list, manifest HEAD, one manifest GET) is small, so this
//! module speaks it directly with reqwest and uses `oci-spec` for media types and index parsing.
//!
//! # Layout
//! - [`client`]: the public [`RegistryClient`]; caching and coalescing around the lookups.
//! - `transport`: one logical request: rate-limit gate, per-registry concurrency, auth, retries of 5xx
//!   and timeouts.
//! - `http`: one HTTP exchange: TLS policy (`INSECURE_REGISTRIES`, `REGISTRY_CA_FILE`), manual redirects that
//!   never forward `Authorization`, bounded bodies, metrics.
//! - `auth`: `WWW-Authenticate` parsing and token answers (the handshake and token cache are in `transport`).
//! - `tags`, `manifest`: decoding tag lists (with pagination) and manifests.
//! - [`artifacts`]: what is attached to an image (signature manifests, blobs, referrers), uncached.
//! - [`credentials`]: Docker config Secrets → [`Credential`]s.
//! - [`cloud`]: credentials from the controller's own cloud identity (ECR, GAR/GCR, ACR), and the hosts they
//!   may be sent to.
//! - `cache`, `ratelimit`, `metrics`, [`error`].

pub mod artifacts;
mod auth;
pub(crate) mod cache;
pub mod client;
pub mod cloud;
pub mod credentials;
pub mod error;
mod http;
mod manifest;
mod metrics;
mod ratelimit;
mod tags;
mod transport;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

pub use artifacts::{Manifest, Referrer, Referrers, ReferrersSource};
pub use client::{ForgetHook, RegistryClient};
pub use credentials::{CredentialsError, DockerConfig};
pub use error::RegistryError;

/// The registry that the short name `docker.io` is reached at.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// Settings of a [`RegistryClient`] (docs/settings.md#registry-access).
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `host[:port]` entries reached over plain HTTP (`INSECURE_REGISTRIES`); every other host needs
    /// verified HTTPS.
    pub insecure_registries: Vec<String>,
    /// Extra CA certificates (PEM bundle) trusted besides the platform roots (`REGISTRY_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// How long answers are shared between lookups (`REGISTRY_CACHE_TTL`).
    pub cache_ttl: Duration,
    /// Share answers (cache and coalesce lookups). `false` is the naive baseline of the benchmark: every
    /// lookup is its own request, as tools that resolve per workload and container do.
    pub sharing: bool,
    /// Upper bound of concurrent requests to one registry.
    pub max_concurrent_per_registry: usize,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Longest pause (rate limit) a lookup waits out before failing with [`RegistryError::RateLimited`].
    pub max_rate_limit_wait: Duration,
    /// Attempts for a request that fails with a 5xx or a timeout (at least 1).
    pub max_attempts: u32,
    /// First delay between such attempts; doubled each time.
    pub retry_base_delay: Duration,
    /// Tags asked for per page (`n`).
    pub page_size: usize,
    /// Hard cap on tag-list pages per lookup.
    pub max_pages: usize,
    /// Cloud identity for registries without a pull secret (`CLOUD_REGISTRY_AUTH`); off by default.
    pub cloud: cloud::CloudConfig,
    /// Host names resolved to fixed addresses instead of DNS, as `curl --resolve` (tests reach a fake
    /// `…dkr.ecr…amazonaws.com` on loopback this way). The port of the URL is kept.
    pub resolve: Vec<(String, std::net::SocketAddr)>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            ca_file: None,
            cache_ttl: Duration::from_secs(30),
            sharing: true,
            max_concurrent_per_registry: 8,
            request_timeout: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(10),
            max_attempts: 3,
            retry_base_delay: Duration::from_millis(250),
            page_size: 1000,
            max_pages: 50,
            cloud: cloud::CloudConfig::default(),
            resolve: Vec::new(),
        }
    }
}

/// A repository on a registry, as image references name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    /// The registry as written in image references: `docker.io`, `registry:5000`, `ghcr.io`.
    pub registry: String,
    /// The repository path: `library/nginx`, `team/app`.
    pub name: String,
}

impl Repository {
    /// A repository from its registry and name.
    pub fn new(registry: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            registry: registry.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

/// A username and password for one registry. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
    /// Where it came from: what decides which hosts it may be sent to.
    pub origin: Origin,
}

/// Where a [`Credential`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// A pull secret or the command line: sent to the registry and its token realm (docs/guarantees.md#registries).
    #[default]
    Configured,
    /// The controller's own identity at a cloud (`cloud:<provider>`): sent only over HTTPS to that cloud's
    /// registry hosts and token realms (docs/cloud-registries.md).
    Cloud(cloud::Provider),
}

impl Credential {
    /// A credential from its parts.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            origin: Origin::Configured,
        }
    }

    /// A credential issued by `provider` for the controller's identity.
    pub fn cloud(
        provider: cloud::Provider,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self {
            origin: Origin::Cloud(provider),
            ..Self::new(username, password)
        }
    }

    /// The cloud that issued it, if one did.
    pub fn cloud_provider(&self) -> Option<cloud::Provider> {
        match self.origin {
            Origin::Cloud(provider) => Some(provider),
            Origin::Configured => None,
        }
    }

    /// The key answers are shared under: SHA-256 hex of `user:password` (docs/guarantees.md#registries), never the secret itself.
    pub fn cache_key(credential: Option<&Credential>) -> String {
        match credential {
            None => "anonymous".to_owned(),
            Some(c) => {
                let mut hasher = Sha256::new();
                hasher.update(c.username.as_bytes());
                hasher.update(b":");
                hasher.update(c.password.as_bytes());
                hex::encode(hasher.finalize())
            }
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("origin", &self.origin)
            .finish()
    }
}

/// The `host[:port]` a registry name is reached at: Docker Hub's names map to its API host.
pub fn api_host(registry: &str) -> String {
    let lower = registry.to_ascii_lowercase();
    match lower.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB_API_HOST.to_owned()
        }
        _ => lower,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn credential_debug_never_shows_the_password() {
        let c = Credential::new("alice", "s3cret-value");
        let shown = format!("{c:?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("s3cret-value"));
    }

    #[test]
    fn cache_key_is_sha256_of_user_colon_password_or_anonymous() {
        assert_eq!(Credential::cache_key(None), "anonymous");
        let key = Credential::cache_key(Some(&Credential::new("a", "b")));
        assert_eq!(key, hex::encode(Sha256::digest(b"a:b")));
        assert_ne!(key, Credential::cache_key(Some(&Credential::new("a", "c"))));
    }

    /// `transport::fetch_token` sends the pull credential to whatever realm a registry's Bearer challenge
    /// names; users must be told, since it decides how far they can trust a registry with a secret.
    #[test]
    fn the_readme_says_pull_credentials_follow_the_token_realm_to_another_host() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("### Registry credentials")
            .nth(1)
            .and_then(|rest| rest.split("\n### ").next())
            .expect("README has a Registry credentials section");
        for needed in [
            "token realm",
            "whatever its host",
            "INSECURE_REGISTRIES",
            "security",
        ] {
            assert!(section.contains(needed), "README section lacks {needed:?}");
        }
    }

    #[test]
    fn docker_hub_names_reach_its_api_host_and_others_stay() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("index.docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("Registry:5000"), "registry:5000");
    }
}
