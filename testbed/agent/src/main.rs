//! The test bed's node agent: plays the kubelets of a control plane that has none (docs/testbed.md).
//!
//! Nothing on the project's machines can run containers, yet Deployments, StatefulSets and DaemonSets only
//! roll out when their pods become Ready. This agent registers fake Nodes that stay Ready (their Leases
//! renewed), and moves every pod scheduled to them to the state a kubelet with containerd would report:
//! Running and Ready, with `imageID` set to the digest the registry serves for the image at the moment the
//! pod starts (the index digest for a multi-arch tag), which is what the controller's `latest` strategy
//! reads. kwok's stages cannot ask a registry for a digest, hence an agent of our own.
//!
//! Images can be marked broken across processes in the ConfigMap `kube-system/testbed-broken-images`: a key
//! `sha256-<hex>` (the digest the tag resolves to, `:` replaced by `-`) with the value `pull`, `crash` or
//! `ready` (see [`pods::Fault`]). An image whose manifest the registry does not serve fails to pull, as it
//! would on a real node.

mod nodes;
mod pods;
mod registry;

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

/// Plays the kubelets of the test bed.
#[derive(Debug, Parser)]
#[command(name = "watch-cluster-node-agent", version)]
struct Args {
    /// How many fake Nodes to register.
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// Nodes are named `<prefix>-0`, `<prefix>-1`, …
    #[arg(long, default_value = "testbed-node")]
    node_prefix: String,
    /// Seconds between Lease renewals (the node-lifecycle controller's grace must be longer).
    #[arg(long, default_value_t = 10)]
    heartbeat_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_ansi(false)
        .init();
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("no kubeconfig: set KUBECONFIG to the test bed's admin kubeconfig")?;
    let names: Vec<String> = (0..args.nodes)
        .map(|i| format!("{}-{i}", args.node_prefix))
        .collect();
    for name in &names {
        nodes::register(&client, name)
            .await
            .with_context(|| format!("register Node {name}"))?;
    }
    tracing::info!(nodes = ?names, "nodes registered");
    let heartbeat = tokio::spawn(nodes::heartbeat(
        client.clone(),
        names.clone(),
        Duration::from_secs(args.heartbeat_seconds),
    ));
    let kubelet = pods::Kubelet::new(client, names)?;
    tokio::select! {
        result = kubelet.run() => result,
        result = heartbeat => result.context("heartbeat task")?,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
