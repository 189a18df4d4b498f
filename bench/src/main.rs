//! `watch-cluster-bench`: measures the built controller, as its own process, against the simulated cluster
//! and a fake registry that counts every request, and prints one table (see BENCHMARKS.md).
//!
//! It runs the controller twice on identical clusters: with registry sharing (the product) and with sharing
//! disabled (the naive baseline: one lookup per workload and container, no cache, no coalescing). Targets
//! are printed beside the measurements and never fail the run; the exit code is non-zero only when the
//! harness itself broke (controller crashed, never became ready, a server failed).

mod cluster;
mod controller;
mod observe;
mod procfs;
mod run;
mod scenario;
mod stats;
mod table;
mod window;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Benchmarks the watch-cluster controller (registry requests, CPU, memory, latency).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Annotated workloads (Deployments with two containers). 100 is the CI smoke scenario.
    #[arg(long, default_value_t = 1000)]
    workloads: usize,
    /// Deployments in the cluster, annotated ones included (default: 10 × --workloads).
    #[arg(long)]
    cluster_size: Option<usize>,
    /// Measured check windows of the watch-cluster run (default: 10, or 3 below 500 workloads).
    #[arg(long)]
    windows: Option<usize>,
    /// Measured check windows of the naive baseline (0 skips it).
    #[arg(long, default_value_t = 2)]
    baseline_windows: usize,
    /// Seconds between check windows; must divide 60 (default: 20, or 5 below 500 workloads).
    #[arg(long)]
    period: Option<u64>,
    /// The controller binary (default: `watch-cluster` next to this executable, i.e. the same profile).
    #[arg(long)]
    controller: Option<PathBuf>,
    /// Keep the controller logs in this directory instead of a temporary one.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
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
    match runtime.block_on(bench(args)) {
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
    let period = args.period.unwrap_or(if small { 5 } else { 20 });
    run::validate_period(period)?;
    if args.workloads < 10 {
        anyhow::bail!("--workloads must be at least 10");
    }
    let windows = args.windows.unwrap_or(if small { 3 } else { 10 }).max(2);
    let binary = match args.controller {
        Some(path) => path,
        None => controller::default_binary()?,
    };
    let temp = run::work_dir()?;
    let dir = args
        .keep_logs
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    let mut settings = run::RunSettings {
        binary: binary.clone(),
        workloads: args.workloads,
        cluster_size: args
            .cluster_size
            .unwrap_or(args.workloads * 10)
            .max(args.workloads),
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
    let mut out = machine(&settings, &binary);
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
    Ok(out)
}

/// The machine and the settings, printed above the table.
fn machine(settings: &run::RunSettings, binary: &std::path::Path) -> String {
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
