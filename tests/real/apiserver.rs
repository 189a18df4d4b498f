//! What only a real API server shows: objects and namespaces deleted mid-rollout, and another field manager
//! owning the image field by server-side apply.

use std::time::Duration;

use serde_json::json;
use watch_cluster_testkit::ImageFault;

use crate::env::{Kind, Mode, RealEnv, WAIT};
use crate::{as_pairs, enabled};

/// A workload deleted while its rollout is observed: the controller stops observing it, sends nothing
/// further about it, and keeps serving the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_deleted_mid_rollout_is_let_go_and_the_others_still_update() {
    let mut env = RealEnv::start("deleted-mid-rollout").await;
    env.push("team/gone", "1.0.0").await;
    let stuck = env.push("team/gone", "1.1.0").await;
    env.set_fault(&stuck.digest, ImageFault::NeverReady).await;
    env.create(
        Kind::Deployment,
        "gone",
        &[("app", &env.image("team/gone", "1.0.0"))],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    env.spawn_controller(&settings);
    env.wait_for_webhook("gone", "IMAGE_ROLLOUT_STARTED").await;

    let output = env
        .testbed
        .kubectl(&[
            "-n",
            env.ns(),
            "delete",
            "deployment",
            "gone",
            "--wait=true",
        ])
        .expect("kubectl");
    assert!(output.status.success(), "{output:?}");

    // The controller goes on with the rest of the namespace.
    env.push("team/next", "1.0.0").await;
    env.push("team/next", "1.1.0").await;
    env.create(
        Kind::Deployment,
        "next",
        &[("app", &env.image("team/next", "1.0.0"))],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    env.wait_for_webhook("next", "IMAGE_ROLLOUT_COMPLETED")
        .await;
    assert_eq!(env.webhook_types("gone"), ["IMAGE_ROLLOUT_STARTED"]);
}

/// The workload's namespace is deleted mid-rollout: NamespaceLifecycle refuses new Events (403) while it
/// terminates; the controller neither crashes nor retries without end, and its other work goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_deleted_mid_rollout_does_not_stop_the_controller() {
    let mut env = RealEnv::start("ns-deleted").await;
    env.push("team/app", "1.0.0").await;
    let stuck = env.push("team/app", "1.1.0").await;
    env.set_fault(&stuck.digest, ImageFault::NeverReady).await;
    env.create(
        Kind::Deployment,
        "app",
        &[("app", &env.image("team/app", "1.0.0"))],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    let (index, port) = {
        let port = crate::free_port();
        let settings: Vec<(String, String)> = settings
            .into_iter()
            .filter(|(k, _)| k != "ADMIN_ADDR")
            .chain([("ADMIN_ADDR".to_owned(), format!("127.0.0.1:{port}"))])
            .collect();
        (env.spawn_controller(&settings), port)
    };
    env.wait_for_webhook("app", "IMAGE_ROLLOUT_STARTED").await;
    let output = env
        .testbed
        .kubectl(&[
            "delete",
            "namespace",
            env.ns(),
            "--wait=true",
            "--timeout=60s",
        ])
        .expect("kubectl");
    assert!(output.status.success(), "{output:?}");

    // Still alive and ready: its watches of a namespace that no longer exists carry on.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some((200, _)) = crate::http_get(port, "/readyz").await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready: {}",
            env.controller_log(index)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(env.is_running(index), "the controller is still running");
    assert_eq!(env.webhook_types("app"), ["IMAGE_ROLLOUT_STARTED"]);
}

/// A GitOps tool that owns the image field by server-side apply: the controller's update takes the field
/// over (a JSON Patch is an Update), the tool's next plain apply is refused with a conflict naming
/// `watch-cluster`, and a forced apply that puts the old image back is reported once and not fought.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_field_manager_owning_the_image_by_server_side_apply() {
    let mut env = RealEnv::start("server-side-apply").await;
    env.push("team/ssa", "1.0.0").await;
    env.push("team/ssa", "1.1.0").await;
    let current = env.image("team/ssa", "1.0.0");
    let manifest = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "ssa", "namespace": env.ns(), "annotations": {
            "watch-cluster.io/enabled": "true",
            "watch-cluster.io/cron": crate::EVERY_SECOND,
            "watch-cluster.io/strategy": "version",
        }},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "ssa"}},
            "template": {"metadata": {"labels": {"app": "ssa"}},
                "spec": {"containers": [{"name": "app", "image": current}]}},
        },
    })
    .to_string();
    let testbed = env.testbed.clone();
    let apply = |extra: &[&str]| {
        let mut args = vec![
            "apply",
            "--server-side",
            "--field-manager=gitops",
            "-f",
            "-",
        ];
        args.extend_from_slice(extra);
        testbed.kubectl_stdin(&args, &manifest).expect("kubectl")
    };
    let first = apply(&[]);
    assert!(first.status.success(), "{first:?}");
    let port = crate::free_port();
    let settings: Vec<(String, String)> = env
        .settings()
        .await
        .into_iter()
        .filter(|(k, _)| k != "ADMIN_ADDR")
        .chain([("ADMIN_ADDR".to_owned(), format!("127.0.0.1:{port}"))])
        .collect();
    env.spawn_controller(&settings);
    env.wait_for_webhook("ssa", "IMAGE_ROLLOUT_COMPLETED").await;

    let plain = apply(&[]);
    assert!(!plain.status.success(), "the plain apply was accepted");
    let said = String::from_utf8_lossy(&plain.stderr);
    assert!(
        said.contains("conflict") && said.contains("watch-cluster"),
        "{said}"
    );

    let forced = apply(&["--force-conflicts"]);
    assert!(forced.status.success(), "{forced:?}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !env
        .reasons("ssa")
        .await
        .contains(&"UpdateReverted".to_owned())
    {
        assert!(tokio::time::Instant::now() < deadline, "no UpdateReverted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    crate::more_checks(port, "no_update", 3.0).await;
    assert_eq!(
        env.image_of(Kind::Deployment, "ssa").await,
        current,
        "not fought"
    );
    assert_eq!(
        env.webhook_types("ssa")
            .iter()
            .filter(|t| *t == "IMAGE_ROLLOUT_STARTED")
            .count(),
        1
    );
}

/// etcd compacts the history the controller's watches stand on, then kube-apiserver is killed and started
/// again, all mid-rollout: the watches resume (from the new watch cache, or by a relist after 410 Expired,
/// depending on timing), the rollout's outcome is delivered exactly once, and a later update still happens.
/// On a control plane of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_apiserver_killed_mid_rollout_after_an_etcd_compaction() {
    let mut env = RealEnv::start_in("apiserver-restart", Mode::ClusterWide).await;
    env.push("team/app", "1.0.0").await;
    let slow = env.push("team/app", "1.1.0").await;
    env.set_fault(&slow.digest, ImageFault::NeverReady).await;
    env.create(
        Kind::Deployment,
        "app",
        &[("app", &env.image("team/app", "1.0.0"))],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let port = crate::free_port();
    let settings: Vec<(String, String)> = env
        .settings()
        .await
        .into_iter()
        .filter(|(k, _)| k != "ADMIN_ADDR")
        .chain([("ADMIN_ADDR".to_owned(), format!("127.0.0.1:{port}"))])
        .collect();
    let index = env.spawn_controller(&settings);
    env.wait_for_webhook("app", "IMAGE_ROLLOUT_STARTED").await;

    let revision = env.testbed.compact_etcd().await.expect("etcd compaction");
    assert!(revision > 0);
    let restarted = crate::env::now_rfc3339();
    env.testbed
        .restart_component("kube-apiserver")
        .expect("kube-apiserver restarted");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ready = env.testbed.kubectl(&["get", "--raw", "/readyz"]);
        if ready.is_ok_and(|o| o.status.success()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kube-apiserver did not come back"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Ready, and its RBAC caches loaded a moment later: refusals until then are not RBAC gaps.
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.authorizer_warmed_up_since(&restarted);

    env.clear_fault(&slow.digest).await;
    env.wait_for_webhook("app", "IMAGE_ROLLOUT_COMPLETED").await;
    env.wait_for(Kind::Deployment, "app", "record removed", |d| {
        d["metadata"]["annotations"]
            .get("watch-cluster.io/rollout")
            .is_none()
    })
    .await;
    let newer = env.push("team/app", "1.2.0").await;
    let expected = format!("{}@{}", env.image("team/app", "1.2.0"), newer.digest);
    env.wait_for(Kind::Deployment, "app", "a later update", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] == expected.as_str()
    })
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while env
        .webhook_types("app")
        .iter()
        .filter(|t| *t == "IMAGE_ROLLOUT_COMPLETED")
        .count()
        < 2
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            env.webhook_types("app")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        env.webhook_types("app"),
        [
            "IMAGE_ROLLOUT_STARTED",
            "IMAGE_ROLLOUT_COMPLETED",
            "IMAGE_ROLLOUT_STARTED",
            "IMAGE_ROLLOUT_COMPLETED"
        ],
        "each outcome exactly once"
    );
    assert!(matches!(
        crate::http_get(port, "/readyz").await,
        Some((200, _))
    ));
    assert!(env.is_running(index), "the controller is still running");
}
