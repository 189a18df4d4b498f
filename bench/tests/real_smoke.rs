//! `watch-cluster-bench --cluster real` end to end at a small size (20 watched of 200 Deployments, two
//! windows of 5 s): the bench starts and stops a control plane of its own, so this runs through the test
//! wrapper (`.ci/test`), which has built the test bed's binaries; it never passes by skipping.

#![allow(clippy::expect_used)]

use std::process::Command;

#[test]
fn the_real_backend_runs_the_scenario_and_reports_every_figure() {
    if std::env::var_os("WATCH_CLUSTER_TESTBED").is_none() {
        panic!(
            "the real backend's smoke test runs through the test wrapper, which builds the test bed: \
             .ci/test -E 'binary(real_smoke)'"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("figures.json");
    let logs = dir.path().join("logs");
    let output = Command::new(env!("CARGO_BIN_EXE_watch-cluster-bench"))
        .args([
            "--cluster",
            "real",
            "--workloads",
            "20",
            "--windows",
            "2",
            "--period",
            "5",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--keep-logs")
        .arg(&logs)
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the bench failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.starts_with("backend: real control plane"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| fire → patch p99, window 1 |"),
        "{stdout}"
    );
    let figures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON was written"))
            .expect("the JSON parses");
    assert_eq!(figures["backend"], "real");
    assert_eq!(figures["deployments"], 200);
    assert_eq!(figures["patches_window1"], 20, "{figures:#}");
    assert_eq!(figures["floor_patches"], 20, "{figures:#}");
    assert_eq!(figures["floor_refused"], 0, "{figures:#}");
    for key in [
        "setup_s",
        "fire_to_patch_p99_s",
        "floor_fire_to_patch_p99_s",
        "api_requests_per_due_check",
        "api_requests_per_steady_check",
        "peak_rss_after_windows_mib",
    ] {
        assert!(
            figures[key].as_f64().is_some_and(|v| v > 0.0),
            "{key} is not a positive number: {figures:#}"
        );
    }
    // The control plane was stopped: no component of the bench's own is left running.
    for component in ["etcd", "kube-apiserver"] {
        assert!(
            !logs
                .join("testbed")
                .join(format!("{component}.pid"))
                .exists(),
            "{component} was not stopped"
        );
    }
}
