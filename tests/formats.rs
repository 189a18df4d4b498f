//! The chat bodies judged by the services' own libraries from npm (docs/testbed.md#npmcheck), and the
//! examples in docs/notifications.md#formats kept equal to what the renderer sends.
//!
//! Every service × every example (each event type, several containers, a rollback with quarantine, an error
//! longer than any limit, a refused update, a Slack botname) must be accepted; and each validator is shown
//! to refuse a body that breaks its service's rules, so a pass means something.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use watch_cluster::notify::format::{self, examples};
use watch_cluster::notify::{EventSet, Notification, Receiver, Service};
use watch_cluster_testkit::npmcheck;

fn all_examples() -> Vec<(&'static str, Notification)> {
    examples::documented()
        .into_iter()
        .chain(examples::hard())
        .collect()
}

fn receiver(service: Service, username: Option<&str>) -> Receiver {
    Receiver {
        service,
        id: format!("{}:00000000", service.label()),
        endpoint: "https://example.invalid/".parse().unwrap(),
        masked: String::new(),
        events: EventSet::NONE,
        username: username.map(str::to_owned),
    }
}

fn bodies(service: Service, username: Option<&str>) -> Vec<(String, Value)> {
    all_examples()
        .into_iter()
        .map(|(name, notification)| {
            let bytes = format::render_for(&receiver(service, username), &notification).unwrap();
            (
                format!("{}-{name}", service.label()),
                serde_json::from_slice(&bytes).unwrap(),
            )
        })
        .collect()
}

fn named(bodies: &[(String, Value)]) -> Vec<(&str, Value)> {
    bodies
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect()
}

#[test]
fn slack_accepts_every_body_as_block_kit() {
    let mut all = bodies(Service::Slack, None);
    all.extend(
        bodies(Service::Slack, Some("watch-cluster"))
            .into_iter()
            .map(|(n, b)| (format!("{n}-botname"), b)),
    );
    npmcheck::check_slack(&named(&all)).unwrap();
}

#[test]
fn discord_accepts_every_embed_within_its_limits() {
    npmcheck::check_discord(&named(&bodies(Service::Discord, None))).unwrap();
}

#[test]
fn teams_accepts_every_card_with_no_error_or_warning() {
    npmcheck::check_teams(&named(&bodies(Service::Teams, None))).unwrap();
}

fn completed(service: Service) -> Value {
    let (_, notification) = &examples::documented()[2];
    serde_json::from_slice(&format::render(service, notification).unwrap()).unwrap()
}

#[test]
fn the_slack_check_refuses_a_block_of_the_wrong_shape() {
    let mut header_as_mrkdwn = completed(Service::Slack);
    header_as_mrkdwn["blocks"][0]["text"]["type"] = json!("mrkdwn");
    let mut unknown_key = completed(Service::Slack);
    unknown_key["blocks"][1]["colour"] = json!("red");
    let mut no_text = completed(Service::Slack);
    no_text.as_object_mut().unwrap().remove("text");
    for (name, body) in [
        ("header-as-mrkdwn", header_as_mrkdwn),
        ("unknown-key", unknown_key),
        ("no-text", no_text),
    ] {
        let error = npmcheck::check_slack(&[(name, body)]).unwrap_err();
        assert!(error.contains(&format!("{name}: ")), "{error}");
        assert!(error.contains("error TS"), "{error}");
    }
}

#[test]
fn the_discord_check_refuses_an_embed_over_its_limits() {
    let mut long_title = completed(Service::Discord);
    long_title["embeds"][0]["title"] = json!("t".repeat(257));
    let mut long_field = completed(Service::Discord);
    long_field["embeds"][0]["fields"][0]["value"] = json!("v".repeat(1025));
    let mut too_long_in_all = completed(Service::Discord);
    too_long_in_all["embeds"][0]["description"] = json!("d".repeat(4096));
    too_long_in_all["embeds"][0]["fields"] = json!(
        (0..3)
            .map(|i| json!({"name": format!("f{i}"), "value": "v".repeat(1000)}))
            .collect::<Vec<_>>()
    );
    let mut unknown_key = completed(Service::Discord);
    unknown_key["embeds"][0]["colour"] = json!(1);
    for (name, body, says) in [
        ("long-title", long_title, "long-title: title:"),
        ("long-field", long_field, "long-field: fields:"),
        ("too-long", too_long_in_all, "embedLength"),
        ("unknown-key", unknown_key, "did not keep the embed as sent"),
    ] {
        let error = npmcheck::check_discord(&[(name, body)]).unwrap_err();
        assert!(error.contains(says), "{name}: {error}");
    }
}

#[test]
fn the_teams_check_refuses_an_unknown_element_or_a_wrong_version() {
    let mut unknown_element = completed(Service::Teams);
    unknown_element["attachments"][0]["content"]["body"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Carousel", "pages": []}));
    let mut later_element = completed(Service::Teams);
    later_element["attachments"][0]["content"]["body"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Table", "columns": [], "rows": []}));
    let mut wrong_version = completed(Service::Teams);
    wrong_version["attachments"][0]["content"]["version"] = json!("9.9");
    let mut bad_colour = completed(Service::Teams);
    bad_colour["attachments"][0]["content"]["body"][0]["color"] = json!("Purple");
    for (name, body, says) in [
        (
            "unknown-element",
            unknown_element,
            "Unknown element type \"Carousel\"",
        ),
        (
            "later-element",
            later_element,
            "Unknown element type \"Table\"",
        ),
        (
            "wrong-version",
            wrong_version,
            "card version (9.9) is not supported",
        ),
        ("bad-colour", bad_colour, "Invalid value \"Purple\""),
    ] {
        let error = npmcheck::check_teams(&[(name, body)]).unwrap_err();
        assert!(error.contains(says), "{name}: {error}");
    }
}

/// docs/notifications.md shows one real body per service, each after a `<!-- example: <service>-<name> -->`
/// line; each must be what the renderer sends for that example.
#[test]
fn the_documented_examples_are_what_the_renderer_sends() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/notifications.md"
    ))
    .unwrap();
    let mut seen = Vec::new();
    for (at, _) in doc.match_indices("<!-- example: ") {
        let rest = &doc[at + "<!-- example: ".len()..];
        let label = &rest[..rest.find(" -->").unwrap()];
        let block = &rest[rest.find("```json\n").unwrap() + "```json\n".len()..];
        let shown: Value = serde_json::from_str(&block[..block.find("```").unwrap()])
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let (service, name) = label.split_once('-').unwrap();
        let service = [Service::Slack, Service::Discord, Service::Teams]
            .into_iter()
            .find(|s| s.label() == service)
            .unwrap_or_else(|| panic!("{label}: unknown service"));
        let (_, notification) = examples::documented()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{label}: unknown example"));
        let sent: Value =
            serde_json::from_slice(&format::render(service, &notification).unwrap()).unwrap();
        assert_eq!(
            shown, sent,
            "docs/notifications.md example {label} is out of date"
        );
        seen.push(service);
    }
    seen.sort();
    assert_eq!(seen, [Service::Slack, Service::Discord, Service::Teams]);
}
