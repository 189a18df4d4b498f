#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Delivery per receiver (docs/notifications.md#delivery) against real HTTP receivers on 127.0.0.1: each
//! receiver kind honours `Retry-After` and resends the identical body; each gets exactly the headers its
//! kind may get; a hanging receiver delays none of the others; a full queue drops for its receiver only;
//! the metrics name the receiver's service, never its URL.
//!
//! Receivers are built directly (as `NOTIFY_URLS` entries would parse), pointing at local receivers.
//! Nothing sleeps for a fixed time: tests await outcomes or wait for requests under a timeout.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use futures::future::join_all;
use hmac::{Hmac, KeyInit, Mac};
use prometheus_client::registry::Registry;
use sha2::Sha256;
use watch_cluster::notify::config::{ExtraHeaders, WebhookSecret};
use watch_cluster::notify::{
    DeliveryOutcome, Enqueued, Event, EventSet, EventType, Notification, Notifier, Receiver,
    Service, WebhookConfig, WorkloadKind, WorkloadRef, format,
};
use watch_cluster_testkit::webhook::{Response, WebhookReceiver};

/// Upper bound for anything that should happen promptly.
const WAIT: Duration = Duration::from_secs(10);

const SERVICES: [Service; 5] = [
    Service::Webhook,
    Service::Generic,
    Service::Slack,
    Service::Discord,
    Service::Teams,
];

fn completed(name: &str) -> Notification {
    let at = Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap();
    Notification::new(
        WorkloadRef {
            kind: WorkloadKind::Deployment,
            namespace: "default".into(),
            name: name.into(),
        },
        "myapp:1.0.1@sha256:bb".into(),
        Event::ImageRolloutCompleted {
            rollout_duration: Duration::from_millis(45_000),
        },
        at,
        "r1",
    )
}

fn detected(name: &str) -> Notification {
    Notification::new(
        WorkloadRef {
            kind: WorkloadKind::Deployment,
            namespace: "default".into(),
            name: name.into(),
        },
        "myapp:1.0.0".into(),
        Event::DeploymentDetected {
            cron_expression: "0 */5 * * * ?".into(),
            update_strategy: "version".into(),
        },
        Utc::now(),
        "0 */5 * * * ?|version",
    )
}

/// A receiver of `service` that takes every event type and posts to `local`.
fn receiver(service: Service, local: &WebhookReceiver) -> Receiver {
    let id = match service {
        Service::Webhook => "webhook".to_owned(),
        other => format!("{}:{:08x}", other.label(), local.addr().port()),
    };
    Receiver {
        service,
        id,
        endpoint: local.url().parse().unwrap(),
        masked: format!("{}://127.0.0.1/…", service.label()),
        events: EventType::ALL.into_iter().collect::<EventSet>(),
        username: None,
    }
}

/// Fast backoff, signed, with a custom header: what the compat receivers get and the chat ones must not.
fn config(receivers: &[Receiver]) -> WebhookConfig {
    receivers.iter().cloned().fold(
        WebhookConfig::disabled()
            .with_backoff(Duration::from_millis(20), Duration::from_millis(100))
            .with_secret("s3cr3t".parse::<WebhookSecret>().unwrap())
            .with_headers("X-Env=prod".parse::<ExtraHeaders>().unwrap()),
        WebhookConfig::with_receiver,
    )
}

fn start(config: WebhookConfig) -> (Notifier, Registry) {
    let mut registry = Registry::default();
    let notifier = Notifier::start(config, &mut registry).unwrap();
    (notifier, registry)
}

fn metrics(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

async fn receivers(n: usize) -> Vec<WebhookReceiver> {
    let mut all = Vec::new();
    for _ in 0..n {
        all.push(WebhookReceiver::start().await.unwrap());
    }
    all
}

#[tokio::test]
async fn every_receiver_kind_waits_out_a_429_retry_after_and_resends_the_identical_request() {
    let locals = receivers(SERVICES.len()).await;
    for local in &locals {
        local.respond_next(Response::TooManyRequests {
            retry_after_secs: 1,
        });
    }
    let all: Vec<Receiver> = SERVICES
        .iter()
        .zip(&locals)
        .map(|(service, local)| receiver(*service, local))
        .collect();
    let (notifier, registry) = start(config(&all));
    let n = completed("my-app");

    let outcomes = join_all(all.iter().map(|r| notifier.deliver_to(&r.id, &n))).await;
    assert!(
        outcomes.iter().all(|o| *o == DeliveryOutcome::Delivered),
        "{outcomes:?}"
    );
    let text = metrics(&registry);
    for (service, local) in SERVICES.into_iter().zip(&locals) {
        let requests = local.requests();
        assert_eq!(requests.len(), 2, "{service:?}");
        let waited = requests[1].received_at - requests[0].received_at;
        // The backoff alone would have waited 20 ms.
        assert!(
            waited >= Duration::from_secs(1),
            "{service:?} retried after {waited:?}"
        );
        assert!(
            waited < Duration::from_secs(5),
            "{service:?} retried after {waited:?}"
        );
        let expected = format::render(service, &n).unwrap();
        for request in &requests {
            assert_eq!(request.body, expected, "{service:?}");
            assert_eq!(request.header("content-type"), Some("application/json"));
            assert_eq!(
                request.header("x-watch-cluster-delivery"),
                Some(n.delivery_id.as_str()),
                "{service:?}"
            );
        }
        assert_eq!(requests[0].headers, requests[1].headers, "{service:?}");
        assert_metric(&text, service, "retried", 1);
        assert_metric(&text, service, "delivered", 1);
    }
}

fn assert_metric(text: &str, service: Service, outcome: &str, value: u64) {
    let series = format!(
        "webhook_deliveries_total{{receiver=\"{}\",event_type=\"IMAGE_ROLLOUT_COMPLETED\",outcome=\"{outcome}\"}} {value}",
        service.label()
    );
    assert!(text.lines().any(|l| l == series), "{series} in\n{text}");
}

#[tokio::test]
async fn only_the_compat_receivers_get_the_custom_headers_and_the_signature() {
    let locals = receivers(SERVICES.len()).await;
    let all: Vec<Receiver> = SERVICES
        .iter()
        .zip(&locals)
        .map(|(service, local)| receiver(*service, local))
        .collect();
    let (notifier, _registry) = start(config(&all));

    assert_eq!(
        notifier.deliver(&completed("my-app")).await,
        DeliveryOutcome::Delivered
    );
    for (service, local) in SERVICES.into_iter().zip(&locals) {
        let request = &local.wait_for_requests(1, WAIT).await.unwrap()[0];
        let mut names: Vec<&str> = request
            .headers
            .keys()
            .map(|name| name.as_str())
            .filter(|name| !["host", "accept", "content-length"].contains(name))
            .collect();
        names.sort_unstable();
        if service.compat() {
            assert_eq!(
                names,
                [
                    "content-type",
                    "x-env",
                    "x-watch-cluster-delivery",
                    "x-watch-cluster-signature"
                ],
                "{service:?}"
            );
            let signature = request.header("x-watch-cluster-signature").unwrap();
            let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cr3t").unwrap();
            mac.update(&request.body);
            let tag = hex::decode(signature.strip_prefix("sha256=").unwrap()).unwrap();
            mac.verify_slice(&tag).unwrap();
        } else {
            assert_eq!(
                names,
                ["content-type", "x-watch-cluster-delivery"],
                "{service:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_hanging_receiver_delays_none_of_the_others() {
    let locals = receivers(SERVICES.len()).await;
    // Slack accepts the connection and never answers; its timeout is far beyond the wait below.
    locals[2].respond_next(Response::Hang);
    let all: Vec<Receiver> = SERVICES
        .iter()
        .zip(&locals)
        .map(|(service, local)| receiver(*service, local))
        .collect();
    let config = config(&all)
        .with_timeout(Duration::from_secs(60))
        .with_max_in_flight(1)
        .with_queue_capacity(1);
    let (notifier, _registry) = start(config);
    let slack = notifier.deliver_to(&all[2].id, &completed("stuck"));
    let slack = tokio::spawn(slack);
    locals[2].wait_for_requests(1, WAIT).await.unwrap();

    // Every other receiver takes two outcomes, one after the other, while Slack still hangs on its first:
    // with a shared pool of one delivery in flight, none of them would get through.
    for name in ["first", "second"] {
        let others = all
            .iter()
            .filter(|r| r.service != Service::Slack)
            .map(|r| notifier.deliver_to(&r.id, &completed(name)));
        let outcomes = tokio::time::timeout(WAIT, join_all(others)).await.unwrap();
        assert!(
            outcomes.iter().all(|o| *o == DeliveryOutcome::Delivered),
            "{outcomes:?}"
        );
    }
    assert!(!slack.is_finished(), "Slack is still hanging");
    for (i, local) in locals.iter().enumerate().filter(|(i, _)| *i != 2) {
        assert_eq!(local.requests().len(), 2, "receiver {i}");
    }
    assert_eq!(locals[2].requests().len(), 1);
}

#[tokio::test]
async fn a_full_queue_drops_best_effort_notifications_for_its_own_receiver_only() {
    let locals = receivers(2).await;
    locals[0].respond_next(Response::Hang);
    let all = [
        receiver(Service::Discord, &locals[0]),
        receiver(Service::Generic, &locals[1]),
    ];
    let config = config(&all)
        .with_timeout(Duration::from_secs(60))
        .with_max_in_flight(1)
        .with_queue_capacity(1);
    let (notifier, registry) = start(config);

    // Discord: the first hangs in flight, the second waits in its queue of one, the third has no room.
    assert_eq!(notifier.try_notify(&detected("a")), Enqueued::Queued);
    locals[0].wait_for_requests(1, WAIT).await.unwrap();
    locals[1].wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(notifier.try_notify(&detected("b")), Enqueued::Queued);
    locals[1].wait_for_requests(2, WAIT).await.unwrap();
    assert_eq!(notifier.try_notify(&detected("c")), Enqueued::Dropped);

    let generic = locals[1].wait_for_requests(3, WAIT).await.unwrap();
    let names: Vec<String> = generic
        .iter()
        .map(|r| {
            r.json()["deployment"]["name"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["a", "b", "c"], "the generic receiver got every one");
    let text = metrics(&registry);
    let dropped = |service: &str| {
        format!(
            "webhook_queue_dropped_total{{receiver=\"{service}\",event_type=\"DEPLOYMENT_DETECTED\"}} 1"
        )
    };
    assert!(text.lines().any(|l| l == dropped("discord")), "{text}");
    assert!(!text.contains(&dropped("generic")), "{text}");
}

#[tokio::test]
async fn a_receiver_that_does_not_take_an_event_type_is_not_a_target_of_it() {
    let locals = receivers(2).await;
    let mut failed_only = receiver(Service::Slack, &locals[0]);
    failed_only.events = EventSet::NONE.with(EventType::ImageRolloutFailed);
    let all = [failed_only, receiver(Service::Webhook, &locals[1])];
    let (notifier, _registry) = start(config(&all));

    assert_eq!(
        notifier.targets(EventType::ImageRolloutCompleted),
        ["webhook"]
    );
    assert_eq!(
        notifier.targets(EventType::ImageRolloutFailed),
        [all[0].id.clone(), "webhook".to_owned()]
    );
    assert_eq!(
        notifier.deliver_to(&all[0].id, &completed("my-app")).await,
        DeliveryOutcome::Disabled
    );
    assert!(locals[0].requests().is_empty());
}
