//! The command line (SPEC §9): `run` (default), `check`, `plan`, `demo`.

use clap::{Args, Parser, Subcommand};

/// Keeps Kubernetes workloads on the newest container images, safely.
#[derive(Debug, Parser)]
#[command(name = "watch-cluster", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (the default).
    Run,
    /// Ask the registry what a strategy would choose for IMAGE.
    Check(CheckArgs),
}

/// Arguments of `watch-cluster check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The image reference to check, e.g. `nginx:1.25.0` or `registry:5000/team/app:2.0.0`.
    pub image: String,
    /// Update strategy: version (alias semver), version-lock-major, version-lock-minor, latest.
    #[arg(long, default_value = "version")]
    pub strategy: String,
}

/// Runs the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => anyhow::bail!("`run` is not available yet"),
        Command::Check(_args) => anyhow::bail!("`check` is not available yet"),
    }
}
