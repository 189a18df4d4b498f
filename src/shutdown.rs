//! Shutdown (docs/guarantees.md#shutdown): the first SIGTERM or SIGINT drains, a second one exits at once.
//!
//! Draining means: no new checks, in-flight patches finish, queued webhooks are flushed for a bounded time,
//! then — and only then — the Lease is released so the next leader takes over without waiting for it to
//! expire. The steps, their order and their deadlines are those of `Runtime::stop` in the `run` module.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first signal; exits the process with status 130 on the second.
pub fn on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        if wait_for_signal().await.is_err() {
            tracing::warn!("signal handlers could not be installed; stop the process with SIGKILL");
            return;
        }
        tracing::info!(
            "shutdown requested: finishing in-flight work (send the signal again to exit now)"
        );
        token.cancel();
        if wait_for_signal().await.is_ok() {
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        }
    });
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
