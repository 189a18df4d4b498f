//! Registry push events (docs/push-events.md), written once and run on both backends: a workload whose cron
//! fires once a year is updated after a push, so the push is the only possible cause.

use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};
use serde_json::json;
use watch_cluster_testkit::{
    ImageKind, Notify, RealRegistry, RegistryAuth,
    admin::{free_port, http_post, metric},
};

use crate::env::{Backend, Env, Kind, Settings, WAIT, as_pairs};

/// Fires on January 1st only: no scheduled check happens during a test.
const YEARLY: &str = "@yearly";
/// Tokens of the listener (at least 24 characters).
const TOKEN: &str = "push-token-for-tests-0123456789";
const GITHUB_SECRET: &str = "github-secret-for-tests-0123456789";

fn yearly() -> Vec<(&'static str, String)> {
    vec![
        ("watch-cluster.io/enabled", "true".to_owned()),
        ("watch-cluster.io/cron", YEARLY.to_owned()),
        ("watch-cluster.io/strategy", "version".to_owned()),
    ]
}

/// A controller with its admin server and its events listener on known ports.
async fn spawn_listening(env: &mut Env, settings: Settings) -> (usize, u16, u16) {
    let (admin, events) = (free_port(), free_port());
    let index = env.spawn_controller(
        &settings
            .with("ADMIN_ADDR", &format!("127.0.0.1:{admin}"))
            .with("EVENTS_ADDR", &format!("127.0.0.1:{events}")),
    );
    (index, admin, events)
}

fn events_metric(provider: &str, result: &str) -> String {
    format!("watch_cluster_push_events_total{{provider=\"{provider}\",result=\"{result}\"}}")
}

/// The registry's own `notifications.endpoints` reach the listener with the token header; the push of a new
/// version updates a workload whose cron would not fire until next year.
pub async fn registry_notifications(backend: Backend) {
    let mut env = Env::start(backend, "push-registry").await;
    let events = free_port();
    let registry = RealRegistry::start_notifying(
        RegistryAuth::None,
        Notify {
            url: format!("http://127.0.0.1:{events}/events/distribution"),
            token: TOKEN.to_owned(),
        },
    )
    .await
    .expect("notifying registry starts");
    let host = registry.host();
    registry
        .push("team/pushed", "1.0.0", ImageKind::OciIndex, "a")
        .await
        .expect("push 1.0.0");
    env.create(
        Kind::Deployment,
        "pushed",
        &[("app", &format!("{host}/team/pushed:1.0.0"))],
        &as_pairs(&yearly()),
        json!({}),
    )
    .await;
    let admin = free_port();
    let settings = env
        .settings()
        .await
        .with(
            "INSECURE_REGISTRIES",
            &format!("{},{host}", env.registry_host()),
        )
        .with("ADMIN_ADDR", &format!("127.0.0.1:{admin}"))
        .with("EVENTS_ADDR", &format!("127.0.0.1:{events}"))
        .with("EVENTS_TOKEN_DISTRIBUTION", TOKEN);
    env.spawn_controller(&settings);
    env.wait_for_webhooks("pushed", "DEPLOYMENT_DETECTED", 1)
        .await;
    let new = registry
        .push("team/pushed", "1.1.0", ImageKind::OciIndex, "b")
        .await
        .expect("push 1.1.0");
    env.wait_image(
        "pushed",
        &format!("{host}/team/pushed:1.1.0@{}", new.digest),
    )
    .await;
    env.wait_for_webhooks("pushed", "IMAGE_ROLLOUT_COMPLETED", 1)
        .await;
    // The cause: a push event woke the workload (the yearly cron did not fire), and registry's own
    // notifications were accepted with its Bearer header.
    assert!(metric(admin, "watch_cluster_push_checks_total{result=\"woken\"}").await >= 1.0);
    assert!(metric(admin, &events_metric("distribution", "accepted")).await >= 1.0);
    assert_eq!(
        metric(
            admin,
            "watch_cluster_push_events_total{provider=\"distribution\",result=\"unauthorized\"}"
        )
        .await,
        0.0
    );
    assert_eq!(metric(admin, "watch_cluster_updates_total").await, 1.0);
}

/// Docker Hub, GitHub, Harbor and Quay payloads as their documentation shows them, each naming a registry
/// host that `EVENTS_HOST_ALIASES` maps to the test registry: each updates its own workload.
pub async fn provider_payloads(backend: Backend) {
    let mut env = Env::start(backend, "push-providers").await;
    let host = env.registry_host();
    let workloads = [
        ("hub", "team/hub"),
        ("gh", "octo-org/app"),
        ("harbor", "library/alpine"),
        ("quay", "mynamespace/repository"),
    ];
    let mut targets = Vec::new();
    for (name, repo) in workloads {
        env.push(repo, "1.0.0").await;
        let new = env
            .push_kind(repo, "1.1.0", ImageKind::OciIndex, name)
            .await;
        targets.push((name, format!("{host}/{repo}:1.1.0@{}", new.digest)));
        env.create(
            Kind::Deployment,
            name,
            &[("app", &format!("{host}/{repo}:1.0.0"))],
            &as_pairs(&yearly()),
            json!({}),
        )
        .await;
    }
    let aliases =
        format!("docker.io={host},ghcr.io={host},harbor.example.com={host},quay.io={host}");
    let settings = env
        .settings()
        .await
        .with("EVENTS_TOKEN", TOKEN)
        .with("EVENTS_TOKEN_GITHUB", GITHUB_SECRET)
        .with("EVENTS_HOST_ALIASES", &aliases);
    let (_, admin, events) = spawn_listening(&mut env, settings).await;
    for (name, _) in workloads {
        env.wait_for_webhooks(name, "DEPLOYMENT_DETECTED", 1).await;
    }

    let hub = json!({
        "callback_url": "https://registry.hub.docker.com/u/team/hub/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
        "push_data": {"pushed_at": 1417566161, "pusher": "trustedbuilder", "tag": "1.1.0"},
        "repository": {"name": "hub", "namespace": "team", "owner": "team", "repo_name": "team/hub",
                       "repo_url": "https://registry.hub.docker.com/u/team/hub/", "status": "Active"}
    });
    let path = format!("/events/dockerhub/{TOKEN}");
    assert_eq!(post(events, &path, &[], &hub).await, 200);

    let github = serde_json::to_vec(&json!({
        "action": "published",
        "registry_package": {
            "name": "App", "namespace": "Octo-Org", "ecosystem": "CONTAINER", "package_type": "CONTAINER",
            "owner": {"login": "Octo-Org"},
            "package_version": {
                "name": "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
                "container_metadata": {"tag": {"name": "1.1.0", "digest": "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf"}},
                "package_url": "ghcr.io/Octo-Org/App:1.1.0"
            },
            "registry": {"name": "GitHub CR", "type": "docker", "url": "https://ghcr.io/Octo-Org"}
        },
        "sender": {"login": "octocat"}
    }))
    .expect("json");
    let signature = github_signature(GITHUB_SECRET, &github);
    let status = http_post(
        events,
        "/events/github",
        &[
            ("X-GitHub-Event", "registry_package"),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("X-Hub-Signature-256", &signature),
            ("Content-Type", "application/json"),
        ],
        github,
    )
    .await;
    assert_eq!(status, Some(200));

    let harbor = json!({
        "type": "PUSH_ARTIFACT", "occur_at": 1680501893, "operator": "admin",
        "event_data": {
            "resources": [{"digest": "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
                           "tag": "1.1.0", "resource_url": "harbor.example.com/library/alpine:1.1.0"}],
            "repository": {"name": "alpine", "namespace": "library", "repo_full_name": "library/alpine",
                           "repo_type": "public"}
        }
    });
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        post(
            events,
            "/events/harbor",
            &[("Authorization", &bearer)],
            &harbor
        )
        .await,
        200
    );

    let quay = json!({
        "name": "repository", "repository": "mynamespace/repository", "namespace": "mynamespace",
        "docker_url": "quay.io/mynamespace/repository",
        "homepage": "https://quay.io/repository/mynamespace/repository",
        "updated_tags": ["1.1.0"]
    });
    assert_eq!(
        post(events, &format!("/events/quay/{TOKEN}"), &[], &quay).await,
        200
    );

    for (name, target) in &targets {
        env.wait_image(name, target).await;
    }
    for provider in ["dockerhub", "github", "harbor", "quay"] {
        assert_eq!(
            metric(admin, &events_metric(provider, "accepted")).await,
            1.0,
            "{provider}"
        );
    }
    assert_eq!(metric(admin, "watch_cluster_updates_total").await, 4.0);
}

/// Forged, unsigned, wrongly signed, oversized, malformed, replayed, unknown-repository, pull and blob-push
/// events are answered and counted and start nothing: a valid push sent after them updates only its own
/// workload, and the one they named stays where it is although a newer version exists.
pub async fn events_that_do_nothing(backend: Backend) {
    let mut env = Env::start(backend, "push-nothing").await;
    let host = env.registry_host();
    env.push("team/still", "1.0.0").await;
    env.push("team/still", "1.1.0").await;
    env.push("team/marker", "1.0.0").await;
    let marker = env.push("team/marker", "1.1.0").await;
    for (name, repo) in [("still", "team/still"), ("marker", "team/marker")] {
        env.create(
            Kind::Deployment,
            name,
            &[("app", &format!("{host}/{repo}:1.0.0"))],
            &as_pairs(&yearly()),
            json!({}),
        )
        .await;
    }
    let settings = env
        .settings()
        .await
        .with("EVENTS_TOKEN", TOKEN)
        .with("EVENTS_TOKEN_GITHUB", GITHUB_SECRET);
    let (_, admin, events) = spawn_listening(&mut env, settings).await;
    env.wait_for_webhooks("still", "DEPLOYMENT_DETECTED", 1)
        .await;
    env.wait_for_webhooks("marker", "DEPLOYMENT_DETECTED", 1)
        .await;

    let push = |id: &str, repo: &str, tag: &str, media_type: &str| {
        json!({"events": [{
            "id": id, "timestamp": "2026-12-06T00:00:00Z", "action": "push",
            "target": {"mediaType": media_type, "digest": "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
                       "repository": repo, "tag": tag,
                       "url": format!("http://{host}/v2/{repo}/manifests/{tag}")},
            "request": {"host": host, "method": "PUT"}
        }]})
    };
    let index = "application/vnd.oci.image.index.v1+json";
    let still = push("e-still", "team/still", "1.1.0", index);
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let d = "/events/distribution";
    // Forged and missing tokens: 401, before anything is read.
    assert_eq!(
        post(
            events,
            d,
            &[("Authorization", "Bearer not-the-token-at-all-xxxxxxx")],
            &still
        )
        .await,
        401
    );
    assert_eq!(post(events, d, &[], &still).await, 401);
    assert_eq!(
        post(
            events,
            "/events/dockerhub/wrong-token-wrong-token-xx",
            &[],
            &still
        )
        .await,
        401
    );
    // GitHub: unsigned, and signed with another secret.
    let body = serde_json::to_vec(&still).expect("json");
    let gh = |signature: Option<String>| {
        let body = body.clone();
        async move {
            let mut headers = vec![("X-GitHub-Event", "registry_package".to_owned())];
            if let Some(signature) = signature {
                headers.push(("X-Hub-Signature-256", signature));
            }
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            http_post(events, "/events/github", &headers, body).await
        }
    };
    assert_eq!(gh(None).await, Some(401));
    assert_eq!(
        gh(Some(github_signature(
            "another-secret-another-secret",
            &body
        )))
        .await,
        Some(401)
    );
    // Oversized (over 1 MiB) and malformed, with the right token.
    let oversized = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(http_post(events, d, &auth, oversized).await, Some(413));
    assert_eq!(
        http_post(events, d, &auth, b"{not json".to_vec()).await,
        Some(400)
    );
    // Authenticated and parseable but nothing to do: 2xx, so distribution does not retry forever.
    let blob = push("e-blob", "team/still", "", "application/octet-stream");
    assert_eq!(post(events, d, &auth, &blob).await, 200);
    let mut pull = push("e-pull", "team/still", "1.1.0", index);
    pull["events"][0]["action"] = json!("pull");
    assert_eq!(post(events, d, &auth, &pull).await, 200);
    let unknown = push("e-unknown", "team/unknown", "2.0.0", index);
    assert_eq!(post(events, d, &auth, &unknown).await, 200);
    assert_eq!(post(events, d, &auth, &unknown).await, 200, "a replay");

    // The valid push that follows: only its workload is checked and updated.
    let valid = push("e-marker", "team/marker", "1.1.0", index);
    assert_eq!(post(events, d, &auth, &valid).await, 200);
    env.wait_image(
        "marker",
        &format!("{host}/team/marker:1.1.0@{}", marker.digest),
    )
    .await;
    assert_eq!(
        env.image_of(Kind::Deployment, "still", "app").await,
        format!("{host}/team/still:1.0.0")
    );
    let counted = |provider: &'static str, result: &'static str| async move {
        metric(admin, &events_metric(provider, result)).await
    };
    assert_eq!(counted("distribution", "unauthorized").await, 2.0);
    assert_eq!(counted("dockerhub", "unauthorized").await, 1.0);
    assert_eq!(counted("github", "unauthorized").await, 2.0);
    assert_eq!(counted("distribution", "too_large").await, 1.0);
    assert_eq!(counted("distribution", "malformed").await, 1.0);
    assert_eq!(
        counted("distribution", "ignored").await,
        2.0,
        "blob and pull"
    );
    assert_eq!(counted("distribution", "duplicate").await, 1.0);
    assert_eq!(
        counted("distribution", "accepted").await,
        2.0,
        "unknown, marker"
    );
    assert_eq!(
        metric(
            admin,
            "watch_cluster_push_checks_total{result=\"unmatched\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(admin, "watch_cluster_push_checks_total{result=\"woken\"}").await,
        1.0,
        "only the marker was woken"
    );
    assert_eq!(metric(admin, "watch_cluster_updates_total").await, 1.0);
}

/// Two replicas: the follower answers 503 and checks nothing; the leader accepts the same event.
pub async fn follower_answers_503(backend: Backend) {
    let mut env = Env::start(backend, "push-follower").await;
    let host = env.registry_host();
    env.push("team/ha", "1.0.0").await;
    let new = env.push("team/ha", "1.1.0").await;
    env.create(
        Kind::Deployment,
        "ha",
        &[("app", &format!("{host}/team/ha:1.0.0"))],
        &as_pairs(&yearly()),
        json!({}),
    )
    .await;
    let first = env.replica("replica-1").await.with("EVENTS_TOKEN", TOKEN);
    let (_, admin_1, events_1) = spawn_listening(&mut env, first).await;
    env.wait_for_holder(|h| h == Some("replica-1")).await;
    let second = env.replica("replica-2").await.with("EVENTS_TOKEN", TOKEN);
    let (_, admin_2, events_2) = spawn_listening(&mut env, second).await;
    env.wait_for_webhooks("ha", "DEPLOYMENT_DETECTED", 1).await;
    let event = json!({"events": [{
        "id": "e-ha", "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": new.digest,
                   "repository": "team/ha", "tag": "1.1.0"},
        "request": {"host": host}
    }]});
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    // The follower's listener is up (it answers) but does not serve.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match http_post(
            events_2,
            "/events/distribution",
            &auth,
            serde_json::to_vec(&event).expect("json"),
        )
        .await
        {
            Some(status) => {
                assert_eq!(status, 503, "the follower");
                break;
            }
            None => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the follower's listener never answered"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(
        metric(admin_2, &events_metric("distribution", "not_leader")).await,
        1.0
    );
    assert_eq!(
        post(events_1, "/events/distribution", &auth, &event).await,
        200
    );
    env.wait_image("ha", &format!("{host}/team/ha:1.1.0@{}", new.digest))
        .await;
    assert_eq!(metric(admin_1, "watch_cluster_updates_total").await, 1.0);
    assert_eq!(metric(admin_2, "watch_cluster_updates_total").await, 0.0);
    assert_eq!(
        metric(admin_2, "watch_cluster_push_checks_total{result=\"woken\"}").await,
        0.0,
        "the follower woke nothing"
    );
}

async fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> u16 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(status) =
            http_post(port, path, headers, serde_json::to_vec(body).expect("json")).await
        {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing listens on {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `sha256=<hex>` of `body` with `secret`, as GitHub signs deliveries.
fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
