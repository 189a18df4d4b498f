//! A fake Entra ID (Microsoft identity platform v2.0) for Workload Identity, over HTTPS.
//!
//! Serves `/<tenant>/v2.0/.well-known/openid-configuration` (what MSAL reads when instance discovery is
//! disabled) and `POST /<tenant>/oauth2/v2.0/token` with the client-credentials grant and a JWT-bearer client
//! assertion. It checks, in Entra ID's order and with its AADSTS codes: the tenant (90002), the grant
//! (70003), the client id (700016), the assertion type (7000216), the assertion's audience against the
//! federated credential's `api://AzureADTokenExchange` (700212), the assertion itself against the token it
//! expects (its subject: 700213, otherwise 50013 "signature"), and the scope (1002012, 500011). Refusals have
//! Entra ID's body: `error`, `error_description` (code, message, then Trace/Correlation ID lines),
//! `error_codes`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::json;

use super::{CloudRequest, TestCa, json_response, jwt_claims, lock, unix_now, unsigned_jwt};
use crate::serve::{Server, stop_signal};

/// The audience Entra ID requires of a federated (Kubernetes) token.
pub const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";
const ACR_RESOURCE: &str = "https://containerregistry.azure.net";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A running fake Entra ID; stops on drop.
#[derive(Debug)]
pub struct FakeEntraId {
    server: Server,
    state: Arc<Mutex<Programmed>>,
}

#[derive(Debug)]
struct Programmed {
    base: String,
    tenant: String,
    client_id: String,
    expected_assertion: String,
    expires_in: u64,
    issued: Vec<String>,
    refusals: VecDeque<(StatusCode, String, u32, String)>,
    requests: Vec<CloudRequest>,
}

impl FakeEntraId {
    /// Starts an Entra ID with one tenant and one application (`client_id`) whose federated credential
    /// accepts exactly `assertion`.
    pub async fn start(
        ca: &TestCa,
        tenant: &str,
        client_id: &str,
        assertion: &str,
    ) -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(Programmed {
            base: String::new(),
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            expected_assertion: assertion.to_owned(),
            expires_in: 3599,
            issued: Vec::new(),
            refusals: VecDeque::new(),
            requests: Vec::new(),
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let server = Server::spawn_tls(app, stop_signal(), &ca.tls).await?;
        lock(&state).base = format!("https://{}", server.addr());
        Ok(Self { server, state })
    }

    /// `https://127.0.0.1:<port>/`: the value of `AZURE_AUTHORITY_HOST`.
    pub fn authority(&self) -> String {
        format!("https://{}/", self.server.addr())
    }

    /// From now on, only `assertion` is accepted (the kubelet rotated the projected token).
    pub fn expect_assertion(&self, assertion: &str) {
        lock(&self.state).expected_assertion = assertion.to_owned();
    }

    /// The `expires_in` of the tokens issued from now on.
    pub fn set_expires_in(&self, seconds: u64) {
        lock(&self.state).expires_in = seconds;
    }

    /// The next token request is refused with `status`, OAuth `error`, and `AADSTS<code>: <message>`.
    pub fn refuse_next(&self, status: u16, error: &str, code: u32, message: &str) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        lock(&self.state)
            .refusals
            .push_back((status, error.to_owned(), code, message.to_owned()));
    }

    /// Every access token issued, in order.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.state).issued.clone()
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
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [tenant, "v2.0", ".well-known", "openid-configuration"]
            if request.method == Method::GET =>
        {
            openid_configuration(&state, tenant)
        }
        [tenant, "oauth2", "v2.0", "token"] if request.method == Method::POST => {
            match token(&mut state, tenant, &request) {
                Ok(answer) => answer,
                Err(refusal) => refusal.into_response(),
            }
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
    }
}

fn openid_configuration(state: &Programmed, tenant: &str) -> Response {
    if *tenant != state.tenant {
        return Refusal::new(
            400,
            "invalid_tenant",
            90002,
            &format!("Tenant '{tenant}' not found."),
        )
        .into_response();
    }
    let base = format!("{}/{tenant}", state.base);
    json_response(
        StatusCode::OK,
        &json!({
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{}/{tenant}/discovery/v2.0/keys", state.base),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{base}/v2.0"),
            "request_uri_parameter_supported": false,
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
            "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
            "tenant_region_scope": "WW",
        }),
    )
}

fn token(
    state: &mut Programmed,
    tenant: &str,
    request: &CloudRequest,
) -> Result<Response, Refusal> {
    if let Some((status, error, code, message)) = state.refusals.pop_front() {
        return Err(Refusal::new(status.as_u16(), &error, code, &message));
    }
    if tenant != state.tenant {
        return Err(Refusal::new(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ));
    }
    let field = |name| request.form_field(name).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return Err(Refusal::new(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        ));
    }
    if field("client_id") != state.client_id {
        return Err(Refusal::new(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory '{tenant}'.",
                field("client_id")
            ),
        ));
    }
    if field("client_assertion_type") != ASSERTION_TYPE || field("client_assertion").is_empty() {
        return Err(Refusal::new(
            401,
            "invalid_client",
            7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        ));
    }
    check_assertion(state, field("client_assertion"))?;
    let scope = field("scope");
    let Some(resource) = scope.strip_suffix("/.default") else {
        return Err(Refusal::new(
            400,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    };
    if resource != ACR_RESOURCE {
        return Err(Refusal::new(
            400,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {resource} was not found in the tenant named {tenant}."
            ),
        ));
    }
    let now = unix_now();
    let access_token = unsigned_jwt(&json!({
        "aud": ACR_RESOURCE,
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "tid": tenant,
        "appid": state.client_id,
        "iat": now,
        "nbf": now,
        "exp": now + state.expires_in,
        "jti": format!("entra-{}", state.issued.len() + 1),
    }));
    state.issued.push(access_token.clone());
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "token_type": "Bearer",
            "expires_in": state.expires_in,
            "ext_expires_in": state.expires_in,
            "access_token": access_token,
        }),
    ))
}

fn check_assertion(state: &Programmed, assertion: &str) -> Result<(), Refusal> {
    let claims = jwt_claims(assertion).ok_or_else(|| {
        Refusal::new(
            400,
            "invalid_client",
            50027,
            "JWT token is invalid or malformed.",
        )
    })?;
    let audiences: Vec<&str> = match &claims["aud"] {
        serde_json::Value::String(s) => vec![s.as_str()],
        serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&FEDERATED_AUDIENCE) {
        return Err(Refusal::new(
            400,
            "invalid_client",
            700212,
            &format!(
                "No matching federated identity record found for presented assertion audience '{}'.",
                audiences.join(",")
            ),
        ));
    }
    if assertion != state.expected_assertion {
        let expected_subject = jwt_claims(&state.expected_assertion)
            .and_then(|c| c["sub"].as_str().map(str::to_owned));
        let subject = claims["sub"].as_str().unwrap_or_default();
        if expected_subject.as_deref() != Some(subject) {
            return Err(Refusal::new(
                400,
                "invalid_client",
                700213,
                &format!(
                    "No matching federated identity record found for presented assertion subject '{subject}'."
                ),
            ));
        }
        return Err(Refusal::new(
            401,
            "invalid_client",
            50013,
            "Assertion failed signature validation.",
        ));
    }
    Ok(())
}

struct Refusal {
    status: StatusCode,
    error: String,
    code: u32,
    message: String,
}

impl Refusal {
    fn new(status: u16, error: &str, code: u32, message: &str) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            error: error.to_owned(),
            code,
            message: message.to_owned(),
        }
    }

    fn into_response(self) -> Response {
        let trace = "00000000-0000-0000-0000-0000000000aa";
        json_response(
            self.status,
            &json!({
                "error": self.error,
                "error_description": format!(
                    "AADSTS{}: {}\r\nTrace ID: {trace}\r\nCorrelation ID: {trace}\r\nTimestamp: 2026-01-01 00:00:00Z",
                    self.code, self.message
                ),
                "error_codes": [self.code],
                "timestamp": "2026-01-01 00:00:00Z",
                "trace_id": trace,
                "correlation_id": trace,
                "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
            }),
        )
    }
}
