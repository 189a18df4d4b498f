//! Runs an axum router on `127.0.0.1:0` until its [`Server`] handle is dropped.
//!
//! Shared by the webhook receiver, the token server and the fake registry. Dropping the handle closes a watch
//! channel: the listener stops accepting, and handlers that wait on [`Server::stopped`] (scripted hangs) return,
//! so no test leaves a task or a held connection behind.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use tokio::sync::watch;

/// A running server; stops on drop.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    _stop: watch::Sender<()>,
}

/// A cloneable signal that completes when the server's handle has been dropped.
#[derive(Debug, Clone)]
pub(crate) struct Stopped(watch::Receiver<()>);

impl Stopped {
    /// Resolves once the owning [`Server`] is dropped.
    pub(crate) async fn wait(mut self) {
        while self.0.changed().await.is_ok() {}
    }
}

/// A stop signal to hand to handlers before the server exists.
pub(crate) fn stop_signal() -> (watch::Sender<()>, Stopped) {
    let (tx, rx) = watch::channel(());
    (tx, Stopped(rx))
}

impl Server {
    /// Binds `127.0.0.1:0` and serves `app` in a background task until `stop` (and so the handle) is dropped.
    pub(crate) async fn spawn(
        app: Router,
        stop: (watch::Sender<()>, Stopped),
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("failed to bind 127.0.0.1:0")?;
        let addr = listener
            .local_addr()
            .context("failed to read the bound address")?;
        let (tx, stopped) = stop;
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(stopped.wait());
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "test server stopped with an error");
            }
        });
        Ok(Self { addr, _stop: tx })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}
