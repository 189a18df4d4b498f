//! One point of the cost curve: the figures of one run, read from the `curve-<N>.json` a bench run wrote.
//!
//! Input: the JSON object of `watch-cluster-bench --json` (or the record `curve` writes for a run that
//! failed: its size and a `failed` message). Output: a [`Point`] whose figures are `None` when the key is
//! missing or `null`, or when the run failed, so nothing downstream can show a figure that was not measured
//! as 0. The run's identity (`backend`, `deployments`) must be there: without it the point has no place.

use std::path::Path;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// The figures of one run that the curve shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// `sim` or `real`.
    pub backend: String,
    /// Deployments in the cluster.
    pub deployments: u64,
    /// Of which opted in.
    pub watched: Option<u64>,
    /// Measured windows.
    pub windows: Option<u64>,
    /// Seconds between windows.
    pub period_s: Option<f64>,
    /// Creating the cluster's objects, apart from the controller's figures.
    pub setup_s: Option<f64>,
    /// Controller start to `/readyz` 200.
    pub start_to_ready_s: Option<f64>,
    /// Peak RSS (VmHWM) after the last window.
    pub peak_rss_after_windows_mib: Option<f64>,
    /// Mean controller CPU per window with nothing due.
    pub cpu_per_steady_window_s: Option<f64>,
    /// Fire time → update patch, window 1 (everything due).
    pub fire_to_patch_p50_s: Option<f64>,
    /// The same, 99th percentile.
    pub fire_to_patch_p99_s: Option<f64>,
    /// Why the run gave no figures, when it failed.
    pub failed: Option<String>,
}

impl Point {
    /// Reads one run's object; `what` names it in errors (the file).
    pub fn from_json(value: &Value, what: &str) -> anyhow::Result<Self> {
        let Some(object) = value.as_object() else {
            bail!("{what}: expected a JSON object of one run's figures");
        };
        let backend = match object.get("backend") {
            Some(Value::String(b)) if b == "sim" || b == "real" => b.clone(),
            Some(other) => bail!("{what}: `backend` must be \"sim\" or \"real\", got {other}"),
            None => bail!("{what}: `backend` is missing"),
        };
        let deployments = count(value, "deployments", what)?
            .with_context(|| format!("{what}: `deployments` is missing"))?;
        let failed = match object.get("failed") {
            None | Some(Value::Null) => None,
            Some(Value::String(why)) => Some(why.clone()),
            Some(other) => bail!("{what}: `failed` must be a message, got {other}"),
        };
        // A failed run's figures, if it wrote any, are not figures of the scenario.
        let figure = |key: &str| -> anyhow::Result<Option<f64>> {
            let v = number(value, key, what)?;
            Ok(v.filter(|_| failed.is_none()))
        };
        Ok(Self {
            backend,
            deployments,
            watched: count(value, "watched", what)?,
            windows: count(value, "windows", what)?,
            period_s: number(value, "period_s", what)?,
            setup_s: figure("setup_s")?,
            start_to_ready_s: figure("start_to_ready_s")?,
            peak_rss_after_windows_mib: figure("peak_rss_after_windows_mib")?,
            cpu_per_steady_window_s: figure("cpu_per_steady_window_s")?,
            fire_to_patch_p50_s: figure("fire_to_patch_p50_s")?,
            fire_to_patch_p99_s: figure("fire_to_patch_p99_s")?,
            failed,
        })
    }
}

/// A non-negative number, `None` when missing or `null`; an error for anything else.
fn number(value: &Value, key: &str, what: &str) -> anyhow::Result<Option<f64>> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
            _ => bail!("{what}: `{key}` must be a number ≥ 0, got {n}"),
        },
        Some(other) => bail!("{what}: `{key}` must be a number or null, got {other}"),
    }
}

/// A whole number, `None` when missing or `null`.
fn count(value: &Value, key: &str, what: &str) -> anyhow::Result<Option<u64>> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .with_context(|| format!("{what}: `{key}` must be a whole number, got {v}")),
    }
}

/// `curve-<N>.json` in `dir`.
pub fn file_name(deployments: u64) -> String {
    format!("curve-{deployments}.json")
}

/// The size in a file name `curve-<N>.json`, or `None` for any other file.
fn size_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("curve-")?.strip_suffix(".json")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Every `curve-<N>.json` in `dir`, by size. Errors name the file; a file whose run is of another size
/// than its name says is an error too (a copied or renamed file would put a point in the wrong place).
pub fn read_dir(dir: &Path) -> anyhow::Result<Vec<Point>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("failed to read {}", dir.display()))?;
    let mut points = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Some(size) = path.file_name().and_then(|n| n.to_str()).and_then(size_of) else {
            continue;
        };
        let point = read_file(&path)?;
        if point.deployments != size {
            bail!(
                "{}: holds a run of {} Deployments, not {size}",
                path.display(),
                point.deployments
            );
        }
        points.push(point);
    }
    if points.is_empty() {
        bail!(
            "no curve-<N>.json in {}: run `watch-cluster-bench curve --out {0}` first",
            dir.display()
        );
    }
    points.sort_by_key(|p| p.deployments);
    Ok(points)
}

fn read_file(path: &Path) -> anyhow::Result<Point> {
    let what = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {what}"))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{what}: not valid JSON"))?;
    Point::from_json(&value, &what)
}

/// The record of a run that gave no figures: its place on the curve and why.
pub fn failed_record(backend: &str, deployments: u64, why: &str) -> Value {
    json!({
        "backend": backend,
        "deployments": deployments,
        "watched": deployments / 10,
        "failed": why,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn full() -> Value {
        json!({
            "backend": "real", "deployments": 10000, "watched": 1000, "windows": 10, "period_s": 20,
            "setup_s": 412.5, "start_to_ready_s": 1.25,
            "peak_rss_after_sync_mib": 30.1, "peak_rss_after_windows_mib": 31.5, "rss_growth_mib": 0.2,
            "cpu_window1_s": 2.0, "cpu_per_steady_window_s": 0.35,
            "fire_to_patch_p50_s": 0.4, "fire_to_patch_p99_s": 0.9, "patches_window1": 1000,
            "floor_fire_to_patch_p50_s": 0.3, "floor_fire_to_patch_p99_s": 0.7,
            "api_requests_per_due_check": 2.0, "api_requests_per_steady_check": 0.0,
        })
    }

    #[test]
    fn every_figure_the_curve_shows_is_read() {
        let p = Point::from_json(&full(), "f").unwrap();
        assert_eq!(
            p,
            Point {
                backend: "real".into(),
                deployments: 10000,
                watched: Some(1000),
                windows: Some(10),
                period_s: Some(20.0),
                setup_s: Some(412.5),
                start_to_ready_s: Some(1.25),
                peak_rss_after_windows_mib: Some(31.5),
                cpu_per_steady_window_s: Some(0.35),
                fire_to_patch_p50_s: Some(0.4),
                fire_to_patch_p99_s: Some(0.9),
                failed: None,
            }
        );
    }

    #[test]
    fn missing_and_null_figures_are_missing_not_zero() {
        let mut v = full();
        v.as_object_mut().unwrap().remove("setup_s");
        v["fire_to_patch_p99_s"] = Value::Null;
        let p = Point::from_json(&v, "f").unwrap();
        assert_eq!((p.setup_s, p.fire_to_patch_p99_s), (None, None));
        assert_eq!(p.fire_to_patch_p50_s, Some(0.4));
    }

    #[test]
    fn a_failed_run_has_its_size_and_reason_and_no_figures() {
        let p = Point::from_json(&failed_record("real", 50000, "exit status: 1"), "f").unwrap();
        assert_eq!((p.deployments, p.watched), (50000, Some(5000)));
        assert_eq!(p.failed.as_deref(), Some("exit status: 1"));
        assert_eq!(p.peak_rss_after_windows_mib, None);
        // Figures a failed run wrote anyway are dropped.
        let mut v = full();
        v["failed"] = json!("the controller crashed");
        let p = Point::from_json(&v, "f").unwrap();
        assert_eq!(
            (p.start_to_ready_s, p.cpu_per_steady_window_s),
            (None, None)
        );
    }

    #[test]
    fn a_run_without_its_identity_or_with_wrong_types_is_an_error_naming_the_key() {
        let err = |v: Value| {
            Point::from_json(&v, "curve-1.json")
                .unwrap_err()
                .to_string()
        };
        let mut v = full();
        v.as_object_mut().unwrap().remove("deployments");
        assert_eq!(err(v), "curve-1.json: `deployments` is missing");
        let mut v = full();
        v.as_object_mut().unwrap().remove("backend");
        assert_eq!(err(v), "curve-1.json: `backend` is missing");
        let mut v = full();
        v["backend"] = json!("kind");
        assert_eq!(
            err(v),
            "curve-1.json: `backend` must be \"sim\" or \"real\", got \"kind\""
        );
        let mut v = full();
        v["start_to_ready_s"] = json!("1.2 s");
        assert_eq!(
            err(v),
            "curve-1.json: `start_to_ready_s` must be a number or null, got \"1.2 s\""
        );
        let mut v = full();
        v["cpu_per_steady_window_s"] = json!(-1.0);
        assert!(err(v).contains("must be a number ≥ 0"));
        assert_eq!(
            err(json!([1, 2])),
            "curve-1.json: expected a JSON object of one run's figures"
        );
    }

    #[test]
    fn a_directory_gives_its_curve_files_by_size_and_ignores_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut big = full();
        big["deployments"] = json!(50000);
        std::fs::write(dir.path().join("curve-50000.json"), big.to_string()).unwrap();
        std::fs::write(dir.path().join("curve-10000.json"), full().to_string()).unwrap();
        std::fs::write(dir.path().join("curve-10000.md"), "table").unwrap();
        std::fs::write(dir.path().join("curve-x.json"), "{").unwrap();
        let points = read_dir(dir.path()).unwrap();
        let sizes: Vec<u64> = points.iter().map(|p| p.deployments).collect();
        assert_eq!(sizes, vec![10000, 50000]);

        std::fs::write(dir.path().join("curve-1000.json"), full().to_string()).unwrap();
        let e = read_dir(dir.path()).unwrap_err().to_string();
        assert!(
            e.ends_with("curve-1000.json: holds a run of 10000 Deployments, not 1000"),
            "{e}"
        );

        let empty = tempfile::tempdir().unwrap();
        let e = read_dir(empty.path()).unwrap_err().to_string();
        assert!(e.starts_with("no curve-<N>.json in "), "{e}");
    }
}
