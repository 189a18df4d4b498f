//! The token server of the real-registry harness (distribution's `auth.token` scheme).
//!
//! Input: `GET /token?service=…&scope=repository:<name>:<actions>` with Basic credentials or none. Output: an
//! ES256 JWT the registry accepts (`kid` = libtrust key id, claims `iss`, `aud`, `sub`, `exp`, `nbf`, `iat`,
//! `jti`, `access`), in `{"token","access_token","expires_in","issued_at"}`. The harness credentials get the
//! actions they ask for; anonymous callers get `pull` only; wrong credentials get `401`. Every call is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::{Signature, signature::Signer as _};
use serde_json::json;

use super::certs::TokenKey;
use crate::serve::{Server, stop_signal};

/// Who the tokens are for: distribution checks `iss` against `issuer` and `aud` against `service`.
pub(crate) const ISSUER: &str = "watch-cluster-testkit";
/// The registry's service name in challenges and tokens.
pub(crate) const SERVICE: &str = "testkit-registry";
/// Lifetime of issued tokens, in seconds.
const EXPIRES_IN: i64 = 300;

struct TokenState {
    key: TokenKey,
    credentials: Option<(String, String)>,
    requests: AtomicUsize,
}

/// A running token server; stops on drop.
pub(crate) struct TokenServer {
    server: Server,
    state: Arc<TokenState>,
}

impl TokenServer {
    /// Starts the token server on 127.0.0.1:0, signing with `key` and granting push to `credentials`.
    pub(crate) async fn start(
        key: TokenKey,
        credentials: Option<(String, String)>,
    ) -> anyhow::Result<Self> {
        let state = Arc::new(TokenState {
            key,
            credentials,
            requests: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/token", get(issue))
            .with_state(state.clone());
        let server = Server::spawn(app, stop_signal())
            .await
            .context("failed to start the token server")?;
        Ok(Self { server, state })
    }

    /// The realm URL for the registry config.
    pub(crate) fn realm(&self) -> String {
        format!("http://{}/token", self.server.addr())
    }

    /// How many token requests were received.
    pub(crate) fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

async fn issue(
    State(state): State<Arc<TokenState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> axum::response::Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let subject = match caller(&headers, state.credentials.as_ref()) {
        Ok(subject) => subject,
        Err(()) => return (StatusCode::UNAUTHORIZED, "invalid credentials").into_response(),
    };
    let query = query.unwrap_or_default();
    let access: Vec<serde_json::Value> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "scope")
        .filter_map(|(_, scope)| grant(&scope, subject.is_some()))
        .collect();
    let now = chrono::Utc::now();
    let claims = json!({
        "iss": ISSUER,
        "aud": SERVICE,
        "sub": subject.unwrap_or_default(),
        "iat": now.timestamp(),
        "nbf": now.timestamp() - 10,
        "exp": now.timestamp() + EXPIRES_IN,
        "jti": format!("{:032x}", rand::random::<u128>()),
        "access": access,
    });
    match sign(&state.key, &claims) {
        Ok(token) => Json(json!({
            "token": token,
            "access_token": token,
            "expires_in": EXPIRES_IN,
            "issued_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }))
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `Ok(Some(user))` for the right Basic credentials, `Ok(None)` for anonymous, `Err` for wrong credentials.
fn caller(
    headers: &HeaderMap,
    credentials: Option<&(String, String)>,
) -> Result<Option<String>, ()> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let encoded = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Basic "))
        .ok_or(())?;
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| ())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ())?;
    let (user, password) = decoded.split_once(':').ok_or(())?;
    match credentials {
        Some((u, p)) if u == user && p == password => Ok(Some(user.to_owned())),
        _ => Err(()),
    }
}

/// The `access` entry granted for one `scope` parameter (`repository:<name>:<actions>`).
fn grant(scope: &str, authenticated: bool) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions
        .split(',')
        .filter(|a| authenticated || *a == "pull")
        .collect();
    Some(json!({"type": kind, "name": name, "actions": actions}))
}

/// A compact JWS (ES256) of `claims`, with `kid` naming the signing key.
fn sign(key: &TokenKey, claims: &serde_json::Value) -> anyhow::Result<String> {
    let header = json!({"typ": "JWT", "alg": "ES256", "kid": key.kid});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
    );
    let signature: Signature = key.signing.sign(signing_input.as_bytes());
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_callers_are_granted_pull_only() {
        let g = grant("repository:team/app:pull,push", false).unwrap();
        assert_eq!(
            g,
            json!({"type":"repository","name":"team/app","actions":["pull"]})
        );
        let g = grant("repository:team/app:pull,push", true).unwrap();
        assert_eq!(g["actions"], json!(["pull", "push"]));
    }

    #[test]
    fn wrong_basic_credentials_are_refused() {
        let creds = ("u".to_owned(), "p".to_owned());
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("u:x")).parse().unwrap(),
        );
        assert!(caller(&h, Some(&creds)).is_err());
        h.insert(
            http::header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("u:p")).parse().unwrap(),
        );
        assert_eq!(caller(&h, Some(&creds)).unwrap().as_deref(), Some("u"));
        assert_eq!(caller(&HeaderMap::new(), Some(&creds)).unwrap(), None);
    }
}
