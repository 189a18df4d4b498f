//! A reverse proxy that records every request on its way to a real registry.
//!
//! Input: the upstream's base URL (plain HTTP, e.g. [`crate::RealRegistry::base_url`]). Output: a
//! [`CountingProxy`] on `127.0.0.1:<port>` forwarding method, path, query, headers and body untouched, and
//! the method, path and time of each request. Used where the registry's real answers matter and only the
//! requests need counting (signature verification reads real cosign output: the fake registry cannot
//! serve it). `Location` headers are passed as the registry wrote them, so uploads go around the proxy:
//! count reads with it.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;

use crate::serve::{Server, stop_signal};

/// One forwarded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// `GET`, `HEAD`…
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// From its arrival to the upstream's whole answer (the registry's share of the caller's time).
    pub elapsed: std::time::Duration,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    log: Arc<Mutex<Vec<Forwarded>>>,
}

/// The running proxy; stops when dropped.
pub struct CountingProxy {
    server: Server,
    log: Arc<Mutex<Vec<Forwarded>>>,
}

impl std::fmt::Debug for CountingProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingProxy")
            .field("addr", &self.server.addr())
            .finish_non_exhaustive()
    }
}

impl CountingProxy {
    /// Starts a proxy in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("failed to build the proxy's client")?,
            log: log.clone(),
        };
        let app = Router::new().fallback(forward).with_state(shared);
        let server = Server::spawn(app, stop_signal()).await?;
        Ok(Self { server, log })
    }

    /// `127.0.0.1:PORT`, for image references.
    pub fn host(&self) -> String {
        self.server.addr().to_string()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Forwarded> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Forgets the requests so far.
    pub fn reset(&self) {
        if let Ok(mut log) = self.log.lock() {
            log.clear();
        }
    }
}

async fn forward(State(shared): State<Shared>, request: Request) -> Response {
    match relay(&shared, request).await {
        Ok(response) => response,
        Err(e) => {
            let mut response = Response::new(Body::from(format!("counting proxy: {e:#}")));
            *response.status_mut() = http::StatusCode::BAD_GATEWAY;
            response
        }
    }
}

async fn relay(shared: &Shared, request: Request) -> anyhow::Result<Response> {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let (method, logged_path) = (parts.method.to_string(), parts.uri.path().to_owned());
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .context("failed to read the request body")?;
    let mut upstream = shared
        .http
        .request(parts.method, format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != http::header::HOST {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.context("upstream request failed")?;
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        // The body is re-framed here; its length is the upstream's anyway.
        if name != http::header::TRANSFER_ENCODING {
            response = response.header(name, value);
        }
    }
    let bytes = answer
        .bytes()
        .await
        .context("failed to read the upstream body")?;
    if let Ok(mut log) = shared.log.lock() {
        log.push(Forwarded {
            method,
            path: logged_path,
            elapsed: started.elapsed(),
        });
    }
    response
        .body(Body::from(bytes))
        .context("failed to build the response")
}
