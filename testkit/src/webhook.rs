//! A webhook receiver for tests: a real HTTP server on `127.0.0.1:0` that records every request.
//!
//! Input: whatever a client sends to [`WebhookReceiver::url`], and a script of answers queued with
//! [`WebhookReceiver::respond_next`]. Output: the recorded [`ReceivedRequest`]s (method, path, headers, the exact
//! body bytes and the instant each arrived), so tests can assert the exact payload and the timing of retries.
//!
//! Waiting is event-driven ([`WebhookReceiver::wait_for_requests`] watches a counter): tests never sleep for a
//! fixed time. Dropping the receiver stops the server and releases every request held by [`Response::Hang`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use tokio::sync::watch;

use crate::serve::{Server, Stopped, stop_signal};

/// One scripted answer of the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Answer with this status code and an empty body.
    Status(u16),
    /// Answer `429 Too Many Requests` with `Retry-After: <retry_after_secs>`.
    TooManyRequests {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// Never answer: the request is held open until the receiver is dropped (for client timeouts).
    Hang,
}

/// A request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// HTTP method.
    pub method: Method,
    /// Path without the query string.
    pub path: String,
    /// Query string, if any (without `?`).
    pub query: Option<String>,
    /// All request headers.
    pub headers: HeaderMap,
    /// The exact body bytes.
    pub body: Bytes,
    /// When the request (with its whole body) had arrived.
    pub received_at: Instant,
}

impl ReceivedRequest {
    /// The body parsed as JSON; `Value::Null` when it is not valid JSON (tests then fail on their assertion).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The value of header `name` (case-insensitive) when present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as UTF-8 text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug)]
struct Shared {
    requests: Mutex<Vec<ReceivedRequest>>,
    script: Mutex<VecDeque<Response>>,
    /// Number of recorded requests; watchers wake on every change.
    count: watch::Sender<usize>,
    /// Completes when the receiver is dropped: releases hanging requests.
    stopped: Stopped,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these plain collections inconsistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running webhook receiver. Stops on drop.
#[derive(Debug)]
pub struct WebhookReceiver {
    server: Server,
    shared: Arc<Shared>,
}

impl WebhookReceiver {
    /// Binds `127.0.0.1:0` and serves every method and path; answers `200` unless scripted otherwise.
    pub async fn start() -> anyhow::Result<Self> {
        let (tx, stopped) = stop_signal();
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            count: watch::Sender::new(0),
            stopped: stopped.clone(),
        });
        let app = Router::new().fallback(record).with_state(shared.clone());
        let server = Server::spawn(app, (tx, stopped)).await?;
        Ok(Self { server, shared })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234/`; any path below it is accepted.
    pub fn url(&self) -> String {
        format!("http://{}/", self.server.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Queues `response` as the answer to the next unanswered request; queued answers are used in order, then `200`.
    pub fn respond_next(&self, response: Response) {
        lock(&self.shared.script).push_back(response);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Waits until at least `n` requests have arrived and returns all of them; fails after `timeout`.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedRequest>> {
        let mut rx = self.shared.count.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await {
            Ok(Ok(_)) => Ok(self.requests()),
            Ok(Err(_)) => anyhow::bail!("webhook receiver stopped while waiting for {n} requests"),
            Err(_) => {
                let got = self.requests();
                anyhow::bail!(
                    "timed out after {timeout:?} waiting for {n} webhook requests; got {}: {:?}",
                    got.len(),
                    got.iter()
                        .map(ReceivedRequest::body_text)
                        .collect::<Vec<_>>()
                )
            }
        }
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let request = ReceivedRequest {
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body,
        received_at: Instant::now(),
    };
    // Take the scripted answer before publishing the request, so a waiter sees a consistent script.
    let answer = lock(&shared.script).pop_front();
    lock(&shared.requests).push(request);
    shared.count.send_modify(|c| *c += 1);
    match answer {
        None => plain(StatusCode::OK),
        Some(Response::Status(code)) => {
            plain(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        }
        Some(Response::TooManyRequests { retry_after_secs }) => {
            let mut r = plain(StatusCode::TOO_MANY_REQUESTS);
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(retry_after_secs),
            );
            r
        }
        Some(Response::Hang) => {
            // Resolves only when the receiver is dropped.
            shared.stopped.clone().wait().await;
            plain(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

fn plain(status: StatusCode) -> axum::response::Response {
    let mut r = axum::response::Response::new(Body::empty());
    *r.status_mut() = status;
    r
}
