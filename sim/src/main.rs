//! `watch-cluster-sim`: the simulated cluster as a standalone process. Writes a kubeconfig
//! pointing at itself, then serves the API with the workload controllers until killed.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use watch_cluster_sim::controllers::ControllerArgs;
use watch_cluster_sim::{SimCluster, SimOptions, UserInfo};

/// Simulated Kubernetes API server with workload controllers, for testing watch-cluster.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to serve on (port 0 picks a free port; see the kubeconfig for the result).
    #[arg(long, env = "SIM_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write a kubeconfig pointing at this server.
    #[arg(long, env = "SIM_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Bearer token written into the kubeconfig; it authenticates as a cluster admin.
    #[arg(long, env = "SIM_TOKEN", default_value = "sim-admin-token")]
    token: String,
    /// Multi-document YAML manifests to load at start (repeatable).
    #[arg(long = "load")]
    load: Vec<PathBuf>,
    #[command(flatten)]
    controllers: ControllerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut options = SimOptions {
        listen: args.listen,
        ..SimOptions::default()
    };
    options
        .api
        .tokens
        .insert(args.token.clone(), UserInfo::admin("sim-admin"));
    options.controllers = Some(
        args.controllers
            .into_config()
            .context("invalid controller flags")?,
    );
    let cluster = SimCluster::start(options).await?;
    for path in &args.load {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        cluster.load_yaml(&text, "default")?;
    }
    if let Some(path) = &args.kubeconfig {
        cluster.write_kubeconfig(path, &args.token)?;
    }
    println!("{}", cluster.url());
    tokio::signal::ctrl_c()
        .await
        .context("failed to wait for a signal")?;
    Ok(())
}
