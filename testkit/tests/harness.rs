//! Tests of the test support itself: the webhook receiver, the real-registry harness and the fake registry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use watch_cluster_testkit::registry::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, ImageKind, OCI_INDEX, OCI_MANIFEST, RealRegistry, RegistryAuth,
};
use watch_cluster_testkit::webhook::{Response, WebhookReceiver};

const ALL_TYPES: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST];
const KINDS: [ImageKind; 4] =
    [ImageKind::OciManifest, ImageKind::OciIndex, ImageKind::DockerManifest, ImageKind::DockerManifestList];

const WAIT: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

#[tokio::test]
async fn webhook_receiver_records_the_exact_body_and_headers() {
    let rx = WebhookReceiver::start().await.unwrap();
    let body =
        br#"{"eventType":"IMAGE_ROLLOUT_COMPLETED","details":{"rolloutDuration":"45000ms"}}"#;
    let resp = client()
        .post(format!("{}hooks/a?x=1", rx.url()))
        .header("content-type", "application/json")
        .header("X-Watch-Cluster-Delivery", "d-1")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = rx.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, http::Method::POST);
    assert_eq!(r.path, "/hooks/a");
    assert_eq!(r.query.as_deref(), Some("x=1"));
    assert_eq!(&r.body[..], &body[..]);
    assert_eq!(r.header("x-watch-cluster-delivery"), Some("d-1"));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.json()["details"]["rolloutDuration"], "45000ms");
}

#[tokio::test]
async fn webhook_receiver_answers_scripted_responses_in_order_then_200() {
    let rx = WebhookReceiver::start().await.unwrap();
    rx.respond_next(Response::TooManyRequests {
        retry_after_secs: 7,
    });
    rx.respond_next(Response::Status(500));
    let c = client();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let r = c.post(rx.url()).body("{}").send().await.unwrap();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        answers.push((r.status().as_u16(), retry));
    }
    assert_eq!(
        answers,
        vec![(429, Some("7".to_owned())), (500, None), (200, None)]
    );
    let got = rx.wait_for_requests(3, WAIT).await.unwrap();
    assert!(got.windows(2).all(|w| w[0].received_at <= w[1].received_at));
}

#[tokio::test]
async fn webhook_receiver_hangs_until_the_client_times_out_and_records_the_request() {
    let rx = WebhookReceiver::start().await.unwrap();
    rx.respond_next(Response::Hang);
    let started = Instant::now();
    let err = client()
        .post(rx.url())
        .timeout(Duration::from_millis(300))
        .body("hang")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let got = rx.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(&got[0].body[..], b"hang");
    // The next request is answered normally.
    let r = client().post(rx.url()).body("ok").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn webhook_wait_for_requests_times_out_when_too_few_arrive() {
    let rx = WebhookReceiver::start().await.unwrap();
    let err = rx
        .wait_for_requests(1, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn webhook_receiver_stops_serving_when_dropped() {
    let rx = WebhookReceiver::start().await.unwrap();
    let url = rx.url();
    rx.respond_next(Response::Hang);
    let c = client();
    let hanging = tokio::spawn({
        let c = c.clone();
        let url = url.clone();
        async move { c.post(url).body("x").send().await }
    });
    rx.wait_for_requests(1, WAIT).await.unwrap();
    drop(rx);
    // The held request is released once the receiver is gone.
    let released = tokio::time::timeout(WAIT, hanging).await.unwrap().unwrap();
    if let Ok(r) = released {
        assert_ne!(r.status(), 200);
    }
    let fresh = reqwest::Client::builder().build().unwrap();
    let after = tokio::time::timeout(WAIT, fresh.post(url).body("y").send())
        .await
        .unwrap();
    assert!(
        after.is_err(),
        "server still answering after drop: {after:?}"
    );
}

// ---- real registry -------------------------------------------------------------------------------------------

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Pushes each of the four kinds and reads each back with all four Accept types: HEAD gives the pushed digest, GET
/// gives the pushed media type and bytes whose SHA-256 is that digest, and index children resolve by digest.
async fn push_and_read_back_every_kind(registry: &RealRegistry) {
    for (i, kind) in KINDS.into_iter().enumerate() {
        let repo = format!("team/app{i}");
        let pushed = registry.push(&repo, "1.0", kind, "a").await.unwrap();
        assert_eq!(pushed.media_type, kind.media_type());
        let head = registry.head_manifest(&repo, "1.0", &ALL_TYPES).await.unwrap();
        assert_eq!(head.status, 200, "{kind:?}: {head:?}\n{}", registry.log_output());
        assert_eq!(head.digest.as_deref(), Some(pushed.digest.as_str()), "{kind:?}");
        let get = registry.get_manifest(&repo, "1.0", &ALL_TYPES).await.unwrap();
        assert_eq!(get.content_type.as_deref(), Some(kind.media_type()), "{kind:?}");
        assert_eq!(sha256(&get.body), pushed.digest, "{kind:?}");
        assert_eq!(get.body.len(), pushed.size);
        let listed: Vec<String> = match kind {
            ImageKind::OciIndex | ImageKind::DockerManifestList => {
                let json: serde_json::Value = serde_json::from_slice(&get.body).unwrap();
                json["manifests"].as_array().unwrap().iter().map(|m| m["digest"].as_str().unwrap().to_owned()).collect()
            }
            _ => vec![],
        };
        let children: Vec<String> = pushed.children.iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(listed, children, "{kind:?}");
        for (platform, digest) in &pushed.children {
            let child = registry.head_manifest(&repo, digest, &ALL_TYPES).await.unwrap();
            assert_eq!(child.status, 200, "{kind:?} {platform}");
            assert_eq!(child.digest.as_deref(), Some(digest.as_str()));
        }
    }
}

#[tokio::test]
async fn real_registry_plain_stores_and_serves_every_manifest_kind() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    assert!(registry.base_url().starts_with("http://127.0.0.1:"));
    push_and_read_back_every_kind(&registry).await;
}

#[tokio::test]
async fn real_registry_with_basic_auth_serves_every_kind_and_challenges_anonymous_clients() {
    let registry = RealRegistry::start(RegistryAuth::basic("alice", "s3cret")).await.unwrap();
    push_and_read_back_every_kind(&registry).await;
    let anonymous = client().get(format!("{}/v2/team/app0/tags/list", registry.base_url())).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    let wrong = client()
        .get(format!("{}/v2/", registry.base_url()))
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn real_registry_over_tls_is_trusted_with_the_test_ca_only() {
    let registry = RealRegistry::start(RegistryAuth::Tls).await.unwrap();
    assert!(registry.base_url().starts_with("https://127.0.0.1:"));
    push_and_read_back_every_kind(&registry).await;
    let url = format!("{}/v2/", registry.base_url());
    let untrusting = client().get(&url).send().await;
    assert!(untrusting.is_err(), "a client without the test CA must refuse the certificate");
    let ca = reqwest::Certificate::from_pem(registry.ca_pem().unwrap().as_bytes()).unwrap();
    let trusting = reqwest::Client::builder().tls_certs_only([ca]).build().unwrap();
    assert_eq!(trusting.get(&url).send().await.unwrap().status(), 200);
    let by_name = url.replace("127.0.0.1", "localhost");
    assert_eq!(trusting.get(&by_name).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn real_registry_with_basic_auth_over_tls_serves_every_kind() {
    let registry = RealRegistry::start(RegistryAuth::BasicOverTls {
        user: "bob".to_owned(),
        password: "pw".to_owned(),
    })
    .await
    .unwrap();
    push_and_read_back_every_kind(&registry).await;
}

#[tokio::test]
async fn real_registry_with_tokens_serves_every_kind_through_the_bearer_handshake() {
    let registry = RealRegistry::start(RegistryAuth::token("carol", "tok-pw")).await.unwrap();
    assert_eq!(registry.token_requests(), 0);
    push_and_read_back_every_kind(&registry).await;
    assert!(registry.token_requests() > 0);

    // The registry challenges with the harness realm, service and the scope asked for.
    let c = client();
    let anonymous = c.head(format!("{}/v2/team/app0/manifests/1.0", registry.base_url())).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let realm = registry.token_realm().unwrap();
    assert!(challenge.starts_with(&format!("Bearer realm=\"{realm}\"")), "{challenge}");
    assert!(challenge.contains("scope=\"repository:team/app0:pull\""), "{challenge}");

    // Anonymous tokens pull but cannot push; wrong credentials get no token.
    let token: serde_json::Value = c
        .get(&realm)
        .query(&[("service", "testkit-registry"), ("scope", "repository:team/app0:pull,push")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(token["expires_in"].as_i64().unwrap() > 0);
    let bearer = token["token"].as_str().unwrap();
    let pulled = c
        .head(format!("{}/v2/team/app0/manifests/1.0", registry.base_url()))
        .header("accept", OCI_MANIFEST)
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), 200);
    let upload = c
        .post(format!("{}/v2/team/app0/blobs/uploads/", registry.base_url()))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 401);
    let refused = c.get(&realm).basic_auth("carol", Some("nope")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
}

// ---- TESTBED §2: the Accept header decides the answer -----------------------------------------------------------

#[tokio::test]
async fn oci_manifest_head_without_oci_types_is_not_found() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    let pushed = registry.push("app", "1", ImageKind::OciManifest, "s").await.unwrap();
    let docker_only = registry.head_manifest("app", "1", &[DOCKER_MANIFEST_LIST, DOCKER_MANIFEST]).await.unwrap();
    assert_eq!(docker_only.status, 404);
    let with_oci = registry.head_manifest("app", "1", &[OCI_MANIFEST]).await.unwrap();
    assert_eq!(with_oci.digest, Some(pushed.digest));
}

#[tokio::test]
async fn oci_index_asked_for_with_manifest_types_only_is_not_found() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    registry.push("app", "1", ImageKind::OciIndex, "s").await.unwrap();
    let answer = registry.head_manifest("app", "1", &[OCI_MANIFEST, DOCKER_MANIFEST]).await.unwrap();
    assert_eq!(answer.status, 404);
}

#[tokio::test]
async fn docker_manifest_asked_for_without_its_type_is_converted_to_schema1_with_another_digest() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    let pushed = registry.push("app", "1", ImageKind::DockerManifest, "s").await.unwrap();
    let answer = registry.get_manifest("app", "1", &[OCI_INDEX, OCI_MANIFEST]).await.unwrap();
    assert_eq!(answer.status, 200, "{:?}", String::from_utf8_lossy(&answer.body));
    assert!(answer.content_type.as_deref().unwrap().contains("manifest.v1"), "{answer:?}");
    assert_ne!(answer.digest.as_deref(), Some(pushed.digest.as_str()));
}

#[tokio::test]
async fn docker_manifest_list_asked_for_with_docker_v2_only_answers_the_amd64_child() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    let pushed = registry.push("app", "1", ImageKind::DockerManifestList, "s").await.unwrap();
    let answer = registry.head_manifest("app", "1", &[DOCKER_MANIFEST]).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.digest.as_deref(), pushed.child("linux/amd64"));
    assert_ne!(pushed.child("linux/amd64"), pushed.child("linux/arm64"));
    let all = registry.head_manifest("app", "1", &ALL_TYPES).await.unwrap();
    assert_eq!(all.digest, Some(pushed.digest));
}

#[tokio::test]
async fn re_pushing_a_tag_with_another_salt_moves_it_and_the_old_digest_still_resolves() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    for kind in KINDS {
        let old = registry.push("app", "latest", kind, "one").await.unwrap();
        let same = registry.push("app", "latest", kind, "one").await.unwrap();
        assert_eq!(old, same, "same content, same digest ({kind:?})");
        let new = registry.push("app", "latest", kind, "two").await.unwrap();
        assert_ne!(old.digest, new.digest, "{kind:?}");
        let now = registry.head_manifest("app", "latest", &ALL_TYPES).await.unwrap();
        assert_eq!(now.digest, Some(new.digest.clone()));
        let before = registry.head_manifest("app", &old.digest, &ALL_TYPES).await.unwrap();
        assert_eq!((before.status, before.digest), (200, Some(old.digest.clone())));
    }
}

#[tokio::test]
async fn missing_repository_and_missing_tag_are_not_found() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    registry.push("app", "1", ImageKind::OciManifest, "s").await.unwrap();
    let no_repo = registry.get_manifest("nothing", "1", &ALL_TYPES).await.unwrap();
    assert_eq!(no_repo.status, 404);
    assert!(String::from_utf8_lossy(&no_repo.body).contains("NAME_UNKNOWN"), "{no_repo:?}");
    let no_tag = registry.get_manifest("app", "2", &ALL_TYPES).await.unwrap();
    assert_eq!(no_tag.status, 404);
    assert!(String::from_utf8_lossy(&no_tag.body).contains("MANIFEST_UNKNOWN"));
}

// ---- the harness leaves no process behind ------------------------------------------------------------------------

fn process_alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie would still have one.
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn dropping_the_registry_kills_and_reaps_its_process() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    let pid = registry.pid();
    assert!(process_alive(pid));
    drop(registry);
    assert!(!process_alive(pid));
}

#[tokio::test]
async fn a_panicking_test_still_kills_its_registry() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let registry = RealRegistry::start(RegistryAuth::basic("u", "p")).await.unwrap();
        tx.send(registry.pid()).unwrap();
        panic!("simulated test failure");
    });
    assert!(task.await.unwrap_err().is_panic());
    let pid = rx.await.unwrap();
    assert!(!process_alive(pid));
}
