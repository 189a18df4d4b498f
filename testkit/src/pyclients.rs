//! The providers' Python clients (pinned botocore, azure-identity, google-auth), to check the cloud fakes
//! against code we did not write (docs/cloud-registries.md#how-it-is-tested).
//!
//! Input: the virtualenv `testbed/pyclients/build` makes. Output: the interpreter's path, and a helper that
//! runs one of testkit's scripts (`testkit/py/`) with JSON on stdin and JSON on stdout.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// The Python interpreter of the providers' clients; fails naming the command that installs them.
pub fn python() -> anyhow::Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("testbed/pyclients/venv/bin/python");
    if !python.exists() {
        bail!(
            "{} is missing: run testbed/pyclients/build once (it installs the pinned clients of \
             testbed/pyclients/requirements.txt into a cached virtualenv)",
            python.display()
        );
    }
    Ok(python)
}

/// Runs `testkit/py/<script>` with `input` as JSON on stdin and `env` set; returns its stdout parsed as JSON.
pub fn run_script(
    script: &str,
    input: &serde_json::Value,
    env: &[(&str, String)],
) -> anyhow::Result<serde_json::Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("py")
        .join(script);
    let mut command = Command::new(python()?);
    command
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The clients must reach only what the test gives them, never a real cloud or a user's profile.
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
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("{script} printed no JSON: {}", String::from_utf8_lossy(&output.stdout)))
}
