//! Cosign signature verification of candidate images (SPEC §13, docs/signatures.md).
//!
//! Input: a repository, a candidate digest (the index digest for a multi-arch image), the credential for
//! its registry, and the [`KeySet`] of `VERIFY_KEYS`. Output: a [`Verdict`], either
//! [`Verdict::Verified`] naming the key and the layout, or [`Verdict::Rejected`] with a bounded
//! [`RejectionKind`] and a message for people. A registry failure is a [`RegistryError`], not a
//! rejection: the check is retried on the next tick.
//!
//! # Layout
//! - `keys`: loading `VERIFY_KEYS`, key names and fingerprints.
//! - `crypto`: ECDSA P-256 and Ed25519 (prehashed and pure) checks; why these crates.
//! - `simple_signing`: cosign's `sha256-<hex>.sig` tag (layout 1).
//! - `bundle`: Sigstore bundles attached as OCI referrers, DSSE (layout 2).
//! - `examine`: fetching both layouts through the registry client and judging them.
//! - `cache`: verdicts per (repository, digest); `required`: `VERIFY_REQUIRED_FOR`.
//!
//! Transparency-log entries and certificates are not checked: this is key-based verification only, weaker
//! than `cosign verify` online (docs/signatures.md#what-is-not-checked).

mod bundle;
mod cache;
mod crypto;
mod examine;
mod keys;
mod metrics;
mod required;
mod simple_signing;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, Weak};

pub use bundle::BUNDLE_MEDIA_TYPE;
pub use keys::{KeyError, KeyName, KeySet, PublicKey};
pub use required::{GlobError, RequiredFor};
pub use simple_signing::{SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, signature_tag};

use crate::registry::{Credential, RegistryClient, RegistryError, Repository};
use cache::{Cached, VerdictCache};

/// Where a verifying signature was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// cosign's `sha256-<hex>.sig` tag with a simple-signing payload.
    SignatureTag,
    /// A Sigstore bundle attached as an OCI 1.1 referrer.
    Bundle,
}

impl Layout {
    /// A short, bounded name.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::SignatureTag => "signature-tag",
            Layout::Bundle => "bundle",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::SignatureTag => "cosign signature tag",
            Layout::Bundle => "Sigstore bundle referrer",
        })
    }
}

/// A signature of the candidate verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key it verified with.
    pub key: KeyName,
    /// Where it was found.
    pub layout: Layout,
}

/// Why a candidate's signatures do not let it be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectionKind {
    /// No signature of the digest was found in either layout.
    Unsigned,
    /// Signatures were found, but none verifies with a key of `VERIFY_KEYS`.
    BadSignature,
    /// A signature verifies, but its signed payload names another digest.
    WrongDigest,
    /// Signature data was found but cannot be read (or does not match its digest).
    Malformed,
}

impl RejectionKind {
    /// A short, bounded name for Events, `plan` and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionKind::Unsigned => "Unsigned",
            RejectionKind::BadSignature => "BadSignature",
            RejectionKind::WrongDigest => "WrongDigest",
            RejectionKind::Malformed => "Malformed",
        }
    }
}

/// A rejected candidate: the kind and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The bounded kind.
    pub kind: RejectionKind,
    /// What was found, for Events and `check` (registry text escaped).
    pub message: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

/// The outcome of verifying one digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A signature verified.
    Verified(Verified),
    /// No signature let it be taken.
    Rejected(Rejection),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Verified(v) => write!(f, "signed by {} ({})", v.key, v.layout),
            Verdict::Rejected(r) => write!(f, "signature rejected: {r}"),
        }
    }
}

/// The signature settings of a process: the keys (if any) and the images that must be verified.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerifyConfig {
    /// `VERIFY_KEYS`, loaded; `None` when unset.
    pub keys: Option<Arc<KeySet>>,
    /// `VERIFY_REQUIRED_FOR`.
    pub required_for: RequiredFor,
}

/// What a check verifies: the [`Verifier`] (when keys are configured) and the images it must be used for.
#[derive(Debug, Clone, Default)]
pub struct SignaturePolicy {
    verifier: Option<Verifier>,
    required_for: RequiredFor,
}

impl SignaturePolicy {
    /// The policy of `config`, verifying through `registry`; registers the verifier's metrics.
    pub fn new(
        config: &VerifyConfig,
        registry: &RegistryClient,
        metrics: &mut prometheus_client::registry::Registry,
    ) -> Self {
        if let Some(keys) = &config.keys {
            tracing::info!(keys = %keys.describe(), required_for = ?config.required_for.globs(), "signature verification keys loaded");
        }
        Self {
            verifier: config
                .keys
                .as_ref()
                .map(|keys| Verifier::new(Arc::clone(keys), registry.clone(), metrics)),
            required_for: config.required_for.clone(),
        }
    }

    /// Whether `VERIFY_KEYS` is configured.
    pub fn has_keys(&self) -> bool {
        self.verifier.is_some()
    }

    /// The verifier for a container running `image`, when its candidates must be verified: the workload
    /// asks for it (`verify: cosign`) or `VERIFY_REQUIRED_FOR` matches the image. `None` also when no key is
    /// configured; `verify` then is an invalid annotation, which holds every update.
    pub fn verifier_for(
        &self,
        annotated: bool,
        image: &crate::image::ImageRef,
    ) -> Option<&Verifier> {
        let required = annotated || self.required_for.requires(image);
        self.verifier.as_ref().filter(|_| required)
    }
}

struct Inner {
    registry: RegistryClient,
    keys: Arc<KeySet>,
    cache: Arc<VerdictCache>,
    metrics: metrics::Metrics,
}

/// Verifies candidate digests against one key set, caching verdicts. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.inner.keys.describe())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier with `keys` that reads through `registry` and registers its metrics into `metrics`.
    /// A push event that makes `registry` forget a repository also drops its cached rejections.
    pub fn new(
        keys: Arc<KeySet>,
        registry: RegistryClient,
        metrics: &mut prometheus_client::registry::Registry,
    ) -> Self {
        let cache = Arc::new(VerdictCache::default());
        let weak: Weak<VerdictCache> = Arc::downgrade(&cache);
        registry.on_forget(Box::new(move |repo| {
            if let Some(cache) = weak.upgrade() {
                cache.forget_rejections(repo);
            }
        }));
        Self {
            inner: Arc::new(Inner {
                registry,
                keys,
                cache,
                metrics: metrics::Metrics::register(metrics),
            }),
        }
    }

    /// The keys signatures must verify with.
    pub fn keys(&self) -> &KeySet {
        &self.inner.keys
    }

    /// Verifies `digest` of `repo`: a cached verdict when it still holds, else both layouts are read.
    #[tracing::instrument(name = "verify", skip_all, fields(image = %repo, digest = %digest))]
    pub async fn verify(
        &self,
        repo: &Repository,
        digest: &str,
        credential: Option<&Credential>,
    ) -> Result<Verdict, RegistryError> {
        let inner = &self.inner;
        let result = self.verify_uncounted(repo, digest, credential).await;
        inner.metrics.count(&result);
        match &result {
            Ok(verdict) => tracing::debug!(%verdict, "verified the signatures of a candidate"),
            Err(error) => tracing::debug!(%error, "could not read the signatures of a candidate"),
        }
        result
    }

    async fn verify_uncounted(
        &self,
        repo: &Repository,
        digest: &str,
        credential: Option<&Credential>,
    ) -> Result<Verdict, RegistryError> {
        let inner = &self.inner;
        match inner.cache.get(repo, digest) {
            Some(Cached::Verified(verified)) => return Ok(Verdict::Verified(verified)),
            Some(Cached::Rejected(rejection, judged_on)) => {
                let now = examine::evidence(&inner.registry, repo, digest, credential).await?;
                if now == judged_on {
                    return Ok(Verdict::Rejected(rejection));
                }
            }
            None => {}
        }
        let (verdict, evidence) =
            examine::examine(&inner.registry, &inner.keys, repo, digest, credential).await?;
        let cached = match &verdict {
            Verdict::Verified(v) => Cached::Verified(v.clone()),
            Verdict::Rejected(r) => Cached::Rejected(r.clone(), evidence),
        };
        inner.cache.put(repo, digest, cached);
        Ok(verdict)
    }
}
