//! The real backend's table: the controller's figures on the real control plane beside the floor (a minimal
//! client sending the same patches), the minimum, the target, and whether it was met; then the
//! controller's API requests per window by verb and resource.
//!
//! Input: a [`RealReport`]. Output: Markdown, in the column style of the simulator's table. Targets are
//! reported, never enforced.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use crate::figures::{per_check, total};
use crate::procfs::Memory;
use crate::real::RealReport;
use crate::table::{GROWTH_TOLERANCE_KIB, RSS_TARGET_KIB, fmt_mean, mean, mib, secs, steady};

/// Fire → patch within this multiple of the floor (issue 16).
const FLOOR_TARGET: f64 = 1.5;

#[derive(Default)]
struct Row {
    figure: String,
    ours: String,
    floor: String,
    ratio: String,
    minimum: String,
    target: String,
    met: Option<bool>,
}

fn row(figure: impl Into<String>, ours: impl Into<String>) -> Row {
    Row {
        figure: figure.into(),
        ours: ours.into(),
        ..Row::default()
    }
}

/// Renders the table.
pub fn render(real: &RealReport, workloads: usize, windows: usize) -> String {
    let r = &real.run;
    let w1 = r.windows.first();
    let st = steady(r);
    let mut rows = vec![
        row(
            "control plane up (testbed/up, apply -k k8s/)",
            secs(Some(real.control_plane)),
        ),
        row("setup: every Deployment created", secs(Some(real.created))),
        row(
            "setup: created → every watched rollout complete",
            secs(Some(real.setup)),
        ),
    ];
    if let Some(w) = w1 {
        for (name, ours, min) in [
            (
                "tag-list requests",
                w.requests.tag_lists,
                w.minimum.tag_lists,
            ),
            ("manifest HEADs", w.requests.heads, w.minimum.heads),
            ("manifest GETs", w.requests.gets, w.minimum.gets),
        ] {
            let mut x = row(
                format!("window 1 ({workloads} updates due): registry {name}"),
                ours.to_string(),
            );
            x.minimum = min.to_string();
            rows.push(x);
        }
    }
    for (name, get) in [
        (
            "tag-list requests",
            (|w| w.requests.tag_lists) as fn(&crate::window::WindowStats) -> usize,
        ),
        ("manifest HEADs", |w| w.requests.heads),
    ] {
        let mut x = row(
            format!("steady window (mean): registry {name}"),
            fmt_mean(mean(st.iter().map(|w| get(w) as f64))),
        );
        x.minimum = st.first().map_or(String::new(), |w| {
            if name.starts_with("tag") {
                w.minimum.tag_lists
            } else {
                w.minimum.heads
            }
            .to_string()
        });
        rows.push(x);
    }
    let (due, steady_per_check) = per_check(real);
    rows.push(row(
        "API requests, window 1 (total)",
        real.api
            .first()
            .map_or("–".into(), |a| total(a).to_string()),
    ));
    rows.push(row(
        "API requests per due check, window 1",
        due.map_or("–".into(), |v| format!("{v:.2}")),
    ));
    let steady_api: Vec<usize> = real
        .api
        .iter()
        .zip(&r.windows)
        .filter(|(_, w)| !w.due)
        .map(|(a, _)| total(a))
        .collect();
    rows.push(row(
        "API requests per steady window (mean)",
        fmt_mean(mean(steady_api.iter().map(|n| *n as f64))),
    ));
    rows.push(row(
        "API requests per check, steady windows",
        steady_per_check.map_or("–".into(), |v| format!("{v:.2}")),
    ));
    rows.push(row("controller CPU, window 1", secs(w1.map(|w| w.cpu))));
    rows.push(row(
        "controller CPU per steady window (mean)",
        secs(mean(st.iter().map(|w| w.cpu.as_secs_f64())).map(Duration::from_secs_f64)),
    ));
    rows.push(row(
        "checks finished, window 1",
        w1.map_or("–".into(), |w| w.checks.to_string()),
    ));
    rows.push(row(
        "checks finished per steady window (fewest)",
        st.iter()
            .map(|w| w.checks)
            .min()
            .map_or("–".into(), |n| n.to_string()),
    ));
    rows.push(row(
        "fire → last decision, window 1",
        secs(w1.and_then(|w| w.last_decision)),
    ));
    let patches = w1.and_then(|w| w.patches);
    let mut x = row(
        "update patches, window 1",
        patches.map_or(0, |s| s.count).to_string(),
    );
    x.floor = real.floor.map_or(0, |s| s.count).to_string();
    if real.floor_refused > 0 {
        x.floor = format!("{} ({} refused)", x.floor, real.floor_refused);
    }
    rows.push(x);
    for (name, pick) in [
        (
            "p50",
            (|s: &crate::stats::Summary| s.p50) as fn(&crate::stats::Summary) -> Duration,
        ),
        ("p99", |s| s.p99),
    ] {
        let ours = patches.map(|s| pick(&s));
        let floor = real.floor.map(|s| pick(&s));
        let mut x = row(format!("fire → patch {name}, window 1"), secs(ours));
        x.floor = secs(floor);
        let ratio = match (ours, floor) {
            (Some(a), Some(b)) if b > Duration::ZERO => Some(a.as_secs_f64() / b.as_secs_f64()),
            _ => None,
        };
        x.ratio = ratio.map_or(String::new(), |v| format!("{v:.2}×"));
        if name == "p99" {
            x.target = format!("≤ {FLOOR_TARGET}× floor");
            x.met = ratio.map(|v| v <= FLOOR_TARGET);
        }
        rows.push(x);
    }
    let mut x = row("start → ready", secs(Some(r.ready)));
    x.target = "≤ 3 s".into();
    x.met = Some(r.ready <= Duration::from_secs(3));
    rows.push(x);
    let mem = |m: Memory| format!("{} ({} now)", mib(m.peak_kib), mib(m.rss_kib));
    for (name, m) in [
        (
            "peak RSS, VmHWM (VmRSS), after sync".to_owned(),
            r.memory_after_sync,
        ),
        (
            format!("peak RSS, VmHWM (VmRSS), after {windows} windows"),
            r.memory_at_end,
        ),
    ] {
        let mut x = row(name, mem(m));
        x.target = "≤ 32 MiB".into();
        x.met = Some(m.peak_kib <= RSS_TARGET_KIB);
        rows.push(x);
    }
    let growth = r
        .memory_after_first_steady
        .map(|m| r.memory_at_end.rss_kib as i64 - m.rss_kib as i64);
    let mut x = row(
        "RSS (VmRSS) growth, after window 2 → last window",
        growth.map_or("–".into(), |g| format!("{:+.1} MiB", g as f64 / 1024.0)),
    );
    x.target = "none (≤ 1 MiB)".into();
    x.met = growth.map(|g| g <= GROWTH_TOLERANCE_KIB as i64);
    rows.push(x);
    rows.push(row(
        "rollout complete → COMPLETED webhook p50",
        secs(r.rollout.map(|s| s.p50)),
    ));
    rows.push(row(
        "rollout complete → COMPLETED webhook p99 (max)",
        r.rollout.map_or("–".into(), |s| {
            format!("{} ({})", secs(Some(s.p99)), secs(Some(s.max)))
        }),
    ));
    rows.push(row(
        "completed rollouts without a COMPLETED webhook",
        r.rollouts_unreported.to_string(),
    ));

    let mut out = String::from(
        "| figure | watch-cluster | floor (minimal client) | watch-cluster ÷ floor | minimum | target | met |\n\
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
            r.figure, r.ours, r.floor, r.ratio, r.minimum, r.target, met
        );
    }
    out.push_str(&requests_table(real));
    out
}

/// The controller's API requests by verb and resource: window 1, and the mean of the steady windows.
fn requests_table(real: &RealReport) -> String {
    let kinds: BTreeSet<&(String, String)> = real.api.iter().flat_map(|a| a.keys()).collect();
    let steady: Vec<_> = real
        .api
        .iter()
        .zip(&real.run.windows)
        .filter(|(_, w)| !w.due)
        .map(|(a, _)| a)
        .collect();
    let mut out = String::from(
        "\nThe controller's API requests (audit log, its ServiceAccount, by time received):\n\n\
         | verb | resource | window 1 | steady window (mean) |\n|---|---|---:|---:|\n",
    );
    for kind in kinds {
        let w1 = real
            .api
            .first()
            .and_then(|a| a.get(kind))
            .copied()
            .unwrap_or(0);
        let mean = mean(
            steady
                .iter()
                .map(|a| a.get(kind).copied().unwrap_or(0) as f64),
        );
        let _ = writeln!(
            out,
            "| {} | {} | {w1} | {} |",
            kind.0,
            kind.1,
            fmt_mean(mean)
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::figures::tests::real_report;

    #[test]
    fn the_real_table_compares_with_the_floor_and_lists_requests_by_kind() {
        let text = render(&real_report(), 10, 3);
        let line = |start: &str| {
            text.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no row {start:?} in\n{text}"))
                .to_owned()
        };
        // Ours: 100, 200, 300 ms; floor 100, 150 ms.
        assert_eq!(
            line("| fire → patch p99, window 1"),
            "| fire → patch p99, window 1 | 0.300 s | 0.150 s | 2.00× |  | ≤ 1.5× floor | **no** |"
        );
        assert_eq!(
            line("| fire → patch p50, window 1"),
            "| fire → patch p50, window 1 | 0.200 s | 0.100 s | 2.00× |  |  |  |"
        );
        assert!(line("| API requests per due check").contains("| 2.50 |"));
        assert!(line("| API requests per check, steady").contains("| 1.00 |"));
        assert_eq!(
            line("| patch | deployments.apps"),
            "| patch | deployments.apps | 10 | 0.0 |"
        );
        assert_eq!(
            line("| get | deployments.apps"),
            "| get | deployments.apps | 10 | 10.0 |"
        );
        assert!(line("| peak RSS, VmHWM (VmRSS), after 3 windows").ends_with("| ≤ 32 MiB | yes |"));
    }
}
