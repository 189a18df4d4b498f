//! The push bench's table: the latency phase beside the storm.
//!
//! Input: a [`PushReport`] and the settings. Output: a Markdown table (pasted into BENCHMARKS.md as printed)
//! and a line with the tags the storm's workloads ended on. Nothing is judged here: there are no targets.

use std::fmt::Write as _;
use std::time::Duration;

use crate::counts::Counts;
use crate::push::{PushReport, PushSettings};

/// Milliseconds with one decimal.
fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Seconds with two decimals.
fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A counter as an integer (they are counts).
fn count(v: f64) -> String {
    format!("{v:.0}")
}

/// One row per counter of both phases: events by result, woken workloads, checks by outcome, registry
/// requests by method, patches.
fn count_rows(latency: &Counts, storm: &Counts) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    let both = |rows: &mut Vec<(String, String, String)>, figure: String, key: &str| {
        rows.push((figure, count(latency.get(key)), count(storm.get(key))));
    };
    let keys = |prefix: &str| {
        let mut suffixes: Vec<String> = latency
            .under(prefix)
            .chain(storm.under(prefix))
            .map(|(s, _)| s.to_owned())
            .collect();
        suffixes.sort();
        suffixes.dedup();
        suffixes
    };
    for result in keys("events") {
        both(
            &mut rows,
            format!("push events received: {result}"),
            &format!("events/{result}"),
        );
    }
    for result in keys("push_checks") {
        let figure = match result.as_str() {
            "woken" => "workloads woken by a push".to_owned(),
            "unmatched" => "accepted pushes no workload uses".to_owned(),
            other => format!("push checks: {other}"),
        };
        both(&mut rows, figure, &format!("push_checks/{result}"));
    }
    rows.push((
        "checks finished".into(),
        count(latency.total("checks")),
        count(storm.total("checks")),
    ));
    for outcome in keys("checks") {
        both(
            &mut rows,
            format!("… outcome {outcome}"),
            &format!("checks/{outcome}"),
        );
    }
    rows.push((
        "registry requests (controller)".into(),
        count(latency.total("requests")),
        count(storm.total("requests")),
    ));
    for method in keys("requests") {
        both(
            &mut rows,
            format!("… {method}"),
            &format!("requests/{method}"),
        );
    }
    both(&mut rows, "update patches".into(), "updates");
    rows
}

/// Renders the report.
pub fn render(report: &PushReport, settings: &PushSettings) -> String {
    let latency = &report.latency;
    let storm = &report.storm;
    let mut rows: Vec<(String, String, String)> = vec![
        (
            "pushes".into(),
            settings.pushes.to_string(),
            format!(
                "{} from {} tasks",
                settings.storm_pushes,
                settings.storm_tasks.clamp(1, settings.storm_pushes.max(1))
            ),
        ),
        (
            "Deployments on the pushed repository".into(),
            "1".into(),
            settings.storm_workloads.to_string(),
        ),
    ];
    let summary = latency.summary;
    let pick = |f: fn(&crate::stats::Summary) -> Duration| {
        summary.as_ref().map_or("–".into(), |s| ms(f(s)))
    };
    rows.push(("push → patch p50".into(), pick(|s| s.p50), "".into()));
    rows.push(("push → patch p99".into(), pick(|s| s.p99), "".into()));
    rows.push(("push → patch max".into(), pick(|s| s.max), "".into()));
    rows.push((
        "pushes not patched within 30 s".into(),
        latency.missed.to_string(),
        "".into(),
    ));
    let push_time = if settings.storm_whole {
        format!("{} (whole images)", secs(storm.push_time))
    } else {
        format!(
            "{} (tag PUTs, after {} staging blobs and platform manifests)",
            secs(storm.push_time),
            secs(storm.staging)
        )
    };
    rows.push(("time to push them all".into(), "".into(), push_time));
    let at_highest = storm
        .final_tags
        .get(&format!("1.1.{}", settings.storm_pushes))
        .copied()
        .unwrap_or(0);
    rows.push((
        "first push → every workload patched to the highest tag".into(),
        "".into(),
        storm.all_patched.map_or_else(
            || {
                format!(
                    "**never** ({at_highest} of {} got there)",
                    settings.storm_workloads
                )
            },
            secs,
        ),
    ));
    rows.extend(count_rows(&latency.counts, &storm.counts));
    let mut out =
        String::from("| figure | latency (one push at a time) | storm |\n|---|---:|---:|\n");
    for (figure, a, b) in rows {
        let _ = writeln!(out, "| {figure} | {a} | {b} |");
    }
    let tags: Vec<String> = storm
        .final_tags
        .iter()
        .map(|(tag, n)| format!("{tag} × {n}"))
        .collect();
    let _ = writeln!(
        out,
        "\nstorm workloads at the end: {}; controller start → ready {}",
        tags.join(", "),
        secs(report.ready)
    );
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counters_of_both_phases_share_rows_and_missing_ones_are_zero() {
        let latency = Counts::parse(
            "watch_cluster_checks_total{outcome=\"updated\"} 5\n\
             watch_cluster_registry_requests_total{registry=\"r\",method=\"GET\",status=\"200\"} 10\n\
             watch_cluster_updates_total 5\n",
        );
        let storm = Counts::parse(
            "watch_cluster_checks_total{outcome=\"skipped\"} 7\n\
             watch_cluster_checks_total{outcome=\"updated\"} 3\n\
             watch_cluster_push_checks_total{result=\"woken\"} 40\n",
        );
        let rows = count_rows(&latency, &storm);
        let find = |f: &str| rows.iter().find(|r| r.0 == f).cloned().unwrap();
        assert_eq!(
            find("checks finished"),
            ("checks finished".into(), "5".into(), "10".into())
        );
        assert_eq!(find("… outcome skipped").1, "0");
        assert_eq!(find("workloads woken by a push").2, "40");
        assert_eq!(find("… GET").2, "0");
        assert_eq!(find("update patches").1, "5");
    }

    #[test]
    fn durations_are_printed_in_their_unit() {
        assert_eq!(ms(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(secs(Duration::from_millis(1_234)), "1.23 s");
    }
}
