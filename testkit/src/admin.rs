//! The controller's admin server as tests read it: free ports for `ADMIN_ADDR`, plain GETs, and the
//! metrics tests wait on instead of log lines.

use std::time::Duration;

/// How long [`wait_for_http`] and [`wait_for_more`] wait.
const WAIT: Duration = Duration::from_secs(90);

/// A free loopback port (for `ADMIN_ADDR`, which the test must know).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// GET `http://127.0.0.1:port/path`: status and body, or `None` when nothing listens.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

/// POST `body` with `headers` to `http://127.0.0.1:port/path`: the status, or `None` when nothing listens.
pub async fn http_post(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Option<u16> {
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.ok().map(|r| r.status().as_u16())
}

/// Waits until `GET path` answers `status`; returns the body.
pub async fn wait_for_http(port: u16, path: &str, status: u16) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some((s, body)) = http_get(port, path).await
            && s == status
        {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {path} to answer {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of one sample of the OpenMetrics text, e.g. `watch_cluster_updates_total`.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// The value of `series` on the controller's `/metrics`; 0 while it is not up or has no such sample.
pub async fn metric(port: u16, series: &str) -> f64 {
    match http_get(port, "/metrics").await {
        Some((200, body)) => sample(&body, series).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Waits until `series` has grown by `more` from now.
pub async fn wait_for_more(port: u16, series: &str, more: f64) {
    let target = metric(port, series).await + more;
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(port, series).await < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} did not grow by {more}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the controller has finished `more` further checks with `outcome` (`no_update`, `skipped`…).
pub async fn more_checks(port: u16, outcome: &str, more: f64) {
    wait_for_more(
        port,
        &format!("watch_cluster_checks_total{{outcome=\"{outcome}\"}}"),
        more,
    )
    .await;
}

/// SIGTERM to a controller process, then its exit status; panics when it does not exit `within`.
pub async fn terminate(
    child: &mut tokio::process::Child,
    within: Duration,
) -> std::process::ExitStatus {
    let pid = child
        .id()
        .unwrap_or_else(|| panic!("the controller already exited"));
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -TERM {pid}");
    match tokio::time::timeout(within, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => panic!("no exit status of {pid}: {e}"),
        Err(_) => panic!("the controller {pid} did not exit within {within:?} of SIGTERM"),
    }
}

/// SIGKILL to a controller process (no cleanup at all), then waits until it is gone.
pub async fn kill(child: &mut tokio::process::Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}
