//! [`ImageResolver`] that asks a real registry, like a container runtime resolving a tag before
//! pulling: `HEAD /v2/<repo>/manifests/<reference>` with all four manifest media types accepted
//! (without the OCI types distribution answers 404 for OCI images, and with only the Docker
//! schema2 type it answers with a different digest), reading `Docker-Content-Digest`.
//!
//! Registries are given as a map from the host written in image references to a base URL, so a
//! test can name images `registry.test:5000/app:1` and serve them from `http://127.0.0.1:<port>`.
//! A loopback host (`127.0.0.1:<port>`, `localhost:<port>`) not in the map is reached directly
//! over plain HTTP. Basic credentials are sent as given; a `Bearer` challenge is answered by
//! fetching a token from its realm (with the credentials, if any) and asking again.

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
        let mut response = self.send_head(&url, &endpoint, None).await?;
        let challenge = response
            .headers()
            .get("Www-Authenticate")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_challenge);
        if let (StatusCode::UNAUTHORIZED, Some(challenge)) = (response.status(), challenge) {
            let token = self.token(&endpoint, &challenge).await?;
            response = self.send_head(&url, &endpoint, Some(&token)).await?;
        }
        match response.status() {
            s if s.is_success() => digest_of(image, response.headers()),
            StatusCode::NOT_FOUND => Err(PullError::NotFound),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(PullError::Unauthorized),
            s => Err(PullError::Unreachable(format!("registry answered {s}"))),
        }
    }
}

impl HttpResolver {
    async fn send_head(
        &self,
        url: &Url,
        endpoint: &RegistryEndpoint,
        token: Option<&str>,
    ) -> Result<reqwest::Response, PullError> {
        let mut request = self.client.head(url.clone()).header("Accept", ACCEPT);
        match (token, &endpoint.basic_auth) {
            (Some(token), _) => request = request.bearer_auth(token),
            (None, Some((user, password))) => request = request.basic_auth(user, Some(password)),
            (None, None) => {}
        }
        request
            .send()
            .await
            .map_err(|e| PullError::Unreachable(e.to_string()))
    }

    /// A pull token from the challenge's realm.
    async fn token(
        &self,
        endpoint: &RegistryEndpoint,
        challenge: &HashMap<String, String>,
    ) -> Result<String, PullError> {
        let mut realm = challenge
            .get("realm")
            .and_then(|r| Url::parse(r).ok())
            .ok_or_else(|| {
                PullError::Unreachable("bearer challenge without a realm".to_string())
            })?;
        for key in ["service", "scope"] {
            if let Some(value) = challenge.get(key) {
                realm.query_pairs_mut().append_pair(key, value);
            }
        }
        let mut request = self.client.get(realm);
        if let Some((user, password)) = &endpoint.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .map_err(|e| PullError::Unreachable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(PullError::Unauthorized);
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| PullError::Unreachable(format!("bad token response: {e}")))?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or(PullError::Unauthorized)
    }
}

/// The parameters of a `Bearer` challenge (`Bearer realm="…",service="…",scope="…"`).
fn bearer_challenge(header: &str) -> Option<HashMap<String, String>> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, tail) = match after.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').unwrap_or((quoted, "")),
            None => after.split_once(',').unwrap_or((after, "")),
        };
        params.insert(key, value.to_string());
        rest = tail.trim_start_matches(',').trim();
    }
    Some(params)
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
    fn bearer_challenges_are_parsed_with_commas_inside_quotes() {
        let c = bearer_challenge(
            r#"Bearer realm="http://127.0.0.1:9/token",service="registry",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c["realm"], "http://127.0.0.1:9/token");
        assert_eq!(c["service"], "registry");
        assert_eq!(c["scope"], "repository:a/b:pull,push");
        assert!(bearer_challenge(r#"Basic realm="x""#).is_none());
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
