//! Image resolution for the simulated kubelet: which digest would a container runtime pull for
//! an image reference, and does the image exist at all?
//!
//! Input: the `image` string of a container. Output: a `sha256:` digest, from which the kubelet
//! writes `status.containerStatuses[].imageID` as `<repo>@<digest>` (what containerd reports:
//! the digest it was asked to pull, i.e. the index digest for a multi-arch tag), or a
//! [`PullError`] that keeps the pod in `ImagePullBackOff`. Implementations: [`HttpResolver`]
//! (asks a real registry), [`StaticResolver`] (a fixed map, for unit tests) and
//! [`SyntheticResolver`] (every image exists; digest derived from the reference).

mod http;
mod reference;

use std::collections::HashMap;

use futures::future::BoxFuture;
use sha2::{Digest as _, Sha256};

pub use http::{HttpResolver, HttpResolverError, RegistryEndpoint};
pub use reference::ImageRef;

/// Why an image could not be pulled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PullError {
    /// The registry has no such repository, tag or digest.
    #[error("failed to pull image: manifest unknown")]
    NotFound,
    /// The registry refused our credentials.
    #[error("failed to pull image: unauthorized")]
    Unauthorized,
    /// The registry could not be reached or answered unexpectedly.
    #[error("failed to pull image: {0}")]
    Unreachable(String),
    /// The image reference cannot be parsed.
    #[error("failed to pull image: invalid reference format")]
    InvalidReference,
}

/// Resolves an image reference to the digest a container runtime would pull.
pub trait ImageResolver: Send + Sync + 'static {
    /// The `sha256:<hex>` digest of `image`, or why it cannot be pulled.
    fn resolve<'a>(&'a self, image: &'a ImageRef) -> BoxFuture<'a, Result<String, PullError>>;
}

/// A fixed map from `registry/repository:tag` to digest. A pinned reference resolves when the
/// repository has some tag with that digest.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    digests: HashMap<String, String>,
}

impl StaticResolver {
    /// An empty map: every image is missing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an image (any spelling [`ImageRef::parse`] accepts) and its digest.
    pub fn with(mut self, image: &str, digest: &str) -> Self {
        if let Ok(r) = ImageRef::parse(image) {
            self.digests.insert(r.tagged_name(), digest.to_string());
        }
        self
    }
}

impl ImageResolver for StaticResolver {
    fn resolve<'a>(&'a self, image: &'a ImageRef) -> BoxFuture<'a, Result<String, PullError>> {
        let found = match &image.digest {
            Some(pinned) => {
                let prefix = format!("{}:", image.repository_name());
                self.digests
                    .iter()
                    .any(|(k, d)| k.starts_with(&prefix) && d == pinned)
                    .then(|| pinned.clone())
            }
            None => self.digests.get(&image.tagged_name()).cloned(),
        };
        Box::pin(async move { found.ok_or(PullError::NotFound) })
    }
}

/// Every image exists; its digest is the SHA-256 of its normalized reference (a pinned
/// reference keeps its digest). For demos and tests that need no registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyntheticResolver;

impl ImageResolver for SyntheticResolver {
    fn resolve<'a>(&'a self, image: &'a ImageRef) -> BoxFuture<'a, Result<String, PullError>> {
        let digest = image.digest.clone().unwrap_or_else(|| {
            let hash = Sha256::digest(image.tagged_name().as_bytes());
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{hex}")
        });
        Box::pin(async move { Ok(digest) })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn block<T>(f: BoxFuture<'_, T>) -> T {
        futures::executor::block_on(f)
    }

    #[test]
    fn static_resolver_finds_tags_and_pinned_digests_of_known_repositories() {
        let r = StaticResolver::new().with("reg:5000/app:1.0", "sha256:aa");
        let tag = ImageRef::parse("reg:5000/app:1.0").unwrap();
        assert_eq!(block(r.resolve(&tag)).unwrap(), "sha256:aa");
        let pinned = ImageRef::parse("reg:5000/app:9@sha256:aa").unwrap();
        assert_eq!(block(r.resolve(&pinned)).unwrap(), "sha256:aa");
        let missing = ImageRef::parse("reg:5000/app:2.0").unwrap();
        assert_eq!(block(r.resolve(&missing)), Err(PullError::NotFound));
    }

    #[test]
    fn synthetic_digests_differ_by_tag_and_keep_pinned_digests() {
        let a = block(SyntheticResolver.resolve(&ImageRef::parse("nginx:1").unwrap())).unwrap();
        let b = block(SyntheticResolver.resolve(&ImageRef::parse("nginx:2").unwrap())).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), "sha256:".len() + 64);
        let p = ImageRef::parse("nginx@sha256:0123").unwrap();
        assert_eq!(block(SyntheticResolver.resolve(&p)).unwrap(), "sha256:0123");
    }
}
