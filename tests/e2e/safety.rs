//! Never overwrite another writer, never fight one, never let a slow receiver hold anything up.

use std::time::Duration;

use watch_cluster_sim::{Fault, Kind};
use watch_cluster_testkit::Response;

use crate::env::{Env, NS};
use crate::{as_pairs, enabled};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_edit_between_decision_and_patch_is_refused_by_the_test_and_not_overwritten() {
    let mut env = Env::start().await;
    env.push("team/race", "1.0.0", "a").await;
    env.push("team/race", "1.1.0", "a").await;
    let current = env.image("team/race", "1.0.0");
    env.create(
        Kind::Deployment,
        "race",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
    );
    // The first check must decide an update: if it still saw the new Deployment rolling out, the edit below
    // would land before any update was decided, and there would be no race to test.
    env.wait_for(
        Kind::Deployment,
        "race",
        "its first rollout complete",
        |d| {
            serde_json::from_value(d.clone()).is_ok_and(|d| {
                watch_cluster::workload::deployment_progress(&d)
                    == watch_cluster::workload::Progress::Complete
            })
        },
    )
    .await;
    // Hold the controller's patches long enough for someone else to edit the workload in between.
    let path = format!("/apis/apps/v1/namespaces/{NS}/deployments/race");
    env.sim
        .faults()
        .inject(Fault::delay(&path, Duration::from_secs(2), 10).method("PATCH"));
    env.spawn_controller(env.base_settings());
    // The check decides from the watch's copy; it has read the ServiceAccount (for its pull secrets) and is
    // deciding, its patch to be held: now another writer edits the workload.
    let account = format!("/api/v1/namespaces/{NS}/serviceaccounts/default");
    let reads = || {
        env.sim
            .request_log()
            .entries()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path == account)
            .count()
    };
    let deadline = tokio::time::Instant::now() + crate::env::WAIT;
    while reads() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the controller never read the workload's ServiceAccount"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let theirs = env.image("team/race", "1.1.0");
    env.edit(Kind::Deployment, "race", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = serde_json::json!(theirs);
    });

    // The held update patch fails its `test` (422); the controller reads again, finds the other writer's
    // image already at the newest version, and writes nothing.
    let patches = || {
        env.sim
            .request_log()
            .entries()
            .into_iter()
            .filter(|r| {
                r.method == "PATCH"
                    && r.path == path
                    && r.content_type.as_deref() == Some("application/json-patch+json")
            })
            .map(|r| r.status)
            .collect::<Vec<_>>()
    };
    while !patches().contains(&422) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no refused patch: {:?}",
            patches()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Two more checks after the refusal find nothing to do and patch nothing.
    env.more_checks(Kind::Deployment, "race", 2).await;
    assert_eq!(
        env.image_of(Kind::Deployment, "race", "app"),
        theirs,
        "the other writer's edit stands"
    );
    assert!(
        !env.webhook_types("race")
            .iter()
            .any(|t| t.starts_with("IMAGE_ROLLOUT"))
    );
    assert!(
        !env.reasons("race").contains(&"UpdateFailed".to_owned()),
        "a conflict is not a failure"
    );
    assert_eq!(patches(), [422], "one refused update patch, no other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_429_gets_the_outcome_after_retry_after_with_the_same_delivery_id() {
    let mut env = Env::start().await;
    env.push("team/hook", "1.0.0", "a").await;
    env.push("team/hook", "1.0.1", "a").await;
    env.create(
        Kind::Deployment,
        "hook",
        &[("app", &env.image("team/hook", "1.0.0"))],
        &as_pairs(&enabled("version")),
    );
    env.webhook.respond_next(Response::TooManyRequests {
        retry_after_secs: 1,
    });
    let settings = env
        .base_settings()
        .with("WEBHOOK_ENABLE_DEPLOYMENT_DETECTED", "false")
        .with("WEBHOOK_ENABLE_IMAGE_ROLLOUT_STARTED", "false");
    env.spawn_controller(settings);

    let requests = {
        let deadline = tokio::time::Instant::now() + crate::env::WAIT;
        loop {
            let found = env.webhook_requests("hook");
            if found.len() >= 2 {
                break found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "got {} requests",
                found.len()
            );
            let _ = env
                .webhook
                .wait_for_requests(found.len() + 1, Duration::from_millis(500))
                .await;
        }
    };
    assert_eq!(requests[0].json()["eventType"], "IMAGE_ROLLOUT_COMPLETED");
    assert_eq!(
        requests[0].body, requests[1].body,
        "the retry sends the same body"
    );
    let id = |i: usize| {
        requests[i]
            .header("x-watch-cluster-delivery")
            .map(str::to_owned)
    };
    assert!(id(0).is_some());
    assert_eq!(id(0), id(1));
    let waited = requests[1].received_at - requests[0].received_at;
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert_eq!(
        env.webhook_requests("hook").len(),
        2,
        "delivered once accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_delay_other_workloads_updates() {
    let mut env = Env::start().await;
    for repo in ["team/one", "team/two"] {
        env.push(repo, "1.0.0", "a").await;
        env.push(repo, "1.1.0", "a").await;
    }
    // Every request hangs until the per-request timeout (10 s, WEBHOOK_TIMEOUT below).
    for _ in 0..20 {
        env.webhook.respond_next(Response::Hang);
    }
    let settings = env.base_settings().with("WEBHOOK_TIMEOUT", "10000");
    env.create(
        Kind::Deployment,
        "one",
        &[("app", &env.image("team/one", "1.0.0"))],
        &as_pairs(&enabled("version")),
    );
    env.create(
        Kind::Deployment,
        "two",
        &[("app", &env.image("team/two", "1.0.0"))],
        &as_pairs(&enabled("version")),
    );
    let started = tokio::time::Instant::now();
    env.spawn_controller(settings);
    for name in ["one", "two"] {
        env.wait_for(Kind::Deployment, name, "updated", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .is_some_and(|i| i.contains(":1.1.0@sha256:"))
        })
        .await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "both updates happened while every webhook request hung ({:?})",
        started.elapsed()
    );
}

/// The events about the cluster quarantine ConfigMap, in the controller's namespace.
fn configmap_reasons(env: &Env) -> Vec<String> {
    env.sim
        .store()
        .list(Kind::Event, Some("watch-cluster"))
        .into_iter()
        .filter(|e| {
            let name = "watch-cluster-quarantine";
            e["regarding"]["name"] == name || e["involvedObject"]["name"] == name
        })
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

fn set_cluster_quarantine(env: &Env, entries: &str) {
    let store = env.sim.store();
    let mut map = store
        .get(
            Kind::ConfigMap,
            Some("watch-cluster"),
            "watch-cluster-quarantine",
        )
        .expect("k8s/ ships the ConfigMap");
    map["data"] = serde_json::json!({"entries.json": entries});
    store.update(Kind::ConfigMap, map).expect("update");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_cluster_quarantine_holds_every_update_and_is_reported_on_the_configmap() {
    let mut env = Env::start().await;
    env.push("team/held", "1.0.0", "a").await;
    let newer = env.push("team/held", "1.1.0", "a").await;
    let current = env.image("team/held", "1.0.0");
    set_cluster_quarantine(&env, "{not a list");
    env.create(
        Kind::Deployment,
        "held",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
    );
    env.spawn_controller(env.base_settings().with("QUARANTINE_SCOPE", "cluster"));

    env.wait_for_event("held", "QuarantineUnreadable").await;
    // A second check, asked for, meets the same ConfigMap.
    env.set_annotation(
        Kind::Deployment,
        "held",
        "watch-cluster.io/check-now",
        Some(""),
    );
    env.wait_for_event("held", "ManualCheckFailed").await;
    assert_eq!(
        env.image_of(Kind::Deployment, "held", "app"),
        current,
        "any digest could be the quarantined one: nothing is updated"
    );
    assert_eq!(
        configmap_reasons(&env),
        ["QuarantineUnreadable"],
        "one Warning on the ConfigMap, not one per check"
    );

    // Repaired by hand: the next check, asked for once the first request is used up, updates.
    set_cluster_quarantine(&env, "[]");
    let deadline = tokio::time::Instant::now() + crate::env::WAIT;
    while env.get(Kind::Deployment, "held")["metadata"]["annotations"]
        .get("watch-cluster.io/check-now")
        .is_some()
    {
        assert!(tokio::time::Instant::now() < deadline, "check-now stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.set_annotation(
        Kind::Deployment,
        "held",
        "watch-cluster.io/check-now",
        Some(""),
    );
    let wanted = format!("{}@{}", env.image("team/held", "1.1.0"), newer.digest);
    while env.image_of(Kind::Deployment, "held", "app") != wanted {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not updated after the repair"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
