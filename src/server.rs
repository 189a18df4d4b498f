//! The admin server (docs/settings.md#admin-server): `/healthz` (alive), `/readyz` (watches synced, API server reachable, not
//! shutting down), `/metrics`.
//!
//! Input: the controller's [`Readiness`], the API server's recent health and the metrics registry every component
//! registered into. Output: HTTP answers for probes and Prometheus. Followers are ready too: readiness says
//! "this replica can take over", not "this replica leads" (that is the `watch_cluster_leader` gauge). A
//! replica cut off from the API server can neither act nor take over, so it is not ready.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::controller::{NotReady, Readiness};

/// What the admin endpoints read.
pub struct Admin {
    /// Whether the watches synced and shutdown began.
    pub readiness: Readiness,
    /// Every component's metrics.
    pub registry: Registry,
    /// Whether the API server answered lately.
    pub api: ApiHealth,
}

/// How often [`probe_api`] asks the API server for its version.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How long one probe may take: a partitioned API server never answers at all.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How old the last good answer may be: two probes, so a stuck probe cannot keep the replica ready.
pub const API_STALE_AFTER: Duration = Duration::from_secs(10);

/// When the API server last answered a probe; cleared by a failed one.
#[derive(Debug, Clone, Default)]
pub struct ApiHealth(Arc<Mutex<Option<Instant>>>);

impl ApiHealth {
    /// Records a probe's result at `at`.
    pub fn record(&self, answered: bool, at: Instant) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = answered.then_some(at);
    }

    /// Whether the last probe was answered, within [`API_STALE_AFTER`] of `now`.
    pub fn is_reachable(&self, now: Instant) -> bool {
        let last = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        last.is_some_and(|at| now.saturating_duration_since(at) < API_STALE_AFTER)
    }
}

/// Asks the API server for its version every [`PROBE_INTERVAL`], each under [`PROBE_TIMEOUT`], and
/// records whether it answered. `/version` needs no permission beyond authentication.
pub async fn probe_api(client: kube::Client, health: ApiHealth) {
    loop {
        let answered = tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await;
        let answered = matches!(answered, Ok(Ok(_)));
        if !answered {
            tracing::debug!("the API server did not answer the readiness probe");
        }
        health.record(answered, Instant::now());
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// A failure to start the admin server.
#[derive(Debug, thiserror::Error)]
#[error("failed to listen on ADMIN_ADDR={addr}")]
pub struct ServerError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// Binds the admin address now (so a busy port fails startup), then serves until `stop`.
pub async fn serve(
    addr: SocketAddr,
    admin: Arc<Admin>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError { addr, source })?;
    let app = router(admin);
    Ok(tokio::spawn(async move {
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(error) = server.await {
            tracing::warn!(%error, "admin server stopped");
        }
    }))
}

/// The routes, for tests.
pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(admin)
}

async fn readyz(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    match admin.readiness.check() {
        Err(NotReady::ShuttingDown) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        Err(NotReady::Syncing) => (StatusCode::SERVICE_UNAVAILABLE, "watches not synced yet"),
        Ok(()) => api_readiness(&admin.api),
    }
}

fn api_readiness(api: &ApiHealth) -> (StatusCode, &'static str) {
    if !api.is_reachable(Instant::now()) {
        (StatusCode::SERVICE_UNAVAILABLE, "API server unreachable")
    } else {
        (StatusCode::OK, "ready")
    }
}

async fn metrics(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &admin.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("failed to encode metrics: {error}"),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    use super::*;

    struct Bed {
        admin: Arc<Admin>,
        synced: Arc<std::sync::atomic::AtomicUsize>,
        shutdown: CancellationToken,
        updates: prometheus_client::metrics::counter::Counter,
    }

    fn admin() -> Bed {
        crate::install_crypto_provider();
        let mut registry = Registry::default();
        let updates = prometheus_client::metrics::counter::Counter::default();
        registry.register("updates", "updates", updates.clone());
        let (readiness, synced, shutdown) = Readiness::for_tests(3);
        let api = ApiHealth::default();
        api.record(true, Instant::now());
        let admin = Arc::new(Admin {
            readiness,
            registry,
            api,
        });
        Bed {
            admin,
            synced,
            shutdown,
            updates,
        }
    }

    fn client_of_nothing() -> kube::Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    async fn status(admin: &Arc<Admin>, path: &str) -> StatusCode {
        let request = Request::get(path).body(Body::empty()).unwrap();
        router(admin.clone())
            .oneshot(request)
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn readiness_follows_the_watches_and_drops_as_soon_as_shutdown_starts() {
        let bed = admin();
        let admin = &bed.admin;
        assert_eq!(status(admin, "/healthz").await, StatusCode::OK);
        assert_eq!(
            status(admin, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        bed.synced.store(3, std::sync::atomic::Ordering::Release);
        assert_eq!(status(admin, "/readyz").await, StatusCode::OK);
        bed.shutdown.cancel();
        assert_eq!(
            status(admin, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(admin, "/healthz").await,
            StatusCode::OK,
            "alive while draining"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_drops_while_the_api_server_is_unreachable() {
        let bed = admin();
        let admin = &bed.admin;
        bed.synced.store(3, std::sync::atomic::Ordering::Release);
        assert_eq!(status(admin, "/readyz").await, StatusCode::OK);
        // The probe against an API server that refuses connections (the context's client).
        let probe = tokio::spawn(probe_api(client_of_nothing(), admin.api.clone()));
        tokio::time::sleep(PROBE_TIMEOUT).await;
        assert_eq!(
            status(admin, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        probe.abort();
        // A good answer that is no longer recent does not keep the replica ready either.
        admin.api.record(true, Instant::now());
        assert_eq!(status(admin, "/readyz").await, StatusCode::OK);
        tokio::time::sleep(API_STALE_AFTER).await;
        assert_eq!(
            status(admin, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics() {
        let bed = admin();
        let admin = &bed.admin;
        bed.updates.inc();
        let request = Request::get("/metrics").body(Body::empty()).unwrap();
        let response = router(admin.clone()).oneshot(request).await.unwrap();
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains("watch_cluster_updates_total 1") || text.contains("updates_total 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
