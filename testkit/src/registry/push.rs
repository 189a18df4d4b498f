//! Pushes synthetic images to the harness registry over the distribution API, without Docker.
//!
//! Input: repository, tag, [`ImageKind`] and a salt. Output: [`Pushed`], the digest the tag now points to and, for
//! an index or manifest list, the exact digest of each platform child. Layer and config content is derived from
//! (repo, tag, arch, salt), so pushing again with another salt moves the tag to a new digest.
//!
//! oci-client does the transport (auth handshake including Bearer with push scope, blob upload, manifest PUT):
//! `push_manifest_raw` sends our bytes and media type untouched, so the digest we compute is the one the registry
//! stores. Manifests are built here as JSON because oci-client's typed manifests cannot express a Docker
//! manifest list's media types for children.
//!
//! [`RealRegistry::stage`] uploads all but the tagged manifest, and [`Staged::tag`] PUTs it: a burst of
//! tag pushes then costs one request each (the push-events bench's storm).

use anyhow::Context as _;
use bytes::Bytes;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth as OciAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::RealRegistry;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The architectures every index and manifest list carries, in order.
const ARCHES: [&str; 2] = ["amd64", "arm64"];

/// What kind of manifest the tag points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// A single-platform OCI image manifest (linux/amd64).
    OciManifest,
    /// An OCI image index with linux/amd64 and linux/arm64 OCI manifests.
    OciIndex,
    /// A single-platform Docker schema 2 manifest (linux/amd64).
    DockerManifest,
    /// A Docker manifest list with linux/amd64 and linux/arm64 Docker manifests.
    DockerManifestList,
}

impl ImageKind {
    /// The media type of the manifest the tag points to.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::OciManifest => OCI_MANIFEST,
            Self::OciIndex => OCI_INDEX,
            Self::DockerManifest => DOCKER_MANIFEST,
            Self::DockerManifestList => DOCKER_MANIFEST_LIST,
        }
    }

    fn is_docker(self) -> bool {
        matches!(self, Self::DockerManifest | Self::DockerManifestList)
    }

    fn is_multi_arch(self) -> bool {
        matches!(self, Self::OciIndex | Self::DockerManifestList)
    }
}

/// The result of [`RealRegistry::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `sha256:…` of the manifest the tag points to (the index digest for multi-arch kinds).
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: usize,
    /// `("linux/amd64", digest)`, `("linux/arm64", digest)` for multi-arch kinds; empty otherwise.
    pub children: Vec<(String, String)>,
}

impl Pushed {
    /// The digest of the child for `platform` (e.g. `"linux/amd64"`).
    pub fn child(&self, platform: &str) -> Option<&str> {
        self.children
            .iter()
            .find(|(p, _)| p == platform)
            .map(|(_, d)| d.as_str())
    }
}

/// A manifest ready to be PUT, with the blobs it references.
struct Built {
    body: Bytes,
    digest: String,
    media_type: &'static str,
    blobs: Vec<Bytes>,
}

/// An image whose blobs (and, for an index or manifest list, platform manifests) are in the registry, but
/// not its tag: [`Staged::tag`] PUTs the one manifest that makes the push, so a test can push many tags in a
/// burst, as a CI pipeline's last step does.
pub struct Staged {
    client: Client,
    tagged: Reference,
    manifest: Built,
    pushed: Pushed,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged")
            .field("reference", &self.tagged.to_string())
            .field("digest", &self.pushed.digest)
            .finish_non_exhaustive()
    }
}

impl Staged {
    /// PUTs the tagged manifest: the push a registry reports. Returns what [`RealRegistry::push`] returns.
    pub async fn tag(&self) -> anyhow::Result<Pushed> {
        put_manifest(&self.client, &self.tagged, &self.manifest).await?;
        Ok(self.pushed.clone())
    }
}

impl RealRegistry {
    /// Pushes a synthetic image of `kind` as `repo:tag`; content depends on (repo, tag, arch, salt).
    pub async fn push(
        &self,
        repo: &str,
        tag: &str,
        kind: ImageKind,
        salt: &str,
    ) -> anyhow::Result<Pushed> {
        self.stage(repo, tag, kind, salt).await?.tag().await
    }

    /// Uploads everything [`RealRegistry::push`] uploads except the tagged manifest itself.
    pub async fn stage(
        &self,
        repo: &str,
        tag: &str,
        kind: ImageKind,
        salt: &str,
    ) -> anyhow::Result<Staged> {
        let client = self.oci_client();
        let tagged = Reference::with_tag(self.host(), repo.to_owned(), tag.to_owned());
        let auth = match self.credentials() {
            Some((user, password)) => OciAuth::Basic(user, password),
            None => OciAuth::Anonymous,
        };
        client
            .auth(&tagged, &auth, RegistryOperation::Push)
            .await
            .with_context(|| format!("failed to authorize a push to {repo}"))?;
        if !kind.is_multi_arch() {
            let image = single(repo, tag, ARCHES[0], salt, kind.is_docker())?;
            upload_blobs(&client, &tagged, &image).await?;
            let pushed = Pushed {
                digest: image.digest.clone(),
                media_type: kind.media_type().to_owned(),
                size: image.body.len(),
                children: vec![],
            };
            return Ok(Staged {
                client,
                tagged,
                manifest: image,
                pushed,
            });
        }
        let mut entries = Vec::new();
        let mut children = Vec::new();
        for arch in ARCHES {
            let image = single(repo, tag, arch, salt, kind.is_docker())?;
            let by_digest =
                Reference::with_digest(self.host(), repo.to_owned(), image.digest.clone());
            upload(&client, &by_digest, &image).await?;
            entries.push(json!({
                "mediaType": image.media_type,
                "digest": image.digest,
                "size": image.body.len(),
                "platform": { "architecture": arch, "os": "linux" },
            }));
            children.push((format!("linux/{arch}"), image.digest));
        }
        let index =
            json!({ "schemaVersion": 2, "mediaType": kind.media_type(), "manifests": entries });
        let body = Bytes::from(serde_json::to_vec(&index)?);
        let list = Built {
            digest: digest_of(&body),
            body,
            media_type: kind.media_type(),
            blobs: vec![],
        };
        let pushed = Pushed {
            digest: list.digest.clone(),
            media_type: kind.media_type().to_owned(),
            size: list.body.len(),
            children,
        };
        Ok(Staged {
            client,
            tagged,
            manifest: list,
            pushed,
        })
    }

    /// Pushes `blobs`, then `manifest` (of `media_type`) under `tag`, or by its digest when `tag` is
    /// `None`: what a signing tool does to attach a signature. Returns the manifest digest.
    pub async fn push_artifact(
        &self,
        repo: &str,
        tag: Option<&str>,
        media_type: &'static str,
        manifest: Vec<u8>,
        blobs: &[Vec<u8>],
    ) -> anyhow::Result<String> {
        let client = self.oci_client();
        let digest = digest_of(&manifest);
        let reference = match tag {
            Some(tag) => Reference::with_tag(self.host(), repo.to_owned(), tag.to_owned()),
            None => Reference::with_digest(self.host(), repo.to_owned(), digest.clone()),
        };
        let auth = match self.credentials() {
            Some((user, password)) => OciAuth::Basic(user, password),
            None => OciAuth::Anonymous,
        };
        client
            .auth(&reference, &auth, RegistryOperation::Push)
            .await
            .with_context(|| format!("failed to authorize a push to {repo}"))?;
        for blob in blobs {
            client
                .push_blob(&reference, blob.clone(), &digest_of(blob))
                .await
                .with_context(|| format!("failed to push a blob to {reference}"))?;
        }
        let built = Built {
            body: Bytes::from(manifest),
            digest: digest.clone(),
            media_type,
            blobs: Vec::new(),
        };
        put_manifest(&client, &reference, &built).await?;
        Ok(digest)
    }

    fn oci_client(&self) -> Client {
        let tls_certs_only = self
            .ca_pem()
            .map(|pem| {
                vec![Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.as_bytes().to_vec(),
                }]
            })
            .unwrap_or_default();
        Client::new(ClientConfig {
            protocol: if self.ca_pem().is_some() {
                ClientProtocol::Https
            } else {
                ClientProtocol::Http
            },
            tls_certs_only,
            // The API walk docs/dependencies.md#oci-registries documents: POST an upload, PUT the whole blob with its digest.
            use_monolithic_push: true,
            ..ClientConfig::default()
        })
    }
}

/// Pushes the blobs of `image`, then its manifest under `reference`; checks the registry stored our digest.
async fn upload(client: &Client, reference: &Reference, image: &Built) -> anyhow::Result<()> {
    upload_blobs(client, reference, image).await?;
    put_manifest(client, reference, image).await
}

/// Pushes the blobs of `image`.
async fn upload_blobs(client: &Client, reference: &Reference, image: &Built) -> anyhow::Result<()> {
    for blob in &image.blobs {
        client
            .push_blob(reference, blob.clone(), &digest_of(blob))
            .await
            .with_context(|| format!("failed to push a blob to {reference}"))?;
    }
    Ok(())
}

/// PUTs the manifest of `image` under `reference`; checks the registry stored our digest.
async fn put_manifest(client: &Client, reference: &Reference, image: &Built) -> anyhow::Result<()> {
    let media_type = http::HeaderValue::from_static(image.media_type);
    let location = client
        .push_manifest_raw(reference, image.body.clone(), media_type)
        .await
        .with_context(|| format!("failed to push the manifest {reference}"))?;
    anyhow::ensure!(
        location.ends_with(&image.digest),
        "registry stored {reference} at {location}, expected digest {}",
        image.digest
    );
    Ok(())
}

/// A single-platform manifest with one config blob and one layer blob.
fn single(repo: &str, tag: &str, arch: &str, salt: &str, docker: bool) -> anyhow::Result<Built> {
    let layer = Bytes::from(format!(
        "watch-cluster-testkit layer\nrepo={repo}\ntag={tag}\narch={arch}\nsalt={salt}\n"
    ));
    let config = Bytes::from(serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        // distribution needs a history entry per layer to convert a schema 2 manifest to schema 1.
        "history": [{ "created": "2024-01-01T00:00:00Z", "created_by": "watch-cluster-testkit" }],
        "config": { "Labels": { "io.watch-cluster.testkit.salt": salt } },
        "rootfs": { "type": "layers", "diff_ids": [digest_of(&layer)] },
    }))?);
    let (media_type, config_type, layer_type) = if docker {
        (
            DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (
            OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": { "mediaType": config_type, "digest": digest_of(&config), "size": config.len() },
        "layers": [{ "mediaType": layer_type, "digest": digest_of(&layer), "size": layer.len() }],
    });
    let body = Bytes::from(serde_json::to_vec(&manifest).context("failed to encode a manifest")?);
    Ok(Built {
        digest: digest_of(&body),
        body,
        media_type,
        blobs: vec![config, layer],
    })
}

/// `sha256:<hex>` of `data`.
pub(crate) fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}
