//! [`ImageResolver`] that asks a real registry, like a container runtime resolving a tag before
//! pulling: `HEAD /v2/<repo>/manifests/<reference>` with all four manifest media types accepted
//! (without the OCI types distribution answers 404 for OCI images, and with only the Docker
//! schema2 type it answers with a different digest), reading `Docker-Content-Digest`.
//!
//! Registries are given as a map from the host written in image references to a base URL, so a
//! test can name images `registry.test:5000/app:1` and serve them from `http://127.0.0.1:<port>`.
//! A loopback host (`127.0.0.1:<port>`, `localhost:<port>`) not in the map is reached directly
//! over plain HTTP.

use std::collections::HashMap;

use futures::future::BoxFuture;
use reqwest::StatusCode;
use url::Url;

use super::{ImageRef, ImageResolver, PullError};

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Where one registry is served and how to log in to it.
#[derive(Debug, Clone)]
pub struct RegistryEndpoint {
    /// Base URL, e.g. `http://127.0.0.1:5000` (`/v2/…` is appended).
    pub base_url: Url,
    /// Basic-auth user and password, if the registry requires them.
    pub basic_auth: Option<(String, String)>,
}

/// The HTTP resolver could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpResolverError {
    /// The CA bundle is not valid PEM.
    #[error("failed to read the registry CA certificate")]
    Ca(#[source] reqwest::Error),
    /// The HTTP client could not be built (for instance no rustls crypto provider installed).
    #[error("failed to build the registry HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Resolves images against real registries over HTTP(S).
#[derive(Debug, Clone)]
pub struct HttpResolver {
    registries: HashMap<String, RegistryEndpoint>,
    client: reqwest::Client,
}

impl HttpResolver {
    /// A resolver for `registries` (host as written in image references → endpoint), trusting
    /// `ca_pem` in addition to the built-in roots when given.
    pub fn new(
        registries: HashMap<String, RegistryEndpoint>,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, HttpResolverError> {
        let mut builder = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(5));
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem).map_err(HttpResolverError::Ca)?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder.build().map_err(HttpResolverError::Client)?;
        Ok(Self { registries, client })
    }

    fn endpoint(&self, host: &str) -> Option<RegistryEndpoint> {
        if let Some(e) = self.registries.get(host) {
            return Some(e.clone());
        }
        let loopback = ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|h| host == *h || host.starts_with(&format!("{h}:")));
        let base_url = Url::parse(&format!("http://{host}")).ok()?;
        loopback.then_some(RegistryEndpoint {
            base_url,
            basic_auth: None,
        })
    }

    async fn head(&self, image: &ImageRef) -> Result<String, PullError> {
        let endpoint = self.endpoint(&image.registry).ok_or_else(|| {
            PullError::Unreachable(format!("no route to registry {}", image.registry))
        })?;
        let path = format!(
            "v2/{}/manifests/{}",
            image.repository,
            image.manifest_reference()
        );
        let url = join(&endpoint.base_url, &path)?;
        let mut request = self.client.head(url).header("Accept", ACCEPT);
        if let Some((user, password)) = &endpoint.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .map_err(|e| PullError::Unreachable(e.to_string()))?;
        match response.status() {
            s if s.is_success() => digest_of(image, response.headers()),
            StatusCode::NOT_FOUND => Err(PullError::NotFound),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(PullError::Unauthorized),
            s => Err(PullError::Unreachable(format!("registry answered {s}"))),
        }
    }
}

impl ImageResolver for HttpResolver {
    fn resolve<'a>(&'a self, image: &'a ImageRef) -> BoxFuture<'a, Result<String, PullError>> {
        Box::pin(self.head(image))
    }
}

fn join(base: &Url, path: &str) -> Result<Url, PullError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let p = format!("{}/", base.path());
        base.set_path(&p);
    }
    base.join(path)
        .map_err(|e| PullError::Unreachable(format!("bad registry URL: {e}")))
}

fn digest_of(image: &ImageRef, headers: &reqwest::header::HeaderMap) -> Result<String, PullError> {
    // A pinned reference is pulled by that digest, whatever the header says.
    if let Some(pinned) = &image.digest {
        return Ok(pinned.clone());
    }
    headers
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .filter(|d| d.starts_with("sha256:"))
        .map(str::to_string)
        .ok_or_else(|| PullError::Unreachable("registry sent no Docker-Content-Digest".to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn manifest_urls_keep_a_base_path() {
        let base = Url::parse("http://127.0.0.1:1/mirror").unwrap();
        assert_eq!(
            join(&base, "v2/a/manifests/1").unwrap().as_str(),
            "http://127.0.0.1:1/mirror/v2/a/manifests/1"
        );
    }

    #[test]
    fn loopback_hosts_are_reached_directly_and_others_need_a_route() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let r = HttpResolver::new(HashMap::new(), None).unwrap();
        assert!(r.endpoint("127.0.0.1:5000").is_some());
        assert!(r.endpoint("localhost:5000").is_some());
        assert!(r.endpoint("registry.example.com").is_none());
    }
}
