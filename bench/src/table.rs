//! The one table: each figure of the watch-cluster run beside the naive baseline, the minimum, the target,
//! and whether the target was met.
//!
//! Input: the two [`RunReport`]s and the settings. Output: a Markdown table (so it can be pasted into
//! BENCHMARKS.md as printed). Targets are reported, never enforced.

use std::fmt::Write as _;
use std::time::Duration;

use crate::procfs::Memory;
use crate::run::RunReport;
use crate::stats::Summary;
use crate::window::WindowStats;

/// 32 MiB in KiB.
pub const RSS_TARGET_KIB: u64 = 32 * 1024;
/// What "no growth" tolerates: allocator noise.
pub const GROWTH_TOLERANCE_KIB: u64 = 1024;

/// A figure's name, how to read it from a window, and its minimum.
type Field = (&'static str, fn(&WindowStats) -> usize, usize);

struct Row {
    figure: String,
    ours: String,
    naive: String,
    ratio: String,
    minimum: String,
    target: String,
    met: Option<bool>,
}

fn row(figure: impl Into<String>, ours: String, naive: String) -> Row {
    Row {
        figure: figure.into(),
        ours,
        naive,
        ratio: String::new(),
        minimum: String::new(),
        target: String::new(),
        met: None,
    }
}

impl Row {
    fn ratio(mut self, ours: f64, naive: f64) -> Self {
        if ours > 0.0 {
            self.ratio = format!("{:.1}×", naive / ours);
        }
        self
    }
    fn minimum(mut self, m: impl ToString) -> Self {
        self.minimum = m.to_string();
        self
    }
    fn target(mut self, target: &str, met: Option<bool>) -> Self {
        self.target = target.to_owned();
        self.met = met;
        self
    }
}

pub fn secs(d: Option<Duration>) -> String {
    d.map_or("–".into(), |d| format!("{:.3} s", d.as_secs_f64()))
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub fn steady(r: &RunReport) -> Vec<&WindowStats> {
    r.windows.iter().filter(|w| !w.due).collect()
}

pub fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

pub fn fmt_mean(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

fn count_rows(rows: &mut Vec<Row>, ours: &RunReport, naive: Option<&RunReport>, n: usize) {
    let due = |r: &RunReport| r.windows.first().cloned();
    let (Some(w1), w1n) = (due(ours), naive.and_then(due)) else {
        return;
    };
    let fields: [Field; 3] = [
        (
            "tag-list requests",
            |w| w.requests.tag_lists,
            w1.minimum.tag_lists,
        ),
        ("manifest HEADs", |w| w.requests.heads, w1.minimum.heads),
        ("manifest GETs", |w| w.requests.gets, w1.minimum.gets),
    ];
    for (name, get, min) in fields {
        let n_val = w1n.as_ref().map(get);
        rows.push(
            row(
                format!("window 1 ({n} updates due): {name}"),
                get(&w1).to_string(),
                n_val.map_or("–".into(), |v| v.to_string()),
            )
            .ratio(get(&w1) as f64, n_val.unwrap_or(0) as f64)
            .minimum(min),
        );
    }
    let ratio = w1.requests.ratio(&w1.minimum);
    rows.push(
        row(
            "window 1: (tag lists + HEADs) ÷ minimum",
            ratio.map_or("–".into(), |r| format!("{r:.2}")),
            w1n.as_ref()
                .and_then(|w| w.requests.ratio(&w.minimum))
                .map_or("–".into(), |r| format!("{r:.2}")),
        )
        .target("1.00", ratio.map(|r| (0.995..=1.005).contains(&r))),
    );
    let s = steady(ours);
    let sn = naive.map(steady).unwrap_or_default();
    let min = s.first().map(|w| w.minimum).unwrap_or_default();
    let fields: [Field; 2] = [
        ("tag-list requests", |w| w.requests.tag_lists, min.tag_lists),
        ("manifest HEADs", |w| w.requests.heads, min.heads),
    ];
    for (name, get, m) in fields {
        let a = mean(s.iter().map(|w| get(w) as f64));
        let b = mean(sn.iter().map(|w| get(w) as f64));
        rows.push(
            row(
                format!("steady window (mean): {name}"),
                fmt_mean(a),
                fmt_mean(b),
            )
            .ratio(a.unwrap_or(0.0), b.unwrap_or(0.0))
            .minimum(m),
        );
    }
    let gets: usize = s.iter().map(|w| w.requests.gets).sum();
    let gets_n: usize = sn.iter().map(|w| w.requests.gets).sum();
    rows.push(
        row(
            "steady windows: manifest GETs (total)",
            gets.to_string(),
            gets_n.to_string(),
        )
        .minimum(0)
        .target("0", Some(gets == 0)),
    );
    let worst = s
        .iter()
        .filter_map(|w| w.requests.ratio(&w.minimum))
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    let worst_n = sn
        .iter()
        .filter_map(|w| w.requests.ratio(&w.minimum))
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    rows.push(
        row(
            "steady windows: (tag lists + HEADs) ÷ minimum (worst)",
            worst.map_or("–".into(), |r| format!("{r:.2}")),
            worst_n.map_or("–".into(), |r| format!("{r:.2}")),
        )
        .target("1.00", worst.map(|r| (0.995..=1.005).contains(&r))),
    );
}

fn time_rows(rows: &mut Vec<Row>, ours: &RunReport, naive: Option<&RunReport>) {
    let w1 = |r: &RunReport| r.windows.first().cloned();
    let (a, b) = (w1(ours), naive.and_then(w1));
    let cpu = |w: &Option<WindowStats>| w.as_ref().map(|w| w.cpu);
    rows.push(
        row("controller CPU, window 1", secs(cpu(&a)), secs(cpu(&b))).ratio(
            cpu(&a).map_or(0.0, |d| d.as_secs_f64()),
            cpu(&b).map_or(0.0, |d| d.as_secs_f64()),
        ),
    );
    let steady_cpu = |r: &RunReport| mean(steady(r).iter().map(|w| w.cpu.as_secs_f64()));
    let (sa, sb) = (steady_cpu(ours), naive.and_then(steady_cpu));
    rows.push(
        row(
            "controller CPU per steady window (mean)",
            secs(sa.map(Duration::from_secs_f64)),
            secs(sb.map(Duration::from_secs_f64)),
        )
        .ratio(sa.unwrap_or(0.0), sb.unwrap_or(0.0)),
    );
    let checks =
        |w: &Option<WindowStats>| w.as_ref().map_or("–".into(), |w| w.checks.to_string());
    rows.push(row("checks finished, window 1", checks(&a), checks(&b)));
    let fewest = |r: &RunReport| steady(r).iter().map(|w| w.checks).min();
    let show = |n: Option<usize>| n.map_or("–".into(), |n| n.to_string());
    rows.push(row(
        "checks finished per steady window (fewest)",
        show(fewest(ours)),
        show(naive.and_then(fewest)),
    ));
    let last = |w: &Option<WindowStats>| w.as_ref().and_then(|w| w.last_decision);
    rows.push(row(
        "fire → last decision, window 1",
        secs(last(&a)),
        secs(last(&b)),
    ));
    let worst = |r: &RunReport| steady(r).iter().filter_map(|w| w.last_decision).max();
    rows.push(row(
        "fire → last decision, steady (worst)",
        secs(worst(ours)),
        secs(naive.and_then(worst)),
    ));
    let p = |w: &Option<WindowStats>| w.as_ref().and_then(|w| w.patches);
    let (pa, pb) = (p(&a), p(&b));
    let count = |s: Option<Summary>| s.map_or(0, |s| s.count);
    rows.push(row(
        "update patches, window 1",
        count(pa).to_string(),
        count(pb).to_string(),
    ));
    rows.push(row(
        "fire → patch p50, window 1",
        secs(pa.map(|s| s.p50)),
        secs(pb.map(|s| s.p50)),
    ));
    rows.push(
        row(
            "fire → patch p99, window 1",
            secs(pa.map(|s| s.p99)),
            secs(pb.map(|s| s.p99)),
        )
        .target("≤ 1 s", pa.map(|s| s.p99 <= Duration::from_secs(1))),
    );
    api_rows(rows, ours, naive);
}

/// The controller's API requests per check (docs/design.md#api-requests-per-check). The minimum of a due
/// check is its update PATCH and its `ImageUpdated` Event; a check that finds nothing new needs none (the
/// workload, ServiceAccounts and pull secrets come from the watch and the shared caches). The rollout that
/// follows an update adds its own writes, counted in the due window too: see the breakdown under the table.
fn api_rows(rows: &mut Vec<Row>, ours: &RunReport, naive: Option<&RunReport>) {
    let per_check = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.2}"));
    let due = |r: &RunReport| r.windows.first().and_then(WindowStats::api_per_check);
    rows.push(
        row(
            "API requests per due check (window 1)",
            per_check(due(ours)),
            per_check(naive.and_then(due)),
        )
        .ratio(due(ours).unwrap_or(0.0), naive.and_then(due).unwrap_or(0.0))
        .minimum(API_MINIMUM_DUE),
    );
    let steady_api = |r: &RunReport| mean(steady(r).iter().filter_map(|w| w.api_per_check()));
    rows.push(
        row(
            "API requests per steady check",
            per_check(steady_api(ours)),
            per_check(naive.and_then(steady_api)),
        )
        .ratio(
            steady_api(ours).unwrap_or(0.0),
            naive.and_then(steady_api).unwrap_or(0.0),
        )
        .minimum(API_MINIMUM_STEADY),
    );
}

/// A due check's update PATCH and `ImageUpdated` Event.
const API_MINIMUM_DUE: usize = 2;
/// A check that finds nothing new.
const API_MINIMUM_STEADY: usize = 0;

/// Each window's API requests by verb and resource, below the table: what the per-check rows are made of.
pub fn api_breakdown(ours: &RunReport) -> String {
    let mut out = String::new();
    for (k, w) in ours.windows.iter().enumerate() {
        if k > 1 {
            // Steady windows are alike: the first stands for them.
            break;
        }
        let label = if w.due {
            "window 1 (due)"
        } else {
            "window 2 (steady)"
        };
        let _ = writeln!(
            out,
            "API requests, {label}, {} checks: {}",
            w.checks,
            crate::window::describe_requests(&w.api)
        );
    }
    out
}

fn process_rows(rows: &mut Vec<Row>, ours: &RunReport, naive: Option<&RunReport>, windows: usize) {
    let ready = |r: &RunReport| Some(r.ready);
    rows.push(
        row(
            "start → ready",
            secs(ready(ours)),
            secs(naive.and_then(ready)),
        )
        .target("≤ 3 s", Some(ours.ready <= Duration::from_secs(3))),
    );
    let mem = |m: Memory| format!("{} ({} now)", mib(m.peak_kib), mib(m.rss_kib));
    let na = |f: &dyn Fn(&RunReport) -> String| naive.map_or("–".into(), f);
    rows.push(
        row(
            "peak RSS, VmHWM (VmRSS), after sync",
            mem(ours.memory_after_sync),
            na(&|r| mem(r.memory_after_sync)),
        )
        .target(
            "≤ 32 MiB",
            Some(ours.memory_after_sync.peak_kib <= RSS_TARGET_KIB),
        ),
    );
    rows.push(
        row(
            format!("peak RSS, VmHWM (VmRSS), after {windows} windows"),
            mem(ours.memory_at_end),
            na(&|r| mem(r.memory_at_end)),
        )
        .target(
            "≤ 32 MiB",
            Some(ours.memory_at_end.peak_kib <= RSS_TARGET_KIB),
        ),
    );
    let growth = |r: &RunReport| {
        r.memory_after_first_steady
            .map(|m| r.memory_at_end.rss_kib as i64 - m.rss_kib as i64)
    };
    let g = growth(ours);
    let show =
        |g: Option<i64>| g.map_or("–".into(), |g| format!("{:+.1} MiB", g as f64 / 1024.0));
    rows.push(
        row(
            "RSS (VmRSS) growth, after window 2 → last window",
            show(g),
            show(naive.and_then(growth)),
        )
        .target(
            "none (≤ 1 MiB)",
            g.map(|g| g <= GROWTH_TOLERANCE_KIB as i64),
        ),
    );
    let roll = |r: &RunReport| r.rollout;
    let (ra, rb) = (roll(ours), naive.and_then(roll));
    rows.push(row(
        "rollout complete → COMPLETED webhook p50",
        secs(ra.map(|s| s.p50)),
        secs(rb.map(|s| s.p50)),
    ));
    rows.push(
        row(
            "rollout complete → COMPLETED webhook p99 (max)",
            ra.map_or("–".into(), |s| {
                format!("{} ({})", secs(Some(s.p99)), secs(Some(s.max)))
            }),
            rb.map_or("–".into(), |s| {
                format!("{} ({})", secs(Some(s.p99)), secs(Some(s.max)))
            }),
        )
        .target("≤ 1 s", ra.map(|s| s.p99 <= Duration::from_secs(1))),
    );
    rows.push(row(
        "completed rollouts without a COMPLETED webhook",
        ours.rollouts_unreported.to_string(),
        na(&|r| r.rollouts_unreported.to_string()),
    ));
}

/// Renders the table.
pub fn render(
    ours: &RunReport,
    naive: Option<&RunReport>,
    workloads: usize,
    windows: usize,
) -> String {
    let mut rows = Vec::new();
    count_rows(&mut rows, ours, naive, workloads);
    time_rows(&mut rows, ours, naive);
    process_rows(&mut rows, ours, naive, windows);
    let mut out = String::from(
        "| figure | watch-cluster | naive baseline | naive ÷ watch-cluster | minimum | target | met |\n\
         |---|---:|---:|---:|---:|---|---|\n",
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.figure, r.ours, r.naive, r.ratio, r.minimum, r.target, met
        );
    }
    out
}
