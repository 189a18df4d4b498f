//! Chat receivers end to end: the controller configured with `NOTIFY_URLS` in every form, pointed by
//! `NOTIFY_ENDPOINT_OVERRIDE` at local receivers, runs an update; each receiver gets the path and query the real
//! service would, and exactly the body the renderer makes from what the test knows independently (the images
//! it pushed, the containers, and the compat body's times and duration).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use watch_cluster::notify::format;
use watch_cluster::notify::receiver::parse_notify_urls;
use watch_cluster::notify::{
    Event, EventSet, EventType, Facts, Notification, Receiver, WorkloadKind, WorkloadRef,
};
use watch_cluster_sim::Kind;
use watch_cluster_testkit::{ReceivedRequest, WebhookReceiver};

use crate::env::{Env, NS, WAIT};
use crate::{as_pairs, enabled};

const SLACK: &str = "slack://watch-bot@T0001/B0002/XXXXSECRET";
const DISCORD: &str = "discord://DiScOrDtOkEn@123456789";
const TEAMS: &str = "teams+https://example.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SiGsEcReT";
const GENERIC: &str = "generic+https://user:pw@hooks.example/in?k=v";

/// The compat body about `name` of `event_type` (WEBHOOK_URL of the environment), as the source of times.
fn compat(env: &Env, name: &str, event_type: EventType) -> Value {
    env.webhooks(name)
        .into_iter()
        .find(|w| w["eventType"] == event_type.as_str())
        .unwrap_or_else(|| panic!("no compat {event_type}"))
}

fn at(body: &Value) -> DateTime<Utc> {
    body["timestamp"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_chat_receiver_gets_its_services_path_and_the_exact_body() {
    let mut env = Env::start().await;
    env.push("chat/app", "1.0.0", "a").await;
    let newer = env.push("chat/app", "1.0.1", "a").await;
    let current = env.image("chat/app", "1.0.0");
    let expected_image = format!("{}@{}", env.image("chat/app", "1.0.1"), newer.digest);
    env.create(
        Kind::Deployment,
        "chat",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
    );
    let local = [
        WebhookReceiver::start().await.unwrap(),
        WebhookReceiver::start().await.unwrap(),
        WebhookReceiver::start().await.unwrap(),
        WebhookReceiver::start().await.unwrap(),
    ];
    let urls = [SLACK, DISCORD, TEAMS, GENERIC].join(" \n ");
    let overrides = ["slack", "discord", "teams", "generic"]
        .iter()
        .zip(&local)
        .map(|(s, r)| format!("{s}=http://{}", r.addr()))
        .collect::<Vec<_>>()
        .join(",");
    let settings = env
        .base_settings()
        .with("NOTIFY_URLS", &urls)
        .with("NOTIFY_ENDPOINT_OVERRIDE", &overrides);
    env.spawn_controller(settings);

    // Every WEBHOOK_ENABLE_* is on in these tests, so each receiver takes DETECTED, STARTED and COMPLETED.
    env.wait_for_webhooks("chat", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    let received: Vec<Vec<ReceivedRequest>> =
        futures::future::join_all(local.iter().map(|r| r.wait_for_requests(3, WAIT)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();

    // The paths and queries the real services would get: tokens in the path, the Teams query with its `sig`
    // byte for byte, the generic URL's query, and `events` never.
    let expected_targets = [
        ("/services/T0001/B0002/XXXXSECRET", None),
        ("/api/webhooks/123456789/DiScOrDtOkEn", None),
        (
            "/workflows/abc/triggers/manual/paths/invoke",
            Some("api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SiGsEcReT"),
        ),
        ("/in", Some("k=v")),
    ];
    for (requests, (path, query)) in received.iter().zip(expected_targets) {
        assert_eq!(requests.len(), 3, "{path}: {requests:#?}");
        for request in requests {
            assert_eq!(request.method, "POST");
            assert_eq!(request.path, path);
            assert_eq!(request.query.as_deref(), query);
            assert_eq!(request.header("content-type"), Some("application/json"));
        }
    }
    // The generic receiver's userinfo is sent as HTTP Basic authentication.
    assert_eq!(
        received[3][0].header("authorization"),
        Some("Basic dXNlcjpwdw==")
    );

    // What the test knows independently, as the notifications the controller should have rendered.
    let detected = compat(&env, "chat", EventType::DeploymentDetected);
    let started = compat(&env, "chat", EventType::ImageRolloutStarted);
    let completed = compat(&env, "chat", EventType::ImageRolloutCompleted);
    let workload = WorkloadRef {
        kind: WorkloadKind::Deployment,
        namespace: NS.into(),
        name: "chat".into(),
    };
    let app = |image: &str| BTreeMap::from([("app".to_owned(), image.to_owned())]);
    let rollout = Facts {
        from: app(&current),
        to: app(&expected_image),
        quarantined: BTreeMap::new(),
        started_at: Some(at(&started)),
    };
    let duration_ms: u64 = completed["details"]["rolloutDuration"]
        .as_str()
        .unwrap()
        .trim_end_matches("ms")
        .parse()
        .unwrap();
    let notifications = [
        Notification::new(
            workload.clone(),
            current.clone(),
            Event::DeploymentDetected {
                cron_expression: detected["details"]["cronExpression"]
                    .as_str()
                    .unwrap()
                    .into(),
                update_strategy: "version".into(),
            },
            at(&detected),
            "-",
        )
        .with_facts(Facts {
            to: app(&current),
            ..Facts::default()
        }),
        Notification::new(
            workload.clone(),
            expected_image.clone(),
            Event::ImageRolloutStarted {
                previous_image: current.clone(),
            },
            at(&started),
            "-",
        )
        .with_facts(rollout.clone()),
        Notification::new(
            workload,
            expected_image.clone(),
            Event::ImageRolloutCompleted {
                rollout_duration: Duration::from_millis(duration_ms),
            },
            at(&completed),
            "-",
        )
        .with_facts(rollout),
    ];
    let receivers: Vec<Receiver> = parse_notify_urls(
        Some(&urls),
        None,
        EventSet::NONE.with(EventType::ImageRolloutFailed),
    )
    .unwrap();
    for (receiver, requests) in receivers.iter().zip(&received) {
        let mut got: Vec<String> = requests.iter().map(ReceivedRequest::body_text).collect();
        let mut want: Vec<String> = notifications
            .iter()
            .map(|n| String::from_utf8(format::render_for(receiver, n).unwrap()).unwrap())
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{receiver:?}");
    }
    // Spot checks that do not go through the renderer.
    let slack: Vec<Value> = received[0].iter().map(ReceivedRequest::json).collect();
    assert!(
        slack.iter().all(|b| b["username"] == "watch-bot"),
        "{slack:#?}"
    );
    let discord: Vec<Value> = received[1].iter().map(ReceivedRequest::json).collect();
    assert!(
        discord.iter().any(|b| b["embeds"][0]["title"]
            == "Rollout completed: Deployment apps/chat"
            && b["embeds"][0]["color"] == 0x2E_CC_71),
        "{discord:#?}"
    );
    let teams: Vec<Value> = received[2].iter().map(ReceivedRequest::json).collect();
    assert!(
        teams
            .iter()
            .all(|b| b["type"] == "message" && b["attachments"][0]["content"]["version"] == "1.4")
    );
    let generic: Vec<Value> = received[3].iter().map(ReceivedRequest::json).collect();
    assert!(generic.contains(&completed), "{generic:#?}");
}

/// The Slack fields or Teams facts of a body, by name.
fn fields(body: &Value) -> BTreeMap<String, String> {
    let slack = body["blocks"][1]["fields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let teams = body["attachments"][0]["content"]["body"][1]["facts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let from_slack = slack.iter().filter_map(|f| {
        let (name, value) = f["text"].as_str()?.split_once('\n')?;
        Some((name.trim_matches('*').to_owned(), value.to_owned()))
    });
    let from_teams = teams.iter().filter_map(|f| {
        Some((
            f["title"].as_str()?.to_owned(),
            f["value"].as_str()?.to_owned(),
        ))
    });
    from_slack.chain(from_teams).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_rollout_tells_chat_receivers_what_was_restored_and_quarantined() {
    let mut env = Env::start().await;
    env.push("chat/bad", "1.0.0", "a").await;
    let newer = env.push("chat/bad", "1.1.0", "a").await;
    let bad = env.image("chat/bad", "1.1.0");
    env.set_outcome_for_image(&bad, watch_cluster_sim::controllers::Outcome::Stuck);
    let current = env.image("chat/bad", "1.0.0");
    let pinned = format!("{bad}@{}", newer.digest);
    env.create(
        Kind::Deployment,
        "bad",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
    );
    let slack = WebhookReceiver::start().await.unwrap();
    let teams = WebhookReceiver::start().await.unwrap();
    let urls = format!("{SLACK}?events=IMAGE_ROLLOUT_FAILED {TEAMS}&events=IMAGE_ROLLOUT_FAILED");
    let overrides = format!(
        "slack=http://{},teams=http://{}",
        slack.addr(),
        teams.addr()
    );
    let settings = env
        .base_settings()
        .with("NOTIFY_URLS", &urls)
        .with("NOTIFY_ENDPOINT_OVERRIDE", &overrides);
    env.spawn_controller(settings);

    let failed = env
        .wait_for_webhooks("bad", "IMAGE_ROLLOUT_FAILED", 1)
        .await;
    assert_eq!(failed[0]["details"]["rolledBackTo"], current.as_str());
    let error = failed[0]["details"]["error"].as_str().unwrap().to_owned();
    let slack_bodies = slack.wait_for_requests(1, WAIT).await.unwrap();
    let teams_bodies = teams.wait_for_requests(1, WAIT).await.unwrap();
    // `events=IMAGE_ROLLOUT_FAILED`: the FAILED message only, though every WEBHOOK_ENABLE_* is on.
    assert_eq!(slack_bodies.len(), 1);
    assert_eq!(teams_bodies.len(), 1);
    let short = format::shorten;
    for body in [slack_bodies[0].json(), teams_bodies[0].json()] {
        let fields = fields(&body);
        assert_eq!(fields["Workload"], "bad");
        assert_eq!(fields["Namespace"], NS);
        assert_eq!(fields["Kind"], "Deployment");
        assert_eq!(
            fields["Update"],
            format!("app: {} → {}", short(&current), short(&pinned))
        );
        assert_eq!(
            fields["Rolled back to"],
            format!("app: {}", short(&current))
        );
        assert_eq!(fields["Quarantined"], format!("app: {}", short(&pinned)));
        assert!(fields.contains_key("Duration"), "{fields:#?}");
    }
    let slack_body = slack_bodies[0].json();
    assert_eq!(
        slack_body["blocks"][0]["text"]["text"],
        "Rollout failed and rolled back: Deployment apps/bad"
    );
    let reason = slack_body["blocks"][2]["text"]["text"].as_str().unwrap();
    assert_eq!(
        reason,
        format!(
            "*Reason*\n{}",
            error
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        )
    );
    let teams_body = teams_bodies[0].json();
    assert_eq!(
        teams_body["attachments"][0]["content"]["body"][2]["text"],
        error.as_str()
    );
    // What the controller really sent, judged by the services' own libraries.
    watch_cluster_testkit::npmcheck::check_slack(&[("e2e-slack-failed", slack_body)]).unwrap();
    watch_cluster_testkit::npmcheck::check_teams(&[("e2e-teams-failed", teams_body)]).unwrap();
}
