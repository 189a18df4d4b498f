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
        anyhow::anyhow!(
            "no Kubernetes connection: not running in a cluster and no kubeconfig found ({e}); \
             set KUBECONFIG=/path/to/kubeconfig"
        )
    })?;
    kube::Client::try_from(config).context("failed to build the Kubernetes client")
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
    let ctx = Arc::new(Context::build(
        client.clone(),
        config.clone(),
        webhook,
        identity.clone(),
        leader_rx,
        &mut metrics,
    )?);
    let stop = ctx.shutdown.clone();
    shutdown::on_signals(stop.clone());
    let election = config.leader_election.then(|| {
        let lease = LeaseConfig::new(
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "watch-cluster".into()),
            config.lease_name.clone(),
            identity,
        );
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
    controller::run(ctx).await;
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

/// This replica's identity: the pod name (downward API) or the host name.
fn identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| format!("watch-cluster-{}", std::process::id()))
}
