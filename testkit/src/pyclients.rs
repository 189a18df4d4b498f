//! The providers' own Python clients (testbed/pyclients), to check our cloud fakes against code we did not write.
//!
//! Input: a script path, its arguments and environment. Output: the JSON object the script printed last on
//! stdout, or an error holding its stderr. The virtualenv is built by `testbed/pyclients/build` (pinned
//! versions, cached outside git); a missing one is an error naming that command.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context as _, bail};

/// The interpreter of the providers' clients: `testbed/pyclients/venv/bin/python`.
pub fn python() -> anyhow::Result<PathBuf> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testbed/pyclients/venv/bin/python");
    if !path.exists() {
        bail!(
            "the providers' Python clients are not installed ({} is missing): run testbed/pyclients/build",
            path.display()
        );
    }
    Ok(path)
}

/// Runs `script` with `args` and `envs` (on top of a cleared environment keeping only `PATH` and `HOME`, so the
/// developer's cloud settings cannot leak in), and returns the JSON object it printed last.
pub async fn run_json(
    script: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> anyhow::Result<serde_json::Value> {
    let mut command = tokio::process::Command::new(python()?);
    command
        .arg(script)
        .args(args)
        .env_clear()
        .envs(
            ["PATH", "HOME"]
                .iter()
                .filter_map(|k| Some((*k, std::env::var(k).ok()?))),
        )
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
        .await
        .with_context(|| format!("{} did not finish within 60 s", script.display()))?
        .with_context(|| format!("failed to run {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("{} failed ({}): {stderr}", script.display(), output.status);
    }
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    serde_json::from_str(last).with_context(|| {
        format!(
            "{} printed no JSON (stdout: {stdout}; stderr: {stderr})",
            script.display()
        )
    })
}
