//! One controller run: start the world and the controller, wait for sync, then measure check windows.
//!
//! Input: [`RunSettings`] (sharing on, or the naive baseline). Output: a [`RunReport`]. Windows are
//! contiguous cron periods: a warm-up window (first checks after start, nothing due), then window 1 with an
//! update due for every workload, then steady windows with nothing new. The registry cache lives for half a
//! period, so every window starts cold, as real check windows do.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};

use crate::cluster::World;
use crate::controller::{Controller, free_admin_addr};
use crate::observe::{Recorder, check_times, rollout_complete};
use crate::procfs::Memory;
use crate::scenario::Scenario;
use crate::stats::{Summary, summarize};
use crate::window::{self, Range, WindowStats};
use watch_cluster_sim::RequestTally;

/// How long setup steps may take before the harness counts as broken.
const SETUP_LIMIT: Duration = Duration::from_secs(300);

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The controller binary.
    pub binary: PathBuf,
    /// Annotated workloads.
    pub workloads: usize,
    /// Deployments in the cluster (annotated ones included).
    pub cluster_size: usize,
    /// Measured windows (the first has updates due).
    pub windows: usize,
    /// Seconds between fire times (divides 60).
    pub period: u64,
    /// Registry sharing on (false: naive baseline).
    pub sharing: bool,
    /// Where logs go.
    pub dir: PathBuf,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Creating the Deployments (and programming the registry).
    pub setup: Duration,
    /// Process start to `/readyz` 200.
    pub ready: Duration,
    /// After every workload was detected.
    pub memory_after_sync: Memory,
    /// After the first steady window.
    pub memory_after_first_steady: Option<Memory>,
    /// After the last window.
    pub memory_at_end: Memory,
    /// The measured windows.
    pub windows: Vec<WindowStats>,
    /// Rollout complete in the store → COMPLETED webhook received.
    pub rollout: Option<Summary>,
    /// Rollouts that completed but whose webhook never arrived.
    pub rollouts_unreported: usize,
    /// Store changes the recorder missed.
    pub lagged: u64,
}

/// Runs the controller once.
pub async fn run(settings: &RunSettings) -> anyhow::Result<RunReport> {
    let scenario = Scenario::new(settings.workloads);
    let world = World::start().await?;
    let recorder = Recorder::start(world.sim.store());
    let cron = format!("*/{} * * * * ?", settings.period);
    let setup_started = Instant::now();
    world.populate(&scenario, settings.cluster_size, &cron)?;
    let setup = setup_started.elapsed();
    let kubeconfig = settings.dir.join("kubeconfig");
    world.write_kubeconfig(&kubeconfig)?;
    let admin = free_admin_addr()?;
    let env = environment(
        settings.period,
        settings.sharing,
        &world.registry.host(),
        &world.webhook.url(),
        &kubeconfig,
    );
    let log = settings.dir.join(format!(
        "controller-{}.log",
        if settings.sharing { "shared" } else { "naive" }
    ));
    let started = Instant::now();
    let mut controller = Controller::spawn(&settings.binary, &env, &admin, log)?;
    let ready = controller.wait_ready(started, SETUP_LIMIT).await?;
    wait_synced(&world, &scenario, &mut controller).await?;
    let memory_after_sync = controller.memory()?;

    let measured = measure_windows(
        &mut controller,
        settings.workloads,
        settings.windows,
        settings.period,
        || world.publish_updates(&scenario),
        || world.sim.request_counts().snapshot(),
    )
    .await?;
    controller.ensure_alive()?;
    controller.stop().await;

    let registry_log = world.registry.requests();
    let windows = measured.stats(&scenario, &registry_log, &controller, &recorder);
    let (rollout, rollouts_unreported) = rollout_latency(&world.webhook, &recorder, None);
    Ok(RunReport {
        setup,
        ready,
        memory_after_sync,
        memory_after_first_steady: measured.memory_after_first_steady,
        memory_at_end: measured.memory_at_end,
        windows,
        rollout,
        rollouts_unreported,
        lagged: recorder.lagged(),
    })
}

/// The measured windows of one run: their ranges, the controller's CPU time at each boundary, and memory.
pub struct Measured {
    /// Window k is `ranges[k]`; window 0 had updates due.
    pub ranges: Vec<Range>,
    /// CPU time at each window's start, and at the end of the last.
    pub cpu_marks: Vec<Duration>,
    /// After the first steady window (window index 2), or at the end of a 2-window run.
    pub memory_after_first_steady: Option<Memory>,
    /// After the last window.
    pub memory_at_end: Memory,
    /// The API server's request tally at each window's start and at the end of the last (empty where the
    /// backend counts its requests another way: the real one reads the audit log).
    pub api_marks: Vec<RequestTally>,
}

impl Measured {
    /// Each window's figures from the registry's log, the controller's log and the recorded histories.
    pub fn stats(
        &self,
        scenario: &Scenario,
        registry_log: &[watch_cluster_testkit::LoggedRequest],
        controller: &Controller,
        recorder: &Recorder,
    ) -> Vec<WindowStats> {
        let checks = check_times(&controller.log_text());
        let histories = recorder.histories();
        self.ranges
            .iter()
            .enumerate()
            .map(|(k, range)| {
                let due = k == 0;
                let (count, last) = window::decisions(&checks, *range);
                WindowStats {
                    due,
                    requests: window::count_requests(registry_log, *range),
                    minimum: scenario.minimum(due),
                    cpu: self.cpu_marks[k + 1].saturating_sub(self.cpu_marks[k]),
                    checks: count,
                    last_decision: last,
                    patches: window::patch_delays(&histories, *range),
                    api: watch_cluster_sim::tally_since(&self.api_marks[k], &self.api_marks[k + 1]),
                }
            })
            .collect()
    }
}

/// A warm-up window (the first checks after start; nothing due), then `publish` makes updates due, then
/// `windows` contiguous cron periods measured, the first starting once the registry cache of the warm-up
/// expired. Leaves the controller running.
pub async fn measure_windows(
    controller: &mut Controller,
    workloads: usize,
    windows: usize,
    period: u64,
    publish: impl FnOnce(),
    mut api_mark: impl FnMut() -> RequestTally,
) -> anyhow::Result<Measured> {
    // Warm-up window: the first checks after start; nothing is due.
    let warm_up = next_fire(SystemTime::now() + Duration::from_millis(500), period);
    wait_for_checks(controller, warm_up, workloads, period).await?;
    publish();
    let ttl = Duration::from_secs(period / 2);
    let last_check = check_times(&controller.log_text())
        .into_iter()
        .map(SystemTime::from)
        .max()
        .unwrap_or(warm_up);
    let first = next_fire(
        (last_check + ttl + Duration::from_secs(1)).max(SystemTime::now() + Duration::from_secs(1)),
        period,
    );

    let mut ranges = Vec::new();
    let mut cpu_marks = Vec::new();
    let mut api_marks = Vec::new();
    let mut memory_after_first_steady = None;
    for k in 0..windows {
        let fire = first + Duration::from_secs(period * k as u64);
        sleep_until(fire - Duration::from_millis(100), controller).await?;
        cpu_marks.push(controller.cpu()?);
        api_marks.push(api_mark());
        ranges.push(Range {
            start: fire,
            end: fire + Duration::from_secs(period),
        });
        if k == 2 {
            memory_after_first_steady = Some(controller.memory()?);
        }
    }
    let end = first + Duration::from_secs(period * windows as u64);
    sleep_until(end - Duration::from_millis(100), controller).await?;
    cpu_marks.push(controller.cpu()?);
    api_marks.push(api_mark());
    let memory_at_end = controller.memory()?;
    if windows == 2 {
        memory_after_first_steady = Some(memory_at_end);
    }
    Ok(Measured {
        ranges,
        cpu_marks,
        memory_after_first_steady,
        memory_at_end,
        api_marks,
    })
}

/// The controller's environment for a run: the same on both backends (the real one adds it over the
/// settings the applied manifests give).
pub fn environment(
    period: u64,
    sharing: bool,
    registry_host: &str,
    webhook_url: &str,
    kubeconfig: &std::path::Path,
) -> Vec<(String, String)> {
    let ttl = format!("{}s", (period / 2).max(1));
    [
        ("KUBECONFIG", kubeconfig.to_string_lossy().into_owned()),
        ("INSECURE_REGISTRIES", registry_host.to_owned()),
        ("REGISTRY_CACHE_TTL", ttl),
        ("REGISTRY_SHARING", sharing.to_string()),
        ("WEBHOOK_URL", webhook_url.to_owned()),
        ("WEBHOOK_ENABLE_IMAGE_ROLLOUT_COMPLETED", "true".into()),
        ("WEBHOOK_ENABLE_IMAGE_ROLLOUT_FAILED", "true".into()),
        ("LEADER_ELECTION", "false".into()),
        ("LOG_FORMAT", "json".into()),
        // Every check is timed from its "check finished" line, which is DEBUG for a check that found
        // nothing new.
        (
            "RUST_LOG",
            "info,watch_cluster::controller::checker=debug".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Waits until every annotated workload was detected (the controller wrote `detected`) and runs its pods.
async fn wait_synced(
    world: &World,
    scenario: &Scenario,
    controller: &mut Controller,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETUP_LIMIT;
    loop {
        controller.ensure_alive()?;
        let pending = scenario
            .workloads
            .iter()
            .enumerate()
            .filter(|(i, w)| {
                let ns = Scenario::namespace_of(*i);
                // `get_arc`: no copy of the object, so polling costs the simulated cluster nothing.
                let Some(obj) = world.sim.store().get_arc(
                    watch_cluster_sim::Kind::Deployment,
                    Some(&ns),
                    &w.name,
                ) else {
                    return true;
                };
                obj["metadata"]["annotations"]["watch-cluster.io/detected"].is_null()
                    || !rollout_complete(&obj, obj["metadata"]["generation"].as_i64().unwrap_or(1))
            })
            .count();
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{pending} workloads were not detected and running within {SETUP_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the checks of the window starting at `fire` (or the end of that window).
async fn wait_for_checks(
    controller: &mut Controller,
    fire: SystemTime,
    workloads: usize,
    period: u64,
) -> anyhow::Result<()> {
    let end = fire + Duration::from_secs(period) - Duration::from_millis(1500);
    sleep_until(fire, controller).await?;
    while SystemTime::now() < end {
        let done = check_times(&controller.log_text())
            .into_iter()
            .filter(|t| SystemTime::from(*t) >= fire)
            .count();
        if done >= workloads {
            return Ok(());
        }
        controller.ensure_alive()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Sleeps until wall-clock `t`, checking that the controller is alive every second.
pub async fn sleep_until(t: SystemTime, controller: &mut Controller) -> anyhow::Result<()> {
    while let Ok(left) = t.duration_since(SystemTime::now()) {
        controller.ensure_alive()?;
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
    }
    Ok(())
}

/// The first multiple of `period` seconds (a cron fire time) at or after `t`.
pub fn next_fire(t: SystemTime, period: u64) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let period = period.max(1);
    let next = (secs / period as f64).ceil() as u64 * period;
    UNIX_EPOCH + Duration::from_secs(next)
}

/// Store completion → COMPLETED webhook, per rollout; and how many completions were never reported.
/// Completions after `until` (the controller stopped) are not counted: nobody was there to report them.
pub fn rollout_latency(
    webhook: &watch_cluster_testkit::WebhookReceiver,
    recorder: &Recorder,
    until: Option<SystemTime>,
) -> (Option<Summary>, usize) {
    let offset = (SystemTime::now(), Instant::now());
    let to_wall = |at: Instant| offset.0 - offset.1.saturating_duration_since(at);
    let mut webhooks: std::collections::HashMap<String, Vec<SystemTime>> = Default::default();
    for request in webhook.requests() {
        let body = request.json();
        if body["eventType"] == "IMAGE_ROLLOUT_COMPLETED" {
            let key = format!(
                "{}/{}",
                body["deployment"]["namespace"].as_str().unwrap_or_default(),
                body["deployment"]["name"].as_str().unwrap_or_default()
            );
            webhooks
                .entry(key)
                .or_default()
                .push(to_wall(request.received_at));
        }
    }
    // Matched in order per Deployment: its rollouts are sequential and each gets one COMPLETED. Matching by
    // time instead ("the first webhook after the completion") lost webhooks that arrived before this
    // recorder, which learns of a completion through a broadcast channel that can lag on a busy machine,
    // noted the completion: the controller had seen it first.
    let mut delays = Vec::new();
    let mut unreported = 0;
    let mut ahead_of_recorder = 0;
    for (key, history) in recorder.histories() {
        let mut arrivals = webhooks.get(&key).cloned().unwrap_or_default();
        arrivals.sort();
        let mut completions: Vec<SystemTime> = history
            .completions
            .iter()
            .copied()
            .filter(|t| until.is_none_or(|until| *t <= until))
            .collect();
        completions.sort();
        for (index, completed) in completions.iter().enumerate() {
            match arrivals.get(index) {
                Some(arrived) => match arrived.duration_since(*completed) {
                    Ok(delay) => delays.push(delay),
                    Err(_) => {
                        ahead_of_recorder += 1;
                        delays.push(Duration::ZERO);
                    }
                },
                None => unreported += 1,
            }
        }
    }
    if ahead_of_recorder > 0 {
        eprintln!(
            "note: {ahead_of_recorder} COMPLETED webhook(s) arrived before the benchmark's recorder saw the \
             completion in the store (recorder lag); counted as 0 s"
        );
    }
    (summarize(delays), unreported)
}

/// Fails unless `period` is a cron step that divides a minute.
pub fn validate_period(period: u64) -> anyhow::Result<()> {
    if period == 0 || 60 % period != 0 {
        bail!("--period must divide 60 (5, 10, 15, 20, 30), got {period}");
    }
    Ok(())
}

/// The directory for logs and the kubeconfig.
pub fn work_dir() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("watch-cluster-bench-")
        .tempdir()
        .context("failed to create a temporary directory")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fire_times_are_the_next_multiple_of_the_period() {
        let at = |s: u64, ms: u64| UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms);
        assert_eq!(next_fire(at(100, 1), 20), at(120, 0));
        assert_eq!(next_fire(at(120, 0), 20), at(120, 0));
        assert!(validate_period(7).is_err() && validate_period(15).is_ok());
    }
}
