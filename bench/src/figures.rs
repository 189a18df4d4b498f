//! The run's figures as one JSON object (`--json PATH`), for both backends, read by the cost-curve command.
//!
//! Input: a [`RunReport`] (and, for the real backend, the [`RealReport`] around it). Output: a JSON object
//! whose keys are always present: numbers, or `null` for what the backend does not measure (the floor and
//! the API requests on the simulator) or what did not happen (no patch landed). Durations in seconds,
//! memory in MiB.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::real::RealReport;
use crate::run::RunReport;
use crate::table::{mean, steady};

/// What the figures describe besides the reports.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// `sim` or `real`.
    pub backend: &'static str,
    /// Deployments in the cluster.
    pub deployments: usize,
    /// Watched (annotated) Deployments.
    pub watched: usize,
    /// Measured windows.
    pub windows: usize,
    /// Seconds between fire times.
    pub period: u64,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The figures both backends have.
pub fn of_run(shape: Shape, r: &RunReport) -> Value {
    let w1 = r.windows.first();
    let patches = w1.and_then(|w| w.patches);
    let growth = r
        .memory_after_first_steady
        .map(|m| (r.memory_at_end.rss_kib as f64 - m.rss_kib as f64) / 1024.0);
    json!({
        "backend": shape.backend,
        "deployments": shape.deployments,
        "watched": shape.watched,
        "windows": shape.windows,
        "period_s": shape.period,
        "setup_s": r.setup.as_secs_f64(),
        "start_to_ready_s": r.ready.as_secs_f64(),
        "peak_rss_after_sync_mib": mib(r.memory_after_sync.peak_kib),
        "peak_rss_after_windows_mib": mib(r.memory_at_end.peak_kib),
        "rss_growth_mib": growth,
        "cpu_window1_s": w1.map(|w| w.cpu.as_secs_f64()),
        "cpu_per_steady_window_s": mean(steady(r).iter().map(|w| w.cpu.as_secs_f64())),
        "fire_to_patch_p50_s": patches.map(|s| s.p50.as_secs_f64()),
        "fire_to_patch_p99_s": patches.map(|s| s.p99.as_secs_f64()),
        "patches_window1": patches.map_or(0, |s| s.count),
        "checks_window1": w1.map(|w| w.checks),
        "registry_window1": w1.map(|w| json!({
            "tag_lists": w.requests.tag_lists, "heads": w.requests.heads, "gets": w.requests.gets,
        })),
        "floor_fire_to_patch_p50_s": null,
        "floor_fire_to_patch_p99_s": null,
        // The simulator counts its requests (an empty tally: a report from before it did).
        "api_requests_per_due_check": w1.filter(|w| !w.api.is_empty()).and_then(|w| w.api_per_check()),
        "api_requests_per_steady_check": mean(
            steady(r).iter().filter(|w| !w.api.is_empty()).filter_map(|w| w.api_per_check())
        ),
    })
}

/// Total requests of one window.
pub fn total(counts: &BTreeMap<(String, String), usize>) -> usize {
    counts.values().sum()
}

/// API requests per check: window 1's per due check, and the steady windows' (all their requests over all
/// their checks). `None` where no check finished.
pub fn per_check(real: &RealReport) -> (Option<f64>, Option<f64>) {
    let windows = &real.run.windows;
    let due = match (real.api.first(), windows.first()) {
        (Some(api), Some(w)) if w.checks > 0 => Some(total(api) as f64 / w.checks as f64),
        _ => None,
    };
    let (requests, checks) = real
        .api
        .iter()
        .zip(windows)
        .filter(|(_, w)| !w.due)
        .fold((0, 0), |(r, c), (api, w)| (r + total(api), c + w.checks));
    let steady = (checks > 0).then(|| requests as f64 / checks as f64);
    (due, steady)
}

/// The real backend's figures: [`of_run`]'s, the floor, the API requests, and the setup's parts.
pub fn of_real(shape: Shape, real: &RealReport) -> Value {
    let mut figures = of_run(shape, &real.run);
    let (due, steady_per_check) = per_check(real);
    let by_kind = |counts: &BTreeMap<(String, String), usize>| {
        counts
            .iter()
            .map(|((verb, resource), n)| (format!("{verb} {resource}"), json!(n)))
            .collect::<serde_json::Map<String, Value>>()
    };
    let extra = json!({
        "floor_fire_to_patch_p50_s": real.floor.map(|s| s.p50.as_secs_f64()),
        "floor_fire_to_patch_p99_s": real.floor.map(|s| s.p99.as_secs_f64()),
        "floor_patches": real.floor.map_or(0, |s| s.count),
        "floor_refused": real.floor_refused,
        "api_requests_per_due_check": due,
        "api_requests_per_steady_check": steady_per_check,
        "api_requests_by_window": real.api.iter().map(by_kind).collect::<Vec<_>>(),
        "control_plane_s": real.control_plane.as_secs_f64(),
        "created_s": real.created.as_secs_f64(),
    });
    if let (Some(f), Some(e)) = (figures.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            f.insert(k.clone(), v.clone());
        }
    }
    figures
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::procfs::Memory;
    use crate::scenario::Minimum;
    use crate::stats::summarize;
    use crate::window::{Requests, WindowStats};

    pub(crate) fn window(due: bool, checks: usize, cpu_ms: u64, patches: &[u64]) -> WindowStats {
        WindowStats {
            due,
            requests: Requests {
                tag_lists: 50,
                heads: 350,
                gets: 200,
                other: 0,
            },
            minimum: Minimum::default(),
            cpu: Duration::from_millis(cpu_ms),
            checks,
            last_decision: Some(Duration::from_millis(900)),
            patches: summarize(
                patches
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect(),
            ),
            api: Default::default(),
        }
    }

    pub(crate) fn report() -> RunReport {
        RunReport {
            setup: Duration::from_secs(12),
            ready: Duration::from_millis(250),
            memory_after_sync: Memory {
                peak_kib: 20 * 1024,
                rss_kib: 18 * 1024,
            },
            memory_after_first_steady: Some(Memory {
                peak_kib: 30 * 1024,
                rss_kib: 25 * 1024,
            }),
            memory_at_end: Memory {
                peak_kib: 31 * 1024,
                rss_kib: 25 * 1024 + 512,
            },
            windows: vec![
                window(true, 10, 2000, &[100, 200, 300]),
                window(false, 10, 100, &[]),
                window(false, 10, 300, &[]),
            ],
            rollout: None,
            rollouts_unreported: 0,
            lagged: 0,
        }
    }

    const KEYS: [&str; 19] = [
        "backend",
        "deployments",
        "watched",
        "windows",
        "period_s",
        "setup_s",
        "start_to_ready_s",
        "peak_rss_after_sync_mib",
        "peak_rss_after_windows_mib",
        "rss_growth_mib",
        "cpu_window1_s",
        "cpu_per_steady_window_s",
        "fire_to_patch_p50_s",
        "fire_to_patch_p99_s",
        "patches_window1",
        "floor_fire_to_patch_p50_s",
        "floor_fire_to_patch_p99_s",
        "api_requests_per_due_check",
        "api_requests_per_steady_check",
    ];

    fn shape(backend: &'static str) -> Shape {
        Shape {
            backend,
            deployments: 100,
            watched: 10,
            windows: 3,
            period: 5,
        }
    }

    #[test]
    fn the_simulator_figures_have_every_key_and_null_for_what_it_does_not_measure() {
        let v = of_run(shape("sim"), &report());
        for key in KEYS {
            assert!(v.get(key).is_some(), "{key} missing");
        }
        assert_eq!(v["backend"], "sim");
        assert_eq!(v["peak_rss_after_windows_mib"], 31.0);
        assert_eq!(v["rss_growth_mib"], 0.5);
        assert_eq!(v["cpu_window1_s"], 2.0);
        assert_eq!(v["cpu_per_steady_window_s"], 0.2);
        assert_eq!(v["fire_to_patch_p99_s"], 0.3);
        assert_eq!(v["patches_window1"], 3);
        assert!(v["floor_fire_to_patch_p99_s"].is_null());
        assert!(v["api_requests_per_due_check"].is_null());
    }

    #[test]
    fn the_simulator_figures_carry_its_api_requests_per_check_when_it_counted_them() {
        let mut r = report();
        r.windows[0].api = [(("patch".to_owned(), "deployments".to_owned()), 6)].into();
        let v = of_run(shape("sim"), &r);
        assert_eq!(
            v["api_requests_per_due_check"],
            6.0 / r.windows[0].checks as f64
        );
        assert!(
            v["api_requests_per_steady_check"].is_null(),
            "no steady window counted any"
        );
    }

    pub(crate) fn real_report() -> RealReport {
        let mut w1 = BTreeMap::new();
        w1.insert(("get".to_owned(), "deployments.apps".to_owned()), 10);
        w1.insert(("patch".to_owned(), "deployments.apps".to_owned()), 10);
        w1.insert(("create".to_owned(), "events.events.k8s.io".to_owned()), 5);
        let mut steady = BTreeMap::new();
        steady.insert(("get".to_owned(), "deployments.apps".to_owned()), 10);
        RealReport {
            control_plane: Duration::from_secs(15),
            created: Duration::from_secs(8),
            setup: Duration::from_secs(12),
            run: report(),
            api: vec![w1, steady.clone(), steady],
            floor: summarize(vec![Duration::from_millis(100), Duration::from_millis(150)]),
            floor_refused: 0,
        }
    }

    #[test]
    fn the_real_figures_add_the_floor_and_the_requests_per_check() {
        let v = of_real(shape("real"), &real_report());
        for key in KEYS {
            assert!(v.get(key).is_some(), "{key} missing");
        }
        assert_eq!(v["backend"], "real");
        assert_eq!(v["floor_fire_to_patch_p99_s"], 0.15);
        assert_eq!(v["api_requests_per_due_check"], 2.5);
        assert_eq!(v["api_requests_per_steady_check"], 1.0);
        assert_eq!(v["api_requests_by_window"][0]["patch deployments.apps"], 10);
        assert_eq!(v["control_plane_s"], 15.0);
    }
}
