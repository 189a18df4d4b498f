//! `watch-cluster-bench verify`: what signature verification costs per candidate, in registry requests and
//! time, for each layout and key kind, with signatures made by the real cosign (`testbed/cosign/`).
//!
//! Input: [`VerifySettings`]. Output: a table (one row per case) of the requests and the median wall time
//! of `watch-cluster check` with `--verify cosign` minus the same command without it, on the same
//! repository: the difference is the verification alone (process start, tag listing and the strategy are
//! in both). The requests go through a [`CountingProxy`] in front of Debian's `docker-registry`; cosign
//! signs in the registry directly.
//!
//! Cases: a signed candidate in each layout with each key kind (verified at the first layout that has a
//! signature, so the `.sig` rows show the cost when both layouts are probed in order), an unsigned candidate
//! (every layout probed, nothing found), and three unsigned candidates (the cap of §13 per check) for the
//! per-candidate figure when verification keeps failing. Each `check` is a fresh process: no verdict is
//! cached, as on a controller's first look at a digest.
//!
//! The bench reports; it fails only when the harness broke (cosign missing, a check exiting non-zero).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use watch_cluster_testkit::counting::{CountingProxy, Forwarded};
use watch_cluster_testkit::{
    Cosign, ImageKind, KeyKind, KeyPair, Layout, RealRegistry, RegistryAuth,
};

use crate::stats::summarize;

/// What `verify` measures.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    /// The controller binary (`watch-cluster check`).
    pub binary: PathBuf,
    /// Timed runs of each command.
    pub runs: usize,
}

/// One row: a case and what verification added.
struct Row {
    case: String,
    candidates: usize,
    requests: usize,
    kinds: String,
    extra: Duration,
    /// Median time the registry took to answer, verifying minus plain.
    registry: Duration,
    verdict: String,
    /// `verified`, or the kind the candidate was rejected as: a "signed" row that says `Unsigned` measured
    /// a verifier that did not find the signature.
    outcome: String,
}

/// Runs every case; returns the table.
pub async fn run(settings: &VerifySettings) -> anyhow::Result<String> {
    if settings.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let cosign = Cosign::find()?;
    let version = cosign.version().await?;
    let registry = RealRegistry::start(RegistryAuth::None).await?;
    let proxy = CountingProxy::start(&registry.base_url()).await?;
    let dir = tempfile::tempdir().context("failed to create the bench's key directory")?;
    let mut rows = Vec::new();
    for kind in KeyKind::ALL {
        let key_dir = dir.path().join(kind.name());
        std::fs::create_dir_all(&key_dir)?;
        let key = cosign.key_pair(kind, &key_dir, "bench").await?;
        for layout in Layout::ALL {
            let repo = format!("bench/{}-{}", kind.name(), layout.name());
            let candidate = setup(&registry, &repo, 1).await?.remove(0);
            cosign
                .sign(&registry, &repo, &candidate, &key, layout)
                .await?;
            rows.push(
                measure(
                    settings,
                    &proxy,
                    &repo,
                    &key,
                    format!("signed, {} key, {} layout", kind.name(), layout.name()),
                    1,
                )
                .await?,
            );
        }
        if kind == KeyKind::P256 {
            for count in [1, 3] {
                let repo = format!("bench/unsigned-{count}");
                setup(&registry, &repo, count).await?;
                rows.push(
                    measure(
                        settings,
                        &proxy,
                        &repo,
                        &key,
                        format!("unsigned ×{count}"),
                        count,
                    )
                    .await?,
                );
            }
        }
    }
    Ok(render(&version, settings.runs, &rows))
}

/// Pushes `repo:1.0.0` (current) and `count` newer tags; returns the newer digests, newest first.
async fn setup(registry: &RealRegistry, repo: &str, count: usize) -> anyhow::Result<Vec<String>> {
    registry
        .push(repo, "1.0.0", ImageKind::OciIndex, "current")
        .await?;
    let mut digests = Vec::new();
    for minor in 1..=count {
        let pushed = registry
            .push(repo, &format!("1.{minor}.0"), ImageKind::OciIndex, "new")
            .await?;
        digests.push(pushed.digest);
    }
    digests.reverse();
    Ok(digests)
}

async fn measure(
    settings: &VerifySettings,
    proxy: &CountingProxy,
    repo: &str,
    key: &KeyPair,
    case: String,
    candidates: usize,
) -> anyhow::Result<Row> {
    let image = format!("{}/{repo}:1.0.0", proxy.host());
    let plain = timed(settings, proxy, &image, None).await?;
    let verifying = timed(settings, proxy, &image, Some(&key.public_key)).await?;
    let stdout = verifying.stdout;
    // The requests of the verifying run that the plain run did not make (a multiset difference).
    let mut unmatched = plain.requests.clone();
    let added: Vec<&Forwarded> = verifying
        .requests
        .iter()
        .filter(|r| {
            match unmatched
                .iter()
                .position(|p| p.method == r.method && p.path == r.path)
            {
                Some(i) => {
                    unmatched.swap_remove(i);
                    false
                }
                None => true,
            }
        })
        .collect();
    let requests = added.len();
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with("decision:"))
        .unwrap_or("(no decision line)")
        .to_owned();
    let outcome = outcome(&stdout);
    Ok(Row {
        case,
        candidates,
        requests,
        kinds: breakdown(&added),
        extra: verifying.wall.saturating_sub(plain.wall),
        registry: verifying.registry.saturating_sub(plain.registry),
        verdict,
        outcome,
    })
}

/// What `check` printed about the newest candidate's signature.
fn outcome(stdout: &str) -> String {
    if stdout
        .lines()
        .any(|l| l.starts_with("signature: verified with "))
    {
        return "verified".to_owned();
    }
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("signature rejected: "))
        .and_then(|rest| rest.split(": ").nth(1))
        .map_or_else(
            || "(nothing printed)".to_owned(),
            |kind| format!("rejected: {kind}"),
        )
}

/// `N× METHOD kind` per kind of request, e.g. `2× GET manifests, 1× GET blobs`.
fn breakdown(requests: &[&Forwarded]) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for r in requests {
        let what = if r.path.contains("/referrers/") {
            "referrers"
        } else if r.path.contains("/manifests/") {
            "manifests"
        } else if r.path.contains("/blobs/") {
            "blobs"
        } else if r.path.contains("/tags/") {
            "tags"
        } else {
            "other"
        };
        *counts.entry(format!("{} {what}", r.method)).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n}× {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `runs` runs of one `check` command took.
struct Timed {
    /// The requests of the last run.
    requests: Vec<Forwarded>,
    /// Median wall time of the process.
    wall: Duration,
    /// Median of the summed time of each run's registry requests.
    registry: Duration,
    /// The last run's report.
    stdout: String,
}

/// Runs `check` `runs` times.
async fn timed(
    settings: &VerifySettings,
    proxy: &CountingProxy,
    image: &str,
    key: Option<&Path>,
) -> anyhow::Result<Timed> {
    let mut walls = Vec::new();
    let mut registry = Vec::new();
    let mut last = (Vec::new(), String::new());
    for _ in 0..settings.runs {
        proxy.reset();
        let mut command = tokio::process::Command::new(&settings.binary);
        command
            .arg("check")
            .arg(image)
            .arg("--insecure-registries")
            .arg(proxy.host())
            .env_remove("INSECURE_REGISTRIES")
            .env_remove("VERIFY_KEYS")
            .env_remove("VERIFY_REQUIRED_FOR")
            .kill_on_drop(true);
        if let Some(key) = key {
            command
                .arg("--verify")
                .arg("cosign")
                .arg("--verify-keys")
                .arg(key);
        }
        let start = Instant::now();
        let output = command
            .output()
            .await
            .with_context(|| format!("failed to run {}", settings.binary.display()))?;
        walls.push(start.elapsed());
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "`watch-cluster check {image}` failed: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let requests = proxy.requests();
        registry.push(requests.iter().map(|r| r.elapsed).sum());
        last = (requests, stdout);
    }
    let median = |values: Vec<Duration>| summarize(values).map_or(Duration::ZERO, |s| s.p50);
    Ok(Timed {
        requests: last.0,
        wall: median(walls),
        registry: median(registry),
        stdout: last.1,
    })
}

fn render(version: &str, runs: usize, rows: &[Row]) -> String {
    let mut out = format!(
        "signature verification per check (cosign {version}, distribution 2.8, {runs} runs each, \
         median; `check --verify cosign` minus `check`; registry ms/c: the registry's answers, summed; \
         wall ms/c: the whole process, noisy on a shared machine)\n"
    );
    out.push_str(&format!(
        "{:<34} {:<22} {:>10} {:>9} {:>13} {:>13} {:>13}  {}\n",
        "case",
        "outcome",
        "candidates",
        "requests",
        "req/candidate",
        "registry ms/c",
        "wall ms/c",
        "requests added"
    ));
    for row in rows {
        let per = row.candidates.max(1);
        out.push_str(&format!(
            "{:<34} {:<22} {:>10} {:>9} {:>13.1} {:>13.2} {:>13.1}  {}\n",
            row.case,
            row.outcome,
            row.candidates,
            row.requests,
            row.requests as f64 / per as f64,
            row.registry.as_secs_f64() * 1000.0 / per as f64,
            row.extra.as_secs_f64() * 1000.0 / per as f64,
            row.kinds
        ));
    }
    out.push_str("decisions:\n");
    for row in rows {
        out.push_str(&format!("  {:<34} {}\n", row.case, row.verdict));
    }
    out
}
