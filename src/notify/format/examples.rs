//! The example notifications of docs/notifications.md#formats, one per event type, plus the hard cases the
//! format tests and the npm validators (testbed/npmcheck) render: several containers, a rollback with
//! quarantine, an error longer than any service allows.
//!
//! They live in the library, not under `#[cfg(test)]`, because integration tests and the docs check render
//! the same values the unit tests pin.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::notify::payload::{Event, Facts, Notification, WorkloadKind, WorkloadRef};

const FROM: &str = "registry.example/shop/web:1.4.2@sha256:3f1c0a9e2b7d4c6f8a1e5d3b9c7f2a4e6d8b0c1f3e5a7c9d2b4f6e8a0c2d4f6a";
const TO: &str = "registry.example/shop/web:1.5.0@sha256:9b2e4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c5e7b9d2f4a6c8e0b1d3f5a7c9e2b";

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 14, h, m, s)
        .single()
        .unwrap_or_default()
}

fn web() -> WorkloadRef {
    WorkloadRef {
        kind: WorkloadKind::Deployment,
        namespace: "shop".into(),
        name: "web".into(),
    }
}

fn one(image: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("web".to_owned(), image.to_owned())])
}

/// The four documented examples, named by event: `detected`, `started`, `completed`, `failed` (a rollback
/// with quarantine).
pub fn documented() -> Vec<(&'static str, Notification)> {
    let rollout = Facts {
        from: one(FROM),
        to: one(TO),
        quarantined: BTreeMap::new(),
        started_at: Some(at(12, 0, 0)),
    };
    let detected = Notification::new(
        web(),
        FROM.into(),
        Event::DeploymentDetected {
            cron_expression: "0 */5 * * * ?".into(),
            update_strategy: "version".into(),
        },
        at(11, 55, 0),
        "detected",
    )
    .with_facts(Facts {
        to: one(FROM),
        ..Facts::default()
    });
    let started = Notification::new(
        web(),
        TO.into(),
        Event::ImageRolloutStarted {
            previous_image: FROM.into(),
        },
        at(12, 0, 0),
        "r1",
    )
    .with_facts(rollout.clone());
    let completed = Notification::new(
        web(),
        TO.into(),
        Event::ImageRolloutCompleted {
            rollout_duration: Duration::from_millis(47_250),
        },
        at(12, 0, 47),
        "r1",
    )
    .with_facts(rollout.clone());
    let failed = Notification::new(
        web(),
        TO.into(),
        Event::ImageRolloutFailed {
            error: "ProgressDeadlineExceeded: ReplicaSet \"web-7d9f\" has timed out progressing"
                .into(),
            rolled_back_to: Some(FROM.into()),
        },
        at(12, 10, 5),
        "r1",
    )
    .with_facts(Facts {
        quarantined: one(TO),
        ..rollout
    });
    vec![
        ("detected", detected),
        ("started", started),
        ("completed", completed),
        ("failed", failed),
    ]
}

/// The hard cases: a StatefulSet with two containers, a DaemonSet whose error exceeds every limit and needs
/// escaping, and a refused update (FAILED without rollback, no per-container facts).
pub fn hard() -> Vec<(&'static str, Notification)> {
    let db = WorkloadRef {
        kind: WorkloadKind::StatefulSet,
        namespace: "data".into(),
        name: "db".into(),
    };
    let from = BTreeMap::from([
        ("postgres".to_owned(), "postgres:16.2".to_owned()),
        ("exporter".to_owned(), "exporter:0.15.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned()),
    ]);
    let to = BTreeMap::from([
        ("postgres".to_owned(), "postgres:16.3".to_owned()),
        ("exporter".to_owned(), "exporter:0.16.0@sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210".to_owned()),
    ]);
    let multi = Notification::new(
        db,
        "exporter=exporter:0.16.0@sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210,postgres=postgres:16.3".into(),
        Event::ImageRolloutFailed {
            error: "pods crash-looping: exporter <exit 1> & postgres *ok*".into(),
            rolled_back_to: Some("exporter=exporter:0.15.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef,postgres=postgres:16.2".into()),
        },
        at(13, 2, 0),
        "r2",
    )
    .with_facts(Facts {
        from,
        quarantined: to.clone(),
        to,
        started_at: Some(at(13, 0, 0)),
    });
    let agent = WorkloadRef {
        kind: WorkloadKind::DaemonSet,
        namespace: "ops".into(),
        name: "agent".into(),
    };
    let long_error = format!(
        "admission webhook denied the request: {}",
        "<policy> `image` must be *signed* & _pinned_ | ".repeat(400)
    );
    let long = Notification::new(
        agent.clone(),
        "agent:2.0.0".into(),
        Event::ImageRolloutFailed {
            error: long_error,
            rolled_back_to: None,
        },
        at(14, 0, 0),
        "r3",
    )
    .with_facts(Facts {
        from: BTreeMap::from([("agent".to_owned(), "agent:1.9.9".to_owned())]),
        to: BTreeMap::from([("agent".to_owned(), "agent:2.0.0".to_owned())]),
        quarantined: BTreeMap::new(),
        started_at: Some(at(13, 59, 59)),
    });
    let refused = Notification::new(
        agent,
        "agent:2.0.0".into(),
        Event::ImageRolloutFailed {
            error: "patch refused: forbidden".into(),
            rolled_back_to: None,
        },
        at(14, 5, 0),
        "r4",
    );
    vec![("multi", multi), ("long", long), ("refused", refused)]
}
