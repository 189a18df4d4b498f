//! The admin server (SPEC §8): `/healthz` (alive), `/readyz` (watches synced, not shutting down), `/metrics`.
//!
//! Input: the shared [`Context`] and the metrics registry every component registered into. Output: HTTP
//! answers for probes and Prometheus. Followers are ready too: readiness says "this replica can take over",
//! not "this replica leads" (that is the `watch_cluster_leader` gauge).

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio_util::sync::CancellationToken;

use crate::controller::Context;

/// What the admin endpoints read.
pub struct Admin {
    /// The controller's state.
    pub ctx: Arc<Context>,
    /// Every component's metrics.
    pub registry: Registry,
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
    if admin.ctx.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if !admin.ctx.is_synced() {
        (StatusCode::SERVICE_UNAVAILABLE, "watches not synced yet")
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
    use crate::config::{Config, RunArgs};

    fn admin() -> Arc<Admin> {
        crate::install_crypto_provider();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let mut registry = Registry::default();
        let ctx = Context::build(
            client,
            Config::from_args(&RunArgs::default()).unwrap(),
            crate::notify::WebhookConfig::disabled(),
            "test".into(),
            tokio::sync::watch::channel(true).1,
            crate::record::RecordKey::from_bytes(&[7; 32]).unwrap(),
            &mut registry,
        )
        .unwrap();
        Arc::new(Admin {
            ctx: Arc::new(ctx),
            registry,
        })
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
        let admin = admin();
        assert_eq!(status(&admin, "/healthz").await, StatusCode::OK);
        assert_eq!(
            status(&admin, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        admin.ctx.synced.store(
            admin.ctx.watch_count(),
            std::sync::atomic::Ordering::Release,
        );
        assert_eq!(status(&admin, "/readyz").await, StatusCode::OK);
        admin.ctx.shutdown.cancel();
        assert_eq!(
            status(&admin, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(&admin, "/healthz").await,
            StatusCode::OK,
            "alive while draining"
        );
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics() {
        let admin = admin();
        admin.ctx.metrics.update();
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
