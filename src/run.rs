//! `watch-cluster run`: assemble the controller from its settings and run it until shutdown (SPEC §8).
//!
//! Input: validated settings. Output: a running controller (watches, leader election, admin server,
//! webhook writer) that exits cleanly on SIGTERM: no new checks, in-flight work finished, queued
//! webhooks flushed for a bounded time, the Lease released.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    controller::{self, Context},
    leader::{self, LeaseConfig},
    notify::WebhookConfig,
    server::{self, Admin},
    shutdown,
};

/// How long queued webhooks may take to flush on shutdown.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the cluster the way `kubectl` would: in-cluster service account, else `KUBECONFIG` or
/// `~/.kube/config`. Never falls back to a simulated cluster.
pub async fn kube_client() -> anyhow::Result<kube::Client> {
    let config = kube::Config::infer().await.map_err(|e| {
        let kubeconfig = std::error::Error::source(&e).and_then(|s| s.downcast_ref());
        let file = std::env::var("KUBECONFIG")
            .ok()
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "~/.kube/config".into());
        no_connection(kubeconfig, &file)
    })?;
    kube::Client::try_from(config).context("failed to build the Kubernetes client")
}

/// One line for a failed connection: kube's own error spans lines (its YAML errors quote the file with a
/// caret), and a user needs the file and the fix, not the in-cluster probe that was never expected to work.
fn no_connection(kubeconfig: Option<&kube::config::KubeconfigError>, file: &str) -> anyhow::Error {
    use kube::config::KubeconfigError::{FindPath, ReadConfig};
    match kubeconfig {
        None | Some(FindPath) => anyhow::anyhow!(
            "no Kubernetes connection: not running in a cluster and no kubeconfig found; \
             set KUBECONFIG=/path/to/kubeconfig"
        ),
        Some(ReadConfig(e, path)) if e.kind() == std::io::ErrorKind::NotFound => anyhow::anyhow!(
            "no Kubernetes connection: not running in a cluster and the kubeconfig {} does not exist; \
             set KUBECONFIG=/path/to/kubeconfig",
            path.display()
        ),
        Some(error) => {
            let shown = error.to_string();
            let first = shown.lines().next().unwrap_or_default();
            anyhow::anyhow!(
                "cannot use the kubeconfig {file}: {}; fix the file or set KUBECONFIG=/path/to/a/valid/kubeconfig",
                crate::untrusted::echo(first)
            )
        }
    }
}

/// Runs the controller until a signal stops it.
pub async fn run(config: Config, webhook: WebhookConfig) -> anyhow::Result<()> {
    let client = kube_client().await?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        watch_namespaces = ?config.watch_namespaces,
        insecure_registries = ?config.insecure_registries,
        registry_ca_file = ?config.registry_ca_file,
        registry_cache_ttl = ?config.registry_cache_ttl,
        rollout_timeout = ?config.rollout_timeout,
        time_zone = %config.time_zone,
        dry_run = config.dry_run,
        admin_addr = %config.admin_addr,
        leader_election = config.leader_election,
        webhook = %webhook.summary(),
        "starting watch-cluster"
    );
    let mut metrics = Registry::with_prefix("watch_cluster");
    let identity = identity();
    let (leader_tx, leader_rx) = tokio::sync::watch::channel(!config.leader_election);
    let namespace = own_namespace();
    let record_key = crate::record::secret::load_or_create(client.clone(), &namespace).await?;
    let ctx = Arc::new(Context::build(
        client.clone(),
        config.clone(),
        webhook,
        identity.clone(),
        leader_rx,
        record_key,
        &mut metrics,
    )?);
    let stop = ctx.shutdown.clone();
    shutdown::on_signals(stop.clone());
    let election = config.leader_election.then(|| {
        let lease = LeaseConfig {
            namespace,
            name: config.lease_name.clone(),
            identity,
            duration: leader::LEASE_DURATION,
            renew_interval: leader::RENEW_INTERVAL,
        };
        tokio::spawn(leader::run(client.clone(), lease, leader_tx, stop.clone()))
    });
    let notifier = ctx.notifier.clone();
    let controller_metrics = ctx.metrics.clone();
    let mut leadership = ctx.leader.clone();
    tokio::spawn(async move {
        loop {
            controller_metrics.set_leader(*leadership.borrow_and_update());
            if leadership.changed().await.is_err() {
                break;
            }
        }
    });
    let admin_stop = CancellationToken::new();
    let admin = Arc::new(Admin {
        ctx: ctx.clone(),
        registry: metrics,
    });
    let admin_server = server::serve(config.admin_addr, admin, admin_stop.clone()).await?;
    controller::watch_all(ctx).await;
    tracing::info!("watches stopped; flushing webhooks");
    notifier.shutdown(FLUSH_TIMEOUT).await;
    if let Some(election) = election {
        let _ = election.await;
    }
    admin_stop.cancel();
    let _ = admin_server.await;
    tracing::info!("stopped");
    Ok(())
}

/// The controller's own namespace (downward API), where its Lease and record key live.
fn own_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "watch-cluster".into())
}

/// This replica's identity: the pod name (downward API) or the host name.
fn identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| format!("watch-cluster-{}", std::process::id()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_garbage_kubeconfig_is_one_line_naming_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, "garbage: [unclosed\n").unwrap();
        let error = kube::config::Kubeconfig::read_from(&path).unwrap_err();
        let shown = no_connection(Some(&error), &path.display().to_string()).to_string();
        assert_eq!(shown.lines().count(), 1, "{shown}");
        assert!(shown.contains(&path.display().to_string()), "{shown}");
        assert!(shown.contains("line 1 column 10"), "{shown}");
        assert!(shown.contains("KUBECONFIG="), "{shown}");
    }
}
