//! In-process fakes of the GCP and Azure credential sources and of Azure Container Registry, written to the
//! providers' published shapes and checked against the providers' own Python clients (`tests/pyclients/`).
//!
//! - [`FakeGkeMetadata`]: the GKE metadata server (plain HTTP, `Metadata-Flavor: Google` both ways).
//! - [`FakeEntraId`]: the Entra ID v2.0 token endpoint and its OpenID configuration (HTTPS), which checks the
//!   client assertion it receives against the federated token it expects.
//! - [`FakeAcr`]: ACR's `/oauth2/exchange`, `/oauth2/token` and a tag list behind Bearer tokens (HTTPS).
//!
//! Input: what each test programs (identities, expected assertions, lifetimes, scripted refusals). Output: the
//! providers' answers and a log of every request ([`CloudRequest`]) with its form fields, for exact assertions.
//! The HTTPS fakes share one [`TestCa`], whose PEM the clients under test trust.

mod acr;
mod entra;
mod gke;

use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, Method, StatusCode, header};

pub use acr::FakeAcr;
pub use entra::{FEDERATED_AUDIENCE, FakeEntraId};
pub use gke::FakeGkeMetadata;

use crate::registry::certs::{self, TlsMaterial};

/// A test CA with a server certificate for `127.0.0.1` and `localhost`, shared by the HTTPS fakes.
#[derive(Debug, Clone)]
pub struct TestCa {
    pub(crate) tls: TlsMaterial,
}

impl TestCa {
    /// A fresh CA and server certificate.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            tls: certs::tls_material()?,
        })
    }

    /// As [`TestCa::new`], the server certificate also naming `names` (a fake registry reached by its cloud
    /// host name, e.g. `watchcluster.azurecr.io`, through `RegistryConfig::resolve`).
    pub fn with_names(names: &[&str]) -> anyhow::Result<Self> {
        Ok(Self {
            tls: certs::tls_material_for(names)?,
        })
    }

    /// The CA certificate, PEM: what a client must trust to reach the fakes.
    pub fn ca_pem(&self) -> &str {
        &self.tls.ca_pem
    }
}

/// A request as a fake saw it.
#[derive(Debug, Clone)]
pub struct CloudRequest {
    /// HTTP method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// Query pairs, decoded.
    pub query: Vec<(String, String)>,
    /// Request headers.
    pub headers: HeaderMap,
    /// `application/x-www-form-urlencoded` body fields, decoded (empty for other bodies).
    pub form: Vec<(String, String)>,
}

impl CloudRequest {
    pub(crate) fn new(method: Method, uri: &http::Uri, headers: HeaderMap, body: &[u8]) -> Self {
        let form_body = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        Self {
            method,
            path: uri.path().to_owned(),
            query: pairs(uri.query().unwrap_or_default().as_bytes()),
            headers,
            form: if form_body { pairs(body) } else { Vec::new() },
        }
    }

    /// The first form field `name`.
    pub fn form_field(&self, name: &str) -> Option<&str> {
        find(&self.form, name)
    }

    /// The first query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        find(&self.query, name)
    }

    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A JWT with `claims`, shaped like a provider's (RS256 header, three base64url parts) but with a placeholder
/// signature: the fakes and the code under test read claims, none verifies signatures.
pub fn unsigned_jwt(claims: &serde_json::Value) -> String {
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "testkit"});
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode("testkit-signature")
    )
}

/// The claims of a JWT, when it is one.
pub fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A Kubernetes projected ServiceAccount token as AKS projects it for Workload Identity: audience
/// `api://AzureADTokenExchange`, subject `system:serviceaccount:<namespace>:<name>`, valid for an hour.
pub fn federated_token(audience: &str, subject: &str, serial: u32) -> String {
    let now = unix_now();
    unsigned_jwt(&serde_json::json!({
        "aud": [audience],
        "iss": "https://oidc.prod-aks.azure.com/testkit/",
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": format!("testkit-{serial}"),
    }))
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn json_response(
    status: StatusCode,
    body: &serde_json::Value,
) -> axum::response::Response {
    axum::response::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_jwts_carry_their_claims() {
        let token = unsigned_jwt(&serde_json::json!({"exp": 5, "tid": "t"}));
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(jwt_claims(&token).unwrap()["tid"], "t");
        assert_eq!(jwt_claims("not-a-jwt"), None);
    }
}
