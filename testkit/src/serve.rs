//! Runs an axum router on `127.0.0.1:0` until its [`Server`] handle is dropped.
//!
//! Shared by the webhook receiver, the token server and the fake registry. Dropping the handle closes a watch
//! channel: the listener stops accepting, and handlers that wait on [`Server::stopped`] (scripted hangs) return,
//! so no test leaves a task or a held connection behind. [`Server::spawn_tls`] serves the same over HTTPS with a
//! certificate of the test CA, for fakes of endpoints that clients only reach over TLS (Entra ID, ACR).

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

    /// Like [`Server::spawn`], over HTTPS (HTTP/1.1) with `tls`'s server certificate for 127.0.0.1/localhost.
    pub(crate) async fn spawn_tls(
        app: Router,
        stop: (watch::Sender<()>, Stopped),
        tls: &crate::registry::certs::TlsMaterial,
    ) -> anyhow::Result<Self> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let certs = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("failed to read the server certificate PEM")?;
        let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())
            .context("failed to read the server key PEM")?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("failed to choose TLS versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("failed to load the server certificate")?;
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("failed to bind 127.0.0.1:0")?;
        let addr = listener
            .local_addr()
            .context("failed to read the bound address")?;
        let (tx, stopped) = stop;
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            tracing::warn!(error = %e, "test TLS server failed to accept");
                            continue;
                        }
                    },
                    () = stopped.clone().wait() => return,
                };
                let (acceptor, app, stopped) = (acceptor.clone(), app.clone(), stopped.clone());
                tokio::spawn(async move {
                    // A client that rejects our certificate ends its handshake: nothing to serve.
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        () = stopped.wait() => {}
                    }
                });
            }
        });
        Ok(Self { addr, _stop: tx })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}
