//! Exact bodies: every service × every documented example against its golden file in `golden/`, compared as
//! parsed JSON (a readable diff) and as bytes (the compact, key-sorted body the receiver gets). To rewrite the
//! goldens after an intended change: `WATCH_CLUSTER_BLESS=1 cargo nextest run -p watch-cluster --lib -E
//! 'test(/format::tests/)'`, then review the diff.

use std::path::PathBuf;

use serde_json::Value;

use super::*;
use crate::notify::payload::{Event, EventType};

fn golden(name: &str, rendered: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/notify/format/golden")
        .join(format!("{name}.json"));
    let actual: Value = serde_json::from_slice(rendered).unwrap();
    if std::env::var_os("WATCH_CLUSTER_BLESS").is_some() {
        let pretty = serde_json::to_string_pretty(&actual).unwrap();
        std::fs::write(&path, pretty + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (WATCH_CLUSTER_BLESS=1 writes it)", path.display()));
    let expected: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(actual, expected, "{name}");
    assert_eq!(
        String::from_utf8(rendered.to_vec()).unwrap(),
        serde_json::to_string(&expected).unwrap(),
        "{name}: the bytes differ from the compact golden"
    );
}

fn rendered(service: Service, notification: &Notification) -> Vec<u8> {
    render(service, notification).unwrap()
}

#[test]
fn each_service_and_event_renders_its_golden_body() {
    let examples = examples::documented();
    let events: Vec<EventType> = examples.iter().map(|(_, n)| n.event_type()).collect();
    assert_eq!(
        events,
        EventType::ALL,
        "one documented example per event type"
    );
    for service in [Service::Slack, Service::Discord, Service::Teams] {
        for (name, notification) in &examples {
            golden(
                &format!("{}-{name}", service.label()),
                &rendered(service, notification),
            );
        }
    }
}

#[test]
fn the_hard_cases_render_their_golden_bodies() {
    for service in [Service::Slack, Service::Discord, Service::Teams] {
        for (name, notification) in examples::hard() {
            if name == "long" {
                continue; // Checked by limits below: the golden would be 20 KB of repetition.
            }
            golden(
                &format!("{}-{name}", service.label()),
                &rendered(service, &notification),
            );
        }
    }
}

#[test]
fn the_compat_receivers_get_the_compat_json_unchanged() {
    for (_, notification) in examples::documented().into_iter().chain(examples::hard()) {
        let compat = notification.to_json().unwrap();
        assert_eq!(rendered(Service::Webhook, &notification), compat);
        assert_eq!(rendered(Service::Generic, &notification), compat);
    }
}

fn receiver(service: Service, username: Option<&str>) -> Receiver {
    Receiver {
        service,
        id: format!("{}:00000000", service.label()),
        endpoint: url::Url::parse("https://example.invalid/").unwrap(),
        masked: String::new(),
        events: crate::notify::EventSet::NONE,
        username: username.map(str::to_owned),
    }
}

#[test]
fn a_slack_botname_becomes_the_username_and_only_slack_gets_it() {
    let (_, completed) = &examples::documented()[2];
    let with: Value = serde_json::from_slice(
        &render_for(&receiver(Service::Slack, Some("watch bot")), completed).unwrap(),
    )
    .unwrap();
    assert_eq!(with["username"], "watch bot");
    let without: Value =
        serde_json::from_slice(&render_for(&receiver(Service::Slack, None), completed).unwrap())
            .unwrap();
    assert!(without.get("username").is_none());
    let discord: Value = serde_json::from_slice(
        &render_for(&receiver(Service::Discord, Some("x")), completed).unwrap(),
    )
    .unwrap();
    assert!(discord.get("username").is_none());
}

#[test]
fn slack_escapes_its_markup_characters_in_every_mrkdwn_text() {
    let (_, multi) = examples::hard().remove(0);
    let body: Value = serde_json::from_slice(&rendered(Service::Slack, &multi)).unwrap();
    let reason = body["blocks"][2]["text"]["text"].as_str().unwrap();
    assert_eq!(
        reason,
        "*Reason*\npods crash-looping: exporter &lt;exit 1&gt; &amp; postgres *ok*"
    );
}

fn chars(value: &Value) -> usize {
    value.as_str().map_or(0, |s| s.chars().count())
}

#[test]
fn a_long_error_is_cut_to_each_services_limits_with_an_ellipsis() {
    let (_, long) = examples::hard().remove(1);
    let Event::ImageRolloutFailed { error, .. } = &long.event else {
        panic!("failed");
    };
    assert!(error.chars().count() > 6000);

    let discord: Value = serde_json::from_slice(&rendered(Service::Discord, &long)).unwrap();
    let embed = &discord["embeds"][0];
    let description = embed["description"].as_str().unwrap();
    assert!(description.ends_with('…'), "{description}");
    assert!(chars(&embed["description"]) <= 4096);
    let fields = embed["fields"].as_array().unwrap();
    let total = chars(&embed["title"])
        + chars(&embed["description"])
        + chars(&embed["footer"]["text"])
        + fields
            .iter()
            .map(|f| chars(&f["name"]) + chars(&f["value"]))
            .sum::<usize>();
    assert!(total <= 6000, "{total}");

    let slack: Value = serde_json::from_slice(&rendered(Service::Slack, &long)).unwrap();
    let reason = &slack["blocks"][2]["text"]["text"];
    assert_eq!(chars(reason), 3000);
    assert!(reason.as_str().unwrap().ends_with('…'));

    let teams: Value = serde_json::from_slice(&rendered(Service::Teams, &long)).unwrap();
    let reason = &teams["attachments"][0]["content"]["body"][2]["text"];
    assert_eq!(chars(reason), 4000);
}

#[test]
fn digests_are_shortened_to_twelve_hex_digits() {
    assert_eq!(
        shorten(
            "a=app:1.2.0@sha256:abcdef1234567890abcdef1234567890abcdef1234567890abcdef1234567890,b=x:1"
        ),
        "a=app:1.2.0@sha256:abcdef123456…,b=x:1"
    );
    assert_eq!(shorten("app@sha256:abc"), "app@sha256:abc");
    assert_eq!(shorten("app:1"), "app:1");
}

#[test]
fn durations_read_as_people_say_them() {
    use std::time::Duration;
    let cases = [
        (850, "850ms"),
        (45_000, "45s"),
        (47_250, "47s"),
        (120_000, "2m"),
        (125_000, "2m 5s"),
        (3_600_000, "1h"),
        (3_725_000, "1h 2m"),
    ];
    for (millis, shown) in cases {
        assert_eq!(human(Duration::from_millis(millis)), shown);
    }
}
