//! `watch-cluster check IMAGE [--strategy S]` (SPEC §9): ask the registry what a strategy would choose.

use clap::Args;

/// Arguments of `watch-cluster check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The image reference to check, e.g. `nginx:1.25.0` or `registry:5000/team/app:2.0.0`.
    pub image: String,
    /// Update strategy: version (alias semver), version-lock-major, version-lock-minor, latest.
    #[arg(long, default_value = "version")]
    pub strategy: String,
}

/// Runs the check and prints the decision.
pub async fn run(_args: CheckArgs) -> anyhow::Result<()> {
    anyhow::bail!("`check` is not available yet")
}
