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

/// Runs `testkit/py/<script>` with `input` as JSON on stdin and `env` set (on a cleared environment, with AWS's
/// profile files and instance metadata off); returns its stdout parsed as JSON.
pub fn run_script(
    script: &str,
    input: &serde_json::Value,
    env: &[(&str, String)],
) -> anyhow::Result<serde_json::Value> {
    use std::io::Write as _;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("py")
        .join(script);
    let mut command = std::process::Command::new(python()?);
    command
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("failed to start {}", path.display()))?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(input.to_string().as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "{script} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "{script} printed no JSON: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}
