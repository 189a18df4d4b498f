//! `watch-cluster-bench`: measures the built controller, as its own process, against the simulated cluster
//! and a fake registry that counts every request, and prints one table (see BENCHMARKS.md).
//!
//! `--cluster real` runs the same scenario on a real control plane it starts itself (`testbed/up`), and
//! prints the real table instead: the controller beside the floor of a minimal client, and its API requests
//! per window from the audit log; see [`real`]. `--json PATH` writes either run's figures as one object
//! ([`figures`]).
//!
//! It runs the controller twice on identical clusters: with registry sharing (the product) and with sharing
//! disabled (the naive baseline: one lookup per workload and container, no cache, no coalescing). Targets
//! are printed beside the measurements and never fail the run; the exit code is non-zero only when the
//! harness itself broke (controller crashed, never became ready, a server failed).
//!
//! `watch-cluster-bench push` is another mode: registry push events with the real registry (push → patch
//! latency, and what a storm of pushes of one repository costs); see [`push`].
//!
//! `watch-cluster-bench verify`: what signature verification costs per candidate (requests, time) for each
//! layout and key kind, with real cosign signatures; see [`verify`].
//!
//! `watch-cluster-bench curve`: the cost curve, the default mode run at several cluster sizes (each with
//! `--json`), drawn as a table and a PNG; see [`curve`].

mod audit;
mod cluster;
mod controller;
mod counts;
mod curve;
mod figures;
mod observe;
mod procfs;
mod push;
mod push_table;
mod real;
mod real_table;
mod run;
mod scenario;
mod stats;
mod table;
mod verify;
mod window;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use curve::Backend;

/// Benchmarks the watch-cluster controller (registry requests, CPU, memory, latency).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Another benchmark than the default check windows.
    #[command(subcommand)]
    mode: Option<Mode>,
    /// The cluster the windows run on.
    #[arg(long, value_enum, default_value_t = Backend::Sim)]
    cluster: Backend,
    /// Also write the run's figures to PATH as one JSON object.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Annotated workloads (Deployments with two containers). 100 is the CI smoke scenario.
    #[arg(long, default_value_t = 1000)]
    workloads: usize,
    /// Deployments in the cluster, annotated ones included (default: 10 × --workloads).
    #[arg(long)]
    cluster_size: Option<usize>,
    /// Measured check windows of the watch-cluster run (default: 10, or 3 below 500 workloads).
    #[arg(long)]
    windows: Option<usize>,
    /// Measured check windows of the naive baseline (0 skips it; the real backend runs none).
    #[arg(long, default_value_t = 2)]
    baseline_windows: usize,
    /// Seconds between check windows; must divide 60 (default: 20, or 5 below 500 workloads on the
    /// simulator).
    #[arg(long)]
    period: Option<u64>,
    /// The controller binary (default: `watch-cluster` next to this executable, i.e. the same profile).
    #[arg(long, global = true)]
    controller: Option<PathBuf>,
    /// Keep the controller logs (and, with `--cluster real`, the control plane's state and logs) in this
    /// directory instead of a temporary one.
    #[arg(long, global = true)]
    keep_logs: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Registry push events with the real registry: push → patch latency, and a storm of pushes.
    Push(PushArgs),
    /// Signature verification: registry requests and time per candidate, per layout and key kind, with
    /// signatures by the real cosign (testbed/cosign/build first).
    Verify(VerifyArgs),
    /// The cost curve: the check-window bench at several cluster sizes, one after the other, drawn as a
    /// Markdown table and a PNG (BENCHMARKS.md, "The cost curve").
    Curve(curve::CurveArgs),
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Timed runs of each `check` command (the median is reported).
    #[arg(long, default_value_t = 15)]
    runs: usize,
}

#[derive(Debug, clap::Args)]
struct PushArgs {
    /// Pushes of the latency phase, one at a time, each timed to its patch.
    #[arg(long, default_value_t = 50)]
    pushes: usize,
    /// Pushes of new tags of one repository in the storm.
    #[arg(long, default_value_t = 100)]
    storm: usize,
    /// Deployments using the storm's repository.
    #[arg(long, default_value_t = 10)]
    storm_workloads: usize,
    /// Concurrent pushing tasks of the storm.
    #[arg(long, default_value_t = 10)]
    storm_tasks: usize,
    /// Storm pushes upload whole images (blobs, platform manifests, index) at once, like CI jobs pushing
    /// together, instead of tagging images staged beforehand.
    #[arg(long)]
    storm_whole: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.mode {
        Some(Mode::Push(ref push)) => runtime.block_on(push_bench(push, &args)),
        Some(Mode::Verify(ref verify)) => runtime.block_on(verify_bench(verify, &args)),
        Some(Mode::Curve(ref c)) => curve::run(
            c,
            &curve::Inherited {
                controller: args.controller.as_deref(),
                keep_logs: args.keep_logs.as_deref(),
            },
        ),
        None => runtime.block_on(bench(args)),
    };
    match result {
        Ok(table) => {
            println!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: the benchmark harness failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: Args) -> anyhow::Result<String> {
    let small = args.workloads < 500;
    // On a real control plane a rollout takes seconds (ReplicaSet, scheduler, node agent): 5 s windows would
    // still be rolling out window 1's updates, and the checks skip workloads mid-rollout.
    let period = args
        .period
        .unwrap_or(if small && args.cluster == Backend::Sim {
            5
        } else {
            20
        });
    run::validate_period(period)?;
    if args.workloads < 10 {
        anyhow::bail!("--workloads must be at least 10");
    }
    let windows = args.windows.unwrap_or(if small { 3 } else { 10 }).max(2);
    let binary = match args.controller.clone() {
        Some(path) => path,
        None => controller::default_binary()?,
    };
    let temp = run::work_dir()?;
    let dir = args
        .keep_logs
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    let cluster_size = args
        .cluster_size
        .unwrap_or(args.workloads * 10)
        .max(args.workloads);
    if args.cluster == Backend::Real {
        return real_bench(&args, binary, dir, windows, period, cluster_size).await;
    }
    let mut settings = run::RunSettings {
        binary: binary.clone(),
        workloads: args.workloads,
        cluster_size,
        windows,
        period,
        sharing: true,
        dir,
    };
    eprintln!(
        "watch-cluster-bench: controller {}, {} annotated of {} Deployments, {} windows of {period} s \
         (+ {} baseline windows)",
        binary.display(),
        settings.workloads,
        settings.cluster_size,
        windows,
        args.baseline_windows
    );
    let ours = run::run(&settings).await?;
    eprintln!(
        "watch-cluster run done; {}",
        if args.baseline_windows >= 2 {
            "naive baseline next"
        } else {
            "no baseline"
        }
    );
    let naive = if args.baseline_windows >= 2 {
        settings.sharing = false;
        settings.windows = args.baseline_windows;
        Some(run::run(&settings).await?)
    } else {
        None
    };
    if let Some(path) = &args.json {
        let shape = figures::Shape {
            backend: "sim",
            deployments: settings.cluster_size,
            watched: args.workloads,
            windows,
            period,
        };
        write_json(path, &figures::of_run(shape, &ours))?;
    }
    let mut out = String::from("backend: simulator (sim/, in process)\n");
    out.push_str(&machine(&settings, &binary));
    for (name, r) in [("watch-cluster", Some(&ours)), ("naive", naive.as_ref())] {
        if let Some(r) = r.filter(|r| r.lagged > 0) {
            out.push_str(&format!(
                "warning: the {name} run's store recorder missed {} changes; patch and rollout times may be incomplete\n",
                r.lagged
            ));
        }
    }
    out.push('\n');
    out.push_str(&table::render(
        &ours,
        naive.as_ref(),
        args.workloads,
        windows,
    ));
    out.push('\n');
    out.push_str(&table::api_breakdown(&ours));
    Ok(out)
}

/// `--cluster real`.
async fn real_bench(
    args: &Args,
    binary: PathBuf,
    dir: PathBuf,
    windows: usize,
    period: u64,
    cluster_size: usize,
) -> anyhow::Result<String> {
    // The control plane's state (etcd's data, the audit log) stays out of the repository: in the kept
    // logs' directory, or a temporary one removed after `testbed/down`.
    let temp_state = tempfile::Builder::new()
        .prefix("watch-cluster-bench-testbed-")
        .tempdir()?;
    let state = match &args.keep_logs {
        Some(keep) => keep.join("testbed"),
        None => temp_state.path().to_owned(),
    };
    let settings = real::RealSettings {
        binary: binary.clone(),
        workloads: args.workloads,
        cluster_size,
        windows,
        period,
        dir,
        state,
        // Creating 50,000 Deployments on 2 cores takes minutes; a broken cluster still fails.
        limit: std::time::Duration::from_secs(300 + cluster_size as u64 / 20),
    };
    eprintln!(
        "watch-cluster-bench --cluster real: controller {}, {} annotated of {} Deployments, {windows} windows \
         of {period} s",
        binary.display(),
        settings.workloads,
        settings.cluster_size,
    );
    let started = std::time::Instant::now();
    let report = real::run(&settings).await?;
    eprintln!(
        "watch-cluster-bench --cluster real: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.json {
        let shape = figures::Shape {
            backend: "real",
            deployments: cluster_size,
            watched: args.workloads,
            windows,
            period,
        };
        write_json(path, &figures::of_real(shape, &report))?;
    }
    let run_settings = run::RunSettings {
        binary: binary.clone(),
        workloads: args.workloads,
        cluster_size,
        windows,
        period,
        sharing: true,
        dir: settings.dir.clone(),
    };
    let mut out = String::from(
        "backend: real control plane (testbed/up, TESTBED_PROFILE=bench: kube-apiserver, etcd, \
         kube-controller-manager, kube-scheduler v1.36.3, node agent)\n",
    );
    out.push_str(&machine(&run_settings, &binary));
    out.push_str(&format!(
        "unwatched Deployments: 0 replicas, paused; floor: the same patches by a minimal kube-rs client \
         with the controller's token, {} at once\n\n",
        real::CHECK_CONCURRENCY
    ));
    out.push_str(&real_table::render(&report, args.workloads, windows));
    Ok(out)
}

/// Writes `figures` to `path`, pretty-printed.
fn write_json(path: &std::path::Path, figures: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(figures)?;
    std::fs::write(path, text + "\n")
        .map_err(|e| anyhow::anyhow!("failed to write {}: {e}", path.display()))
}

/// The push-events mode.
async fn push_bench(push: &PushArgs, args: &Args) -> anyhow::Result<String> {
    if push.pushes == 0 || push.storm == 0 || push.storm_workloads == 0 || push.storm_tasks == 0 {
        anyhow::bail!("--pushes, --storm, --storm-workloads and --storm-tasks must be at least 1");
    }
    let binary = match &args.controller {
        Some(path) => path.clone(),
        None => controller::default_binary()?,
    };
    let temp = run::work_dir()?;
    let dir = args
        .keep_logs
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    let settings = push::PushSettings {
        binary: binary.clone(),
        pushes: push.pushes,
        storm_pushes: push.storm,
        storm_workloads: push.storm_workloads,
        storm_tasks: push.storm_tasks,
        storm_whole: push.storm_whole,
        dir,
    };
    eprintln!(
        "watch-cluster-bench push: controller {}, {} timed pushes, a storm of {} pushes from {} tasks on {} \
         Deployments",
        binary.display(),
        settings.pushes,
        settings.storm_pushes,
        settings.storm_tasks,
        settings.storm_workloads
    );
    let report = push::run(&settings).await?;
    let (cpus, memory, profile) = machine_facts(&binary);
    Ok(format!(
        "machine: {cpus} CPUs, {memory} memory; controller profile: {profile}\n\
         scenario: real registry (docker-registry) notifying EVENTS_ADDR; cron @yearly, strategy version; \
         latency on 1 Deployment of {}, storm on {} Deployments of {}\n\n{}",
        "bench/app",
        settings.storm_workloads,
        "bench/storm",
        push_table::render(&report, &settings)
    ))
}

/// CPUs, total memory and the controller's cargo profile.
fn machine_facts(binary: &std::path::Path) -> (usize, String, String) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let profile = binary
        .parent()
        .and_then(|p| p.file_name())
        .map_or("?".into(), |p| p.to_string_lossy().into_owned());
    (cpus, memory, profile)
}

/// The machine and the settings, printed above the table.
fn machine(settings: &run::RunSettings, binary: &std::path::Path) -> String {
    let (cpus, memory, profile) = machine_facts(binary);
    format!(
        "machine: {cpus} CPUs, {memory} memory; controller profile: {profile}\n\
         scenario: {} annotated Deployments (2 containers, {} repositories) in {} Deployments; \
         cron every {} s, REGISTRY_CACHE_TTL {} s; window 1 has an update due for every workload\n",
        settings.workloads,
        (settings.workloads / 20).max(2),
        settings.cluster_size,
        settings.period,
        (settings.period / 2).max(1),
    )
}

async fn verify_bench(verify: &VerifyArgs, args: &Args) -> anyhow::Result<String> {
    let binary = match &args.controller {
        Some(path) => path.clone(),
        None => controller::default_binary()?,
    };
    verify::run(&verify::VerifySettings {
        binary,
        runs: verify.runs,
    })
    .await
}
