//! `--json PATH`: one run's figures as one JSON object, for `watch-cluster-bench curve` to collect.
//!
//! Input: the simulator run's [`RunReport`] and settings. Output: an object whose keys are the curve's
//! contract (`curve::point` reads them): every figure in plain units (seconds, MiB, counts), `null` when this
//! run did not measure it. The simulator measures no setup time apart (its cluster is filled in-process),
//! no floor and no API requests; those are the real control plane's figures (issue 16 item 1).

use std::path::Path;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::run::{RunReport, RunSettings};

/// Bytes per MiB, from KiB.
const KIB_PER_MIB: f64 = 1024.0;

/// The figures of one simulator run as the curve's JSON object.
pub fn sim_figures(report: &RunReport, settings: &RunSettings) -> Value {
    let window1 = report.windows.first();
    let steady: Vec<f64> = report
        .windows
        .iter()
        .filter(|w| !w.due)
        .map(|w| w.cpu.as_secs_f64())
        .collect();
    let steady_cpu = (!steady.is_empty()).then(|| steady.iter().sum::<f64>() / steady.len() as f64);
    let patches = window1.and_then(|w| w.patches);
    let growth = report
        .memory_after_first_steady
        .map(|m| (report.memory_at_end.rss_kib as f64 - m.rss_kib as f64) / KIB_PER_MIB);
    json!({
        "backend": "sim",
        "deployments": settings.cluster_size,
        "watched": settings.workloads,
        "windows": settings.windows,
        "period_s": settings.period,
        "setup_s": null,
        "start_to_ready_s": report.ready.as_secs_f64(),
        "peak_rss_after_sync_mib": report.memory_after_sync.peak_kib as f64 / KIB_PER_MIB,
        "peak_rss_after_windows_mib": report.memory_at_end.peak_kib as f64 / KIB_PER_MIB,
        "rss_growth_mib": growth,
        "cpu_window1_s": window1.map(|w| w.cpu.as_secs_f64()),
        "cpu_per_steady_window_s": steady_cpu,
        "fire_to_patch_p50_s": patches.map(|s| s.p50.as_secs_f64()),
        "fire_to_patch_p99_s": patches.map(|s| s.p99.as_secs_f64()),
        "patches_window1": patches.map_or(0, |s| s.count),
        "floor_fire_to_patch_p50_s": null,
        "floor_fire_to_patch_p99_s": null,
        "api_requests_per_due_check": null,
        "api_requests_per_steady_check": null,
    })
}

/// Writes `figures` to `path`, pretty-printed.
pub fn write(path: &Path, figures: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(figures)?;
    std::fs::write(path, text + "\n")
        .with_context(|| format!("failed to write the figures to {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::procfs::Memory;
    use crate::scenario::Minimum;
    use crate::stats::summarize;
    use crate::window::{Requests, WindowStats};

    fn window(due: bool, cpu_ms: u64, patches: &[u64]) -> WindowStats {
        WindowStats {
            due,
            requests: Requests::default(),
            minimum: Minimum::default(),
            cpu: Duration::from_millis(cpu_ms),
            checks: 0,
            last_decision: None,
            patches: summarize(
                patches
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect(),
            ),
        }
    }

    fn report() -> RunReport {
        let mem = |peak_mib: u64, rss_mib: u64| Memory {
            peak_kib: peak_mib * 1024,
            rss_kib: rss_mib * 1024,
        };
        RunReport {
            ready: Duration::from_millis(250),
            memory_after_sync: mem(20, 18),
            memory_after_first_steady: Some(mem(24, 22)),
            memory_at_end: mem(25, 23),
            windows: vec![
                window(true, 1500, &[100, 200, 300]),
                window(false, 100, &[]),
                window(false, 300, &[]),
            ],
            rollout: None,
            rollouts_unreported: 0,
            lagged: 0,
        }
    }

    fn settings() -> RunSettings {
        RunSettings {
            binary: "watch-cluster".into(),
            workloads: 100,
            cluster_size: 1000,
            windows: 3,
            period: 5,
            sharing: true,
            dir: "/tmp".into(),
        }
    }

    #[test]
    fn a_simulator_run_gives_its_figures_in_plain_units_and_null_for_what_it_cannot_measure() {
        let v = sim_figures(&report(), &settings());
        assert_eq!(
            v,
            json!({
                "backend": "sim", "deployments": 1000, "watched": 100, "windows": 3, "period_s": 5,
                "setup_s": null, "start_to_ready_s": 0.25,
                "peak_rss_after_sync_mib": 20.0, "peak_rss_after_windows_mib": 25.0, "rss_growth_mib": 1.0,
                "cpu_window1_s": 1.5, "cpu_per_steady_window_s": 0.2,
                "fire_to_patch_p50_s": 0.2, "fire_to_patch_p99_s": 0.3, "patches_window1": 3,
                "floor_fire_to_patch_p50_s": null, "floor_fire_to_patch_p99_s": null,
                "api_requests_per_due_check": null, "api_requests_per_steady_check": null,
            })
        );
    }

    #[test]
    fn no_patches_give_null_latencies_not_zero() {
        let mut r = report();
        r.windows[0] = window(true, 1500, &[]);
        r.memory_after_first_steady = None;
        let v = sim_figures(&r, &settings());
        assert_eq!(v["fire_to_patch_p99_s"], Value::Null);
        assert_eq!(v["rss_growth_mib"], Value::Null);
        assert_eq!(v["patches_window1"], 0);
    }
}
