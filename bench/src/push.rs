//! `watch-cluster-bench push`: what a registry push costs and how quickly it lands, measured with the real
//! registry (Debian's `docker-registry`) sending its own notifications to the controller's listener.
//!
//! Input: [`PushSettings`]. Output: a [`PushReport`], rendered by [`crate::push_table`]. The world is the
//! simulated cluster in this process (its kubelet resolves tags against the real registry over HTTP, as
//! containerd would), a notifying registry, and the built controller as its own process with `EVENTS_ADDR`,
//! a `@yearly` cron and strategy `version` on every workload, so pushes are the only cause of checks.
//!
//! Two phases, each framed by quiet snapshots of the controller's `/metrics`:
//! - **latency**: one Deployment on `bench/app`; each push of `1.0.i` is timed from the return of its
//!   manifest PUT to the Deployment's template image becoming `…:1.0.i@<digest>` on the store's change
//!   stream. The next push waits until the rollout is complete and the controller removed its rollout
//!   record (it skips checks while its own rollout is in flight).
//! - **storm**: K Deployments on `bench/storm`; every new tag's blobs and platform manifests are uploaded
//!   first (untagged: the registry's events for them are ignored), then the tagged index manifests are PUT
//!   from concurrent tasks, a burst of pushes as registries report them; then a wait until every Deployment
//!   runs the highest tag and is quiet, or until nothing moves any more.
//!
//! Why: push events exist to cut the wait for a new image from a cron period to about a check, and a storm
//! of pushes must not cost a request storm. The bench reports; it never fails on a figure. It fails only when
//! the harness broke (a server did not start, the controller died, a workload never settled).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::sync::broadcast::{Receiver, error::RecvError};
use watch_cluster_sim::{Change, Kind, SimCluster, Store};
use watch_cluster_testkit::{ImageKind, Notify, RealRegistry, RegistryAuth};

mod storm;
mod world;

use crate::controller::{Controller, body_of, free_admin_addr};
use crate::counts::Counts;
use crate::observe::rollout_complete;
use crate::stats::{Summary, summarize};

/// The listener's token for distribution (at least 24 characters).
const TOKEN: &str = "watch-cluster-bench-push-events-token";
/// The namespace of the bench's Deployments.
const NAMESPACE: &str = "bench-push";
/// The repository of the latency phase and its Deployment.
const LATENCY_REPO: &str = "bench/app";
const LATENCY_NAME: &str = "latency";
/// The repository of the storm.
const STORM_REPO: &str = "bench/storm";
/// The controller's rollout record annotation.
const ROLLOUT: &str = "watch-cluster.io/rollout";
/// Setup steps and settling after a rollout may take this long before the harness counts as broken.
const SETUP_LIMIT: Duration = Duration::from_secs(300);
/// How long a push may take to be patched before it counts as missed.
const PATCH_LIMIT: Duration = Duration::from_secs(30);
/// How long the storm may take to settle on the highest tag.
const STORM_LIMIT: Duration = Duration::from_secs(120);
/// The storm counts as over when every workload is quiet and the controller's counters stand still this long.
const STILL: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// The controller binary.
    pub binary: PathBuf,
    /// Pushes of the latency phase.
    pub pushes: usize,
    /// Pushes of the storm.
    pub storm_pushes: usize,
    /// Deployments on the storm's repository.
    pub storm_workloads: usize,
    /// Concurrent pushing tasks of the storm.
    pub storm_tasks: usize,
    /// The storm pushes whole images (blobs, platform manifests, index) instead of tagging staged ones.
    pub storm_whole: bool,
    /// Where logs go.
    pub dir: PathBuf,
}

/// What the latency phase measured.
#[derive(Debug, Clone)]
pub struct LatencyReport {
    /// Push returned → template patched, over the pushes that were patched.
    pub summary: Option<Summary>,
    /// Pushes not patched within [`PATCH_LIMIT`].
    pub missed: usize,
    /// The controller's counters over the phase.
    pub counts: Counts,
}

/// What the storm measured.
#[derive(Debug, Clone)]
pub struct StormReport {
    /// Uploading the blobs and platform manifests of every tag, before the storm (not part of it; zero
    /// with whole pushes).
    pub staging: Duration,
    /// First tag PUT started → last one returned.
    pub push_time: Duration,
    /// First push started → every workload patched to the highest tag (when all got there).
    pub all_patched: Option<Duration>,
    /// Workloads by the tag they run at the end.
    pub final_tags: BTreeMap<String, usize>,
    /// The controller's counters over the storm, until it was quiet.
    pub counts: Counts,
}

/// Both phases.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// Process start to `/readyz` 200.
    pub ready: Duration,
    /// The latency phase.
    pub latency: LatencyReport,
    /// The storm.
    pub storm: StormReport,
}

/// The servers and the controller of one push bench.
struct Bench {
    sim: SimCluster,
    registry: RealRegistry,
    host: String,
    admin: String,
    controller: Controller,
}

/// Runs both phases.
pub async fn run(settings: &PushSettings) -> anyhow::Result<PushReport> {
    let events = free_admin_addr()?;
    let registry = RealRegistry::start_notifying(
        RegistryAuth::None,
        Notify {
            url: format!("http://{events}/events/distribution"),
            token: TOKEN.to_owned(),
        },
    )
    .await
    .context("failed to start the notifying registry")?;
    let host = registry.host();
    for repository in [LATENCY_REPO, STORM_REPO] {
        registry
            .push(repository, "1.0.0", ImageKind::OciIndex, "initial")
            .await
            .with_context(|| format!("failed to push {repository}:1.0.0"))?;
    }
    let sim = world::start_sim().await?;
    let names = world::create_objects(sim.store(), &host, settings.storm_workloads)?;
    let kubeconfig = settings.dir.join("kubeconfig-push");
    sim.write_kubeconfig(&kubeconfig, "bench-token")?;
    let admin = free_admin_addr()?;
    let env = world::environment(&kubeconfig, &host, &events);
    let started = Instant::now();
    let log = settings.dir.join("controller-push.log");
    let mut controller = Controller::spawn(&settings.binary, &env, &admin, log)?;
    let ready = controller.wait_ready(started, SETUP_LIMIT).await?;
    wait_quiet(sim.store(), &names, &mut controller, true).await?;
    let mut bench = Bench {
        sim,
        registry,
        host,
        admin,
        controller,
    };
    let latency = latency(&mut bench, settings.pushes).await?;
    eprintln!("push latency phase done; storm next");
    let storm = storm::storm(&mut bench, settings, &names[1..]).await?;
    bench.controller.ensure_alive()?;
    bench.controller.stop().await;
    Ok(PushReport {
        ready,
        latency,
        storm,
    })
}

/// Pushes `1.0.1` … `1.0.n` of the latency repository one at a time and times each to its patch.
async fn latency(bench: &mut Bench, n: usize) -> anyhow::Result<LatencyReport> {
    let before = settle(&bench.admin, &mut bench.controller).await?;
    let mut delays = Vec::new();
    let mut missed = 0;
    for i in 1..=n {
        let tag = format!("1.0.{i}");
        // Subscribed before the push, so the patch cannot slip by unseen.
        let mut changes = bench.sim.store().subscribe();
        let pushed = bench
            .registry
            .push(LATENCY_REPO, &tag, ImageKind::OciIndex, &tag)
            .await
            .with_context(|| format!("failed to push {LATENCY_REPO}:{tag}"))?;
        let returned = Instant::now();
        let wanted = format!("{}/{LATENCY_REPO}:{tag}@{}", bench.host, pushed.digest);
        let patched = wait_image(
            bench.sim.store(),
            &mut changes,
            &wanted,
            returned + PATCH_LIMIT,
            &mut bench.controller,
        )
        .await?;
        match patched {
            Some(at) => delays.push(at.saturating_duration_since(returned)),
            None => missed += 1,
        }
        drop(changes);
        wait_quiet(
            bench.sim.store(),
            &[LATENCY_NAME.to_owned()],
            &mut bench.controller,
            false,
        )
        .await?;
    }
    let after = settle(&bench.admin, &mut bench.controller).await?;
    Ok(LatencyReport {
        summary: summarize(delays),
        missed,
        counts: after.since(&before),
    })
}

/// Waits until the latency Deployment's image is `wanted`; the instant the change was seen, or `None` at
/// `deadline`.
async fn wait_image(
    store: &Store,
    changes: &mut Receiver<Change>,
    wanted: &str,
    deadline: Instant,
    controller: &mut Controller,
) -> anyhow::Result<Option<Instant>> {
    let stored = || {
        store
            .get_arc(Kind::Deployment, Some(NAMESPACE), LATENCY_NAME)
            .is_some_and(|d| image_of(&d) == Some(wanted))
    };
    let mut alive_at = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_millis(50), changes.recv()).await {
            Ok(Ok(change)) => {
                if change.kind == Kind::Deployment
                    && change.object["metadata"]["name"] == LATENCY_NAME
                    && image_of(&change.object) == Some(wanted)
                {
                    return Ok(Some(Instant::now()));
                }
            }
            Ok(Err(RecvError::Closed)) => bail!("the simulated cluster's change stream closed"),
            // Fell behind the stream, or nothing happened: look at the store itself.
            Ok(Err(RecvError::Lagged(_))) | Err(_) => {
                if stored() {
                    return Ok(Some(Instant::now()));
                }
            }
        }
        if Instant::now() > deadline {
            return Ok(None);
        }
        if alive_at.elapsed() > Duration::from_secs(1) {
            controller.ensure_alive()?;
            alive_at = Instant::now();
        }
    }
}

/// The first container's image of a Deployment.
fn image_of(object: &Value) -> Option<&str> {
    object["spec"]["template"]["spec"]["containers"][0]["image"].as_str()
}

/// The Deployment runs its template (rollout complete), carries no rollout record, and, when `detected`,
/// was detected by the controller.
fn is_quiet(object: &Value, detected: bool) -> bool {
    let annotations = &object["metadata"]["annotations"];
    annotations[ROLLOUT].is_null()
        && (!detected || !annotations["watch-cluster.io/detected"].is_null())
        && rollout_complete(
            object,
            object["metadata"]["generation"].as_i64().unwrap_or(1),
        )
}

/// Waits until every named Deployment is quiet; fails after [`SETUP_LIMIT`] (a stuck rollout record or
/// rollout means the run cannot go on).
async fn wait_quiet(
    store: &Store,
    names: &[String],
    controller: &mut Controller,
    detected: bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETUP_LIMIT;
    loop {
        let pending: Vec<&String> = names
            .iter()
            .filter(|name| {
                store
                    .get_arc(Kind::Deployment, Some(NAMESPACE), name)
                    .is_none_or(|d| !is_quiet(&d, detected))
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        controller.ensure_alive()?;
        if Instant::now() > deadline {
            bail!(
                "Deployments {pending:?} did not settle (rollout complete, no rollout record) within \
                 {SETUP_LIMIT:?}; last controller log lines:\n{}",
                controller.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The controller's counters now.
async fn read_counts(admin: &str) -> anyhow::Result<Counts> {
    let text = body_of(admin, "/metrics")
        .await
        .context("the controller's /metrics did not answer 200")?;
    Ok(Counts::parse(&text))
}

/// The counters once they stood still for a second (late events and queued checks included), at most 30 s.
async fn settle(admin: &str, controller: &mut Controller) -> anyhow::Result<Counts> {
    let mut last = read_counts(admin).await?;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        controller.ensure_alive()?;
        let now = read_counts(admin).await?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn quiet_means_rolled_out_without_a_record() {
        let mut d = json!({"metadata": {"generation": 2, "annotations": {}},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}});
        assert!(is_quiet(&d, false));
        assert!(!is_quiet(&d, true), "not detected yet");
        d["metadata"]["annotations"]["watch-cluster.io/detected"] = json!("{}");
        d["metadata"]["annotations"][ROLLOUT] = json!("sealed");
        assert!(!is_quiet(&d, true), "a rollout record");
        d["metadata"]["annotations"][ROLLOUT] = Value::Null;
        d["metadata"]["generation"] = json!(3);
        assert!(!is_quiet(&d, true), "the new template is not observed yet");
    }
}
