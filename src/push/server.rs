//! The events listener on `EVENTS_ADDR`: five routes, one per provider (docs/push-events.md).
//!
//! Input: HTTP requests. Output: answers (table below), [`RepositoryPushed`] items on the sink, and the
//! registry cache entries of each pushed repository dropped. Every request is counted by provider and
//! result; log lines name the route template, never the request path (two routes carry the token).
//!
//! | answer | when |
//! |---|---|
//! | 404 | the provider has no token (it is off) |
//! | 401 | missing or wrong token or signature |
//! | 503 | this replica does not lead (the sender retries; the Service routes to the leader) |
//! | 413 | body over [`MAX_BODY`] |
//! | 408 | body not received within [`BODY_READ_TIMEOUT`] |
//! | 400 | not the provider's payload |
//! | 200 | everything else: accepted, ignored, duplicate, GitHub `ping` |
//!
//! Order: header and path tokens are checked before the body is read, then leadership; GitHub's
//! signature covers the body, so its body is read (up to [`MAX_BODY`]) before the HMAC and leadership.
//! The server is hyper's HTTP/1 with a header read timeout, at most [`MAX_CONNECTIONS`] connections at
//! once (further ones wait in the kernel's backlog): axum's `serve` has no header timeout.

use std::{
    net::SocketAddr,
    pin::pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use tokio::{
    sync::{Semaphore, mpsc::UnboundedSender, watch},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::{
    EventResult, HostAliases, Metrics, Provider, RepositoryPushed, auth,
    auth::Tokens,
    by_repository,
    dedup::Seen,
    payload::{self, Received},
};
use crate::registry::{RegistryClient, Repository};
use body::{BodyError, read_body};

/// The largest body read: registries send a few KiB; GitHub's limit for webhook payloads is 25 MB but
/// package events are small.
pub const MAX_BODY: usize = 1 << 20;
/// How long a client may take to send the request line and headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send the body.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; each serves one request at a time (HTTP/1).
pub const MAX_CONNECTIONS: usize = 32;

/// What the listener needs: its settings, leadership, and where accepted events go.
pub struct Listener {
    /// Each provider's token.
    pub tokens: Tokens,
    /// `EVENTS_HOST_ALIASES`.
    pub aliases: HostAliases,
    /// `true` while this replica leads ([`crate::controller::Context`]'s `leader`).
    pub leader: watch::Receiver<bool>,
    /// Counts every request.
    pub metrics: Metrics,
    /// Where accepted repositories go (the controller's `on_push` consumer).
    pub sink: UnboundedSender<RepositoryPushed>,
    /// The shared registry client, whose cached answers for a pushed repository are dropped.
    pub registry: Option<RegistryClient>,
    /// Delivery ids already seen.
    pub seen: Mutex<Seen>,
}

/// A failure to start the listener.
#[derive(Debug, thiserror::Error)]
#[error("failed to listen on EVENTS_ADDR={addr}")]
pub struct ServeError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// Binds `addr` now (so a busy port fails startup), then serves until `stop`.
pub async fn serve(
    addr: SocketAddr,
    listener: Arc<Listener>,
    stop: CancellationToken,
) -> Result<JoinHandle<()>, ServeError> {
    let socket = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError { addr, source })?;
    tracing::info!(%addr, "listening for registry push events");
    Ok(tokio::spawn(accept_loop(socket, router(listener), stop)))
}

async fn accept_loop(socket: tokio::net::TcpListener, app: Router, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            () = stop.cancelled() => return,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = socket.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "failed to accept an events connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let io = hyper_util::rt::TokioIo::new(stream);
            let mut connection = pin!(builder.serve_connection(io, service));
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "events connection ended with an error");
                    }
                }
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

/// The routes, for tests.
pub fn router(listener: Arc<Listener>) -> Router {
    Router::new()
        .route("/events/distribution", post(distribution))
        .route("/events/dockerhub/{token}", post(dockerhub))
        .route("/events/github", post(github))
        .route("/events/harbor", post(harbor))
        .route("/events/quay/{token}", post(quay))
        .with_state(listener)
}

/// How a request proves who sent it.
enum Credential<'a> {
    /// A token already taken from a header or the path (`None`: absent or in the wrong form).
    Token(Option<&'a [u8]>),
    /// GitHub's `X-Hub-Signature-256` over the body.
    Signature(Option<&'a str>),
}

async fn distribution(
    State(listener): State<Arc<Listener>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let token = authorization(&headers).and_then(auth::bearer);
    let request = Request::new(Provider::Distribution, "/events/distribution", &headers);
    handle(&listener, request, Credential::Token(token), body).await
}

async fn dockerhub(
    State(listener): State<Arc<Listener>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request = Request::new(Provider::DockerHub, "/events/dockerhub/{token}", &headers);
    with_path_token(&listener, request, &token, body).await
}

async fn github(State(listener): State<Arc<Listener>>, headers: HeaderMap, body: Body) -> Response {
    let signature = header_str(&headers, "x-hub-signature-256");
    let request = Request::new(Provider::GitHub, "/events/github", &headers);
    handle(&listener, request, Credential::Signature(signature), body).await
}

async fn harbor(State(listener): State<Arc<Listener>>, headers: HeaderMap, body: Body) -> Response {
    let token = authorization(&headers).map(auth::harbor);
    let request = Request::new(Provider::Harbor, "/events/harbor", &headers);
    handle(&listener, request, Credential::Token(token), body).await
}

async fn quay(
    State(listener): State<Arc<Listener>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request = Request::new(Provider::Quay, "/events/quay/{token}", &headers);
    with_path_token(&listener, request, &token, body).await
}

/// The providers that can only be given a URL carry their token in its path.
async fn with_path_token(
    listener: &Listener,
    request: Request<'_>,
    token: &str,
    body: Body,
) -> Response {
    handle(
        listener,
        request,
        Credential::Token(Some(token.as_bytes())),
        body,
    )
    .await
}

/// One request's route and headers.
struct Request<'a> {
    provider: Provider,
    /// The route template: what logs show instead of the path.
    route: &'static str,
    headers: &'a HeaderMap,
}

impl<'a> Request<'a> {
    fn new(provider: Provider, route: &'static str, headers: &'a HeaderMap) -> Self {
        Self {
            provider,
            route,
            headers,
        }
    }
}

async fn handle(
    listener: &Listener,
    request: Request<'_>,
    credential: Credential<'_>,
    body: Body,
) -> Response {
    let span =
        tracing::info_span!("push_event", route = request.route, provider = %request.provider);
    async move {
        let provider = request.provider;
        let (result, response) = answer(listener, &request, credential, body).await;
        if let Some(result) = result {
            listener.metrics.count(provider, result);
        }
        response
    }
    .instrument(span)
    .await
}

/// The answer, and the result to count (`None`: the provider is off).
async fn answer(
    listener: &Listener,
    request: &Request<'_>,
    credential: Credential<'_>,
    body: Body,
) -> (Option<EventResult>, Response) {
    let provider = request.provider;
    let Some(token) = listener.tokens.of(provider) else {
        return (None, (StatusCode::NOT_FOUND, "not found").into_response());
    };
    if let Credential::Token(presented) = credential
        && !presented.is_some_and(|t| token.matches(t))
    {
        return unauthorized();
    }
    if matches!(credential, Credential::Token(_)) && !leading(listener) {
        return not_leader();
    }
    let declared = request
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let body = match read_body(body, MAX_BODY, BODY_READ_TIMEOUT).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return too_large(),
        Err(error) => {
            tracing::info!(%error, "push event body not received");
            let status = match error {
                BodyError::TimedOut => StatusCode::REQUEST_TIMEOUT,
                _ => StatusCode::BAD_REQUEST,
            };
            return (Some(EventResult::malformed), status.into_response());
        }
    };
    if let Credential::Signature(signature) = credential {
        if !signature.is_some_and(|s| token.signs(&body, s)) {
            return unauthorized();
        }
        if !leading(listener) {
            return not_leader();
        }
    }
    accept(listener, request, &body)
}

fn leading(listener: &Listener) -> bool {
    *listener.leader.borrow()
}

/// Parses, deduplicates and hands the pushes on.
fn accept(
    listener: &Listener,
    request: &Request<'_>,
    body: &[u8],
) -> (Option<EventResult>, Response) {
    let received = Received {
        github_event: header_str(request.headers, "x-github-event"),
        github_delivery: header_str(request.headers, "x-github-delivery"),
        at_secs: chrono::Utc::now().timestamp(),
    };
    let pushes = match payload::parse(request.provider, body, &received) {
        Ok(pushes) => pushes,
        Err(error) => {
            tracing::info!(error = %crate::untrusted::echo(&format!("{:#}", anyhow::Error::new(error))), "push event not understood");
            return (
                Some(EventResult::malformed),
                (StatusCode::BAD_REQUEST, "not a payload of this provider").into_response(),
            );
        }
    };
    if pushes.is_empty() {
        tracing::debug!("push event ignored: no push of a manifest under a tag");
        return ok(EventResult::ignored);
    }
    let now = Instant::now();
    let fresh: Vec<_> = {
        let mut seen = listener.seen.lock().unwrap_or_else(|e| e.into_inner());
        pushes
            .into_iter()
            .filter(|p| seen.first_time(&p.id, now))
            .map(|p| listener.aliases.apply(p))
            .collect()
    };
    if fresh.is_empty() {
        tracing::debug!("push event ignored: a replay");
        return ok(EventResult::duplicate);
    }
    for pushed in by_repository(&fresh) {
        if let Some(registry) = &listener.registry {
            registry.forget_repository(&Repository::new(&pushed.registry, &pushed.repository));
        }
        tracing::info!(
            registry = %pushed.registry,
            repository = %pushed.repository,
            signature = pushed.signature,
            "registry push event accepted"
        );
        if listener.sink.send(pushed).is_err() {
            // Only while shutting down: the consumer has stopped, and scheduled checks are the backstop.
            tracing::debug!("push event consumer has stopped");
        }
    }
    ok(EventResult::accepted)
}

fn ok(result: EventResult) -> (Option<EventResult>, Response) {
    let text = match result {
        EventResult::accepted => "accepted",
        EventResult::duplicate => "duplicate",
        _ => "ignored",
    };
    (Some(result), (StatusCode::OK, text).into_response())
}

fn unauthorized() -> (Option<EventResult>, Response) {
    tracing::info!("push event refused: missing or wrong credentials");
    (
        Some(EventResult::unauthorized),
        (StatusCode::UNAUTHORIZED, "unauthorized").into_response(),
    )
}

fn not_leader() -> (Option<EventResult>, Response) {
    tracing::debug!("push event refused: this replica does not lead");
    (
        Some(EventResult::not_leader),
        (StatusCode::SERVICE_UNAVAILABLE, "not the leader").into_response(),
    )
}

fn too_large() -> (Option<EventResult>, Response) {
    tracing::info!(limit = MAX_BODY, "push event refused: body too large");
    (
        Some(EventResult::too_large),
        (StatusCode::PAYLOAD_TOO_LARGE, "body over 1 MiB").into_response(),
    )
}

fn authorization(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get(header::AUTHORIZATION).map(|v| v.as_bytes())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

mod body;

#[cfg(test)]
mod tests;
