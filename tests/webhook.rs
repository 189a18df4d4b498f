#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Webhook delivery (docs/notifications.md) against real HTTP receivers on 127.0.0.1: exact payload and headers, the retry
//! policy, redirects, disabled event types, the bounded queue, concurrency and shutdown.
//!
//! Backoff is shortened with `WebhookConfig::with_backoff` so retries are fast; nothing sleeps for a fixed
//! time: tests await delivery outcomes or wait for requests under a timeout.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use prometheus_client::registry::Registry;
use serde_json::json;
use sha2::Sha256;
use watch_cluster::notify::config::{ExtraHeaders, WebhookSecret};
use watch_cluster::notify::{
    DeliveryOutcome, Enqueued, Event, EventType, Notification, Notifier, WebhookArgs,
    WebhookConfig, WorkloadKind, WorkloadRef, delivery_id,
};
use watch_cluster_testkit::webhook::{Response, WebhookReceiver};

/// Upper bound for anything that should happen promptly.
const WAIT: Duration = Duration::from_secs(10);

fn workload(kind: WorkloadKind, name: &str) -> WorkloadRef {
    WorkloadRef {
        kind,
        namespace: "default".into(),
        name: name.into(),
    }
}

fn completed(name: &str) -> Notification {
    let at = Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap();
    let event = Event::ImageRolloutCompleted {
        rollout_duration: Duration::from_millis(45_000),
    };
    Notification::new(
        workload(WorkloadKind::Deployment, name),
        "myapp:1.0.1@sha256:bb".into(),
        event,
        at,
        "r1",
    )
}

fn detected(name: &str) -> Notification {
    let event = Event::DeploymentDetected {
        cron_expression: "0 */5 * * * ?".into(),
        update_strategy: "version".into(),
    };
    let workload = workload(WorkloadKind::Deployment, name);
    Notification::new(
        workload,
        "myapp:1.0.0".into(),
        event,
        Utc::now(),
        "0 */5 * * * ?|version",
    )
}

/// Every event type on, fast backoff.
fn config(receiver: &WebhookReceiver) -> WebhookConfig {
    let mut config = WebhookConfig::new(receiver.url().parse().unwrap())
        .with_backoff(Duration::from_millis(20), Duration::from_millis(100));
    for event_type in EventType::ALL {
        config = config.enable(event_type);
    }
    config
}

fn start(config: WebhookConfig) -> (Notifier, Registry) {
    watch_cluster::install_crypto_provider();
    let mut registry = Registry::default();
    let notifier = Notifier::start(config, &mut registry).unwrap();
    (notifier, registry)
}

/// The value of the counter sample `series` (e.g. `webhook_queue_dropped_total{receiver="webhook",event_type="X"}`),
/// 0 if absent.
fn counter(registry: &Registry, series: &str) -> u64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

fn deliveries(event_type: &str, outcome: &str) -> String {
    format!(
        "webhook_deliveries_total{{receiver=\"webhook\",event_type=\"{event_type}\",outcome=\"{outcome}\"}}"
    )
}

#[tokio::test]
async fn a_completed_rollout_is_posted_as_exact_signed_json_with_a_stable_delivery_id() {
    let receiver = WebhookReceiver::start().await.unwrap();
    let config = config(&receiver)
        .with_secret("s3cr3t".parse::<WebhookSecret>().unwrap())
        .with_headers(
            "X-Env=prod,Authorization=Bearer abc="
                .parse::<ExtraHeaders>()
                .unwrap(),
        );
    let (notifier, registry) = start(config.clone());

    assert_eq!(
        notifier.deliver(&completed("my-app")).await,
        DeliveryOutcome::Delivered
    );
    // A restarted controller (or another replica) delivering the same outcome sends the same id.
    let (restarted, _) = start(config);
    assert_eq!(
        restarted.deliver(&completed("my-app")).await,
        DeliveryOutcome::Delivered
    );

    let requests = receiver.wait_for_requests(2, WAIT).await.unwrap();
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.json(),
        json!({
            "eventType": "IMAGE_ROLLOUT_COMPLETED",
            "timestamp": "2024-01-01T12:00:00Z",
            "deployment": {"namespace": "default", "name": "my-app", "image": "myapp:1.0.1@sha256:bb"},
            "details": {"rolloutDuration": "45000ms"}
        })
    );
    assert!(
        !request.body_text().contains(' '),
        "body is compact JSON: {}",
        request.body_text()
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-env"), Some("prod"));
    assert_eq!(request.header("authorization"), Some("Bearer abc="));
    let id = delivery_id("default", "my-app", "r1", EventType::ImageRolloutCompleted);
    assert_eq!(
        request.header("x-watch-cluster-delivery"),
        Some(id.as_str())
    );
    assert_eq!(
        requests[1].header("x-watch-cluster-delivery"),
        Some(id.as_str())
    );

    let signature = request.header("x-watch-cluster-signature").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cr3t").unwrap();
    mac.update(&request.body);
    mac.verify_slice(&hex::decode(signature.strip_prefix("sha256=").unwrap()).unwrap())
        .unwrap();
    assert_eq!(
        counter(
            &registry,
            &deliveries("IMAGE_ROLLOUT_COMPLETED", "delivered")
        ),
        1
    );
}

#[tokio::test]
async fn a_failed_rollout_of_a_statefulset_names_its_kind_and_the_rollback() {
    let receiver = WebhookReceiver::start().await.unwrap();
    let (notifier, _registry) = start(config(&receiver));
    let event = Event::ImageRolloutFailed {
        error: "rollout timed out".into(),
        rolled_back_to: Some("db:1.0.0@sha256:aa".into()),
    };
    let at = Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap();
    let n = Notification::new(
        workload(WorkloadKind::StatefulSet, "db"),
        "db:1.1.0".into(),
        event,
        at,
        "r9",
    );

    assert_eq!(notifier.deliver(&n).await, DeliveryOutcome::Delivered);
    let request = &receiver.wait_for_requests(1, WAIT).await.unwrap()[0];
    assert_eq!(
        request.json(),
        json!({
            "eventType": "IMAGE_ROLLOUT_FAILED",
            "timestamp": "2024-01-01T12:00:00Z",
            "deployment": {"namespace": "default", "name": "db", "image": "db:1.1.0", "kind": "StatefulSet"},
            "details": {"error": "rollout timed out", "rolledBackTo": "db:1.0.0@sha256:aa"}
        })
    );
    assert_eq!(request.header("x-watch-cluster-signature"), None);
}

#[tokio::test]
async fn a_rate_limited_delivery_waits_for_retry_after_then_succeeds_with_the_same_request() {
    let receiver = WebhookReceiver::start().await.unwrap();
    receiver.respond_next(Response::TooManyRequests {
        retry_after_secs: 1,
    });
    let config = config(&receiver).with_secret("k".parse::<WebhookSecret>().unwrap());
    let (notifier, registry) = start(config);

    assert_eq!(
        notifier.deliver(&completed("my-app")).await,
        DeliveryOutcome::Delivered
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].received_at - requests[0].received_at;
    // The backoff alone would have waited 20 ms.
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(5), "retried after {waited:?}");
    for header in ["x-watch-cluster-delivery", "x-watch-cluster-signature"] {
        assert_eq!(requests[0].header(header), requests[1].header(header));
    }
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(
        counter(&registry, &deliveries("IMAGE_ROLLOUT_COMPLETED", "retried")),
        1
    );
    assert_eq!(
        counter(
            &registry,
            &deliveries("IMAGE_ROLLOUT_COMPLETED", "delivered")
        ),
        1
    );
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_retry_count_then_exhausted() {
    let receiver = WebhookReceiver::start().await.unwrap();
    for code in [500, 503, 502] {
        receiver.respond_next(Response::Status(code));
    }
    // A fourth attempt would be answered 200 and reported as delivered.
    let (notifier, registry) = start(config(&receiver).with_retry_count(2));

    assert_eq!(
        notifier.deliver(&completed("my-app")).await,
        DeliveryOutcome::Exhausted
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    let ids: Vec<_> = requests
        .iter()
        .map(|r| r.header("x-watch-cluster-delivery"))
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0] && id.is_some()),
        "{ids:?}"
    );
    assert_eq!(
        counter(&registry, &deliveries("IMAGE_ROLLOUT_COMPLETED", "retried")),
        2
    );
    assert_eq!(
        counter(&registry, &deliveries("IMAGE_ROLLOUT_COMPLETED", "failed")),
        1
    );
}

#[tokio::test]
async fn request_timeouts_and_408_are_retried() {
    let receiver = WebhookReceiver::start().await.unwrap();
    receiver.respond_next(Response::Hang);
    receiver.respond_next(Response::Status(408));
    let config = config(&receiver)
        .with_timeout(Duration::from_millis(300))
        .with_retry_count(2);
    let (notifier, _registry) = start(config);

    assert_eq!(
        notifier.deliver(&completed("my-app")).await,
        DeliveryOutcome::Delivered
    );
    assert_eq!(receiver.requests().len(), 3);
}

#[tokio::test]
async fn client_errors_and_redirect_answers_are_not_retried() {
    for code in [400, 404, 302] {
        let receiver = WebhookReceiver::start().await.unwrap();
        receiver.respond_next(Response::Status(code));
        let (notifier, registry) = start(config(&receiver));

        assert_eq!(
            notifier.deliver(&completed("my-app")).await,
            DeliveryOutcome::Exhausted,
            "{code}"
        );
        assert_eq!(receiver.requests().len(), 1, "{code}");
        assert_eq!(
            counter(&registry, &deliveries("IMAGE_ROLLOUT_COMPLETED", "retried")),
            0
        );
    }
}

/// A server answering every request with `307 Temporary Redirect` to `location`; stops on drop.
struct Redirector {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Redirector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn redirector(location: String) -> Redirector {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move || {
        let location = location.clone();
        async move {
            (
                http::StatusCode::TEMPORARY_REDIRECT,
                [(http::header::LOCATION, location)],
            )
        }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Redirector { url, task }
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let target = WebhookReceiver::start().await.unwrap();
    let redirect = redirector(target.url()).await;
    let config = WebhookConfig::new(redirect.url.parse().unwrap())
        .enable(EventType::ImageRolloutCompleted)
        .with_backoff(Duration::from_millis(20), Duration::from_millis(100));
    let (notifier, _registry) = start(config);

    assert_eq!(
        notifier.deliver(&completed("my-app")).await,
        DeliveryOutcome::Exhausted
    );
    assert!(target.requests().is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn event_types_not_enabled_and_an_empty_url_send_nothing() {
    let receiver = WebhookReceiver::start().await.unwrap();
    let only_completed = WebhookConfig::new(receiver.url().parse().unwrap())
        .enable(EventType::ImageRolloutCompleted);
    let (notifier, _registry) = start(only_completed);
    let started = Notification::new(
        workload(WorkloadKind::Deployment, "my-app"),
        "myapp:1.0.1".into(),
        Event::ImageRolloutStarted {
            previous_image: "myapp:1.0.0".into(),
        },
        Utc::now(),
        "r1",
    );
    assert_eq!(notifier.try_notify(&detected("my-app")), Enqueued::Disabled);
    assert_eq!(notifier.try_notify(&started), Enqueued::Disabled);
    let failed = Notification {
        event: Event::ImageRolloutFailed {
            error: "x".into(),
            rolled_back_to: None,
        },
        ..completed("my-app")
    };
    assert_eq!(notifier.deliver(&failed).await, DeliveryOutcome::Disabled);
    assert_eq!(
        notifier.deliver(&completed("my-app")).await,
        DeliveryOutcome::Delivered
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].json()["eventType"], "IMAGE_ROLLOUT_COMPLETED");

    let empty_url = WebhookArgs {
        url: Some(String::new()),
        enable_image_rollout_completed: Some("true".into()),
        ..WebhookArgs::default()
    };
    let (off, _registry) = start(empty_url.into_config().unwrap());
    assert_eq!(
        off.deliver(&completed("my-app")).await,
        DeliveryOutcome::Disabled
    );
    assert_eq!(off.try_notify(&detected("my-app")), Enqueued::Disabled);
}

#[tokio::test]
async fn a_full_queue_drops_best_effort_notifications_and_counts_them() {
    let receiver = WebhookReceiver::start().await.unwrap();
    receiver.respond_next(Response::Hang);
    let config = config(&receiver)
        .with_queue_capacity(1)
        .with_max_in_flight(1);
    let (notifier, registry) = start(config);

    assert_eq!(notifier.try_notify(&detected("a")), Enqueued::Queued);
    // The only delivery slot is now stuck on the hanging receiver.
    receiver.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(notifier.try_notify(&detected("b")), Enqueued::Queued);
    let before = Instant::now();
    assert_eq!(notifier.try_notify(&detected("c")), Enqueued::Dropped);
    assert!(
        before.elapsed() < Duration::from_millis(100),
        "try_notify must not wait"
    );

    assert_eq!(
        counter(
            &registry,
            "webhook_queue_dropped_total{receiver=\"webhook\",event_type=\"DEPLOYMENT_DETECTED\"}"
        ),
        1
    );
    assert_eq!(
        counter(&registry, &deliveries("DEPLOYMENT_DETECTED", "dropped")),
        1
    );
}

#[tokio::test]
async fn a_hanging_delivery_does_not_hold_up_deliveries_for_other_workloads() {
    let receiver = WebhookReceiver::start().await.unwrap();
    receiver.respond_next(Response::Hang);
    let (notifier, _registry) = start(config(&receiver).with_timeout(Duration::from_secs(60)));

    let stuck = tokio::spawn(notifier.deliver(&completed("stuck")));
    receiver.wait_for_requests(1, WAIT).await.unwrap();
    let other = tokio::time::timeout(WAIT, notifier.deliver(&completed("other"))).await;
    assert_eq!(other.unwrap(), DeliveryOutcome::Delivered);
    assert!(!stuck.is_finished());
}

#[tokio::test]
async fn completed_notifications_wait_for_space_instead_of_being_dropped() {
    let receiver = WebhookReceiver::start().await.unwrap();
    receiver.respond_next(Response::Hang);
    let config = config(&receiver)
        .with_queue_capacity(1)
        .with_max_in_flight(1)
        .with_timeout(Duration::from_millis(500))
        .with_retry_count(0);
    let (notifier, _registry) = start(config);

    let names = ["a", "b", "c", "d"];
    let outcomes =
        futures::future::join_all(names.map(|name| notifier.deliver(&completed(name)))).await;
    // Exactly one delivery met the hanging request and timed out; every other one was delivered.
    let delivered = outcomes
        .iter()
        .filter(|o| **o == DeliveryOutcome::Delivered)
        .count();
    assert_eq!(delivered, 3, "{outcomes:?}");
    assert!(
        outcomes.contains(&DeliveryOutcome::Exhausted),
        "{outcomes:?}"
    );
    assert_eq!(receiver.requests().len(), 4);
}

#[tokio::test]
async fn shutdown_flushes_queued_notifications_then_refuses_new_ones() {
    let receiver = WebhookReceiver::start().await.unwrap();
    let (notifier, registry) = start(config(&receiver).with_max_in_flight(1));
    for name in ["a", "b", "c"] {
        assert_eq!(notifier.try_notify(&detected(name)), Enqueued::Queued);
    }

    tokio::time::timeout(WAIT, notifier.shutdown(WAIT))
        .await
        .unwrap();
    let mut names: Vec<_> = receiver
        .requests()
        .iter()
        .map(|r| r.json()["deployment"]["name"].clone())
        .collect();
    names.sort_by_key(|n| n.to_string());
    assert_eq!(names, [json!("a"), json!("b"), json!("c")]);
    assert_eq!(
        counter(&registry, &deliveries("DEPLOYMENT_DETECTED", "delivered")),
        3
    );

    assert_eq!(notifier.try_notify(&detected("d")), Enqueued::Dropped);
    assert_eq!(
        notifier.deliver(&completed("d")).await,
        DeliveryOutcome::Interrupted
    );
}

#[tokio::test]
async fn shutdown_abandons_a_hanging_delivery_at_the_deadline_as_interrupted() {
    let receiver = WebhookReceiver::start().await.unwrap();
    receiver.respond_next(Response::Hang);
    let (notifier, _registry) = start(config(&receiver).with_timeout(Duration::from_secs(60)));

    let pending = tokio::spawn(notifier.deliver(&completed("my-app")));
    receiver.wait_for_requests(1, WAIT).await.unwrap();
    let began = Instant::now();
    tokio::time::timeout(WAIT, notifier.shutdown(Duration::from_millis(200)))
        .await
        .unwrap();
    assert!(began.elapsed() >= Duration::from_millis(200));
    assert_eq!(pending.await.unwrap(), DeliveryOutcome::Interrupted);
}
