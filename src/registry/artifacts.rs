//! Reading artifacts attached to an image: a manifest by tag or digest, a blob, and the referrers of a
//! digest (docs/signatures.md#layouts).
//!
//! Input: a [`Repository`], a reference or digest, an optional [`Credential`]. Output: digest-checked,
//! size-bounded bytes. Nothing here is cached: signature verdicts are cached by `verify` per digest, and
//! a rejection must see a re-signed image at once. Every request goes through the same transport as tag
//! lookups (auth, rate limits, retries, TLS policy).
//!
//! The referrers API (`GET /v2/<name>/referrers/<digest>`, OCI distribution 1.1) may be missing: a 404
//! falls back to the referrers tag schema, an OCI index under the tag `sha256-<hex>`.

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::client::RegistryClient;
use super::http::Reply;
use super::manifest;
use super::transport::Call;
use super::{Credential, RegistryError, Repository};

/// Referrers listed per digest at most; more would be a flood, not signatures.
const MAX_REFERRERS: usize = 256;

/// A manifest as served: its media type, digest and exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `Content-Type` as the registry answered it, if any.
    pub media_type: Option<String>,
    /// `sha256:<hex>` of the body (checked against the reference when it is a digest).
    pub digest: String,
    /// The body.
    pub body: Bytes,
}

/// Where a referrers list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersSource {
    /// The registry's referrers API.
    Api,
    /// The `sha256-<hex>` tag (the registry has no referrers API).
    Tag,
    /// Neither: the registry has no referrers API and no referrers tag.
    None,
}

/// One manifest that names a digest as its `subject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// Its manifest digest.
    pub digest: String,
    /// Its `artifactType`, when listed.
    pub artifact_type: Option<String>,
}

/// The referrers of a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    /// How they were found.
    pub source: ReferrersSource,
    /// `sha256:<hex>` of the listing's bytes: changes when a referrer is added or removed.
    pub listing_digest: Option<String>,
    /// The referrers, as listed (at most 256).
    pub referrers: Vec<Referrer>,
}

impl RegistryClient {
    /// GETs the manifest `reference` (a tag or a digest); `Ok(None)` when the registry has none.
    pub async fn get_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        credential: Option<&Credential>,
    ) -> Result<Option<Manifest>, RegistryError> {
        let target = format!("read the manifest {repo}:{reference}");
        let transport = &self.inner.transport;
        let call = Call {
            repo,
            method: Method::GET,
            url: transport.repo_url(repo, &["manifests", reference], &target)?,
            manifest_accept: true,
            credential,
            target: &target,
        };
        let reply = match transport.send(&call).await {
            Ok(reply) => reply,
            Err(RegistryError::NotFound { .. }) => return Ok(None),
            Err(other) => return Err(other),
        };
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&reply.body)));
        // By digest, the bytes must hash to it; by tag, to the digest the registry says it served, when it
        // says one (a proxy or cache that altered the body is caught either way).
        let claimed = reply
            .headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|d| d.starts_with("sha256:") && !manifest::is_valid_digest(reference));
        for expected in [Some(reference), claimed].into_iter().flatten() {
            if manifest::is_valid_digest(expected) {
                manifest::verify_body(expected, &reply.body)
                    .map_err(|d| RegistryError::malformed(&target, d))?;
            }
        }
        let media_type = reply
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned());
        Ok(Some(Manifest {
            media_type,
            digest,
            body: reply.body,
        }))
    }

    /// The digest `reference` points to now, by an uncached `HEAD`; `Ok(None)` when it does not exist.
    pub async fn head_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        credential: Option<&Credential>,
    ) -> Result<Option<String>, RegistryError> {
        match self.inner.fetch_digest(repo, reference, credential).await {
            Ok(digest) => Ok(Some(digest)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// One GET of `/v2/<repo>/<kind>/<digest>` (a blob, the referrers of a manifest), once `digest` is known
    /// to be a digest: registry input never becomes a path segment unchecked.
    async fn get_about_digest(
        &self,
        repo: &Repository,
        digest: &str,
        kind: &str,
        manifest_accept: bool,
        credential: Option<&Credential>,
        target: &str,
    ) -> Result<Reply, RegistryError> {
        if !manifest::is_valid_digest(digest) {
            return Err(RegistryError::malformed(
                target,
                "not a sha256/sha512 digest",
            ));
        }
        let transport = &self.inner.transport;
        let call = Call {
            repo,
            method: Method::GET,
            url: transport.repo_url(repo, &[kind, digest], target)?,
            manifest_accept,
            credential,
            target,
        };
        transport.send(&call).await
    }

    /// GETs the blob `digest`, refusing more than `max_bytes` or bytes that do not hash to `digest`.
    pub async fn get_blob(
        &self,
        repo: &Repository,
        digest: &str,
        max_bytes: usize,
        credential: Option<&Credential>,
    ) -> Result<Bytes, RegistryError> {
        let target = format!("read the blob {repo}@{digest}");
        let reply = self
            .get_about_digest(repo, digest, "blobs", false, credential, &target)
            .await?;
        if reply.body.len() > max_bytes {
            return Err(RegistryError::malformed(
                &target,
                format!(
                    "{} bytes, more than the {max_bytes} allowed",
                    reply.body.len()
                ),
            ));
        }
        manifest::verify_body(digest, &reply.body)
            .map_err(|d| RegistryError::malformed(&target, d.replace("manifest", "blob")))?;
        Ok(reply.body)
    }

    /// The manifests whose `subject` is `digest`: the referrers API, else the `sha256-<hex>` tag.
    pub async fn referrers(
        &self,
        repo: &Repository,
        digest: &str,
        credential: Option<&Credential>,
    ) -> Result<Referrers, RegistryError> {
        let target = format!("list the referrers of {repo}@{digest}");
        let (source, body) = match self
            .get_about_digest(repo, digest, "referrers", true, credential, &target)
            .await
        {
            Ok(reply) => (ReferrersSource::Api, reply.body),
            Err(error) if no_referrers_api(&error) => {
                let tag = digest.replacen(':', "-", 1);
                match self.get_manifest(repo, &tag, credential).await? {
                    Some(index) => (ReferrersSource::Tag, index.body),
                    None => {
                        return Ok(Referrers {
                            source: ReferrersSource::None,
                            listing_digest: None,
                            referrers: Vec::new(),
                        });
                    }
                }
            }
            Err(other) => return Err(other),
        };
        let referrers = parse_referrers(&body).map_err(|d| RegistryError::malformed(&target, d))?;
        Ok(Referrers {
            source,
            listing_digest: Some(format!("sha256:{}", hex::encode(Sha256::digest(&body)))),
            referrers,
        })
    }
}

/// Whether an answer to the referrers API means the registry does not have one: 404 as the OCI
/// distribution specification says (distribution 2.8), or the 400/405/501 some registries give for a path
/// they do not route. Anything else (401, 429, 5xx) is a failure of the lookup.
fn no_referrers_api(error: &RegistryError) -> bool {
    match error {
        RegistryError::NotFound { .. } => true,
        RegistryError::Status { status, .. } => matches!(status, 400 | 405 | 501),
        _ => false,
    }
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default, rename = "artifactType")]
    artifact_type: Option<String>,
}

/// The descriptors of a referrers index (at most [`MAX_REFERRERS`]).
pub(crate) fn parse_referrers(body: &[u8]) -> Result<Vec<Referrer>, String> {
    let index: Index = serde_json::from_slice(body)
        .map_err(|e| format!("the referrers list is not an OCI index: {e}"))?;
    Ok(index
        .manifests
        .into_iter()
        .take(MAX_REFERRERS)
        .filter(|d| manifest::is_valid_digest(&d.digest))
        .map(|d| Referrer {
            digest: d.digest,
            artifact_type: d.artifact_type,
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
