//! The scenarios, each written once: `tests/scenarios.rs` runs every one on both backends.
//!
//! Waits are on the cluster's state, the webhooks, the Events and the controller's metrics, never on its log
//! text or on a fixed sleep.

use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};
use watch_cluster_testkit::{ImageFault, ImageKind, Pushed};

use crate::env::{Backend, Env, Kind, Settings, WAIT, as_pairs, enabled};
use watch_cluster_testkit::admin::{free_port, http_get, metric, more_checks};

/// The `deployment` object of a webhook body: the kind is named for StatefulSets and DaemonSets only.
fn payload_workload(env: &Env, kind: Kind, name: &str, image: &str) -> Value {
    let mut workload = json!({"namespace": env.ns(), "name": name, "image": image});
    if kind != Kind::Deployment {
        workload["kind"] = json!(kind.name());
    }
    workload
}

fn pinned(env: &Env, repo: &str, tag: &str, pushed: &Pushed) -> String {
    format!("{}@{}", env.image(repo, tag), pushed.digest)
}

/// A controller with its admin server on a known port.
async fn spawn_observed(env: &mut Env, settings: Settings) -> (usize, u16) {
    let port = free_port();
    let index = env.spawn_controller(&settings.with("ADMIN_ADDR", &format!("127.0.0.1:{port}")));
    (index, port)
}

/// Waits until every ready pod of `name` runs `image` and reports its digest as `imageID`.
async fn pods_run(env: &Env, name: &str, image: &str, digest: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let pods = env.ready_pod_images(name).await;
        if !pods.is_empty()
            && pods
                .iter()
                .all(|(i, id)| i == image && id.ends_with(&format!("@{digest}")))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pods of {name} never all ran {image} ({digest}): {pods:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn count(list: &[String], item: &str) -> usize {
    list.iter().filter(|i| *i == item).count()
}

fn test_name(scenario: &str, kind: Kind) -> String {
    format!("{scenario}-{}", kind.kubectl_name())
}

pub async fn semver(backend: Backend, kind: Kind) {
    let mut env = Env::start(backend, &test_name("semver", kind)).await;
    env.push("team/web", "1.0.0").await;
    let newer = env.push("team/web", "1.2.0").await;
    env.push("team/web", "1.1.0").await;
    env.push("team/web", "2.0.0-rc1").await;
    let current = env.image("team/web", "1.0.0");
    env.create(
        kind,
        "web",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    env.spawn_controller(&settings);

    let expected = pinned(&env, "team/web", "1.2.0", &newer);
    let completed = env
        .wait_for_webhooks("web", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    assert_eq!(
        env.webhook_types("web"),
        [
            "DEPLOYMENT_DETECTED",
            "IMAGE_ROLLOUT_STARTED",
            "IMAGE_ROLLOUT_COMPLETED"
        ]
    );
    let hooks = env.webhooks("web");
    assert_eq!(
        hooks[0]["details"],
        json!({"cronExpression": crate::EVERY_SECOND, "updateStrategy": "version"})
    );
    assert_eq!(
        hooks[1]["deployment"],
        payload_workload(&env, kind, "web", &expected)
    );
    assert_eq!(hooks[1]["details"], json!({"previousImage": current}));
    assert_eq!(
        completed[0]["deployment"],
        payload_workload(&env, kind, "web", &expected)
    );
    assert_eq!(env.image_of(kind, "web", "app").await, expected);
    assert_eq!(
        env.annotation(kind, "web", "watch-cluster.io/change").await,
        Some(format!("{current} -> {expected}"))
    );
    pods_run(&env, "web", &expected, &newer.digest).await;
    let reasons = env.reasons("web").await;
    assert!(
        reasons.contains(&"ImageUpdated".to_owned())
            && reasons.contains(&"RolloutCompleted".to_owned()),
        "{reasons:?}"
    );
}

/// `version-lock-major` or `version-lock-minor`: the newest tag inside the range, never the one outside.
pub async fn locked(backend: Backend, strategy: &str) {
    let mut env = Env::start(backend, strategy).await;
    let (current, inside, outside) = match strategy {
        "version-lock-major" => ("1.0.0", "1.3.0", "2.0.0"),
        _ => ("1.4.0", "1.4.2", "1.5.0"),
    };
    env.push("team/lock", current).await;
    let newer = env.push("team/lock", inside).await;
    env.push("team/lock", outside).await;
    env.create(
        Kind::Deployment,
        "lock",
        &[("app", &env.image("team/lock", current))],
        &as_pairs(&enabled(strategy)),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    env.spawn_controller(&settings);
    env.wait_for_webhooks("lock", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    assert_eq!(
        env.image_of(Kind::Deployment, "lock", "app").await,
        pinned(&env, "team/lock", inside, &newer)
    );
    assert_eq!(
        env.webhooks("lock")[0]["details"]["updateStrategy"],
        strategy
    );
}

/// A `-alpine` image stays on `-alpine`.
pub async fn variant_kept(backend: Backend) {
    let mut env = Env::start(backend, "variant").await;
    env.push("team/var", "1.0.0-alpine").await;
    let newer = env.push("team/var", "1.1.0-alpine").await;
    env.push("team/var", "1.2.0").await;
    env.push("team/var", "1.2.0-slim").await;
    env.create(
        Kind::Deployment,
        "var",
        &[("app", &env.image("team/var", "1.0.0-alpine"))],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    env.spawn_controller(&settings);
    env.wait_for_webhooks("var", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    assert_eq!(
        env.image_of(Kind::Deployment, "var", "app").await,
        pinned(&env, "team/var", "1.1.0-alpine", &newer)
    );
}

/// Only pre-releases are newer: nothing is done, however many checks run.
pub async fn prerelease_only(backend: Backend) {
    let mut env = Env::start(backend, "prerelease").await;
    env.push("team/pre", "1.0.0").await;
    env.push("team/pre", "1.1.0-rc.1").await;
    env.push("team/pre", "2.0.0-beta").await;
    let current = env.image("team/pre", "1.0.0");
    env.create(
        Kind::Deployment,
        "pre",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    let (_, port) = spawn_observed(&mut env, settings).await;
    more_checks(port, "no_update", 3.0).await;
    assert_eq!(env.image_of(Kind::Deployment, "pre", "app").await, current);
    assert_eq!(env.webhook_types("pre"), ["DEPLOYMENT_DETECTED"]);
}

/// `latest`: nothing while the pods run the tag's digest; a re-push is followed and pinned.
pub async fn moving_tag(backend: Backend, kind: Kind) {
    let mut env = Env::start(backend, &test_name("moving", kind)).await;
    let first = env
        .push_kind("team/tool", "stable", ImageKind::OciIndex, "one")
        .await;
    let current = env.image("team/tool", "stable");
    env.create(
        kind,
        "tool",
        &[("app", &current)],
        &as_pairs(&enabled("latest")),
        json!({}),
    )
    .await;
    // The pods report the digest they pulled: the controller compares with that.
    pods_run(&env, "tool", &current, &first.digest).await;
    let settings = env.settings().await;
    let (_, port) = spawn_observed(&mut env, settings).await;
    more_checks(port, "no_update", 2.0).await;
    assert_eq!(env.image_of(kind, "tool", "app").await, current);

    let second = env
        .push_kind("team/tool", "stable", ImageKind::OciIndex, "two")
        .await;
    assert_ne!(first.digest, second.digest);
    let moved = format!("{current}@{}", second.digest);
    let done = env
        .wait_for_webhooks("tool", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    assert_eq!(
        done[0]["deployment"],
        payload_workload(&env, kind, "tool", &moved)
    );
    assert_eq!(env.image_of(kind, "tool", "app").await, moved);
    assert_eq!(
        env.annotation(kind, "tool", "watch-cluster.io/last-update-from-digest")
            .await,
        Some(first.digest.clone()),
        "the digest the pods ran is recorded as the previous one"
    );
    assert_eq!(
        count(&env.webhook_types("tool"), "IMAGE_ROLLOUT_STARTED"),
        1
    );
    pods_run(&env, "tool", &moved, &second.digest).await;
}

/// A check never uses a registry answer older than the time since its workload's previous fire time
/// (docs/guarantees.md, "Registries"), so on an every-second cron a re-pushed tag is followed within a few
/// ticks, not after the 30 s `REGISTRY_CACHE_TTL` that other lookups may still share.
pub async fn moving_tag_followed_within_its_schedule(backend: Backend) {
    let kind = Kind::Deployment;
    let mut env = Env::start(backend, &test_name("fresh", kind)).await;
    let first = env
        .push_kind("team/fresh", "stable", ImageKind::OciIndex, "one")
        .await;
    let current = env.image("team/fresh", "stable");
    env.create(
        kind,
        "fresh",
        &[("app", &current)],
        &as_pairs(&enabled("latest")),
        json!({}),
    )
    .await;
    pods_run(&env, "fresh", &current, &first.digest).await;
    let settings = env.settings().await.with("REGISTRY_CACHE_TTL", "30s");
    let (_, port) = spawn_observed(&mut env, settings).await;
    // The tag's digest is now a shared answer, fresh for 30 s.
    more_checks(port, "no_update", 2.0).await;
    let second = env
        .push_kind("team/fresh", "stable", ImageKind::OciIndex, "two")
        .await;
    let pushed = tokio::time::Instant::now();
    let moved = format!("{current}@{}", second.digest);
    let within = Duration::from_secs(10);
    while env.image_of(kind, "fresh", "app").await != moved {
        assert!(
            pushed.elapsed() < within,
            "the re-pushed tag was not followed within {within:?} on an every-second cron"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A multi-arch tag (a Docker manifest list here) is pinned by its index digest, never a platform's.
pub async fn multi_arch(backend: Backend, kind: Kind) {
    let mut env = Env::start(backend, &test_name("multiarch", kind)).await;
    env.push_kind("team/multi", "1.0.0", ImageKind::DockerManifestList, "a")
        .await;
    let newer = env
        .push_kind("team/multi", "1.1.0", ImageKind::DockerManifestList, "a")
        .await;
    assert_eq!(newer.children.len(), 2);
    env.create(
        kind,
        "multi",
        &[("app", &env.image("team/multi", "1.0.0"))],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    env.spawn_controller(&settings);
    env.wait_for_webhooks("multi", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    let expected = pinned(&env, "team/multi", "1.1.0", &newer);
    assert_eq!(env.image_of(kind, "multi", "app").await, expected);
    for (_, child) in &newer.children {
        assert!(!expected.contains(child.as_str()));
    }
    pods_run(&env, "multi", &expected, &newer.digest).await;
}

/// An invalid annotation: one Warning, no check until it is fixed, then the update.
pub async fn invalid_annotation(backend: Backend) {
    let mut env = Env::start(backend, "invalid").await;
    env.push("team/bad", "1.0.0").await;
    env.push("team/bad", "1.1.0").await;
    let current = env.image("team/bad", "1.0.0");
    env.create(
        Kind::Deployment,
        "bad",
        &[("app", &current)],
        &as_pairs(&enabled("newest")),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    let (_, port) = spawn_observed(&mut env, settings).await;
    env.wait_for_event("bad", "InvalidAnnotation").await;
    // A valid neighbour is the clock: it is checked while the invalid one is not.
    env.push("team/ok", "1.0.0").await;
    env.create(
        Kind::Deployment,
        "ok",
        &[("app", &env.image("team/ok", "1.0.0"))],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    more_checks(port, "no_update", 3.0).await;
    assert_eq!(count(&env.reasons("bad").await, "InvalidAnnotation"), 1);
    assert!(env.webhooks("bad").is_empty(), "{:?}", env.webhooks("bad"));
    assert_eq!(env.image_of(Kind::Deployment, "bad", "app").await, current);

    env.set_annotation(
        Kind::Deployment,
        "bad",
        "watch-cluster.io/strategy",
        Some("version"),
    )
    .await;
    env.wait_for_webhooks("bad", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    assert!(
        env.image_of(Kind::Deployment, "bad", "app")
            .await
            .contains("/team/bad:1.1.0@sha256:")
    );
}

/// A workload that did not opt in is never touched.
pub async fn not_enabled(backend: Backend) {
    let mut env = Env::start(backend, "not-enabled").await;
    env.push("team/off", "1.0.0").await;
    env.push("team/off", "2.0.0").await;
    let current = env.image("team/off", "1.0.0");
    env.create(
        Kind::Deployment,
        "off",
        &[("app", &current)],
        &[
            ("watch-cluster.io/enabled", "false"),
            ("watch-cluster.io/cron", crate::EVERY_SECOND),
        ],
        json!({}),
    )
    .await;
    env.push("team/on", "1.0.0").await;
    env.create(
        Kind::Deployment,
        "on",
        &[("app", &env.image("team/on", "1.0.0"))],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    let (_, port) = spawn_observed(&mut env, settings).await;
    more_checks(port, "no_update", 3.0).await;
    assert_eq!(env.image_of(Kind::Deployment, "off", "app").await, current);
    assert!(env.webhooks("off").is_empty());
    assert!(
        env.reasons("off").await.is_empty(),
        "{:?}",
        env.reasons("off").await
    );
    assert_eq!(
        env.annotation(Kind::Deployment, "off", "watch-cluster.io/detected")
            .await,
        None
    );
}

/// A rollout that never becomes healthy: rolled back, the image quarantined, a newer one taken later.
pub async fn stuck(backend: Backend, kind: Kind) {
    let mut env = Env::start(backend, &test_name("stuck", kind)).await;
    env.push("team/pay", "1.0.0").await;
    let bad = env.push("team/pay", "1.1.0").await;
    env.break_image("team/pay", "1.1.0", &bad).await;
    let current = env.image("team/pay", "1.0.0");
    let spec = env.short_deadline(kind);
    env.create(
        kind,
        "pay",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
        spec,
    )
    .await;
    let settings = env.settings().await.with("ROLLOUT_TIMEOUT", "20s");
    env.spawn_controller(&settings);

    let failed = env
        .wait_for_webhooks("pay", "IMAGE_ROLLOUT_FAILED", 1)
        .await;
    let bad_image = pinned(&env, "team/pay", "1.1.0", &bad);
    assert_eq!(
        failed[0]["deployment"],
        payload_workload(&env, kind, "pay", &bad_image)
    );
    let error = failed[0]["details"]["error"].as_str().unwrap_or_default();
    match kind {
        Kind::Deployment => assert_eq!(error, "deployment \"pay\" exceeded its progress deadline"),
        _ => assert!(
            error.starts_with("rollout did not complete within 20s: "),
            "{error}"
        ),
    }
    assert_eq!(
        failed[0]["details"],
        json!({"error": error, "rolledBackTo": current})
    );
    env.wait_for(kind, "pay", "rolled back", |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] == current.as_str()
            && o["metadata"]["annotations"]
                .get("watch-cluster.io/rollout")
                .is_none()
    })
    .await;
    let quarantine = env
        .annotation(kind, "pay", "watch-cluster.io/quarantine")
        .await
        .unwrap_or_default();
    assert!(quarantine.contains(&bad_image), "{quarantine}");
    let reasons = env.reasons("pay").await;
    assert!(
        reasons.contains(&"RolloutFailed".to_owned()) && reasons.contains(&"RolledBack".to_owned()),
        "{reasons:?}"
    );

    // The quarantined image is never tried again; a newer one is.
    let newer = env.push("team/pay", "1.2.0").await;
    env.wait_for_webhooks("pay", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    assert_eq!(
        env.image_of(kind, "pay", "app").await,
        pinned(&env, "team/pay", "1.2.0", &newer)
    );
    assert_eq!(count(&env.webhook_types("pay"), "IMAGE_ROLLOUT_STARTED"), 2);
}

/// `check-now` on a workload whose cron is years away: one check, recorded, the annotation removed.
pub async fn check_now(backend: Backend, kind: Kind) {
    let mut env = Env::start(backend, &test_name("check-now", kind)).await;
    env.push("team/manual", "1.0.0").await;
    let newer = env.push("team/manual", "1.0.1").await;
    let mut annotations = enabled("version");
    annotations[1].1 = crate::NEVER_SOON.into();
    env.create(
        kind,
        "manual",
        &[("app", &env.image("team/manual", "1.0.0"))],
        &as_pairs(&annotations),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    env.spawn_controller(&settings);
    env.wait_for_webhooks("manual", "DEPLOYMENT_DETECTED", 1)
        .await;
    // A check finds nothing to do mid-rollout: ask once the first one is done, as a user would.
    env.wait_rolled_out(kind, "manual").await;

    env.set_annotation(kind, "manual", "watch-cluster.io/check-now", Some(""))
        .await;
    let expected = pinned(&env, "team/manual", "1.0.1", &newer);
    env.wait_for(kind, "manual", "updated and check-now removed", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] == expected.as_str()
            && d["metadata"]["annotations"]
                .get("watch-cluster.io/check-now")
                .is_none()
    })
    .await;
    env.wait_for_event("manual", "ManualCheckUpdated").await;
    assert!(
        env.reasons("manual")
            .await
            .contains(&"ManualCheckRequested".to_owned())
    );
    env.wait_for_webhooks("manual", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
}

/// `containers`: only the named container is managed; the sidecar is left alone.
pub async fn selected_containers(backend: Backend) {
    let mut env = Env::start(backend, "containers").await;
    env.push("team/app", "1.0.0").await;
    let newer = env.push("team/app", "1.1.0").await;
    env.push("team/proxy", "3.0.0").await;
    env.push("team/proxy", "3.1.0").await;
    let app = env.image("team/app", "1.0.0");
    let proxy = env.image("team/proxy", "3.0.0");
    let mut annotations = enabled("version");
    annotations.push(("watch-cluster.io/containers", "app".to_owned()));
    env.create(
        Kind::Deployment,
        "pair",
        &[("app", &app), ("proxy", &proxy)],
        &as_pairs(&annotations),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    env.spawn_controller(&settings);
    env.wait_for_webhooks("pair", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    let expected = pinned(&env, "team/app", "1.1.0", &newer);
    assert_eq!(
        env.image_of(Kind::Deployment, "pair", "app").await,
        expected
    );
    assert_eq!(env.image_of(Kind::Deployment, "pair", "proxy").await, proxy);
    let started = env
        .webhooks("pair")
        .into_iter()
        .find(|w| w["eventType"] == "IMAGE_ROLLOUT_STARTED")
        .unwrap_or_default();
    assert_eq!(started["details"]["previousImage"], app.as_str());
}

/// `WEBHOOK_SECRET`: every body carries its HMAC-SHA256.
pub async fn signed_webhooks(backend: Backend) {
    let mut env = Env::start(backend, "signed").await;
    env.push("team/sig", "1.0.0").await;
    env.push("team/sig", "1.1.0").await;
    env.create(
        Kind::Deployment,
        "sig",
        &[("app", &env.image("team/sig", "1.0.0"))],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let settings = env.settings().await.with("WEBHOOK_SECRET", "s3cr3t");
    env.spawn_controller(&settings);
    env.wait_for_webhooks("sig", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    let requests = env.webhook_requests("sig");
    assert_eq!(requests.len(), 3);
    for request in requests {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cr3t")
            .unwrap_or_else(|_| unreachable!());
        mac.update(request.body_text().as_bytes());
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            request.header("x-watch-cluster-signature"),
            Some(expected.as_str()),
            "{}",
            request.body_text()
        );
    }
}

/// `DRY_RUN`: the decision is recorded as an Event; nothing else changes.
pub async fn dry_run(backend: Backend) {
    let mut env = Env::start(backend, "dry-run").await;
    env.push("team/dry", "1.0.0").await;
    env.push("team/dry", "2.0.0").await;
    let current = env.image("team/dry", "1.0.0");
    env.create(
        Kind::Deployment,
        "dry",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let settings = env.settings().await.with("DRY_RUN", "true");
    let (_, port) = spawn_observed(&mut env, settings).await;
    env.wait_for_event("dry", "DryRunWouldUpdate").await;
    more_checks(port, "dry_run", 2.0).await;
    assert_eq!(env.image_of(Kind::Deployment, "dry", "app").await, current);
    for key in ["last-update", "last-update-image", "change", "rollout"] {
        assert_eq!(
            env.annotation(Kind::Deployment, "dry", &format!("watch-cluster.io/{key}"))
                .await,
            None,
            "{key}"
        );
    }
    assert_eq!(env.webhook_types("dry"), ["DEPLOYMENT_DETECTED"]);
    assert_eq!(count(&env.reasons("dry").await, "DryRunWouldUpdate"), 1);
}

/// Another writer (GitOps self-heal) puts the old image back: reported once, not fought.
pub async fn another_writer_reverts(backend: Backend) {
    let mut env = Env::start(backend, "reverted").await;
    env.push("team/gitops", "1.0.0").await;
    env.push("team/gitops", "1.1.0").await;
    let current = env.image("team/gitops", "1.0.0");
    env.create(
        Kind::Deployment,
        "gitops",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    let (_, port) = spawn_observed(&mut env, settings).await;
    env.wait_for_webhooks("gitops", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;

    let old = current.clone();
    env.edit(Kind::Deployment, "gitops", move |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(old);
    })
    .await;
    env.wait_for_event("gitops", "UpdateReverted").await;
    more_checks(port, "no_update", 3.0).await;
    assert_eq!(
        env.image_of(Kind::Deployment, "gitops", "app").await,
        current,
        "no tug-of-war"
    );
    assert_eq!(count(&env.reasons("gitops").await, "UpdateReverted"), 1);
    assert_eq!(
        count(&env.webhook_types("gitops"), "IMAGE_ROLLOUT_STARTED"),
        1
    );

    env.push("team/gitops", "1.2.0").await;
    env.wait_for_webhooks("gitops", "IMAGE_ROLLOUT_COMPLETED", 2)
        .await;
    assert!(
        env.image_of(Kind::Deployment, "gitops", "app")
            .await
            .contains("/team/gitops:1.2.0@sha256:")
    );
}

/// A paused Deployment is not updated until it is resumed.
pub async fn paused(backend: Backend) {
    let mut env = Env::start(backend, "paused").await;
    env.push("team/hold", "1.0.0").await;
    let newer = env.push("team/hold", "1.1.0").await;
    let current = env.image("team/hold", "1.0.0");
    env.create(
        Kind::Deployment,
        "hold",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
        json!({"paused": true}),
    )
    .await;
    let settings = env.settings().await;
    let (_, port) = spawn_observed(&mut env, settings).await;
    more_checks(port, "skipped", 3.0).await;
    assert_eq!(env.image_of(Kind::Deployment, "hold", "app").await, current);
    assert_eq!(env.webhook_types("hold"), ["DEPLOYMENT_DETECTED"]);

    env.edit(Kind::Deployment, "hold", |d| {
        d["spec"]["paused"] = json!(false)
    })
    .await;
    env.wait_for_webhooks("hold", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    assert_eq!(
        env.image_of(Kind::Deployment, "hold", "app").await,
        pinned(&env, "team/hold", "1.1.0", &newer)
    );
}

/// `OnDelete` StatefulSets and DaemonSets are not managed: one Warning, no update.
pub async fn on_delete(backend: Backend, kind: Kind) {
    let mut env = Env::start(backend, &test_name("on-delete", kind)).await;
    env.push("team/od", "1.0.0").await;
    env.push("team/od", "1.1.0").await;
    let current = env.image("team/od", "1.0.0");
    env.create(
        kind,
        "od",
        &[("app", &current)],
        &as_pairs(&enabled("version")),
        json!({"updateStrategy": {"type": "OnDelete"}}),
    )
    .await;
    let settings = env.settings().await;
    let (_, port) = spawn_observed(&mut env, settings).await;
    env.wait_for_event("od", "UnsupportedUpdateStrategy").await;
    more_checks(port, "skipped", 3.0).await;
    assert_eq!(env.image_of(kind, "od", "app").await, current);
    assert_eq!(
        count(&env.reasons("od").await, "UnsupportedUpdateStrategy"),
        1
    );
    assert!(
        !env.webhook_types("od")
            .contains(&"IMAGE_ROLLOUT_STARTED".to_owned())
    );
}

/// Two replicas: exactly one acts, and the update happens once.
pub async fn leader_election(backend: Backend) {
    let mut env = Env::start(backend, "election").await;
    env.push("team/one", "1.0.0").await;
    env.push("team/one", "1.1.0").await;
    env.create(
        Kind::Deployment,
        "one",
        &[("app", &env.image("team/one", "1.0.0"))],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let first = env.replica("replica-1").await;
    let (_, port_1) = spawn_observed(&mut env, first).await;
    let second = env.replica("replica-2").await;
    let (_, port_2) = spawn_observed(&mut env, second).await;
    env.wait_for_webhooks("one", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    let holder = env.wait_for_holder(|h| h.is_some()).await;
    let leaders =
        metric(port_1, "watch_cluster_leader").await + metric(port_2, "watch_cluster_leader").await;
    assert_eq!(leaders, 1.0, "exactly one leader ({holder:?})");
    let updates = metric(port_1, "watch_cluster_updates_total").await
        + metric(port_2, "watch_cluster_updates_total").await;
    assert_eq!(updates, 1.0, "one update patch in all");
    assert_eq!(
        env.webhook_types("one"),
        [
            "DEPLOYMENT_DETECTED",
            "IMAGE_ROLLOUT_STARTED",
            "IMAGE_ROLLOUT_COMPLETED"
        ]
    );
}

/// The leader is killed (SIGKILL) mid-rollout: the other replica takes over and delivers exactly one
/// COMPLETED.
pub async fn leader_killed(backend: Backend, kind: Kind) {
    let mut env = Env::start(backend, &test_name("leader-kill", kind)).await;
    env.push("team/ha", "1.0.0").await;
    let slow = env.push("team/ha", "1.1.0").await;
    env.slow_image("team/ha", "1.1.0", &slow).await;
    env.create(
        kind,
        "ha",
        &[("app", &env.image("team/ha", "1.0.0"))],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let first = env.replica("replica-1").await;
    let first = env.spawn_controller(&first);
    env.wait_for_holder(|h| h == Some("replica-1")).await;
    let second = env.replica("replica-2").await;
    let (_, port) = spawn_observed(&mut env, second).await;
    env.wait_for_webhooks("ha", "IMAGE_ROLLOUT_STARTED", 1)
        .await;
    env.kill_controller(first).await;

    env.wait_for_holder(|h| h == Some("replica-2")).await;
    env.finish_slow_image(&slow).await;
    env.wait_for(kind, "ha", "the new leader finished the rollout", |d| {
        d["metadata"]["annotations"]
            .get("watch-cluster.io/rollout")
            .is_none()
    })
    .await;
    env.wait_for_webhooks("ha", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    assert_eq!(
        count(&env.webhook_types("ha"), "IMAGE_ROLLOUT_COMPLETED"),
        1
    );
    assert_eq!(count(&env.webhook_types("ha"), "IMAGE_ROLLOUT_STARTED"), 1);
    assert_eq!(
        metric(port, "watch_cluster_updates_total").await,
        0.0,
        "the update was not repeated"
    );
    assert_eq!(
        env.image_of(kind, "ha", "app").await,
        pinned(&env, "team/ha", "1.1.0", &slow)
    );
}

/// SIGTERM mid-rollout: exit 0, the Lease released, the next leader delivers the outcome.
pub async fn sigterm(backend: Backend) {
    let mut env = Env::start(backend, "sigterm").await;
    env.push("team/term", "1.0.0").await;
    let slow = env.push("team/term", "1.1.0").await;
    env.slow_image("team/term", "1.1.0", &slow).await;
    env.create(
        Kind::Deployment,
        "term",
        &[("app", &env.image("team/term", "1.0.0"))],
        &as_pairs(&enabled("version")),
        json!({}),
    )
    .await;
    let first = env.replica("replica-1").await;
    let (first, port) = spawn_observed(&mut env, first).await;
    env.wait_for_holder(|h| h == Some("replica-1")).await;
    let second = env.replica("replica-2").await;
    env.spawn_controller(&second);
    env.wait_for_webhooks("term", "IMAGE_ROLLOUT_STARTED", 1)
        .await;

    let status = env
        .terminate_controller(first, Duration::from_secs(15))
        .await;
    assert_eq!(status.code(), Some(0), "a drained controller exits 0");
    assert!(
        http_get(port, "/readyz").await.is_none(),
        "the admin server is gone"
    );
    // Released, not expired: the other replica takes it well within the Lease's 15 s.
    let released = tokio::time::Instant::now();
    env.wait_for_holder(|h| h == Some("replica-2")).await;
    assert!(
        released.elapsed() < Duration::from_secs(10),
        "{:?}",
        released.elapsed()
    );
    env.finish_slow_image(&slow).await;
    env.wait_for_webhooks("term", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    env.wait_for(Kind::Deployment, "term", "record removed", |d| {
        d["metadata"]["annotations"]
            .get("watch-cluster.io/rollout")
            .is_none()
    })
    .await;
    assert_eq!(
        count(&env.webhook_types("term"), "IMAGE_ROLLOUT_COMPLETED"),
        1
    );
}

/// `QUARANTINE_SCOPE=cluster`: two Deployments on one repository. A release whose new pods cannot be pulled
/// or crash fails on the first one and is then quarantined for every workload: the second one, checked
/// after, keeps its image. A release whose pods run but never get Ready is the first workload's problem
/// only: the second one still takes it.
pub async fn cluster_quarantine(backend: Backend, fault: ImageFault) {
    let word = match fault {
        ImageFault::Pull => "pull",
        ImageFault::Crash => "crash",
        ImageFault::NeverReady => "ready",
    };
    let mut env = Env::start(backend, &format!("quarantine-{word}")).await;
    let repo = format!("team/shared-{word}");
    env.push(&repo, "1.0.0").await;
    let current = env.image(&repo, "1.0.0");
    // Checked only when asked (`check-now`), so which one tries the release first is the test's choice.
    let mut on_demand = enabled("version");
    on_demand[1].1 = crate::NEVER_SOON.into();
    for name in ["first", "second"] {
        let spec = env.short_deadline(Kind::Deployment);
        env.create(
            Kind::Deployment,
            name,
            &[("app", &current)],
            &as_pairs(&on_demand),
            spec,
        )
        .await;
    }
    let settings = env.settings().await.with("QUARANTINE_SCOPE", "cluster");
    env.spawn_controller(&settings);
    for name in ["first", "second"] {
        env.wait_for_webhooks(name, "DEPLOYMENT_DETECTED", 1).await;
        env.wait_rolled_out(Kind::Deployment, name).await;
    }

    // The release appears, broken, and `first` tries it.
    let bad = env.push(&repo, "1.1.0").await;
    env.fail_image(&repo, "1.1.0", &bad, fault).await;
    env.set_annotation(
        Kind::Deployment,
        "first",
        "watch-cluster.io/check-now",
        Some(""),
    )
    .await;
    let bad_image = pinned(&env, &repo, "1.1.0", &bad);
    env.wait_for_webhooks("first", "IMAGE_ROLLOUT_FAILED", 1)
        .await;
    env.wait_for(Kind::Deployment, "first", "rolled back", |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] == current.as_str()
            && o["metadata"]["annotations"]
                .get("watch-cluster.io/rollout")
                .is_none()
    })
    .await;
    let own = env
        .annotation(Kind::Deployment, "first", "watch-cluster.io/quarantine")
        .await
        .unwrap_or_default();
    assert!(own.contains(&bad_image), "{own}");
    // The ConfigMap is shared by every test on the real control plane: look at this test's registry only.
    let entries: Vec<Value> = env
        .cluster_quarantine()
        .await
        .into_iter()
        .filter(|e| e["image"].as_str() == Some(bad_image.as_str()))
        .collect();

    env.set_annotation(
        Kind::Deployment,
        "second",
        "watch-cluster.io/check-now",
        Some(""),
    )
    .await;
    match fault {
        ImageFault::Pull | ImageFault::Crash => {
            let reason = if fault == ImageFault::Pull {
                ["ErrImagePull", "ImagePullBackOff"].as_slice()
            } else {
                ["CrashLoopBackOff"].as_slice()
            };
            assert_eq!(entries.len(), 1, "one cluster entry for {bad_image}");
            let entry = &entries[0];
            assert_eq!(entry["digest"], json!(bad.digest));
            assert_eq!(entry["repository"], json!(repo));
            assert_eq!(
                (&entry["kind"], &entry["namespace"], &entry["name"]),
                (&json!("Deployment"), &json!(env.ns()), &json!("first"))
            );
            assert!(
                reason.contains(&entry["reason"].as_str().unwrap_or_default()),
                "{entry}"
            );
            env.wait_for_event("second", "ManualCheckNoUpdate").await;
            assert_eq!(
                env.image_of(Kind::Deployment, "second", "app").await,
                current,
                "the quarantined digest is never applied to the other workload"
            );
            assert_eq!(
                count(&env.webhook_types("second"), "IMAGE_ROLLOUT_STARTED"),
                0
            );
        }
        ImageFault::NeverReady => {
            assert!(entries.is_empty(), "not the image's fault: {entries:?}");
            env.wait_for_event("second", "ManualCheckUpdated").await;
            let started = env
                .wait_for_webhooks("second", "IMAGE_ROLLOUT_STARTED", 1)
                .await;
            assert_eq!(started[0]["deployment"]["image"], json!(bad_image));
        }
    }
}

/// 200 workloads due at once under `MAX_CONCURRENT_ROLLOUTS=5`, with a leader change in the middle: never
/// more than 5 rollouts in flight (records without an outcome, as the API server shows them), every workload
/// updated once, and the new leader counts the rollouts the old one left in flight.
pub async fn rollout_bound(backend: Backend) {
    const WORKLOADS: usize = 200;
    const BOUND: usize = 5;
    let mut env = Env::start(backend, "rollout-bound").await;
    env.push("team/fleet", "1.0.0").await;
    let new = env.push("team/fleet", "1.1.0").await;
    let annotations = enabled("version");
    for i in 0..WORKLOADS {
        env.create(
            Kind::Deployment,
            &format!("fleet-{i}"),
            &[("app", &env.image("team/fleet", "1.0.0"))],
            &as_pairs(&annotations),
            json!({"replicas": 1}),
        )
        .await;
    }
    let target = pinned(&env, "team/fleet", "1.1.0", &new);
    let bounded = |settings: Settings| settings.with("MAX_CONCURRENT_ROLLOUTS", &BOUND.to_string());
    let first = bounded(env.replica("replica-1").await);
    let (first, first_port) = spawn_observed(&mut env, first).await;
    env.wait_for_holder(|h| h == Some("replica-1")).await;
    let second = bounded(env.replica("replica-2").await);
    let (_, second_port) = spawn_observed(&mut env, second).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let (mut most_in_flight, mut most_waiting, mut killed) = (0usize, 0f64, false);
    loop {
        let workloads = env.list(Kind::Deployment).await;
        let record = |w: &Value| {
            w["metadata"]["annotations"]["watch-cluster.io/rollout"]
                .as_str()
                .map(|r| serde_json::from_str::<Value>(r).expect("record JSON"))
        };
        let in_flight = workloads
            .iter()
            .filter_map(record)
            .filter(|r| r["outcome"].is_null())
            .count();
        let done = workloads
            .iter()
            .filter(|w| {
                w["spec"]["template"]["spec"]["containers"][0]["image"] == target.as_str()
                    && record(w).is_none()
            })
            .count();
        most_in_flight = most_in_flight.max(in_flight);
        assert!(
            in_flight <= BOUND,
            "{in_flight} rollouts in flight, more than MAX_CONCURRENT_ROLLOUTS={BOUND}"
        );
        if !killed {
            most_waiting =
                most_waiting.max(metric(first_port, "watch_cluster_rollout_queue").await);
        }
        if !killed && done >= WORKLOADS / 3 {
            // Mid-way, with rollouts in flight: the new leader must count them from their records.
            env.kill_controller(first).await;
            killed = true;
        }
        if done == WORKLOADS {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{done} of {WORKLOADS} workloads updated (in flight now: {in_flight})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(killed, "the leader change happened mid-way");
    assert!(most_in_flight >= 1, "rollouts were seen in flight");
    assert!(
        most_waiting >= 1.0,
        "updates queued for a slot (watch_cluster_rollout_queue peaked at {most_waiting})"
    );
    let after = metric(second_port, "watch_cluster_updates_total").await;
    assert!(
        after > 0.0 && after < WORKLOADS as f64,
        "the new leader made the rest of the updates ({after})"
    );
    for i in 0..WORKLOADS {
        let name = format!("fleet-{i}");
        env.wait_for_webhooks(&name, "IMAGE_ROLLOUT_COMPLETED", 1)
            .await;
        let types = env.webhook_types(&name);
        // A leader killed between delivering COMPLETED and removing the record leaves it to the next leader,
        // which delivers it again under the same delivery id (at least once; receivers deduplicate by it).
        let ids: std::collections::BTreeSet<String> = env
            .webhook_requests(&name)
            .iter()
            .filter(|r| r.json()["eventType"] == "IMAGE_ROLLOUT_COMPLETED")
            .filter_map(|r| r.headers.get("X-Watch-Cluster-Delivery"))
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        assert_eq!(ids.len(), 1, "{name}: one COMPLETED outcome: {types:?}");
        // STARTED goes from memory right after the patch: a leader killed in between never sends it.
        assert!(
            count(&types, "IMAGE_ROLLOUT_STARTED") <= 1,
            "{name} was updated once: {types:?}"
        );
    }
}

/// A workload Argo CD or Flux manages gets one `ManagedByGitOps` Event naming the tool and what to set; the
/// controller proceeds and updates it.
pub async fn gitops_managed(backend: Backend) {
    let mut env = Env::start(backend, "gitops").await;
    env.push("team/argo", "1.0.0").await;
    env.push("team/argo", "1.1.0").await;
    let mut annotations = enabled("version");
    annotations.push((
        "argocd.argoproj.io/tracking-id",
        "apps:apps/Deployment:ns/argo".to_owned(),
    ));
    env.create(
        Kind::Deployment,
        "argo",
        &[("app", &env.image("team/argo", "1.0.0"))],
        &as_pairs(&annotations),
        json!({}),
    )
    .await;
    let settings = env.settings().await;
    env.spawn_controller(&settings);
    env.wait_for_webhooks("argo", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    let reasons = env.reasons("argo").await;
    assert_eq!(count(&reasons, "ManagedByGitOps"), 1, "{reasons:?}");
    let notes = env.event_notes("argo", "ManagedByGitOps").await;
    assert!(
        notes[0].contains("Argo CD") && notes[0].contains("RespectIgnoreDifferences=true"),
        "{notes:?}"
    );
}
