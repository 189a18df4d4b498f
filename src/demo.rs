//! `watch-cluster demo` (docs/settings.md#commands): a self-contained walkthrough on an embedded simulated cluster.
//!
//! Input: nothing but the machine (Debian's `docker-registry` is used when installed; the environment
//! variable `WATCH_CLUSTER_DEMO_REGISTRY=docker-registry|in-process` overrides the choice). Output: a
//! narration on stdout — the registry used, the images published, the annotated Deployments, every
//! webhook as it arrives (a summary line and its exact JSON), the Kubernetes Events recorded, a
//! summary — and exit status 0 once every expected outcome happened, or an error naming the one that
//! did not. The controller's own logs go to stderr (`LOG_LEVEL=warn` silences them).
//!
//! Steps: start the registry and publish images (`registry`, `scenario`); start the simulated
//! cluster with its workload controllers (`cluster`) and a webhook receiver; create four annotated
//! Deployments and wait until they run; start the real controller in this process (`controller`);
//! wait for each outcome (`narrate`); stop everything and report (`report`). Nothing sleeps for a
//! fixed time: every step waits for its condition under a timeout. The registry's child process is
//! killed on every exit path, including SIGINT and SIGTERM.

mod cluster;
mod controller;
mod narrate;
mod registry;
mod report;
mod scenario;

use std::time::Duration;

use anyhow::Context as _;
use watch_cluster_testkit::WebhookReceiver;

use self::{
    cluster::DemoCluster,
    controller::RunningController,
    narrate::Narrator,
    registry::{DemoRegistry, RegistryChoice},
    scenario::Scenario,
};

/// Why the walkthrough stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// An expected outcome did not happen in time.
    #[error("failed to see {what} within {}s", waited.as_secs())]
    Timeout {
        /// What was expected.
        what: String,
        /// How long the demo waited.
        waited: Duration,
    },
    /// The simulated cluster stopped publishing changes.
    #[error("failed to keep watching the simulated cluster: its change stream closed")]
    ClusterStopped,
    /// SIGINT or SIGTERM.
    #[error("failed to finish the demo: interrupted by a signal")]
    Interrupted,
}

/// Runs the walkthrough.
pub async fn play() -> anyhow::Result<()> {
    crate::install_crypto_provider();
    let choice = RegistryChoice::from_env()?;
    // Dropping the walkthrough on a signal drops the registry, which kills its child process.
    tokio::select! {
        result = walkthrough(choice) => result,
        () = interrupted() => Err(DemoError::Interrupted.into()),
    }
}

async fn walkthrough(choice: RegistryChoice) -> anyhow::Result<()> {
    println!(
        "watch-cluster demo: a local registry, an embedded simulated cluster, and the controller \
         in this process\n"
    );
    let registry = DemoRegistry::start(choice).await?;
    println!("Registry: {}", registry.describe());
    let scenario = Scenario::publish(&registry).await?;
    let cluster = DemoCluster::start().await?;
    println!(
        "Cluster:  simulated Kubernetes API at {} with Deployment/ReplicaSet controllers and a kubelet",
        cluster.url()
    );
    let webhook = WebhookReceiver::start()
        .await
        .context("failed to start the webhook receiver")?;
    println!(
        "Webhooks: receiver at {} (all four event types enabled)",
        webhook.url()
    );
    if tracing::enabled!(tracing::Level::INFO) {
        println!(
            "(the controller logs to stderr; LOG_LEVEL=warn or 2>/dev/null keeps only this story)"
        );
    }
    let mut narrator = Narrator::new(&cluster, &webhook, &registry.host());
    scenario.deploy(&mut narrator).await?;
    let running =
        RunningController::start(cluster.client()?, &registry.host(), &webhook.url()).await?;
    let played = scenario.play(&registry, &mut narrator).await;
    running.stop().await;
    narrator.drain();
    report::events(&narrator);
    played?;
    report::summary(&narrator, &scenario);
    let elapsed = narrator.elapsed();
    drop(narrator);
    drop(webhook);
    drop(cluster);
    // Kills docker-registry (or stops the in-process registry).
    drop(registry);
    println!(
        "\nDemo finished in {:.1}s; the registry, the cluster and the receiver are stopped.",
        elapsed.as_secs_f64()
    );
    Ok(())
}

/// Resolves on SIGINT or SIGTERM; never when the handlers cannot be installed.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
