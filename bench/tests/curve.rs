//! `watch-cluster-bench curve` end to end on the simulated cluster: two small sizes, each run as a child
//! bench, collected into the table and the PNG; then rendered again from the saved runs with `--from`.

#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn bench() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_watch-cluster-bench"))
}

/// The controller the children run: `watch-cluster` beside the bench, built by the same cargo invocation
/// for a workspace test run.
fn controller() -> PathBuf {
    let path = bench().with_file_name("watch-cluster");
    assert!(
        path.is_file(),
        "{} is missing: build it in the same profile (`cargo build -p watch-cluster`) or run the workspace's tests",
        path.display()
    );
    path
}

fn figures(dir: &Path, size: u64) -> Value {
    let path = dir.join(format!("curve-{size}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_curve_runs_each_size_as_a_child_bench_and_renders_every_saved_run() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("curve");
    let status = Command::new(bench())
        .args(["curve", "--cluster", "sim", "--sizes", "200,100", "--out"])
        .arg(&out)
        .arg("--controller")
        .arg(controller())
        .status()
        .expect("the bench starts");
    assert!(status.success(), "curve exited with {status}");

    for (size, watched) in [(100, 10), (200, 20)] {
        let v = figures(&out, size);
        assert_eq!(v["backend"], "sim");
        assert_eq!(
            (v["deployments"].as_u64(), v["watched"].as_u64()),
            (Some(size), Some(watched))
        );
        assert!(
            v["peak_rss_after_windows_mib"]
                .as_f64()
                .is_some_and(|m| m > 1.0),
            "{v}"
        );
        assert_eq!(
            v["patches_window1"], watched,
            "every watched Deployment was patched: {v}"
        );
        let md = std::fs::read_to_string(out.join(format!("curve-{size}.md")))
            .expect("the child's table");
        assert!(md.contains("| figure | watch-cluster |"), "{md}");
    }
    let table = std::fs::read_to_string(out.join("cost-curve.md")).expect("cost-curve.md");
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| 1") || l.starts_with("| 2"))
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].starts_with("| 100 | 10 | ") && rows[1].starts_with("| 200 | 20 | "),
        "{table}"
    );
    assert!(table.contains("simulated API server"), "{table}");
    let png = std::fs::read(out.join("cost-curve.png")).expect("cost-curve.png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // A point run by hand joins the others: here a failed one, shown as missing.
    std::fs::write(
        out.join("curve-50000.json"),
        r#"{"backend": "sim", "deployments": 50000, "watched": 5000, "failed": "by hand: stopped"}"#,
    )
    .expect("a saved run");
    std::fs::remove_file(out.join("cost-curve.md")).expect("removed");
    let status = Command::new(bench())
        .args(["curve", "--from"])
        .arg(&out)
        .status()
        .expect("the bench starts");
    assert!(status.success(), "curve --from exited with {status}");
    let table = std::fs::read_to_string(out.join("cost-curve.md")).expect("cost-curve.md again");
    assert!(
        table.contains("| 50,000 | 5,000 | – | – | – | – | – | – | – |")
            && table.contains("The run of 50,000 Deployments failed: by hand: stopped"),
        "{table}"
    );
}
