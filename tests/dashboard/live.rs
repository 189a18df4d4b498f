//! Every dashboard query against the live controller: the binary runs on the simulated cluster with the real
//! registry and a real webhook receiver (tests/e2e/env.rs), and is driven through everything the dashboard
//! draws — an update, a failed rollout that is rolled back, webhook deliveries and drops, a rejected
//! signature, a failed cloud credential fetch, a registry rate limit, a push event — before `/metrics` is
//! scraped over HTTP and each query's metric and label names are looked up in it, the alerts' too
//! (docs/monitoring.md).

use std::time::Duration;

use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use serde_json::json;
use watch_cluster_sim::{Kind, controllers::Outcome};
use watch_cluster_testkit::admin::{free_port, http_get, http_post, wait_for_http};
use watch_cluster_testkit::fake::{FakeRegistry, Fault};
use watch_cluster_testkit::webhook::Response;

use crate::env::{Env, NS};
use crate::model::{alert_queries, load_dashboard};
use crate::queries::{Exposition, TARGET_LABELS, problems_of, query_problems};
use crate::{as_pairs, enabled};

/// The events listener's token (at least 24 characters).
const EVENTS_TOKEN: &str = "dashboard-events-token-0123456789";
/// An ECR registry: the controller asks its (unreachable) AWS identity for a credential, never the host.
const ECR_IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1.0.0";
/// More DEPLOYMENT_DETECTED notifications than the best-effort queue holds (256) while the receiver hangs.
const FLOOD: usize = 300;
/// How long to wait for a series to appear.
const WAIT: Duration = Duration::from_secs(90);

/// The PEM of a P-256 public key nothing here signs with: every candidate it guards is rejected.
fn verify_keys() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let pem = SigningKey::from_slice(&[9u8; 32])
        .expect("a P-256 scalar")
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("pem");
    std::fs::write(dir.path().join("release.pub"), pem).expect("key file");
    dir
}

/// The scrape's lines of `metric` (with labels, without the value), for waits and failure messages.
fn series_of(scrape: &str, metric: &str) -> Vec<String> {
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_owned()))
        .collect()
}

/// Waits until `/metrics` has a series of `metric` whose text contains `part` (e.g. `outcome="rolled_back"`).
async fn wait_for_series(port: u16, metric: &str, part: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let scrape = http_get(port, "/metrics")
            .await
            .map(|(_, body)| body)
            .unwrap_or_default();
        if series_of(&scrape, metric).iter().any(|s| s.contains(part)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no series of {metric} with {part} appeared; it has {:?}",
            series_of(&scrape, metric)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_resolves_against_the_live_metrics_of_a_controller_that_did_everything_it_draws()
 {
    let mut env = Env::start().await;
    // An update that completes, and one whose new image never starts and is rolled back.
    env.push("team/app", "1.0.0", "a").await;
    env.push("team/app", "1.1.0", "a").await;
    env.push("team/bad", "1.0.0", "a").await;
    env.push("team/bad", "1.1.0", "a").await;
    env.set_outcome_for_image(&env.image("team/bad", "1.1.0"), Outcome::Stuck);
    // A newer image that is not signed, on a workload that requires signatures.
    env.push("team/signed", "1.0.0", "a").await;
    env.push("team/signed", "1.1.0", "a").await;
    // A registry that answers the first tag list with 429: the next check waits out its Retry-After.
    let limited = FakeRegistry::start().await.expect("fake registry starts");
    limited.set_tags("team/limited", vec!["1.0.0".into()]);
    limited.fault_times("/v2/team/limited/tags/list", Fault::too_many_requests(2), 1);

    let version = enabled("version");
    env.create(
        Kind::Deployment,
        "updated",
        &[("app", &env.image("team/app", "1.0.0"))],
        &as_pairs(&version),
    );
    env.create(
        Kind::Deployment,
        "failed",
        &[("app", &env.image("team/bad", "1.0.0"))],
        &as_pairs(&version),
    );
    let mut verified = version.clone();
    verified.push(("watch-cluster.io/verify", "cosign".to_owned()));
    env.create(
        Kind::Deployment,
        "signed",
        &[("app", &env.image("team/signed", "1.0.0"))],
        &as_pairs(&verified),
    );
    // No replicas: nothing pulls these images, the controller only checks them.
    let no_pods = json!({"replicas": 0});
    env.create_with(
        NS,
        Kind::Deployment,
        "ecr",
        &[("app", ECR_IMAGE)],
        &as_pairs(&version),
        no_pods.clone(),
    );
    env.create_with(
        NS,
        Kind::Deployment,
        "limited",
        &[("app", &format!("{}/team/limited:1.0.0", limited.host()))],
        &as_pairs(&version),
        no_pods.clone(),
    );

    let keys = verify_keys();
    let token_file = env.dir.path().join("aws-token");
    std::fs::write(&token_file, "web-identity").expect("token file");
    let (admin, events) = (free_port(), free_port());
    // Nothing listens there: the credential fetch fails at its first step, on this machine.
    let sts = format!("https://127.0.0.1:{}", free_port());
    let settings = env
        .base_settings()
        .with("ADMIN_ADDR", &format!("127.0.0.1:{admin}"))
        .with(
            "INSECURE_REGISTRIES",
            &format!("{},{}", env.registry.host(), limited.host()),
        )
        .with("VERIFY_KEYS", keys.path().to_str().expect("utf-8"))
        .with("EVENTS_ADDR", &format!("127.0.0.1:{events}"))
        .with("EVENTS_TOKEN", EVENTS_TOKEN)
        .with("CLOUD_REGISTRY_AUTH", "aws")
        .with(
            "AWS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/watch-cluster",
        )
        .with(
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            token_file.to_str().expect("utf-8"),
        )
        .with("AWS_ENDPOINT_URL_STS", &sts)
        .with("AWS_ENDPOINT_URL_ECR", &sts);
    env.spawn_controller(settings);
    wait_for_http(admin, "/readyz", 200).await;

    env.wait_for_webhooks("updated", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    let failed = env
        .wait_for_webhooks("failed", "IMAGE_ROLLOUT_FAILED", 1)
        .await;
    assert!(
        failed[0]["details"]["rolledBackTo"].is_string(),
        "the failed rollout was rolled back: {failed:?}"
    );
    wait_for_series(
        admin,
        "watch_cluster_rollouts_total",
        "outcome=\"completed\"",
    )
    .await;
    wait_for_series(
        admin,
        "watch_cluster_rollouts_total",
        "outcome=\"rolled_back\"",
    )
    .await;
    wait_for_series(
        admin,
        "watch_cluster_signature_verifications_total",
        "result=\"rejected\"",
    )
    .await;
    wait_for_series(admin, "watch_cluster_cloud_credential_fetches_total", "aws").await;
    wait_for_series(admin, "watch_cluster_registry_rate_limit_waits_total", "").await;

    // A push of a repository no workload uses: counted as accepted, and as a push that woke nothing.
    let quay = json!({
        "name": "unused", "repository": "nobody/unused", "namespace": "nobody",
        "docker_url": "quay.io/nobody/unused", "updated_tags": ["2.0.0"]
    });
    let status = http_post(
        events,
        &format!("/events/quay/{EVENTS_TOKEN}"),
        &[("Content-Type", "application/json")],
        serde_json::to_vec(&quay).expect("json"),
    )
    .await;
    assert_eq!(status, Some(200), "the push event is accepted");
    wait_for_series(admin, "watch_cluster_push_events_total", "accepted").await;
    wait_for_series(admin, "watch_cluster_push_checks_total", "unmatched").await;

    // The receiver stops answering, and a flood of newly watched workloads overflows the best-effort queue.
    for _ in 0..FLOOD + 50 {
        env.webhook.respond_next(Response::Hang);
    }
    for i in 0..FLOOD {
        let annotations = [
            ("watch-cluster.io/enabled", "true"),
            ("watch-cluster.io/cron", crate::NEVER_SOON),
            ("watch-cluster.io/strategy", "version"),
        ];
        env.create_with(
            NS,
            Kind::Deployment,
            &format!("flood-{i}"),
            &[("app", &env.image("team/app", "1.0.0"))],
            &annotations,
            no_pods.clone(),
        );
    }
    wait_for_series(admin, "watch_cluster_webhook_queue_dropped_total", "").await;

    let (status, text) = http_get(admin, "/metrics").await.expect("metrics answer");
    assert_eq!(status, 200);
    let scrape = Exposition::parse(&text).expect("the scrape is OpenMetrics text");
    for label in TARGET_LABELS {
        let carrying: Vec<&String> = scrape
            .series
            .iter()
            .filter(|(_, labels)| labels.contains(label))
            .map(|(name, _)| name)
            .collect();
        assert!(
            carrying.is_empty(),
            "the controller exports {label}, which Prometheus sets on the target: {carrying:?}"
        );
    }
    let mut problems = query_problems(&load_dashboard(), &scrape);
    // The alerts the panels go with, on the same scrape (they use no Grafana variable).
    problems.extend(problems_of(
        &alert_queries(),
        &serde_json::Value::Null,
        &scrape,
    ));
    assert!(
        problems.is_empty(),
        "dashboard and alert queries that do not resolve against the live /metrics:\n  {}\n\nthe scrape:\n{text}",
        problems.join("\n  ")
    );
}
