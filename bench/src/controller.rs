//! The controller under test as its own process: found next to this binary (same cargo profile) or given
//! with `--controller`, started with `watch-cluster run`, killed when dropped.
//!
//! Input: the environment for the run. Output: a [`Controller`] handle that reports readiness, `/proc`
//! figures, its JSON log, and fails loudly when the process died (a broken harness, not a missed target).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

use crate::procfs::{self, Memory};

/// A running controller process.
pub struct Controller {
    child: Child,
    pid: u32,
    log: PathBuf,
    admin: String,
    http: reqwest::Client,
    ticks: u64,
}

/// The `watch-cluster` binary in the directory of this executable (`target/<profile>/`).
pub fn default_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("failed to locate the bench executable")?;
    let dir = me
        .parent()
        .context("the bench executable has no directory")?;
    Ok(dir.join("watch-cluster"))
}

/// A free port on 127.0.0.1 for `ADMIN_ADDR`.
pub fn free_admin_addr() -> anyhow::Result<String> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("failed to find a free port")?;
    Ok(listener.local_addr()?.to_string())
}

impl Controller {
    /// Starts `binary run` with exactly `env` (plus `PATH`), logging to `log`.
    pub fn spawn(
        binary: &Path,
        env: &[(String, String)],
        admin: &str,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        if !binary.is_file() {
            bail!(
                "controller binary {} not found: build it first (`cargo build --release -p watch-cluster` \
                 for a release bench) or pass --controller PATH",
                binary.display()
            );
        }
        let file = std::fs::File::create(&log)
            .with_context(|| format!("failed to create {}", log.display()))?;
        let child = Command::new(binary)
            .arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("ADMIN_ADDR", admin)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("failed to start {}", binary.display()))?;
        let pid = child.id().context("the controller exited at once")?;
        Ok(Self {
            child,
            pid,
            log,
            admin: format!("http://{admin}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .no_proxy()
                .build()
                .context("failed to build the HTTP client")?,
            ticks: procfs::clock_ticks(),
        })
    }

    /// Fails when the process has exited.
    pub fn ensure_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the controller exited ({status}); last log lines:\n{}",
                self.log_tail(30)
            );
        }
        Ok(())
    }

    /// Waits for `/readyz` to answer 200; returns the time since `started`.
    pub async fn wait_ready(
        &mut self,
        started: Instant,
        limit: Duration,
    ) -> anyhow::Result<Duration> {
        loop {
            self.ensure_alive()?;
            let url = format!("{}/readyz", self.admin);
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                bail!(
                    "the controller was not ready within {limit:?}:\n{}",
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// User + system CPU time so far.
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        procfs::cpu_of(self.pid, self.ticks)
    }

    /// Peak and current RSS.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        procfs::memory_of(self.pid)
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` log lines.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGKILL and reap.
    pub async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
