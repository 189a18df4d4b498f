//! Running it in production: configuration errors, `plan`, probes and metrics (more in later tests).

use std::time::Duration;

use watch_cluster_sim::{Fault, Kind, LoggedRequest};

use crate::env::{Env, NS, free_port, http_get, sample, wait_for_http};
use crate::{as_pairs, enabled};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invalid_setting_stops_startup_with_one_line_naming_it_and_exit_code_1() {
    let cases = [
        ("REGISTRY_CACHE_TTL", "soon", "REGISTRY_CACHE_TTL"),
        ("ROLLOUT_TIMEOUT", "10w", "ROLLOUT_TIMEOUT"),
        ("WATCH_NAMESPACES", "Team_A", "WATCH_NAMESPACES"),
        ("WATCH_NAMESPACES", ",,,", "WATCH_NAMESPACES"),
        (
            "INSECURE_REGISTRIES",
            "http://registry:5000",
            "INSECURE_REGISTRIES",
        ),
        (
            "REGISTRY_CA_FILE",
            "/nonexistent/ca.pem",
            "REGISTRY_CA_FILE",
        ),
        (
            "REGISTRY_CA_FILE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
            "-----BEGIN CERTIFICATE-----",
        ),
        ("TZ", "Mars/Olympus", "TZ"),
        ("DRY_RUN", "yes", "DRY_RUN"),
        ("ADMIN_ADDR", "localhost", "ADMIN_ADDR"),
        ("LEADER_ELECTION", "maybe", "LEADER_ELECTION"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL"),
        ("WEBHOOK_TIMEOUT", "10s", "WEBHOOK_TIMEOUT"),
        ("WEBHOOK_RETRY_COUNT", "-1", "WEBHOOK_RETRY_COUNT"),
        (
            "WEBHOOK_ENABLE_IMAGE_ROLLOUT_FAILED",
            "on",
            "WEBHOOK_ENABLE_IMAGE_ROLLOUT_FAILED",
        ),
        ("WEBHOOK_HEADERS", "novalue", "WEBHOOK_HEADERS"),
        ("WEBHOOK_URL", "ftp://hooks", "WEBHOOK_URL"),
        ("WEBHOOK_SECRET", " \t ", "WEBHOOK_SECRET"),
        ("NOTIFY_URLS", "teams://hunter2@example.com", "NOTIFY_URLS"),
        (
            "NOTIFY_ENDPOINT_OVERRIDE",
            "slack=not a url",
            "NOTIFY_ENDPOINT_OVERRIDE",
        ),
    ];
    for (variable, value, named) in cases {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-cluster"))
            .arg("run")
            .env_clear()
            .env(variable, value)
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .output()
            .await
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{variable}={value}: {stderr}"
        );
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{variable}={value}: one line, got {stderr}");
        assert!(lines[0].contains(named), "{variable}={value}: {stderr}");
        if value.contains("hunter2") {
            assert!(
                !stderr.contains("hunter2"),
                "{variable}: a secret shown: {stderr}"
            );
        }
        if !matches!(
            variable,
            "WEBHOOK_URL"
                | "WEBHOOK_HEADERS"
                | "WEBHOOK_SECRET"
                | "NOTIFY_URLS"
                | "NOTIFY_ENDPOINT_OVERRIDE"
        ) {
            assert!(
                lines[0].contains(value),
                "{variable}={value}: the value is quoted: {stderr}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_kubeconfig_run_exits_1_naming_kubeconfig() {
    let home = tempfile::tempdir().expect("tempdir");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-cluster"))
        .arg("run")
        .env_clear()
        .env("HOME", home.path())
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("KUBECONFIG"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_that_is_not_yaml_stops_run_with_one_line_naming_the_file_and_the_fix() {
    let home = tempfile::tempdir().expect("tempdir");
    let kubeconfig = home.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "garbage: [unclosed\n").expect("kubeconfig");
    let home_dir = home.path().display().to_string();
    let config = kubeconfig.display().to_string();
    let line = run_fails_with_one_line(&[("HOME", &home_dir), ("KUBECONFIG", &config)]).await;
    assert!(line.contains(&config), "{line}");
    assert!(line.contains("KUBECONFIG="), "{line}");
}

/// Runs `watch-cluster run` with only `envs`; it must exit 1 with one line on stderr, which is returned.
async fn run_fails_with_one_line(envs: &[(&str, &str)]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-cluster"))
        .arg("run")
        .env_clear()
        .envs(envs.iter().copied())
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, got {stderr}");
    lines[0].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_lists_watched_workloads_with_schedule_and_pending_decision() {
    let env = Env::start().await;
    env.push("team/plan", "1.0.0", "a").await;
    let newer = env.push("team/plan", "1.4.0", "a").await;
    env.create(
        Kind::Deployment,
        "planned",
        &[("app", &env.image("team/plan", "1.0.0"))],
        &as_pairs(&enabled("version")),
    );
    let mut invalid = enabled("version");
    invalid[2].1 = "newest".into();
    env.create(
        Kind::Deployment,
        "misconfigured",
        &[("app", &env.image("team/plan", "1.0.0"))],
        &as_pairs(&invalid),
    );
    env.create(
        Kind::Deployment,
        "ignored",
        &[("app", &env.image("team/plan", "1.0.0"))],
        &[],
    );
    for name in ["planned", "misconfigured"] {
        env.wait_for(Kind::Deployment, name, "first rollout done", |d| {
            d["status"]["availableReplicas"] == 2 && d["status"]["updatedReplicas"] == 2
        })
        .await;
    }
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-cluster"))
        .arg("plan")
        .env_clear()
        .env("KUBECONFIG", &env.kubeconfig)
        .env("INSECURE_REGISTRIES", env.registry.host())
        .output()
        .await
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.contains(&format!("/{name} ")))
            .map(str::to_owned)
    };
    let planned = line("planned").expect("planned listed");
    assert!(
        planned.contains("version") && planned.contains("* * * * * ?"),
        "{planned}"
    );
    assert!(
        planned.contains(&format!("team/plan:1.4.0@{}", newer.digest)),
        "{planned}"
    );
    let misconfigured = line("misconfigured").expect("misconfigured listed");
    assert!(
        misconfigured.contains("not checked")
            && misconfigured.contains("watch-cluster.io/strategy"),
        "{misconfigured}"
    );
    assert!(line("ignored").is_none(), "{stdout}");
    assert_eq!(
        env.image_of(Kind::Deployment, "planned", "app"),
        env.image("team/plan", "1.0.0"),
        "plan changes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_synced_watches_and_metrics_count_what_happened() {
    let mut env = Env::start().await;
    env.push("team/metrics", "1.0.0", "a").await;
    env.push("team/metrics", "1.1.0", "a").await;
    env.create(
        Kind::Deployment,
        "metered",
        &[("app", &env.image("team/metrics", "1.0.0"))],
        &as_pairs(&enabled("version")),
    );
    // Hold the StatefulSet list: the process is alive but not ready until every watch has synced.
    env.sim.faults().inject(
        watch_cluster_sim::Fault::delay(
            "/apis/apps/v1/statefulsets",
            std::time::Duration::from_secs(3),
            1,
        )
        .method("GET"),
    );
    let port = free_port();
    env.spawn_controller(
        env.base_settings()
            .with("ADMIN_ADDR", &format!("127.0.0.1:{port}")),
    );
    wait_for_http(port, "/healthz", 200).await;
    assert_eq!(
        http_get(port, "/readyz").await.map(|(s, _)| s),
        Some(503),
        "not ready before the lists finish"
    );
    wait_for_http(port, "/readyz", 200).await;
    env.wait_for_webhooks("metered", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;

    let (status, metrics) = http_get(port, "/metrics").await.expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    assert_eq!(
        sample(&metrics, "watch_cluster_updates_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "watch_cluster_rollouts_total{outcome=\"completed\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "watch_cluster_watched_workloads{kind=\"Deployment\"}"
        ),
        Some(1.0)
    );
    assert!(sample(&metrics, "watch_cluster_checks_total{outcome=\"updated\"}") == Some(1.0));
    let registry_requests: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("watch_cluster_registry_requests_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert!(
        registry_requests >= 2.0,
        "tag list and HEAD counted: {metrics}"
    );
    let delivered: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("watch_cluster_webhook_deliveries_total{")
                && l.contains("outcome=\"delivered\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(delivered, 3.0, "DETECTED, STARTED, COMPLETED: {metrics}");
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.contains("metered"),
            "no object names in labels: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_concurrent_checks_run_at_once_across_kinds_and_namespaces() {
    let mut env = Env::start().await;
    env.push("team/many", "1.0.0", "a").await;
    let image = env.image("team/many", "1.0.0");
    env.namespace("other");
    let mut paths = Vec::new();
    for namespace in [NS, "other"] {
        for (kind, plural) in [
            (Kind::Deployment, "deployments"),
            (Kind::StatefulSet, "statefulsets"),
            (Kind::DaemonSet, "daemonsets"),
        ] {
            env.create_in(
                namespace,
                kind,
                "w",
                &[("app", &image)],
                &as_pairs(&enabled("version")),
            );
            paths.push(format!("/apis/apps/v1/namespaces/{namespace}/{plural}/w"));
        }
    }
    // A newer release: every first check ends in its update patch. Held for a second, the patches of six
    // workloads on an every-second cron (six controllers: three kinds in two namespaces) overlap unless one
    // bound holds. (A check that finds nothing new makes no API request at all: the patch is what a check
    // holds its permit for.)
    env.push("team/many", "1.0.1", "a").await;
    for path in &paths {
        let hold = Fault::delay(path, Duration::from_secs(1), 1000).method("PATCH");
        env.sim.faults().inject(hold);
    }
    let settings = env
        .base_settings()
        .with("WATCH_NAMESPACES", &format!("{NS},other"))
        .with("MAX_CONCURRENT_CHECKS", "2");
    env.spawn_controller(settings);

    let reads = || {
        env.sim.request_log().matching(|r| {
            r.method == "PATCH"
                && paths.contains(&r.path)
                && r.body.contains("/spec/template/spec/containers/0/image")
        })
    };
    let deadline = tokio::time::Instant::now() + crate::env::WAIT;
    while reads().len() < 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} update patches",
            reads().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let peak = most_at_once(&reads());
    assert!(peak <= 2, "{peak} checks ran at once; the bound is 2");
    assert_eq!(peak, 2, "checks do run side by side up to the bound");
}

/// The largest number of requests in flight at the same moment.
fn most_at_once(requests: &[LoggedRequest]) -> usize {
    requests
        .iter()
        .map(|r| {
            requests
                .iter()
                .filter(|o| o.received_at <= r.received_at && r.received_at < o.answered_at)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_cannot_reach_its_record_key_stops_run_with_one_line_naming_the_fix() {
    let env = Env::start().await;
    let config = env.kubeconfig.display().to_string();
    let line = run_fails_with_one_line(&[
        ("KUBECONFIG", &config),
        ("POD_NAMESPACE", "nowhere"),
        ("LEADER_ELECTION", "false"),
        ("ADMIN_ADDR", "127.0.0.1:0"),
        ("RUST_LOG", "off"),
    ])
    .await;
    assert!(line.contains("nowhere/watch-cluster-record-key"), "{line}");
    assert!(line.contains("403"), "{line}");
    assert!(line.contains("must allow `get` on this Secret"), "{line}");
    // The refusal was the point of this test: the environment's own "no refused call" check is for others.
    let refused = env.forbidden_calls();
    assert_eq!(refused, ["POST /api/v1/namespaces/nowhere/secrets"]);
    env.sim.request_log().clear();
}
