//! The HTTP exchange: TLS policy, manual redirects that never forward `Authorization`, bounded bodies.
//!
//! Input: an [`Exchange`] (URL, method, optional `Authorization`). Output: a [`Reply`] with any status,
//! its headers, its body and the rate-limit pause it asks for. Every exchange is counted in metrics.
//!
//! TLS is verified against the platform roots plus `REGISTRY_CA_FILE`; plain HTTP is used only for hosts in
//! `INSECURE_REGISTRIES` (and a token realm on such a host). reqwest's own redirect policy keeps
//! `Authorization` on same-host redirects, so redirects are followed here, without it (registries redirect
//! manifest and blob GETs to storage hosts).

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, LOCATION};
use reqwest::{Certificate, Method};
use url::Url;

use super::manifest::accept_header;
use super::metrics::Metrics;
use super::ratelimit::pause_from;
use super::{RegistryConfig, RegistryError, Repository, api_host};

const MAX_REDIRECTS: usize = 5;
/// Bodies larger than this are refused: a tag list of 100k tags is a few MB.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// One HTTP exchange to make.
pub(crate) struct Exchange<'a> {
    pub(crate) registry_label: &'a str,
    pub(crate) registry_host: &'a str,
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) manifest_accept: bool,
    pub(crate) authorization: Option<String>,
    pub(crate) target: &'a str,
}

/// A registry's answer, read in full.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// How long the registry asked us to stay away (429, `RateLimit-Remaining: 0`).
    pub(crate) pause: Option<Duration>,
}

/// The HTTP client and the TLS policy.
pub(crate) struct Http {
    client: reqwest::Client,
    insecure: HashSet<String>,
    accept: String,
}

impl Http {
    pub(crate) fn new(config: &RegistryConfig) -> Result<Self, RegistryError> {
        // reqwest is built without a provider of its own (`rustls-no-provider`): make sure the process has one.
        crate::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("watch-cluster/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_file {
            builder = builder.tls_certs_merge(read_ca_file(path)?);
        }
        for (host, addr) in &config.resolve {
            builder = builder.resolve(host, *addr);
        }
        let client = builder.build().map_err(|e| RegistryError::Config {
            detail: "the HTTP client could not be built".to_owned(),
            source: Some(std::sync::Arc::new(e)),
        })?;
        let insecure = config
            .insecure_registries
            .iter()
            .map(|h| normalize_host(h))
            .filter(|h| !h.is_empty())
            .collect();
        Ok(Self {
            client,
            insecure,
            accept: accept_header(),
        })
    }

    /// `<scheme>://<api host>/v2/<name>/<segments…>`.
    pub(crate) fn repo_url(
        &self,
        repo: &Repository,
        segments: &[&str],
        target: &str,
    ) -> Result<Url, RegistryError> {
        let host = api_host(&repo.registry);
        let scheme = if self.insecure.contains(&host) {
            "http"
        } else {
            "https"
        };
        let mut url = Url::parse(&format!("{scheme}://{host}/v2/")).map_err(|e| {
            RegistryError::malformed(target, format!("`{host}` is not a registry host: {e}"))
        })?;
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .extend(repo.name.split('/'))
                .extend(segments);
        }
        Ok(url)
    }

    /// Sends one exchange, following redirects without `Authorization`.
    pub(crate) async fn exchange(
        &self,
        ex: Exchange<'_>,
        metrics: &Metrics,
    ) -> Result<Reply, RegistryError> {
        let mut url = ex.url.clone();
        let mut authorization = ex.authorization.clone();
        for _ in 0..=MAX_REDIRECTS {
            self.check_scheme(&url, &ex)?;
            let response = self.send(&ex, &url, authorization.as_deref()).await;
            let status = response.as_ref().ok().map(|r| r.status().as_u16());
            metrics.request(ex.registry_label, ex.method.as_str(), status);
            let response = response?;
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .filter(|_| response.status().is_redirection());
            if let Some(location) = location {
                url = url.join(location).map_err(|e| {
                    RegistryError::malformed(ex.target, format!("redirect to an invalid URL: {e}"))
                })?;
                authorization = None;
                continue;
            }
            return read_reply(response, ex.target).await;
        }
        Err(RegistryError::malformed(ex.target, "too many redirects"))
    }

    async fn send(
        &self,
        ex: &Exchange<'_>,
        url: &Url,
        authorization: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut request = self.client.request(ex.method.clone(), url.clone());
        request = if ex.manifest_accept {
            request.header(ACCEPT, &self.accept)
        } else {
            request.header(ACCEPT, "application/json")
        };
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        request.send().await.map_err(|e| {
            if answered_plain_http(&e) {
                RegistryError::Insecure {
                    target: ex.target.to_owned(),
                    detail: format!("{} answered plain HTTP to a TLS handshake", host_port(url)),
                }
            } else {
                RegistryError::transport(ex.target, e)
            }
        })
    }

    /// HTTPS always; plain HTTP only to an insecure host, or to the same host name as an insecure registry.
    fn check_scheme(&self, url: &Url, ex: &Exchange<'_>) -> Result<(), RegistryError> {
        let allowed = match url.scheme() {
            "https" => true,
            "http" => {
                let same_host_as_insecure_registry = self.insecure.contains(ex.registry_host)
                    && url.host_str() == ex.registry_host.split(':').next();
                self.insecure.contains(&host_port(url)) || same_host_as_insecure_registry
            }
            _ => false,
        };
        if allowed {
            return Ok(());
        }
        Err(RegistryError::Insecure {
            target: ex.target.to_owned(),
            detail: format!("refusing {}://{}", url.scheme(), host_port(url)),
        })
    }
}

/// `host[:port]` of a URL as INSECURE_REGISTRIES writes it.
fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// `http://registry:5000/` and `Registry:5000` both mean `registry:5000`.
fn normalize_host(entry: &str) -> String {
    let entry = entry.trim();
    let entry = entry
        .strip_prefix("http://")
        .or_else(|| entry.strip_prefix("https://"))
        .unwrap_or(entry);
    api_host(entry.split('/').next().unwrap_or_default())
}

pub(crate) fn read_ca_file(path: &std::path::Path) -> Result<Vec<Certificate>, RegistryError> {
    let config =
        |detail: String, source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>| {
            RegistryError::Config { detail, source }
        };
    let pem = std::fs::read(path).map_err(|e| {
        config(
            format!("REGISTRY_CA_FILE {} cannot be read", path.display()),
            Some(std::sync::Arc::new(e)),
        )
    })?;
    let certs = Certificate::from_pem_bundle(&pem).map_err(|e| {
        config(
            format!("REGISTRY_CA_FILE {} is not a PEM bundle", path.display()),
            Some(std::sync::Arc::new(e)),
        )
    })?;
    if certs.is_empty() {
        return Err(config(
            format!("REGISTRY_CA_FILE {} holds no certificate", path.display()),
            None,
        ));
    }
    Ok(certs)
}

async fn read_reply(mut response: reqwest::Response, target: &str) -> Result<Reply, RegistryError> {
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| RegistryError::transport(target, e))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(RegistryError::malformed(target, "answer body is too large"));
        }
        body.extend_from_slice(&chunk);
    }
    let pause = pause_from(&headers, status, SystemTime::now());
    Ok(Reply {
        status,
        headers,
        body: body.freeze(),
        pause,
    })
}

/// Whether a TLS handshake failed because the server answered in plain HTTP.
fn answered_plain_http(err: &reqwest::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if is_invalid_tls_message(e) {
            return true;
        }
        current = e.source();
    }
    false
}

/// rustls reports a non-TLS answer as `InvalidMessage`; it arrives wrapped in an `io::Error`, sometimes boxed
/// (whose `source()` skips the wrapped error itself, so unwrap it by downcasting).
fn is_invalid_tls_message(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(rustls_err) = e.downcast_ref::<rustls::Error>() {
        return matches!(rustls_err, rustls::Error::InvalidMessage(_));
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        return is_invalid_tls_message(inner);
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn http(insecure: &[&str]) -> Http {
        crate::install_crypto_provider();
        let config = RegistryConfig {
            insecure_registries: insecure.iter().map(|s| (*s).to_owned()).collect(),
            ..RegistryConfig::default()
        };
        Http::new(&config).unwrap()
    }

    #[test]
    fn urls_use_https_except_for_listed_hosts_and_encode_segments() {
        let h = http(&["http://Registry:5000/", " "]);
        let repo = Repository::new("registry:5000", "team/app");
        assert_eq!(
            h.repo_url(&repo, &["manifests", "1.0"], "t")
                .unwrap()
                .as_str(),
            "http://registry:5000/v2/team/app/manifests/1.0"
        );
        let hub = Repository::new("docker.io", "library/nginx");
        assert_eq!(
            h.repo_url(&hub, &["tags", "list"], "t").unwrap().as_str(),
            "https://registry-1.docker.io/v2/library/nginx/tags/list"
        );
        let other = Repository::new("registry:5001", "a");
        assert_eq!(
            h.repo_url(&other, &["x?y"], "t").unwrap().as_str(),
            "https://registry:5001/v2/a/x%3Fy"
        );
    }

    #[test]
    fn plain_http_is_refused_unless_listed() {
        let h = http(&["registry:5000"]);
        let ex = |host: &'static str| Exchange {
            registry_label: host,
            registry_host: host,
            method: Method::GET,
            url: Url::parse("http://x").unwrap(),
            manifest_accept: false,
            authorization: None,
            target: "t",
        };
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(
            h.check_scheme(&url("http://registry:5000/v2/"), &ex("registry:5000"))
                .is_ok()
        );
        assert!(
            h.check_scheme(&url("http://registry:9000/token"), &ex("registry:5000"))
                .is_ok()
        );
        assert!(
            h.check_scheme(&url("https://other/token"), &ex("other"))
                .is_ok()
        );
        let refused = h.check_scheme(&url("http://other:80/v2/"), &ex("other"));
        assert!(matches!(refused, Err(RegistryError::Insecure { .. })));
        assert!(
            h.check_scheme(&url("http://registry:5000/token"), &ex("other"))
                .is_ok()
        );
        assert!(
            h.check_scheme(&url("ftp://registry:5000/"), &ex("registry:5000"))
                .is_err()
        );
    }
}
