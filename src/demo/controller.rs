//! The controller of the demo, assembled in this process the way `watch-cluster run` assembles it.
//!
//! Input: a kube client for the simulated cluster, the registry host and the webhook receiver's URL.
//! Output: the real controller (watches, schedule, registry client, updates, rollout observation, Events
//! and webhooks) running in a task until [`RunningController::stop`]. What differs from `run`, and why:
//! no leader election (one replica), no admin server, no signal handling (the demo handles signals),
//! plain HTTP to the local registry, a 1 s registry cache so a re-pushed tag is seen at the next tick,
//! every webhook event type enabled with short retries.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{Config, RunArgs},
    controller::{self, Context},
    notify::{EventType, Notifier, WebhookConfig, config::WebhookUrl},
};

/// How long stopping may take: in-flight checks finish, queued webhooks are flushed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The Events' reporting instance.
const INSTANCE: &str = "watch-cluster-demo";

/// The controller running in a task; aborted when dropped without [`RunningController::stop`] (the
/// demo was interrupted), so it does not keep calling a cluster that is gone.
pub struct RunningController {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
    notifier: Notifier,
    // Kept so the leader flag stays `true` for the whole run.
    _leader: tokio::sync::watch::Sender<bool>,
}

impl RunningController {
    /// Starts the controller against `client`.
    pub fn start(
        client: kube::Client,
        registry_host: &str,
        webhook_url: &str,
    ) -> anyhow::Result<Self> {
        let config = Config::from_args(&RunArgs {
            insecure_registries: Some(registry_host.to_owned()),
            registry_cache_ttl: Some("1s".into()),
            leader_election: Some("false".into()),
            admin_addr: Some("127.0.0.1:0".into()),
            ..RunArgs::default()
        })
        .context("failed to configure the controller")?;
        let mut metrics = Registry::with_prefix("watch_cluster");
        let (leader, leader_rx) = tokio::sync::watch::channel(true);
        let ctx = Arc::new(
            Context::build(
                client,
                config,
                webhooks(webhook_url)?,
                INSTANCE.into(),
                leader_rx,
                ephemeral_key()?,
                &mut metrics,
            )
            .context("failed to assemble the controller")?,
        );
        let stop = ctx.shutdown.clone();
        let notifier = ctx.notifier.clone();
        let task = tokio::spawn(controller::watch_all(ctx));
        Ok(Self {
            stop,
            task: Some(task),
            notifier,
            _leader: leader,
        })
    }

    /// Stops checks, lets in-flight work finish and flushes webhooks, each within [`STOP_TIMEOUT`].
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(STOP_TIMEOUT, task).await.is_err() {
                abort.abort();
            }
        }
        self.notifier.shutdown(STOP_TIMEOUT).await;
    }
}

impl Drop for RunningController {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Every event type to `url`, retried quickly: the receiver is local.
fn webhooks(url: &str) -> anyhow::Result<WebhookConfig> {
    let url: WebhookUrl = url
        .parse()
        .with_context(|| format!("failed to parse the webhook URL {url}"))?;
    Ok(EventType::ALL
        .into_iter()
        .fold(WebhookConfig::new(url), WebhookConfig::enable)
        .with_timeout(Duration::from_secs(2))
        .with_retry_count(3)
        .with_backoff(Duration::from_millis(200), Duration::from_secs(2)))
}

/// The demo runs one process once: a key that lives as long as it does is all it needs.
fn ephemeral_key() -> anyhow::Result<crate::record::RecordKey> {
    let bytes = crate::record::RecordKey::generate().context("failed to generate a record key")?;
    Ok(crate::record::RecordKey::from_bytes(&bytes)?)
}
