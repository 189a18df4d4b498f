//! Reading both signature layouts of a digest and judging what was found (docs/signatures.md#layouts).
//!
//! Input: the registry client, the key set, a repository and candidate digest. Output: a [`Verdict`] and
//! the [`Evidence`] it was judged on, or a [`RegistryError`] when the registry could not answer.
//!
//! Requests, at most: the `.sig` manifest and one blob per simple-signing layer (≤ 32); the referrers
//! listing (API, else the `sha256-<hex>` tag), and per bundle referrer (≤ 16) its manifest and bundle blob.
//! The first signature that verifies and names the candidate ends the search.

use super::bundle::{self, MAX_BUNDLES};
use super::cache::Evidence;
use super::crypto::verifies;
use super::simple_signing::{self, PayloadCheck};
use super::{KeySet, Layout, Rejection, RejectionKind, Verdict, Verified};
use crate::registry::{Credential, RegistryClient, RegistryError, Repository};
use crate::untrusted;

/// A simple-signing payload is a few hundred bytes.
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// A bundle with a certificate chain and log entries is some kilobytes.
const MAX_BUNDLE_BYTES: usize = 1024 * 1024;

/// What did not verify, kept to name the most telling reason.
#[derive(Default)]
struct Findings {
    /// Signatures found over data naming this digest.
    signatures: usize,
    /// A signature that verified with a key, but for another digest: (key, digest named).
    other_digest: Option<(String, String)>,
    /// The first unreadable thing.
    malformed: Option<String>,
}

impl Findings {
    fn malformed(&mut self, what: impl Into<String>) {
        self.malformed.get_or_insert_with(|| what.into());
    }

    fn rejection(self, keys: &KeySet, digest: &str) -> Rejection {
        let (kind, message) = if let Some((key, other)) = self.other_digest {
            (
                RejectionKind::WrongDigest,
                format!(
                    "a signature by {key} signs {}, not {digest}",
                    untrusted::echo(&other)
                ),
            )
        } else if self.signatures > 0 {
            (
                RejectionKind::BadSignature,
                format!(
                    "{} signature(s) of {digest} found, none verifies with a key of VERIFY_KEYS ({})",
                    self.signatures,
                    keys.describe()
                ),
            )
        } else if let Some(what) = self.malformed {
            (
                RejectionKind::Malformed,
                format!(
                    "signature data of {digest} cannot be read: {}",
                    untrusted::echo(&what)
                ),
            )
        } else {
            (
                RejectionKind::Unsigned,
                format!(
                    "no signature of {digest} found (neither a cosign .sig tag nor a Sigstore bundle referrer)"
                ),
            )
        };
        Rejection { kind, message }
    }
}

/// The first key that verifies `signature` over `message`.
fn verifying_key<'k>(
    keys: &'k KeySet,
    message: &[u8],
    signature: &[u8],
) -> Option<&'k super::PublicKey> {
    keys.keys().iter().find(|k| verifies(k, message, signature))
}

/// What a cached rejection is compared against: a new signature or referrer changes it.
pub(crate) async fn evidence(
    registry: &RegistryClient,
    repo: &Repository,
    digest: &str,
    credential: Option<&Credential>,
) -> Result<Evidence, RegistryError> {
    let signature_tag = match simple_signing::signature_tag(digest) {
        Some(tag) => registry.head_manifest(repo, &tag, credential).await?,
        None => None,
    };
    let referrers = registry.referrers(repo, digest, credential).await?;
    Ok(Evidence {
        signature_tag,
        referrers: referrers.listing_digest,
    })
}

/// Reads both layouts of `digest` and judges them.
pub(crate) async fn examine(
    registry: &RegistryClient,
    keys: &KeySet,
    repo: &Repository,
    digest: &str,
    credential: Option<&Credential>,
) -> Result<(Verdict, Evidence), RegistryError> {
    let mut evidence = Evidence::default();
    let mut findings = Findings::default();
    let found = signature_tag(
        registry,
        keys,
        repo,
        digest,
        credential,
        &mut evidence,
        &mut findings,
    )
    .await?;
    if let Some(verified) = found {
        return Ok((Verdict::Verified(verified), evidence));
    }
    let found = bundles(
        registry,
        keys,
        repo,
        digest,
        credential,
        &mut evidence,
        &mut findings,
    )
    .await?;
    if let Some(verified) = found {
        return Ok((Verdict::Verified(verified), evidence));
    }
    Ok((
        Verdict::Rejected(findings.rejection(keys, digest)),
        evidence,
    ))
}

/// A blob, with a digest mismatch or an oversize answer counted as malformed signature data (the
/// registry served something other than what the manifest names) rather than a registry failure.
async fn blob(
    registry: &RegistryClient,
    repo: &Repository,
    digest: &str,
    max_bytes: usize,
    credential: Option<&Credential>,
    findings: &mut Findings,
) -> Result<Option<bytes::Bytes>, RegistryError> {
    match registry.get_blob(repo, digest, max_bytes, credential).await {
        Ok(body) => Ok(Some(body)),
        Err(RegistryError::Malformed { detail, .. }) => {
            findings.malformed(format!("blob {digest}: {detail}"));
            Ok(None)
        }
        Err(RegistryError::NotFound { .. }) => {
            findings.malformed(format!("blob {digest} is missing"));
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

/// Layout 1: the `sha256-<hex>.sig` tag.
async fn signature_tag(
    registry: &RegistryClient,
    keys: &KeySet,
    repo: &Repository,
    digest: &str,
    credential: Option<&Credential>,
    evidence: &mut Evidence,
    findings: &mut Findings,
) -> Result<Option<Verified>, RegistryError> {
    let Some(tag) = simple_signing::signature_tag(digest) else {
        return Ok(None);
    };
    let Some(manifest) = registry.get_manifest(repo, &tag, credential).await? else {
        return Ok(None);
    };
    evidence.signature_tag = Some(manifest.digest.clone());
    let layers = match simple_signing::signature_layers(&manifest.body) {
        Ok(layers) => layers,
        Err(what) => {
            findings.malformed(what);
            return Ok(None);
        }
    };
    for layer in layers {
        if layer.size > MAX_PAYLOAD_BYTES as u64 {
            findings.malformed(format!("payload {} is {} bytes", layer.digest, layer.size));
            continue;
        }
        let Some(payload) = blob(
            registry,
            repo,
            &layer.digest,
            MAX_PAYLOAD_BYTES,
            credential,
            findings,
        )
        .await?
        else {
            continue;
        };
        let key = verifying_key(keys, &payload, &layer.signature);
        match (simple_signing::check_payload(&payload, digest), key) {
            (PayloadCheck::Names, Some(key)) => {
                return Ok(Some(Verified {
                    key: key.name.clone(),
                    layout: Layout::SignatureTag,
                }));
            }
            (PayloadCheck::Names, None) => findings.signatures += 1,
            (PayloadCheck::NamesOther(other), Some(key)) => {
                findings.other_digest = Some((key.name.to_string(), other));
            }
            // Not ours, for another digest: someone else's signature copied here, nothing to say.
            (PayloadCheck::NamesOther(_), None) => {}
            (PayloadCheck::Malformed(what), _) => findings.malformed(what),
        }
    }
    Ok(None)
}

/// Layout 2: Sigstore bundles among the referrers of `digest`.
async fn bundles(
    registry: &RegistryClient,
    keys: &KeySet,
    repo: &Repository,
    digest: &str,
    credential: Option<&Credential>,
    evidence: &mut Evidence,
    findings: &mut Findings,
) -> Result<Option<Verified>, RegistryError> {
    let listed = registry.referrers(repo, digest, credential).await?;
    evidence.referrers = listed.listing_digest;
    let candidates = listed
        .referrers
        .iter()
        .filter(|r| bundle::may_hold_bundle(r.artifact_type.as_deref()))
        .take(MAX_BUNDLES);
    for referrer in candidates {
        let Some(manifest) = registry
            .get_manifest(repo, &referrer.digest, credential)
            .await?
        else {
            continue;
        };
        let layers = match bundle::bundle_layers(&manifest.body) {
            Ok(layers) => layers,
            Err(what) => {
                findings.malformed(what);
                continue;
            }
        };
        for (layer, size) in layers {
            if size > MAX_BUNDLE_BYTES as u64 {
                findings.malformed(format!("bundle {layer} is {size} bytes"));
                continue;
            }
            let Some(body) = blob(
                registry,
                repo,
                &layer,
                MAX_BUNDLE_BYTES,
                credential,
                findings,
            )
            .await?
            else {
                continue;
            };
            let read = match bundle::read_bundle(&body, digest) {
                Ok(read) => read,
                Err(what) => {
                    findings.malformed(what);
                    continue;
                }
            };
            let key = read
                .signatures
                .iter()
                .find_map(|s| verifying_key(keys, &read.signed, s));
            match (read.names_candidate, key) {
                (Ok(()), Some(key)) => {
                    return Ok(Some(Verified {
                        key: key.name.clone(),
                        layout: Layout::Bundle,
                    }));
                }
                (Ok(()), None) => findings.signatures += 1,
                (Err(other), Some(key)) => {
                    let other = other.unwrap_or_else(|| "no sha256 subject".to_owned());
                    findings.other_digest = Some((key.name.to_string(), other));
                }
                (Err(_), None) => {}
            }
        }
    }
    Ok(None)
}
