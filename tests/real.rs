#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end on real Kubernetes: the test bed's kube-apiserver v1.36.3 with its own controllers and the
//! project's node agent (docs/testbed.md), the product installed from `k8s/` with kubectl, and the
//! controller binary run with a ServiceAccount token. Run through the test wrapper, which starts the test
//! bed: `.ci/test -E 'binary(real)'`.

// Shared with the scenarios binary, which uses other parts of it.
#[allow(dead_code)]
#[path = "real/apiserver.rs"]
mod apiserver;
// Shared with the scenarios binary, which uses other parts of it.
#[allow(dead_code)]
#[path = "real/env.rs"]
mod env;
#[path = "real/modes.rs"]
mod modes;
#[path = "real/refusals.rs"]
mod refusals;
#[path = "real/smoke.rs"]
mod smoke;

/// Every second: tests do not wait for the default 5 minutes.
pub const EVERY_SECOND: &str = "* * * * * ?";

/// The annotations of an enabled workload checked every second.
pub fn enabled(strategy: &str) -> Vec<(&'static str, String)> {
    vec![
        ("watch-cluster.io/enabled", "true".to_owned()),
        ("watch-cluster.io/cron", EVERY_SECOND.to_owned()),
        ("watch-cluster.io/strategy", strategy.to_owned()),
    ]
}

/// Borrows annotation pairs for `RealEnv::create`.
pub fn notes<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A free loopback port (for ADMIN_ADDR, which the test must know).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// GET `http://127.0.0.1:port/path`: status and body, or `None` when nothing listens.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

/// Waits until the controller on `port` has finished `more` further checks with `outcome` (its metrics).
pub async fn more_checks(port: u16, outcome: &str, more: f64) {
    let series = format!("watch_cluster_checks_total{{outcome=\"{outcome}\"}}");
    let value = |body: String| {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{series} "))?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let now = || async {
        match http_get(port, "/metrics").await {
            Some((200, body)) => value(body),
            _ => 0.0,
        }
    };
    let target = now().await + more;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(90);
    while now().await < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the controller did not finish {more} more {outcome} checks"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
