//! A fake GKE metadata server (Workload Identity), plain HTTP as the real one is.
//!
//! Serves what google-auth's `compute_engine.Credentials` and our client ask:
//! `/computeMetadata/v1/instance/service-accounts/<default|email>/` (`?recursive=true`: email, aliases,
//! scopes), `…/token` (`{access_token, expires_in, token_type}`), `…/email`, and `/` (google-auth's ping).
//! Like the real server it refuses requests without `Metadata-Flavor: Google` and requests carrying
//! `X-Forwarded-For` (403), and marks every answer with `Metadata-Flavor: Google`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode, Uri, header};

use super::{CloudRequest, json_response, lock};
use crate::serve::{Server, stop_signal};

const PREFIX: &str = "/computeMetadata/v1/instance/service-accounts/";

/// A running fake metadata server; stops on drop.
#[derive(Debug)]
pub struct FakeGkeMetadata {
    server: Server,
    state: Arc<Mutex<Programmed>>,
}

#[derive(Debug)]
struct Programmed {
    email: String,
    expires_in: u64,
    issued: Vec<String>,
    refusals: VecDeque<(StatusCode, String)>,
    flavor_header: bool,
    requests: Vec<CloudRequest>,
}

impl FakeGkeMetadata {
    /// Starts a metadata server for the Google service account `email`, issuing tokens valid for an hour.
    pub async fn start(email: &str) -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(Programmed {
            email: email.to_owned(),
            expires_in: 3599,
            issued: Vec::new(),
            refusals: VecDeque::new(),
            flavor_header: true,
            requests: Vec::new(),
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let server = Server::spawn(app, stop_signal()).await?;
        Ok(Self { server, state })
    }

    /// `127.0.0.1:<port>`: the value of `GCE_METADATA_HOST` (and `GCE_METADATA_IP`).
    pub fn host(&self) -> String {
        self.server.addr().to_string()
    }

    /// The `expires_in` of the tokens issued from now on.
    pub fn set_expires_in(&self, seconds: u64) {
        lock(&self.state).expires_in = seconds;
    }

    /// The next token request is answered `status` with `body` (text), as the server refuses.
    pub fn refuse_next_token(&self, status: u16, body: &str) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        lock(&self.state)
            .refusals
            .push_back((status, body.to_owned()));
    }

    /// Answers without `Metadata-Flavor: Google`, as something that is not a metadata server would.
    pub fn omit_flavor_header(&self) {
        lock(&self.state).flavor_header = false;
    }

    /// Every access token issued, in order; each token request gets a new one.
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
    let mut response = answer(&mut state, &request);
    if state.flavor_header {
        response
            .headers_mut()
            .insert("metadata-flavor", http::HeaderValue::from_static("Google"));
    }
    response
}

fn answer(state: &mut Programmed, request: &CloudRequest) -> Response {
    if request.header("x-forwarded-for").is_some() {
        return text(
            StatusCode::FORBIDDEN,
            "Request had an X-Forwarded-For header and was rejected.",
        );
    }
    if request.path == "/" {
        return text(StatusCode::OK, "computeMetadata/\n");
    }
    if request.header("metadata-flavor") != Some("Google") {
        return text(
            StatusCode::FORBIDDEN,
            "Missing required header \"Metadata-Flavor\": \"Google\"",
        );
    }
    if request.method != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    }
    let Some(rest) = request.path.strip_prefix(PREFIX) else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    let (account, item) = rest.split_once('/').unwrap_or((rest, ""));
    if account != "default" && account != state.email {
        return text(StatusCode::NOT_FOUND, "Not Found");
    }
    match item {
        "" => json_response(
            StatusCode::OK,
            &serde_json::json!({
                "aliases": ["default"],
                "email": state.email,
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            }),
        ),
        "email" => text(StatusCode::OK, &state.email.clone()),
        "token" => {
            if let Some((status, body)) = state.refusals.pop_front() {
                return text(status, &body);
            }
            let token = format!("ya29.testkit-{}", state.issued.len() + 1);
            state.issued.push(token.clone());
            json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "access_token": token,
                    "expires_in": state.expires_in,
                    "token_type": "Bearer",
                }),
            )
        }
        _ => text(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn text(status: StatusCode, body: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(axum::body::Body::from(body.to_owned()))
        .unwrap_or_default()
}
