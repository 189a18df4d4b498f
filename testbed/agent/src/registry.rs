//! What a container runtime learns when it pulls: the digest the registry serves for a reference now.
//!
//! Only the manifest is asked for (HEAD, every manifest media type accepted), as containerd resolves a
//! reference before pulling; for a multi-arch tag that is the index digest, which is what containerd
//! reports as `imageID`. Loopback registries are reached over plain HTTP, others over HTTPS. Registries
//! that require credentials are not supported (docs/testbed.md).

use std::time::Duration;

/// The media types a runtime accepts, newest first.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// An image reference split the way a runtime resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `registry.example:5000`, or `docker.io` when the reference names none.
    pub host: String,
    /// `team/app`; `library/x` for a one-segment Docker Hub name.
    pub repository: String,
    /// The tag, `latest` when neither tag nor digest is given.
    pub tag: Option<String>,
    /// `sha256:…` when the reference pins one.
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(image: &str) -> Reference {
        let (name, digest) = match image.split_once('@') {
            Some((name, digest)) => (name, Some(digest.to_owned())),
            None => (image, None),
        };
        let slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[slash..].rfind(':') {
            Some(i) => (&name[..slash + i], Some(name[slash + i + 1..].to_owned())),
            None => (name, None),
        };
        let (host, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ if !name.contains('/') => ("docker.io".to_owned(), format!("library/{name}")),
            _ => ("docker.io".to_owned(), name.to_owned()),
        };
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            _ => tag,
        };
        Reference {
            host,
            repository,
            tag,
            digest,
        }
    }

    /// `host/repository`, as containerd prefixes `imageID`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    fn manifest_url(&self) -> String {
        let scheme = if is_loopback(&self.host) {
            "http"
        } else {
            "https"
        };
        let reference = self
            .digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest");
        format!(
            "{scheme}://{}/v2/{}/manifests/{reference}",
            self.host, self.repository
        )
    }
}

fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

/// Asks registries for digests.
#[derive(Clone)]
pub struct Resolver {
    http: reqwest::Client,
}

impl Resolver {
    pub fn new() -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self { http })
    }

    /// The digest the registry serves for `reference` now, or why the pull fails (the text a kubelet
    /// would put into `ErrImagePull`).
    pub async fn resolve(&self, reference: &Reference) -> Result<String, String> {
        let url = reference.manifest_url();
        let response = self
            .http
            .head(&url)
            .header(reqwest::header::ACCEPT, ACCEPT)
            .send()
            .await
            .map_err(|e| format!("failed to resolve reference {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "failed to resolve reference {url}: {}",
                response.status()
            ));
        }
        let served = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| format!("{url}: the registry sent no Docker-Content-Digest"))?;
        match &reference.digest {
            Some(pinned) if *pinned != served => Err(format!(
                "{url}: the registry serves {served}, not the pinned {pinned}"
            )),
            _ => Ok(served),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_as_a_runtime_resolves_them() {
        let r = Reference::parse("127.0.0.1:5000/team/app:1.2.3@sha256:abc");
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("1.2.3"));
        assert_eq!(r.digest.as_deref(), Some("sha256:abc"));
        assert_eq!(
            r.manifest_url(),
            "http://127.0.0.1:5000/v2/team/app/manifests/sha256:abc"
        );

        let r = Reference::parse("nginx");
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/nginx", Some("latest"))
        );
        assert_eq!(
            r.manifest_url(),
            "https://docker.io/v2/library/nginx/manifests/latest"
        );

        let r = Reference::parse("localhost:5000/app");
        assert_eq!(r.name(), "localhost:5000/app");
        assert_eq!(r.tag.as_deref(), Some("latest"));

        let r = Reference::parse("ghcr.io/org/app@sha256:def");
        assert_eq!(r.tag, None);
        assert_eq!(r.name(), "ghcr.io/org/app");
    }
}
