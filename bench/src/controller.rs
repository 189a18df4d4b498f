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

/// The status code of `GET path` on `addr`, by a one-shot HTTP/1.0 request (no client library: this is
/// probed every few milliseconds during start-up and must not add work of its own).
pub async fn status_of(addr: &str, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = vec![0u8; 64];
        let n = stream.read(&mut head).await.ok()?;
        parse_status(&head[..n])
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// The body of `GET path` on `addr` when it answers 200, by a one-shot HTTP/1.0 request (the admin server
/// closes the connection after the response, so the body is everything after the head).
pub async fn body_of(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        split_response(&response)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

/// The body of a whole HTTP/1.0 response with status 200.
fn split_response(response: &[u8]) -> Option<String> {
    (parse_status(response)? == 200).then_some(())?;
    let text = std::str::from_utf8(response).ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// The status code of an HTTP response's first line.
pub fn parse_status(head: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(head).ok()?.lines().next()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
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
            admin: admin.to_owned(),
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
            if status_of(&self.admin, "/readyz").await == Some(200) {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_status_code_is_read_from_the_status_line() {
        assert_eq!(
            parse_status(b"HTTP/1.1 200 OK\r\ncontent-length: 5"),
            Some(200)
        );
        assert_eq!(parse_status(b"HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(parse_status(b"garbage"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[test]
    fn the_body_follows_the_head_of_a_200() {
        let ok = b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\na 1\nb 2\n";
        assert_eq!(split_response(ok).as_deref(), Some("a 1\nb 2\n"));
        assert_eq!(split_response(b"HTTP/1.0 503 Unavailable\r\n\r\nno"), None);
        assert_eq!(split_response(b"HTTP/1.0 200 OK\r\nno end of head"), None);
    }
}
