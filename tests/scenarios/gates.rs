//! The safety gates (docs/annotations.md#gates), each end to end on both backends. Every wait is on the
//! cluster's state or the controller's metrics; where a gate's point is *when* an update starts, the test
//! compares the controller's own `last-update` time with the gate's time, never a stopwatch of its own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use watch_cluster_testkit::admin::{free_port, metric};

use crate::env::{Backend, Env, Kind, Settings, WAIT, as_pairs, enabled};

fn with(
    mut annotations: Vec<(&'static str, String)>,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    for (k, v) in extra {
        annotations.retain(|(key, _)| key != k);
        annotations.push((k, (*v).to_owned()));
    }
    annotations
}

async fn spawn_observed(env: &mut Env, settings: Settings) -> (usize, u16) {
    let port = free_port();
    let index = env.spawn_controller(&settings.with("ADMIN_ADDR", &format!("127.0.0.1:{port}")));
    (index, port)
}

/// When the controller wrote its last update (its `last-update` annotation, epoch milliseconds).
async fn last_update(env: &Env, name: &str) -> DateTime<Utc> {
    let millis: i64 = env
        .annotation(Kind::Deployment, name, "watch-cluster.io/last-update")
        .await
        .and_then(|v| v.parse().ok())
        .expect("last-update annotation");
    DateTime::from_timestamp_millis(millis).expect("a time")
}

async fn image(env: &Env, name: &str) -> String {
    env.image_of(Kind::Deployment, name, "app").await
}

/// The first-seen time `pending` records for `image` (repo:tag@digest) of container `app`.
fn first_seen(deployment: &Value, image: &str) -> Option<DateTime<Utc>> {
    let raw = deployment["metadata"]["annotations"]["watch-cluster.io/pending"].as_str()?;
    let pending: Value = serde_json::from_str(raw).ok()?;
    pending["app"]
        .as_array()?
        .iter()
        .find(|e| e["image"] == image)
        .and_then(|e| e["firstSeen"].as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// An `update-window` that opens during the test: the update waits (one `UpdateHeld` naming the window,
/// however many checks run), then starts once the window is open and not before.
pub async fn window_opens(backend: Backend) {
    let mut env = Env::start(backend, "gate-window").await;
    env.push("team/win", "1.0.0").await;
    let new = env.push("team/win", "1.1.0").await;
    // Whole seconds: the window's cron has a seconds field.
    let opens = DateTime::from_timestamp(Utc::now().timestamp() + 12, 0).expect("time");
    let window = format!("{} for 10m", opens.format("%S %M %H * * ?"));
    let annotations = with(
        enabled("version"),
        &[("watch-cluster.io/update-window", &window)],
    );
    env.create(
        Kind::Deployment,
        "win",
        &[("app", &env.image("team/win", "1.0.0"))],
        &as_pairs(&annotations),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    let (_, port) = spawn_observed(&mut env, settings).await;
    env.wait_for_event("win", "UpdateHeld").await;
    watch_cluster_testkit::admin::more_checks(port, "held", 3.0).await;
    let notes = env.event_notes("win", "UpdateHeld").await;
    assert_eq!(notes.len(), 1, "one Event however many checks: {notes:?}");
    assert!(notes[0].contains("update-window"), "{notes:?}");
    let target = format!("{}@{}", env.image("team/win", "1.1.0"), new.digest);
    if Utc::now() < opens {
        assert_eq!(image(&env, "win").await, env.image("team/win", "1.0.0"));
    }
    env.wait_image("win", &target).await;
    let written = last_update(&env, "win").await;
    assert!(
        written >= opens,
        "the update started at {written}, before the window opened at {opens}"
    );
}

/// `min-age`: a new version is taken only once the controller has seen it for that long, counted from the
/// first-seen time it records in `pending`.
pub async fn min_age_expires(backend: Backend) {
    let mut env = Env::start(backend, "gate-min-age").await;
    env.push("team/aged", "1.0.0").await;
    let new = env.push("team/aged", "1.1.0").await;
    let annotations = with(enabled("version"), &[("watch-cluster.io/min-age", "8s")]);
    env.create(
        Kind::Deployment,
        "aged",
        &[("app", &env.image("team/aged", "1.0.0"))],
        &as_pairs(&annotations),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    env.spawn_controller(&settings);
    let target = format!("{}@{}", env.image("team/aged", "1.1.0"), new.digest);
    let seen_target = target.clone();
    let held = env
        .wait_for(
            Kind::Deployment,
            "aged",
            "pending records 1.1.0",
            move |d| first_seen(d, &seen_target).is_some(),
        )
        .await;
    let seen = first_seen(&held, &target).expect("first seen");
    env.wait_for_event("aged", "UpdateHeld").await;
    let notes = env.event_notes("aged", "UpdateHeld").await;
    assert!(notes[0].contains("min-age"), "{notes:?}");
    env.wait_image("aged", &target).await;
    let written = last_update(&env, "aged").await;
    assert!(
        written >= seen + chrono::Duration::seconds(8),
        "taken at {written}, first seen at {seen}: younger than min-age"
    );
    env.wait_for(
        Kind::Deployment,
        "aged",
        "pending emptied once taken",
        |d| {
            d["metadata"]["annotations"]
                .get("watch-cluster.io/pending")
                .is_none()
        },
    )
    .await;
}

/// A restart in the middle of a `min-age`: the new process keeps the first-seen time `pending` recorded, so
/// the clock does not start over.
pub async fn min_age_survives_a_restart(backend: Backend) {
    let mut env = Env::start(backend, "gate-min-age-restart").await;
    env.push("team/kept", "1.0.0").await;
    let new = env.push("team/kept", "1.1.0").await;
    let annotations = with(enabled("version"), &[("watch-cluster.io/min-age", "15s")]);
    env.create(
        Kind::Deployment,
        "kept",
        &[("app", &env.image("team/kept", "1.0.0"))],
        &as_pairs(&annotations),
        json!({}),
    )
    .await;
    // No Lease to wait for after the kill: the restart is immediate on both backends.
    let settings = env.settings().await.with("LEADER_ELECTION", "false");
    let first = env.spawn_controller(&settings);
    let target = format!("{}@{}", env.image("team/kept", "1.1.0"), new.digest);
    let seen_target = target.clone();
    let held = env
        .wait_for(
            Kind::Deployment,
            "kept",
            "pending records 1.1.0",
            move |d| first_seen(d, &seen_target).is_some(),
        )
        .await;
    let seen = first_seen(&held, &target).expect("first seen");
    env.kill_controller(first).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, port) = spawn_observed(&mut env, settings).await;
    // The new process checks (and is held) at least once before the candidate ripens.
    watch_cluster_testkit::admin::more_checks(port, "held", 1.0).await;
    let after = env.get(Kind::Deployment, "kept").await;
    if let Some(again) = first_seen(&after, &target) {
        assert_eq!(again, seen, "the restart kept the first-seen time");
    }
    env.wait_image("kept", &target).await;
    let written = last_update(&env, "kept").await;
    assert!(written >= seen + chrono::Duration::seconds(15));
}

/// A stream of releases under `min-age`: one every 3 s, each younger than the 9 s `min-age` when the next
/// arrives. The workload is not starved: the highest version old enough is taken while newer ones keep
/// coming.
pub async fn min_age_release_stream(backend: Backend) {
    let mut env = Env::start(backend, "gate-stream").await;
    env.push("team/stream", "1.0.0").await;
    let annotations = with(enabled("version"), &[("watch-cluster.io/min-age", "9s")]);
    env.create(
        Kind::Deployment,
        "stream",
        &[("app", &env.image("team/stream", "1.0.0"))],
        &as_pairs(&annotations),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    env.spawn_controller(&settings);
    env.wait_for_webhooks("stream", "DEPLOYMENT_DETECTED", 1)
        .await;
    let mut pushed = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut minor = 1;
    loop {
        let tag = format!("1.{minor}.0");
        let new = env.push("team/stream", &tag).await;
        pushed.push((tag, new.digest));
        minor += 1;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let current = image(&env, "stream").await;
        if current != env.image("team/stream", "1.0.0") {
            // Updated while releases keep coming: to a version that was old enough, never the newest.
            let newest = &pushed.last().expect("pushed").0;
            assert!(
                !current.contains(&format!(":{newest}@")),
                "took {current}, the release pushed moments ago"
            );
            let deployment = env.get(Kind::Deployment, "stream").await;
            let change = deployment["metadata"]["annotations"]["watch-cluster.io/change"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(change.ends_with(&current), "{change}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "starved: no update while {} releases came",
            pushed.len()
        );
    }
}

/// `hold: "true"`: checks go on and say what they would do; nothing is applied until the hold goes.
pub async fn hold_then_release(backend: Backend) {
    let mut env = Env::start(backend, "gate-hold").await;
    env.push("team/held", "1.0.0").await;
    let new = env.push("team/held", "1.1.0").await;
    let annotations = with(enabled("version"), &[("watch-cluster.io/hold", "TRUE")]);
    env.create(
        Kind::Deployment,
        "held",
        &[("app", &env.image("team/held", "1.0.0"))],
        &as_pairs(&annotations),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    let (_, port) = spawn_observed(&mut env, settings).await;
    env.wait_for_event("held", "UpdateHeld").await;
    watch_cluster_testkit::admin::more_checks(port, "held", 3.0).await;
    let notes = env.event_notes("held", "UpdateHeld").await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("watch-cluster.io/hold") && notes[0].contains("1.1.0"),
        "{notes:?}"
    );
    assert_eq!(image(&env, "held").await, env.image("team/held", "1.0.0"));
    assert_eq!(metric(port, "watch_cluster_updates_total").await, 0.0);
    env.set_annotation(Kind::Deployment, "held", "watch-cluster.io/hold", None)
        .await;
    env.wait_image(
        "held",
        &format!("{}@{}", env.image("team/held", "1.1.0"), new.digest),
    )
    .await;
}

/// `tag-filter` and `skip` choose among candidates: the filter keeps 1.1.x, `skip` refuses 1.1.2, so 1.1.1 is
/// taken although 1.1.2 and 2.0.0 exist.
pub async fn filter_and_skip(backend: Backend) {
    let mut env = Env::start(backend, "gate-filter").await;
    env.push("team/pick", "1.1.0").await;
    let wanted = env.push("team/pick", "1.1.1").await;
    env.push("team/pick", "1.1.2").await;
    env.push("team/pick", "2.0.0").await;
    let annotations = with(
        enabled("version"),
        &[
            ("watch-cluster.io/tag-filter", r"1\.1\.[0-9]+"),
            ("watch-cluster.io/skip", "1.1.2"),
        ],
    );
    env.create(
        Kind::Deployment,
        "pick",
        &[("app", &env.image("team/pick", "1.1.0"))],
        &as_pairs(&annotations),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    env.spawn_controller(&settings);
    env.wait_image(
        "pick",
        &format!("{}@{}", env.image("team/pick", "1.1.1"), wanted.digest),
    )
    .await;
    env.wait_for_webhooks("pick", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
}

/// An invalid gate: an `InvalidAnnotation` Event naming it and an example, and no update starts.
pub async fn invalid_gate(backend: Backend) {
    let mut env = Env::start(backend, "gate-invalid").await;
    env.push("team/bad", "1.0.0").await;
    env.push("team/bad", "1.1.0").await;
    let annotations = with(enabled("version"), &[("watch-cluster.io/min-age", "soon")]);
    env.create(
        Kind::Deployment,
        "bad",
        &[("app", &env.image("team/bad", "1.0.0"))],
        &as_pairs(&annotations),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    let (_, port) = spawn_observed(&mut env, settings).await;
    env.wait_for_event("bad", "InvalidAnnotation").await;
    watch_cluster_testkit::admin::more_checks(port, "no_update", 2.0).await;
    let notes = env.event_notes("bad", "InvalidAnnotation").await;
    assert!(
        notes[0].contains("watch-cluster.io/min-age") && notes[0].contains("for example"),
        "{notes:?}"
    );
    assert_eq!(image(&env, "bad").await, env.image("team/bad", "1.0.0"));
    assert_eq!(metric(port, "watch_cluster_updates_total").await, 0.0);
}
