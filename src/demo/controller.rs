//! The controller of the demo, assembled in this process the way `watch-cluster run` assembles it.
//!
//! Input: a kube client for the simulated cluster, the registry host and the webhook receiver's URL.
//! Output: the real controller (watches, schedule, registry client, updates, rollout observation, Events
//! and webhooks), assembled by the same [`Runtime`] as `run`, until [`RunningController::stop`]. What
//! differs from `run`, and why: no leader election (one replica), no admin server, no signal handling
//! (the demo handles signals),
//! plain HTTP to the local registry, a 1 s registry cache so a re-pushed tag is seen at the next tick,
//! every webhook event type enabled with short retries.

use std::time::Duration;

use anyhow::Context as _;

use crate::{
    config::{Config, RunArgs},
    notify::{EventType, WebhookConfig, config::WebhookUrl},
    run::{Parts, Runtime},
};

/// The Events' reporting instance.
const INSTANCE: &str = "watch-cluster-demo";

/// The controller running in this process; stopped at once when dropped without
/// [`RunningController::stop`] (the demo was interrupted), so it does not keep calling a cluster that is
/// gone.
pub struct RunningController {
    runtime: Option<Runtime>,
}

impl RunningController {
    /// Starts the controller against `client`, assembled as `watch-cluster run` assembles it.
    pub async fn start(
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
        let runtime = Runtime::start(Parts {
            client,
            config,
            webhook: webhooks(webhook_url)?,
            identity: INSTANCE.into(),
            lease: None,
            admin: false,
            record_key: ephemeral_key()?,
        })
        .await
        .context("failed to assemble the controller")?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Stops checks, lets in-flight work finish and flushes webhooks, each step under its deadline.
    pub async fn stop(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.stop().await;
        }
    }
}

impl Drop for RunningController {
    fn drop(&mut self) {
        if let Some(runtime) = &self.runtime {
            runtime.abort();
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
