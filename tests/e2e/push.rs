//! Registry push events against a registry that is slow to serve what it announced (docs/push-events.md).

use serde_json::json;
use watch_cluster_sim::Kind;
use watch_cluster_testkit::admin::{free_port, http_post, wait_for_http};
use watch_cluster_testkit::fake::{FakeRegistry, Fault};

use crate::NEVER_SOON;
use crate::env::{Env, NS};

/// The events listener's token (at least 24 characters).
const TOKEN: &str = "push-not-served-token-0123456789";
/// How many checks in a row meet the announced tag unserved: more than the one extra look a push that finds
/// nothing gets, fewer than the retries a push that finds its tag not served yet gets.
const NOT_SERVED: usize = 3;

/// distribution notifies while it is still linking the tag: the checks a push wakes may list the new tag and
/// get 404 for its manifest. They are retried until it is served, and the push is not lost (found by a
/// flaky `push_from_the_registrys_own_notifications`: a second event's check met the 404 after the first
/// event's extra look was used up, and nothing checked again until the yearly cron).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_tag_the_registry_does_not_serve_yet_is_retried_until_it_is() {
    let mut env = Env::start().await;
    let registry = FakeRegistry::start().await.expect("fake registry starts");
    let host = registry.host();
    let manifest = |salt: &str| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                       "digest": format!("sha256:{}", salt.repeat(64))},
            "layers": []
        }))
        .expect("json")
    };
    let oci = "application/vnd.oci.image.manifest.v1+json";
    registry.set_manifest("team/app", Some("1.0.0"), oci, &manifest("a"));
    let new = registry.set_manifest("team/app", Some("1.1.0"), oci, &manifest("b"));
    registry.set_tags("team/app", vec!["1.0.0".into()]);
    let annotations = [
        ("watch-cluster.io/enabled", "true"),
        ("watch-cluster.io/cron", NEVER_SOON),
        ("watch-cluster.io/strategy", "version"),
    ];
    env.create_with(
        NS,
        Kind::Deployment,
        "pushed",
        &[("app", &format!("{host}/team/app:1.0.0"))],
        &annotations,
        json!({"replicas": 0}),
    );
    let (admin, events) = (free_port(), free_port());
    let settings = env
        .base_settings()
        .with(
            "INSECURE_REGISTRIES",
            &format!("{},{host}", env.registry.host()),
        )
        .with("ADMIN_ADDR", &format!("127.0.0.1:{admin}"))
        .with("EVENTS_ADDR", &format!("127.0.0.1:{events}"))
        .with("EVENTS_TOKEN", TOKEN);
    env.spawn_controller(settings);
    wait_for_http(admin, "/readyz", 200).await;
    env.wait_for_webhooks("pushed", "DEPLOYMENT_DETECTED", 1)
        .await;

    // The new tag is listed, but its manifest answers 404 to the next checks.
    registry.set_tags("team/app", vec!["1.0.0".into(), "1.1.0".into()]);
    registry.fault_times(
        "/v2/team/app/manifests/1.1.0",
        Fault::status(404),
        NOT_SERVED,
    );
    let quay = json!({"docker_url": format!("{host}/team/app"), "updated_tags": ["1.1.0"]});
    let status = http_post(
        events,
        &format!("/events/quay/{TOKEN}"),
        &[("Content-Type", "application/json")],
        serde_json::to_vec(&quay).expect("json"),
    )
    .await;
    assert_eq!(status, Some(200), "the push event is accepted");

    let want = format!("{host}/team/app:1.1.0@{new}");
    env.wait_for(Kind::Deployment, "pushed", &format!("image {want}"), |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] == want.as_str()
    })
    .await;
    assert!(
        registry.count(http::Method::GET, "/v2/team/app/manifests/1.1.0")
            + registry.count(http::Method::HEAD, "/v2/team/app/manifests/1.1.0")
            > NOT_SERVED,
        "the tag was asked for again after each 404"
    );
    assert!(
        !env.events("pushed")
            .iter()
            .any(|(_, reason, _)| reason == "RegistryError"),
        "a tag being written is not a registry error"
    );
}
