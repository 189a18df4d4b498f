//! Two replicas with leader election (SPEC §8): every update exactly once, and no outcome lost when the
//! leader dies or is stopped mid-rollout.

use std::time::Duration;

use watch_cluster_sim::{Kind, controllers::Outcome};

use crate::env::{ControllerSettings, Env, free_port, http_get, wait_for_http};
use crate::{enabled, notes};

fn replica(env: &Env, name: &str) -> ControllerSettings {
    env.base_settings()
        .with("LEADER_ELECTION", "true")
        .with("POD_NAME", name)
        .with("POD_NAMESPACE", "watch-cluster")
}

fn holder(env: &Env) -> Option<String> {
    env.sim
        .store()
        .get(Kind::Lease, Some("watch-cluster"), "watch-cluster")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
        .filter(|h| !h.is_empty())
}

async fn wait_for_holder(env: &Env, wanted: impl Fn(Option<&str>) -> bool) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let current = holder(env);
        if wanted(current.as_deref()) {
            return current;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lease holder stayed {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Accepted JSON patches that changed the workload's image.
fn image_patches(env: &Env, name: &str) -> usize {
    env.sim
        .request_log()
        .entries()
        .into_iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.path.ends_with(&format!("/deployments/{name}"))
                && r.status == 200
                && r.body.contains("/spec/template/spec/containers/0/image")
                && r.body.contains("\"replace\"")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_perform_each_update_exactly_once() {
    let mut env = Env::start().await;
    for repo in ["team/a", "team/b", "team/c"] {
        env.push(repo, "1.0.0", "a").await;
        env.push(repo, "1.1.0", "a").await;
    }
    for (name, repo) in [("a", "team/a"), ("b", "team/b"), ("c", "team/c")] {
        env.create(
            Kind::Deployment,
            name,
            &[("app", &env.image(repo, "1.0.0"))],
            &notes(&enabled("version")),
        );
    }
    env.spawn_controller(replica(&env, "replica-1"));
    env.spawn_controller(replica(&env, "replica-2"));
    for name in ["a", "b", "c"] {
        env.wait_for_webhooks(name, "IMAGE_ROLLOUT_COMPLETED", 1)
            .await;
    }
    for name in ["a", "b", "c"] {
        assert_eq!(image_patches(&env, name), 1, "{name}: one update patch");
        assert_eq!(
            env.webhook_types(name),
            [
                "DEPLOYMENT_DETECTED",
                "IMAGE_ROLLOUT_STARTED",
                "IMAGE_ROLLOUT_COMPLETED"
            ],
            "{name}"
        );
    }
    assert!(holder(&env).is_some());
    assert!(
        env.forbidden_calls().is_empty(),
        "{:?}",
        env.forbidden_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leader_is_killed_mid_rollout_the_other_replica_delivers_exactly_one_outcome() {
    let mut env = Env::start().await;
    env.push("team/ha", "1.0.0", "a").await;
    env.push("team/ha", "1.1.0", "a").await;
    env.set_outcome_for_image("team/ha:1.1.0", Outcome::Slow(40.0));
    env.create(
        Kind::Deployment,
        "ha",
        &[("app", &env.image("team/ha", "1.0.0"))],
        &notes(&enabled("version")),
    );
    let first = env.spawn_controller(replica(&env, "replica-1"));
    wait_for_holder(&env, |h| h == Some("replica-1")).await;
    env.spawn_controller(replica(&env, "replica-2"));
    env.wait_for_webhooks("ha", "IMAGE_ROLLOUT_STARTED", 1)
        .await;
    env.kill_controller(first).await;

    wait_for_holder(&env, |h| h == Some("replica-2")).await;
    env.wait_for(
        Kind::Deployment,
        "ha",
        "the new leader finished the rollout",
        |d| {
            d["metadata"]["annotations"]
                .get("watch-cluster.io/rollout")
                .is_none()
        },
    )
    .await;
    assert_eq!(
        env.webhook_types("ha")
            .iter()
            .filter(|t| *t == "IMAGE_ROLLOUT_COMPLETED")
            .count(),
        1
    );
    assert_eq!(image_patches(&env, "ha"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_rollout_exits_0_releases_the_lease_and_the_next_leader_delivers_the_outcome() {
    let mut env = Env::start().await;
    env.push("team/term", "1.0.0", "a").await;
    env.push("team/term", "1.1.0", "a").await;
    env.set_outcome_for_image("team/term:1.1.0", Outcome::Slow(40.0));
    env.create(
        Kind::Deployment,
        "term",
        &[("app", &env.image("team/term", "1.0.0"))],
        &notes(&enabled("version")),
    );
    let port = free_port();
    let first = env.spawn_controller(
        replica(&env, "replica-1").with("ADMIN_ADDR", &format!("127.0.0.1:{port}")),
    );
    wait_for_holder(&env, |h| h == Some("replica-1")).await;
    wait_for_http(port, "/readyz", 200).await;
    env.spawn_controller(replica(&env, "replica-2"));
    env.wait_for_webhooks("term", "IMAGE_ROLLOUT_STARTED", 1)
        .await;

    let status = env
        .terminate_controller(first, Duration::from_secs(15))
        .await;
    assert_eq!(status.code(), Some(0), "{}", env.controller_log(first));
    assert!(
        http_get(port, "/readyz").await.is_none(),
        "the admin server is gone"
    );
    assert!(
        env.controller_log(first)
            .contains("released the leader Lease"),
        "{}",
        env.controller_log(first)
    );

    wait_for_holder(&env, |h| h == Some("replica-2")).await;
    env.wait_for_webhooks("term", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    env.wait_for(Kind::Deployment, "term", "record removed", |d| {
        d["metadata"]["annotations"]
            .get("watch-cluster.io/rollout")
            .is_none()
    })
    .await;
    assert_eq!(
        env.webhook_types("term")
            .iter()
            .filter(|t| *t == "IMAGE_ROLLOUT_COMPLETED")
            .count(),
        1
    );
}
