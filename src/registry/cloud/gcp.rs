//! Google Artifact Registry and GCR credentials from the GKE metadata server
//! (docs/cloud-registries.md#google-artifact-registry-and-gcr).
//!
//! Input: `GCE_METADATA_HOST` (optional, `host[:port]` as google-auth defines it) and an HTTP client. Output:
//! an [`Issued`] credential — user `oauth2accesstoken`, the service account's access token as the password —
//! that expires when the token does.
//!
//! The metadata server is plain HTTP on its link-local address by definition: on GKE with Workload Identity the
//! node's metadata server answers 169.254.169.254 for the pod and maps its Kubernetes ServiceAccount to the
//! Google service account it is bound to. Because plain HTTP can be answered by anything on the path, the
//! answer must carry `Metadata-Flavor: Google`, as google-auth requires before it trusts a metadata server, and
//! an override may only name the metadata server itself or a loopback host (tests).

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use url::Url;

use super::{CloudError, Env, Issued};
use crate::registry::Credential;

/// The user name that GAR and GCR accept with an OAuth access token as the password.
pub const USERNAME: &str = "oauth2accesstoken";
/// google-auth's override of the metadata server's `host[:port]`.
pub const METADATA_HOST_VAR: &str = "GCE_METADATA_HOST";
const DEFAULT_METADATA_HOST: &str = "169.254.169.254";
/// The metadata server's DNS name on GCE and GKE, which an override may also use.
const METADATA_DNS_NAME: &str = "metadata.google.internal";
const TOKEN_PATH: &str = "computeMetadata/v1/instance/service-accounts/default/token";
const FLAVOR_HEADER: &str = "Metadata-Flavor";
const FLAVOR: &str = "Google";
const STEP: &str = "GKE metadata server token";
/// A token answer is under 2 KiB; anything far larger is not a metadata server.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Where the metadata server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataServer {
    base: Url,
}

impl MetadataServer {
    /// The server named by `GCE_METADATA_HOST` in `env`, else 169.254.169.254.
    pub fn from_env(env: &Env) -> Result<Self, CloudError> {
        Self::at(env.get(METADATA_HOST_VAR).as_deref())
    }

    /// The server at `host` (`host[:port]`, the value of `GCE_METADATA_HOST`), else 169.254.169.254.
    ///
    /// Only the link-local address, `metadata.google.internal` and loopback hosts are accepted: the token is
    /// fetched over plain HTTP, which is safe only where the network path is the node itself.
    pub fn at(host: Option<&str>) -> Result<Self, CloudError> {
        let host = host
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .unwrap_or(DEFAULT_METADATA_HOST);
        let bad = |why: &str| {
            CloudError::new(
                STEP,
                format!(
                    "{METADATA_HOST_VAR}=`{host}` {why}; set it to `host[:port]` of the metadata server \
                 (169.254.169.254, {METADATA_DNS_NAME}, or a loopback host for tests) or unset it"
                ),
            )
        };
        if host.contains(['/', '?', '#', '@']) {
            return Err(bad("is not host[:port]"));
        }
        let base = Url::parse(&format!("http://{host}/")).map_err(|_| bad("is not host[:port]"))?;
        let allowed = match base.host() {
            Some(url::Host::Ipv4(ip)) => {
                ip.is_loopback() || IpAddr::from(ip) == IpAddr::from([169, 254, 169, 254])
            }
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => {
                d.eq_ignore_ascii_case("localhost") || d.eq_ignore_ascii_case(METADATA_DNS_NAME)
            }
            None => false,
        };
        if !allowed {
            return Err(bad(
                "is not the metadata server: its token is fetched over plain HTTP",
            ));
        }
        Ok(Self { base })
    }

    /// `http://<host>/`.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn token_url(&self) -> Result<Url, CloudError> {
        self.base
            .join(TOKEN_PATH)
            .map_err(|e| fail(format!("cannot build the token URL on {}: {e}", self.base)))
    }
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
    token_type: String,
}

/// A credential for GAR and GCR from the metadata server that `GCE_METADATA_HOST` names (default
/// 169.254.169.254).
pub async fn issue(http: &reqwest::Client) -> Result<Issued, CloudError> {
    issue_with(http, &Env::process()).await
}

/// As [`issue`], reading `GCE_METADATA_HOST` from `env`.
pub async fn issue_with(http: &reqwest::Client, env: &Env) -> Result<Issued, CloudError> {
    issue_from(http, &MetadataServer::from_env(env)?).await
}

/// A credential for GAR and GCR from `server`'s token of the default service account.
#[tracing::instrument(skip_all, fields(provider = "gcp", metadata_server = %server.base))]
pub async fn issue_from(
    http: &reqwest::Client,
    server: &MetadataServer,
) -> Result<Issued, CloudError> {
    let url = server.token_url()?;
    super::check_source(STEP, &url)?;
    let response = http
        .get(url)
        .header(FLAVOR_HEADER, FLAVOR)
        .send()
        .await
        .map_err(|e| {
            fail(format!(
                "cannot reach the metadata server at {}: {}; on GKE, enable Workload Identity on the \
                 cluster and node pool",
                server.base,
                super::describe(&e)
            ))
        })?;
    let status = response.status();
    let from_metadata_server = response
        .headers()
        .get(FLAVOR_HEADER)
        .is_some_and(|v| v.as_bytes() == FLAVOR.as_bytes());
    let body = read_body(response).await?;
    if !from_metadata_server {
        return Err(fail(format!(
            "the answer ({status}) lacks `{FLAVOR_HEADER}: {FLAVOR}`: {} is not a GCE metadata server",
            server.base
        )));
    }
    if !status.is_success() {
        return Err(fail(format!("{status}: {}", excerpt(&body))));
    }
    let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
        fail(format!(
            "the answer is not {{access_token, expires_in, token_type}}: {e}"
        ))
    })?;
    if answer.access_token.is_empty() || !answer.token_type.eq_ignore_ascii_case("bearer") {
        return Err(fail(format!(
            "the answer holds no Bearer access token (token_type `{}`)",
            answer.token_type
        )));
    }
    tracing::debug!(
        expires_in = answer.expires_in,
        "metadata server issued an access token"
    );
    Ok(Issued {
        credential: Credential::new(USERNAME, answer.access_token),
        expires_at: SystemTime::now() + Duration::from_secs(answer.expires_in),
    })
}

/// Our own guidance is kept whole; text quoted from the server goes through [`excerpt`].
fn fail(message: String) -> CloudError {
    CloudError {
        step: STEP,
        message,
    }
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, CloudError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        fail(format!(
            "reading the answer failed: {}",
            super::describe(&e)
        ))
    })? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(fail(format!(
                "the answer exceeds {MAX_BODY_BYTES} bytes: not a metadata server"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error body on one line, escaped and cut short for logs and Events: the metadata server explains refusals
/// in plain text, and whatever answered may not be it.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::untrusted::echo(&line).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_server_defaults_to_the_link_local_address() {
        let server = MetadataServer::at(None).unwrap();
        assert_eq!(server.base().as_str(), "http://169.254.169.254/");
        assert_eq!(
            server.token_url().unwrap().as_str(),
            "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token"
        );
        assert_eq!(MetadataServer::at(Some(" ")).unwrap(), server);
    }

    #[test]
    fn an_override_is_host_and_port_of_the_metadata_server_or_a_loopback_host() {
        for host in [
            "127.0.0.1:8080",
            "localhost:1",
            "[::1]:9",
            "metadata.google.internal",
            "169.254.169.254",
        ] {
            let server = MetadataServer::at(Some(host)).unwrap();
            assert_eq!(server.base().as_str(), format!("http://{host}/"));
        }
    }

    #[test]
    fn an_override_naming_another_host_or_a_url_is_refused_naming_the_variable() {
        for host in [
            "evil.example.com",
            "10.0.0.1",
            "http://127.0.0.1:80",
            "127.0.0.1/x",
            "u@127.0.0.1",
        ] {
            let err = MetadataServer::at(Some(host)).unwrap_err();
            assert_eq!(err.step, STEP);
            assert!(
                err.message
                    .starts_with(&format!("GCE_METADATA_HOST=`{host}`")),
                "{err}"
            );
        }
    }

    #[test]
    fn error_excerpts_are_one_short_line() {
        assert_eq!(
            excerpt(b"Missing\nMetadata-Flavor:Google header.\n"),
            "Missing Metadata-Flavor:Google header."
        );
        assert!(excerpt(&[b'x'; 500]).ends_with("… (500 bytes)"));
        assert_eq!(excerpt(b"a\x1b[31mb"), "a\\u{1b}[31mb");
    }
}
