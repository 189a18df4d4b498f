//! Forged and broken signatures, made from real cosign output over the registry API.
//!
//! Input: a harness registry without auth, a repository, image digests and a [`Layout`]. Output: the
//! signature tag of an image rewritten so that a correct verifier must refuse it:
//! - [`copy_signatures`]: another image's valid signatures under this image's tag (the payload names the
//!   other digest);
//! - [`claim_subject`] (bundle): another image's referrer with its unsigned `subject` pointed at this image;
//! - [`tamper`]: the signature bytes ([`Tamper::Signature`]) or the signed payload ([`Tamper::Payload`])
//!   changed, every signature of the tag at once.
//!
//! Manifests are PUT byte for byte as built here, so the registry's digest is the one we compute.

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde_json::Value;

use super::Layout;
use crate::RealRegistry;
use crate::registry::{OCI_INDEX, OCI_MANIFEST, digest_of};

/// The annotation of a `.sig` layer that holds the base64 signature.
pub const SIG_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// What [`tamper`] changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// One bit of each signature flipped; the payload untouched.
    Signature,
    /// The signed payload changed (a field added), still naming the same digest; the signature untouched.
    Payload,
}

/// Puts the signatures of `from` under the signature tag of `to` in `layout`: valid signatures by the right
/// key, over a payload naming `from`'s digest.
pub async fn copy_signatures(
    registry: &RealRegistry,
    repo: &str,
    from: &str,
    to: &str,
    layout: Layout,
) -> anyhow::Result<()> {
    let api = Api::new(registry)?;
    let (media_type, body) = api.manifest(repo, &layout.tag(from)).await?;
    api.put_manifest(repo, &layout.tag(to), &media_type, body)
        .await?;
    Ok(())
}

/// Bundle layout: re-points every referrer of `from` at `to` (the referrer manifest's `subject`, which no
/// signature covers) and lists them under `to`'s fallback tag. The DSSE statement still names `from`.
pub async fn claim_subject(
    registry: &RealRegistry,
    repo: &str,
    from: &str,
    to: &str,
) -> anyhow::Result<()> {
    let api = Api::new(registry)?;
    let (_, index) = api.manifest(repo, &Layout::Bundle.tag(from)).await?;
    let mut index: Value = serde_json::from_slice(&index).context("bundle index is not JSON")?;
    let subject = api.manifest(repo, to).await?;
    for entry in entries(&mut index)? {
        let (_, referrer) = api.manifest(repo, str_field(entry, "digest")?).await?;
        let mut referrer: Value =
            serde_json::from_slice(&referrer).context("referrer manifest is not JSON")?;
        referrer["subject"]["digest"] = Value::from(to);
        referrer["subject"]["mediaType"] = Value::from(subject.0.as_str());
        referrer["subject"]["size"] = Value::from(subject.1.len());
        let (digest, size) = api.put_json(repo, None, OCI_MANIFEST, &referrer).await?;
        entry["digest"] = Value::from(digest);
        entry["size"] = Value::from(size);
    }
    api.put_json(repo, Some(&Layout::Bundle.tag(to)), OCI_INDEX, &index)
        .await?;
    Ok(())
}

/// Rewrites every signature under `digest`'s tag in `layout` as `how` says.
pub async fn tamper(
    registry: &RealRegistry,
    repo: &str,
    digest: &str,
    layout: Layout,
    how: Tamper,
) -> anyhow::Result<()> {
    let api = Api::new(registry)?;
    let tag = layout.tag(digest);
    let (_, body) = api.manifest(repo, &tag).await?;
    let mut top: Value = serde_json::from_slice(&body).context("signature tag is not JSON")?;
    match layout {
        Layout::Sig => {
            tamper_sig_manifest(&api, repo, &mut top, how).await?;
            api.put_json(repo, Some(&tag), OCI_MANIFEST, &top).await?;
        }
        Layout::Bundle => {
            for entry in entries(&mut top)? {
                let (_, referrer) = api.manifest(repo, str_field(entry, "digest")?).await?;
                let mut referrer: Value =
                    serde_json::from_slice(&referrer).context("referrer manifest is not JSON")?;
                tamper_bundle_referrer(&api, repo, &mut referrer, how).await?;
                let (digest, size) = api.put_json(repo, None, OCI_MANIFEST, &referrer).await?;
                entry["digest"] = Value::from(digest);
                entry["size"] = Value::from(size);
            }
            api.put_json(repo, Some(&tag), OCI_INDEX, &top).await?;
        }
    }
    Ok(())
}

async fn tamper_sig_manifest(
    api: &Api,
    repo: &str,
    manifest: &mut Value,
    how: Tamper,
) -> anyhow::Result<()> {
    let layers = manifest["layers"]
        .as_array_mut()
        .filter(|l| !l.is_empty())
        .context("the .sig manifest has no layers")?;
    for layer in layers {
        match how {
            Tamper::Signature => {
                let signature = layer["annotations"][SIG_ANNOTATION]
                    .as_str()
                    .context("a .sig layer without its signature annotation")?;
                layer["annotations"][SIG_ANNOTATION] = Value::from(flip_bit(signature)?);
            }
            Tamper::Payload => {
                let payload = api.blob(repo, str_field(layer, "digest")?).await?;
                let mut payload: Value = serde_json::from_slice(&payload)
                    .context("a simple-signing payload is not JSON")?;
                payload["optional"] = serde_json::json!({ "tampered": "yes" });
                let body = Bytes::from(serde_json::to_vec(&payload)?);
                layer["digest"] = Value::from(api.put_blob(repo, body.clone()).await?);
                layer["size"] = Value::from(body.len());
            }
        }
    }
    Ok(())
}

async fn tamper_bundle_referrer(
    api: &Api,
    repo: &str,
    referrer: &mut Value,
    how: Tamper,
) -> anyhow::Result<()> {
    let layer = referrer["layers"]
        .get_mut(0)
        .context("a bundle referrer without layers")?;
    let bundle = api.blob(repo, str_field(layer, "digest")?).await?;
    let mut bundle: Value = serde_json::from_slice(&bundle).context("the bundle is not JSON")?;
    let envelope = &mut bundle["dsseEnvelope"];
    match how {
        Tamper::Signature => {
            let signatures = envelope["signatures"]
                .as_array_mut()
                .context("a DSSE envelope without signatures")?;
            for signature in signatures {
                let sig = signature["sig"]
                    .as_str()
                    .context("a DSSE signature without `sig`")?;
                signature["sig"] = Value::from(flip_bit(sig)?);
            }
        }
        Tamper::Payload => {
            let payload = envelope["payload"]
                .as_str()
                .context("a DSSE envelope without payload")?;
            let payload = B64.decode(payload).context("DSSE payload is not base64")?;
            let mut statement: Value =
                serde_json::from_slice(&payload).context("the DSSE statement is not JSON")?;
            statement["predicate"] = serde_json::json!({ "tampered": "yes" });
            envelope["payload"] = Value::from(B64.encode(serde_json::to_vec(&statement)?));
        }
    }
    let body = Bytes::from(serde_json::to_vec(&bundle)?);
    layer["digest"] = Value::from(api.put_blob(repo, body.clone()).await?);
    layer["size"] = Value::from(body.len());
    Ok(())
}

/// The base64 signature with the lowest bit of its last byte flipped.
fn flip_bit(signature: &str) -> anyhow::Result<String> {
    let mut raw = B64.decode(signature).context("a signature is not base64")?;
    let last = raw.last_mut().context("an empty signature")?;
    *last ^= 1;
    Ok(B64.encode(raw))
}

fn entries(index: &mut Value) -> anyhow::Result<&mut Vec<Value>> {
    index["manifests"]
        .as_array_mut()
        .filter(|m| !m.is_empty())
        .context("the bundle index lists no referrers")
}

fn str_field<'a>(value: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    value[key]
        .as_str()
        .with_context(|| format!("no `{key}` in {value}"))
}

/// The distribution API calls the forgeries need, anonymous over plain HTTP.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(registry: &RealRegistry) -> anyhow::Result<Self> {
        ensure!(
            registry.credentials().is_none() && registry.ca_pem().is_none(),
            "the signature forgeries work on a registry without auth or TLS; {:?} has them",
            registry.auth()
        );
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .context("failed to build an HTTP client")?;
        Ok(Self {
            http,
            base: registry.base_url(),
        })
    }

    /// `(Content-Type, body)` of a manifest by tag or digest.
    async fn manifest(&self, repo: &str, reference: &str) -> anyhow::Result<(String, Bytes)> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let response = self
            .http
            .get(&url)
            .header(http::header::ACCEPT, format!("{OCI_MANIFEST}, {OCI_INDEX}"))
            .send()
            .await
            .with_context(|| format!("failed to GET {url}"))?;
        if !response.status().is_success() {
            bail!("GET {url}: {}", response.status());
        }
        let media_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(OCI_MANIFEST)
            .to_owned();
        Ok((media_type, response.bytes().await?))
    }

    /// PUTs `body` under `reference`; returns its digest, checked against the registry's.
    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: Bytes,
    ) -> anyhow::Result<String> {
        let digest = digest_of(&body);
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let response = self
            .http
            .put(&url)
            .header(http::header::CONTENT_TYPE, media_type)
            .body(body)
            .send()
            .await
            .with_context(|| format!("failed to PUT {url}"))?;
        if !response.status().is_success() {
            bail!(
                "PUT {url}: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        let stored = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok());
        ensure!(
            stored == Some(digest.as_str()),
            "registry stored {url} as {stored:?}, expected {digest}"
        );
        Ok(digest)
    }

    /// PUTs `value` as JSON, by its own digest when `tag` is `None`; returns `(digest, size)`.
    async fn put_json(
        &self,
        repo: &str,
        tag: Option<&str>,
        media_type: &str,
        value: &Value,
    ) -> anyhow::Result<(String, usize)> {
        let body = Bytes::from(serde_json::to_vec(value)?);
        let size = body.len();
        let digest = digest_of(&body);
        let reference = tag.unwrap_or(&digest);
        self.put_manifest(repo, reference, media_type, body).await?;
        Ok((digest, size))
    }

    async fn blob(&self, repo: &str, digest: &str) -> anyhow::Result<Bytes> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("failed to GET {url}"))?;
        if !response.status().is_success() {
            bail!("GET {url}: {}", response.status());
        }
        Ok(response.bytes().await?)
    }

    /// Monolithic upload: POST a session, PUT the whole blob with its digest. Returns the digest.
    async fn put_blob(&self, repo: &str, body: Bytes) -> anyhow::Result<String> {
        let digest = digest_of(&body);
        let url = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let response = self
            .http
            .post(&url)
            .send()
            .await
            .with_context(|| format!("failed to POST {url}"))?;
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .with_context(|| format!("POST {url}: {} without Location", response.status()))?;
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_owned()
        };
        let mut upload =
            url::Url::parse(&location).with_context(|| format!("upload location {location}"))?;
        upload.query_pairs_mut().append_pair("digest", &digest);
        let response = self
            .http
            .put(upload.as_str())
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .context("failed to PUT a blob")?;
        ensure!(
            response.status().is_success(),
            "blob upload to {repo}: {}",
            response.status()
        );
        Ok(digest)
    }
}
