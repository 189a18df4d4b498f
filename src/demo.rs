//! `watch-cluster demo` (SPEC §9): a self-contained walkthrough (being written).

/// Runs the walkthrough.
pub async fn run() -> anyhow::Result<()> {
    anyhow::bail!("the demo is being written")
}
