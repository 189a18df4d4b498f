//! `watch-cluster demo` (docs/settings.md#commands) as a user runs it: the built binary, its exit status and its story on
//! stdout, with Debian's registry and with the in-process one.

use std::{process::Stdio, time::Duration};

use serde_json::Value;

/// The demo aims at well under a minute; a slow CI machine gets some slack.
const DEMO_TIMEOUT: Duration = Duration::from_secs(90);

/// What one run of `watch-cluster demo` printed.
struct DemoRun {
    success: bool,
    stdout: String,
    stderr: String,
}

impl DemoRun {
    /// Panics with both outputs unless the story contains `needle`.
    fn assert_says(&self, needle: &str) {
        assert!(
            self.stdout.contains(needle),
            "demo output lacks {needle:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
    }

    fn assert_never_says(&self, needle: &str) {
        assert!(
            !self.stdout.contains(needle),
            "demo output contains {needle:?}\n{}",
            self.stdout
        );
    }

    /// The webhook bodies printed as they arrived (the JSON lines under each webhook line).
    fn webhooks(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).expect("each printed webhook is JSON"))
            .collect()
    }
}

/// Runs the binary's `demo` with `registry` as the registry choice and only warnings logged.
async fn run_demo(registry: &str) -> DemoRun {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-cluster"))
        .arg("demo")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_LEVEL", "warn")
        .env("WATCH_CLUSTER_DEMO_REGISTRY", registry)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the demo starts");
    let output = tokio::time::timeout(DEMO_TIMEOUT, child.wait_with_output())
        .await
        .expect("the demo finishes in time")
        .expect("the demo's output is readable");
    DemoRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The outcomes every demo run must show, whichever registry serves the images.
fn assert_the_story(run: &DemoRun) {
    assert!(
        run.success,
        "demo failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.stdout, run.stderr
    );
    run.assert_says("OK web runs demo/web:1.2.0@sha256:");
    run.assert_says("OK worker runs demo/worker:1.4.2@sha256:");
    run.assert_says("OK cache runs demo/cache:stable@sha256:");
    run.assert_says("OK api is back on demo/api:2.0.0; watch-cluster.io/quarantine: [{\"container\":\"app\",\"image\":\"demo/api:2.1.0@sha256:");
    for reason in [
        "ImageUpdated",
        "RolloutCompleted",
        "RolloutFailed",
        "RolledBack",
    ] {
        run.assert_says(reason);
    }
    // Never a pre-release, never outside the lock.
    run.assert_never_says("demo/web:2.0.0-rc1@");
    run.assert_never_says("demo/worker:1.5.0@");
    run.assert_never_says("demo/api:3.0.0@");
    run.assert_says("Demo finished in");

    let hooks = run.webhooks();
    let count = |event_type: &str, name: &str| {
        hooks
            .iter()
            .filter(|h| h["eventType"] == event_type && h["deployment"]["name"] == name)
            .count()
    };
    for name in ["web", "worker", "api", "cache"] {
        assert_eq!(count("DEPLOYMENT_DETECTED", name), 1, "{name}: {hooks:#?}");
        assert_eq!(
            count("IMAGE_ROLLOUT_STARTED", name),
            1,
            "{name}: {hooks:#?}"
        );
    }
    for name in ["web", "worker", "cache"] {
        assert_eq!(
            count("IMAGE_ROLLOUT_COMPLETED", name),
            1,
            "{name}: {hooks:#?}"
        );
    }
    let failed: Vec<&Value> = hooks
        .iter()
        .filter(|h| h["eventType"] == "IMAGE_ROLLOUT_FAILED")
        .collect();
    assert_eq!(failed.len(), 1, "{hooks:#?}");
    assert_eq!(failed[0]["deployment"]["name"], "api");
    assert!(
        failed[0]["details"]["rolledBackTo"]
            .as_str()
            .is_some_and(|i| i.ends_with("/demo/api:2.0.0")),
        "{}",
        failed[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_on_debians_registry_updates_rolls_back_a_broken_image_and_kills_the_registry() {
    let run = run_demo("docker-registry").await;
    assert_the_story(&run);
    run.assert_says("Registry: Debian's docker-registry (/usr/bin/docker-registry, pid ");

    let pid: u32 = run
        .stdout
        .split("pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .expect("the registry's pid is printed");
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        !cmdline.contains("docker-registry"),
        "docker-registry (pid {pid}) outlived the demo"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_on_the_in_process_registry_tells_so_and_tells_the_same_story() {
    let run = run_demo("in-process").await;
    assert_the_story(&run);
    run.assert_says("Registry: the in-process registry at http://127.0.0.1:");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_refuses_an_unknown_registry_choice_naming_the_variable() {
    let run = run_demo("quay").await;
    assert!(!run.success, "{}", run.stdout);
    assert!(
        run.stderr
            .contains("invalid WATCH_CLUSTER_DEMO_REGISTRY=\"quay\""),
        "{}",
        run.stderr
    );
}
