//! A fake Azure Container Registry: its AAD token exchange and token service, and a tag list, over HTTPS.
//!
//! - `POST /oauth2/exchange` (`grant_type=access_token`, `service`, `tenant`, `access_token`): accepts an
//!   Entra ID token for `https://containerregistry.azure.net` of the registry's tenant, unexpired, and answers
//!   `{"refresh_token"}` — a JWT whose `exp` is the refresh token's lifetime (ACR's are three hours).
//! - `GET /oauth2/token?service&scope` with Basic `00000000-0000-0000-0000-000000000000:<refresh token>` (what
//!   docker, containerd and our token flow send), or `POST /oauth2/token` with `grant_type=refresh_token`
//!   (ACR's documented form): answers `{"access_token"}` for that scope.
//! - `GET /v2/` and `GET /v2/<name>/tags/list` behind those access tokens, with ACR's Bearer challenge
//!   (`realm="https://<host>/oauth2/token",service="<host>"`).
//!
//! Errors have the distribution shape ACR uses: `{"errors":[{"code","message"}]}`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use base64::Engine as _;
use http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::json;

use super::{CloudRequest, TestCa, json_response, jwt_claims, lock, unix_now, unsigned_jwt};
use crate::serve::{Server, stop_signal};

const NULL_GUID: &str = "00000000-0000-0000-0000-000000000000";
const ACR_RESOURCE: &str = "https://containerregistry.azure.net";

/// A running fake ACR; stops on drop.
#[derive(Debug)]
pub struct FakeAcr {
    server: Server,
    state: Arc<Mutex<Programmed>>,
}

#[derive(Debug)]
struct Programmed {
    host: String,
    tenant: String,
    refresh_lifetime: u64,
    opaque_refresh: bool,
    repositories: HashMap<String, Vec<String>>,
    refresh_tokens: Vec<String>,
    /// Access token → the scope it was issued for.
    access_tokens: HashMap<String, String>,
    refusals: VecDeque<(String, StatusCode, String, String)>,
    requests: Vec<CloudRequest>,
}

impl FakeAcr {
    /// Starts a registry in Entra ID tenant `tenant`, named by its address `127.0.0.1:<port>`.
    pub async fn start(ca: &TestCa, tenant: &str) -> anyhow::Result<Self> {
        Self::start_inner(ca, tenant, None).await
    }

    /// Starts a registry named `name` (`<registry>.azurecr.io`), which clients reach through
    /// `RegistryConfig::resolve` to [`FakeAcr::addr`]; `ca` must name it ([`TestCa::with_names`]).
    pub async fn start_named(ca: &TestCa, tenant: &str, name: &str) -> anyhow::Result<Self> {
        Self::start_inner(ca, tenant, Some(name)).await
    }

    async fn start_inner(ca: &TestCa, tenant: &str, name: Option<&str>) -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(Programmed {
            host: String::new(),
            tenant: tenant.to_owned(),
            refresh_lifetime: 3 * 3600,
            opaque_refresh: false,
            repositories: HashMap::new(),
            refresh_tokens: Vec::new(),
            access_tokens: HashMap::new(),
            refusals: VecDeque::new(),
            requests: Vec::new(),
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let server = Server::spawn_tls(app, stop_signal(), &ca.tls).await?;
        lock(&state).host = name.map_or_else(|| server.addr().to_string(), str::to_owned);
        Ok(Self { server, state })
    }

    /// The registry host, also its `service` name: its name, or `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        lock(&self.state).host.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// Serves `tags` for repository `name`.
    pub fn set_tags(&self, name: &str, tags: &[&str]) {
        lock(&self.state).repositories.insert(
            name.to_owned(),
            tags.iter().map(|t| (*t).to_owned()).collect(),
        );
    }

    /// The lifetime of refresh tokens issued from now on.
    pub fn set_refresh_lifetime(&self, seconds: u64) {
        lock(&self.state).refresh_lifetime = seconds;
    }

    /// Issues refresh tokens that are not JWTs (clients then cannot read their expiry).
    pub fn issue_opaque_refresh_tokens(&self) {
        lock(&self.state).opaque_refresh = true;
    }

    /// The next request to `path` (`/oauth2/exchange`, `/oauth2/token`) is refused with `status` and the
    /// error `code` and `message`.
    pub fn refuse_next(&self, path: &str, status: u16, code: &str, message: &str) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
        lock(&self.state).refusals.push_back((
            path.to_owned(),
            status,
            code.to_owned(),
            message.to_owned(),
        ));
    }

    /// Every refresh token issued by `/oauth2/exchange`, in order.
    pub fn refresh_tokens(&self) -> Vec<String> {
        lock(&self.state).refresh_tokens.clone()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<CloudRequest> {
        lock(&self.state).requests.clone()
    }
}

async fn handle(
    State(state): State<Arc<Mutex<Programmed>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = CloudRequest::new(method, &uri, headers, &body);
    let mut state = lock(&state);
    state.requests.push(request.clone());
    let scripted = state
        .refusals
        .iter()
        .position(|(path, ..)| *path == request.path);
    if let Some((_, status, code, message)) = scripted.and_then(|i| state.refusals.remove(i)) {
        return error(status, &code, &message);
    }
    match (&request.method, request.path.as_str()) {
        (&Method::POST, "/oauth2/exchange") => exchange(&mut state, &request),
        (&Method::GET, "/oauth2/token") => {
            let refresh = basic_refresh_token(&request);
            access_token(&mut state, &request.query, refresh.as_deref())
        }
        (&Method::POST, "/oauth2/token") => {
            if request.form_field("grant_type") != Some("refresh_token") {
                error(
                    StatusCode::BAD_REQUEST,
                    "UNSUPPORTED",
                    "grant_type must be refresh_token",
                )
            } else {
                let refresh = request.form_field("refresh_token").map(str::to_owned);
                access_token(&mut state, &request.form, refresh.as_deref())
            }
        }
        (&Method::GET, path) if path.starts_with("/v2/") => registry_api(&state, &request),
        _ => error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint"),
    }
}

fn exchange(state: &mut Programmed, request: &CloudRequest) -> Response {
    let field = |name| request.form_field(name).unwrap_or_default();
    if field("grant_type") != "access_token" {
        return error(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            "grant_type must be access_token",
        );
    }
    if field("service") != state.host {
        return error(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            &format!("service `{}` is not this registry", field("service")),
        );
    }
    let claims = jwt_claims(field("access_token")).unwrap_or_default();
    let valid = claims["aud"] == ACR_RESOURCE
        && claims["tid"] == state.tenant.as_str()
        && field("tenant") == state.tenant
        && claims["exp"].as_u64().is_some_and(|exp| exp > unix_now());
    if !valid {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "the access token is not an Entra ID token of this registry's tenant for https://containerregistry.azure.net",
        );
    }
    let now = unix_now();
    let serial = state.refresh_tokens.len() + 1;
    let refresh_token = if state.opaque_refresh {
        // Still expiring, so the token service's own check keeps working.
        format!("opaque-refresh-{serial}.{}", now + state.refresh_lifetime)
    } else {
        unsigned_jwt(&json!({
        "jti": format!("acr-refresh-{serial}"),
        "sub": claims["appid"],
        "nbf": now,
        "iat": now,
        "exp": now + state.refresh_lifetime,
        "iss": "Azure Container Registry",
        "aud": state.host,
        "version": "1.0",
        "grant_type": "refresh_token",
        "tenant": state.tenant,
        }))
    };
    state.refresh_tokens.push(refresh_token.clone());
    json_response(StatusCode::OK, &json!({"refresh_token": refresh_token}))
}

fn basic_refresh_token(request: &CloudRequest) -> Option<String> {
    let encoded = request.header("authorization")?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (user == NULL_GUID).then(|| password.to_owned())
}

fn access_token(
    state: &mut Programmed,
    params: &[(String, String)],
    refresh: Option<&str>,
) -> Response {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let known = refresh.is_some_and(|r| state.refresh_tokens.iter().any(|t| t == r));
    let unexpired = refresh
        .and_then(|r| match jwt_claims(r) {
            Some(claims) => claims["exp"].as_u64(),
            None => r.rsplit_once('.').and_then(|(_, exp)| exp.parse().ok()),
        })
        .is_some_and(|exp| exp > unix_now());
    if !known || !unexpired || param("service") != state.host {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required, visit https://aka.ms/acr/authorization for more information.",
        );
    }
    let scope = param("scope").to_owned();
    let token = format!("acr-access-{}", state.access_tokens.len() + 1);
    state.access_tokens.insert(token.clone(), scope);
    json_response(StatusCode::OK, &json!({"access_token": token}))
}

fn registry_api(state: &Programmed, request: &CloudRequest) -> Response {
    let name = request
        .path
        .strip_prefix("/v2/")
        .and_then(|rest| rest.strip_suffix("/tags/list"));
    let wanted_scope = name.map(|n| format!("repository:{n}:pull"));
    let bearer = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| state.access_tokens.get(t));
    let authorized = match (&wanted_scope, bearer) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(wanted), Some(scope)) => scope == wanted,
    };
    if !authorized {
        let mut challenge = format!(
            "Bearer realm=\"https://{host}/oauth2/token\",service=\"{host}\"",
            host = state.host
        );
        if let Some(scope) = &wanted_scope {
            challenge.push_str(&format!(",scope=\"{scope}\""));
        }
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required, visit https://aka.ms/acr/authorization for more information.",
        );
        if let Ok(value) = challenge.parse() {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        return response;
    }
    let Some(name) = name else {
        return json_response(StatusCode::OK, &json!({}));
    };
    match state.repositories.get(name) {
        Some(tags) => json_response(StatusCode::OK, &json!({"name": name, "tags": tags})),
        None => error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            &format!("repository name not known to registry: {name}"),
        ),
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"errors": [{"code": code, "message": message, "detail": null}]}),
    )
}
