//! The command line (SPEC §9): `run` (default), `check`, `plan`, `demo`.

use clap::{Parser, Subcommand};

use crate::check::CheckArgs;

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

/// Runs the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => anyhow::bail!("`run` is not available yet"),
        Command::Check(args) => crate::check::run(args).await,
    }
}
