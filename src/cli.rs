//! The command line (docs/settings.md#commands): `run` (default), `check`, `plan`, and `demo` (with the `demo` feature).

use clap::{Args, FromArgMatches, Parser, Subcommand};

use crate::{
    check::CheckArgs,
    config::{Config, LogArgs, RunArgs},
    notify::WebhookArgs,
};

/// Keeps Kubernetes workloads on the newest container images, safely.
#[derive(Debug, Parser)]
#[command(name = "watch-cluster", version, about)]
pub struct Cli {
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (the default).
    Run(Box<RunCommand>),
    /// Ask the registry what a strategy would choose for IMAGE.
    Check(Box<CheckArgs>),
    /// List watched workloads with their schedule, next check and pending decision (changes nothing).
    Plan(Box<RunCommand>),
    /// A self-contained walkthrough on an embedded simulated cluster and a local registry.
    #[cfg(feature = "demo")]
    Demo,
}

/// Settings of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunCommand {
    /// Controller settings.
    #[command(flatten)]
    pub run: RunArgs,
    /// Webhook settings.
    #[command(flatten)]
    pub webhook: WebhookArgs,
}

impl RunCommand {
    /// The settings from the environment alone (`watch-cluster` without a command).
    pub fn from_env() -> anyhow::Result<Self> {
        let command = Self::augment_args(clap::Command::new("run").no_binary_name(true));
        let matches = command.try_get_matches_from(std::iter::empty::<String>())?;
        Ok(Self::from_arg_matches(&matches)?)
    }
}

/// Runs the chosen command.
pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    #[cfg_attr(not(feature = "demo"), expect(unused_mut))]
    let mut log = cli.log;
    #[cfg(feature = "demo")]
    if matches!(cli.command, Some(Command::Demo)) && log.log_level.is_none() {
        // The demo tells its story on stdout; the controller's INFO lines would drown it.
        log.log_level = Some("warn".into());
    }
    crate::telemetry::init(&log)?;
    let command = match cli.command {
        Some(command) => command,
        None => Command::Run(Box::new(RunCommand::from_env()?)),
    };
    match command {
        Command::Run(args) => {
            let config = Config::from_args(&args.run)?;
            let webhook = args.webhook.into_config()?;
            crate::run::serve(config, webhook).await
        }
        Command::Check(args) => crate::check::report(*args).await,
        Command::Plan(args) => crate::plan::print(Config::from_args(&args.run)?).await,
        #[cfg(feature = "demo")]
        Command::Demo => crate::demo::play().await,
    }
}
