//! The registry client against the real `docker-registry` (distribution 2.8.2) and the fault-injecting fake,
//! and the `check` command as a built binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use prometheus_client::registry::Registry;
use watch_cluster::registry::{
    Credential, RegistryClient, RegistryConfig, RegistryError, Repository,
};
use watch_cluster_testkit::{
    FakeRegistry, Fault, ImageKind, RealRegistry, RegistryAuth, TagListMode,
};

const WAIT: Duration = Duration::from_secs(20);

fn config(insecure: &[&str]) -> RegistryConfig {
    RegistryConfig {
        insecure_registries: insecure.iter().map(|s| (*s).to_owned()).collect(),
        request_timeout: Duration::from_secs(10),
        retry_base_delay: Duration::from_millis(20),
        ..RegistryConfig::default()
    }
}

fn client(config: RegistryConfig) -> RegistryClient {
    watch_cluster::install_crypto_provider();
    RegistryClient::new(config, &mut Registry::default()).unwrap()
}

fn client_with_metrics(config: RegistryConfig) -> (RegistryClient, Registry) {
    watch_cluster::install_crypto_provider();
    let mut metrics = Registry::default();
    let client = RegistryClient::new(config, &mut metrics).unwrap();
    (client, metrics)
}

fn metrics_text(metrics: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, metrics).unwrap();
    out
}

fn repo(host: &str, name: &str) -> Repository {
    Repository::new(host, name)
}

fn tags(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("1.{i}.0")).collect()
}

async fn real(auth: RegistryAuth) -> RealRegistry {
    watch_cluster::install_crypto_provider();
    RealRegistry::start(auth).await.unwrap()
}

// ---------- the real registry ----------

#[tokio::test]
async fn tags_and_digests_come_from_the_real_registry() {
    let registry = real(RegistryAuth::None).await;
    let a = registry
        .push("team/app", "1.0.0", ImageKind::OciManifest, "a")
        .await
        .unwrap();
    let b = registry
        .push("team/app", "1.1.0", ImageKind::DockerManifest, "b")
        .await
        .unwrap();
    let client = client(config(&[&registry.host()]));
    let repo = repo(&registry.host(), "team/app");

    let mut listed = client.list_tags(&repo, None).await.unwrap().to_vec();
    listed.sort();
    assert_eq!(listed, vec!["1.0.0", "1.1.0"]);
    assert_eq!(
        client.head_digest(&repo, "1.0.0", None).await.unwrap(),
        a.digest
    );
    assert_eq!(
        client.head_digest(&repo, "1.1.0", None).await.unwrap(),
        b.digest
    );

    let missing_tag = client.head_digest(&repo, "9.9.9", None).await.unwrap_err();
    assert_eq!(missing_tag.reason(), "NotFound", "{missing_tag}");
    let missing_repo = client
        .list_tags(&self::repo(&registry.host(), "team/none"), None)
        .await;
    assert_eq!(missing_repo.unwrap_err().reason(), "NotFound");
}

#[tokio::test]
async fn latest_detects_a_repushed_tag_for_each_manifest_kind() {
    let registry = real(RegistryAuth::None).await;
    // No sharing window: every lookup asks the registry again, as a later check would.
    let client = client(RegistryConfig {
        cache_ttl: Duration::ZERO,
        ..config(&[&registry.host()])
    });
    for (name, kind) in [
        ("kinds/oci-index", ImageKind::OciIndex),
        ("kinds/oci-manifest", ImageKind::OciManifest),
        ("kinds/docker-list", ImageKind::DockerManifestList),
    ] {
        let repo = repo(&registry.host(), name);
        let first = registry.push(name, "latest", kind, "first").await.unwrap();
        let seen_first = client.head_digest(&repo, "latest", None).await.unwrap();
        assert_eq!(seen_first, first.digest, "{name}");

        let second = registry.push(name, "latest", kind, "second").await.unwrap();
        assert_ne!(first.digest, second.digest);
        let seen_second = client.head_digest(&repo, "latest", None).await.unwrap();
        assert_eq!(
            seen_second, second.digest,
            "{name}: the re-pushed tag's digest"
        );

        let children = client
            .child_digests(&repo, &seen_second, None)
            .await
            .unwrap();
        let expected: Vec<&str> = second.children.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(
            children.iter().map(String::as_str).collect::<Vec<_>>(),
            expected,
            "{name}"
        );
    }
}

#[tokio::test]
async fn basic_auth_over_tls_works_with_the_test_ca_only() {
    let registry = real(RegistryAuth::BasicOverTls {
        user: "alice".into(),
        password: "wonderland".into(),
    })
    .await;
    let pushed = registry
        .push("secure/app", "2.0.0", ImageKind::OciIndex, "s")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, registry.ca_pem().unwrap()).unwrap();
    let repo = repo(&registry.host(), "secure/app");
    let good = Credential::new("alice", "wonderland");

    let trusted = client(RegistryConfig {
        ca_file: Some(ca),
        ..config(&[])
    });
    assert_eq!(
        trusted
            .list_tags(&repo, Some(&good))
            .await
            .unwrap()
            .to_vec(),
        vec!["2.0.0"]
    );
    assert_eq!(
        trusted
            .head_digest(&repo, "2.0.0", Some(&good))
            .await
            .unwrap(),
        pushed.digest
    );
    let anonymous = trusted.list_tags(&repo, None).await.unwrap_err();
    assert_eq!(anonymous.reason(), "Unauthorized", "{anonymous}");
    let wrong = Credential::new("alice", "not-the-password");
    let refused = trusted.list_tags(&repo, Some(&wrong)).await.unwrap_err();
    assert_eq!(refused.reason(), "Unauthorized");
    assert!(!refused.to_string().contains("not-the-password"));

    let untrusted = client(config(&[]));
    let err = untrusted.list_tags(&repo, Some(&good)).await.unwrap_err();
    assert_eq!(
        err.reason(),
        "Transport",
        "an unknown CA is not trusted: {err}"
    );
}

#[tokio::test]
async fn bearer_tokens_come_from_the_token_server_and_are_reused() {
    let registry = real(RegistryAuth::token("builder", "s3cret")).await;
    let pushed = registry
        .push("tok/app", "1.0.0", ImageKind::OciManifest, "t")
        .await
        .unwrap();
    registry
        .push("tok/app", "1.1.0", ImageKind::OciManifest, "u")
        .await
        .unwrap();
    let client = client(config(&[&registry.host()]));
    let repo = repo(&registry.host(), "tok/app");
    let good = Credential::new("builder", "s3cret");

    let before = registry.token_requests();
    let mut listed = client.list_tags(&repo, Some(&good)).await.unwrap().to_vec();
    listed.sort();
    assert_eq!(listed, vec!["1.0.0", "1.1.0"]);
    assert_eq!(
        client
            .head_digest(&repo, "1.0.0", Some(&good))
            .await
            .unwrap(),
        pushed.digest
    );
    client
        .head_digest(&repo, "1.1.0", Some(&good))
        .await
        .unwrap();
    assert_eq!(
        registry.token_requests() - before,
        1,
        "one token serves the repository's lookups"
    );

    let anonymous = client.head_digest(&repo, "1.0.0", None).await.unwrap();
    assert_eq!(
        anonymous, pushed.digest,
        "anonymous pull tokens are granted"
    );
    let wrong = Credential::new("builder", "guess");
    let err = client
        .head_digest(&repo, "1.0.0", Some(&wrong))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "Unauthorized", "{err}");
}

#[tokio::test]
async fn a_plain_http_registry_is_refused_unless_listed_as_insecure() {
    let registry = real(RegistryAuth::None).await;
    registry
        .push("plain/app", "1.0.0", ImageKind::OciManifest, "p")
        .await
        .unwrap();
    let repo = repo(&registry.host(), "plain/app");

    let strict = client(config(&["other:5000"]));
    let err = strict.list_tags(&repo, None).await.unwrap_err();
    assert_eq!(err.reason(), "Insecure", "{err:?}");
    assert!(err.to_string().contains("INSECURE_REGISTRIES"), "{err}");

    let listed = client(config(&[&registry.host()]));
    assert_eq!(
        listed.list_tags(&repo, None).await.unwrap().to_vec(),
        vec!["1.0.0"]
    );
}

#[tokio::test]
async fn credentials_of_one_namespace_never_answer_a_lookup_made_with_another() {
    let registry = real(RegistryAuth::basic("team-a", "pass-a")).await;
    registry
        .push("shared/app", "1.0.0", ImageKind::OciManifest, "x")
        .await
        .unwrap();
    let client = client(config(&[&registry.host()]));
    let repo = repo(&registry.host(), "shared/app");
    let team_a = Credential::new("team-a", "pass-a");
    let team_b = Credential::new("team-b", "pass-b");

    client.list_tags(&repo, Some(&team_a)).await.unwrap();
    client
        .head_digest(&repo, "1.0.0", Some(&team_a))
        .await
        .unwrap();
    // Same registry, repository and tag, asked within the sharing window with other credentials.
    let tags_b = client.list_tags(&repo, Some(&team_b)).await.unwrap_err();
    assert_eq!(tags_b.reason(), "Unauthorized");
    let digest_b = client
        .head_digest(&repo, "1.0.0", Some(&team_b))
        .await
        .unwrap_err();
    assert_eq!(digest_b.reason(), "Unauthorized");
    let anonymous = client.head_digest(&repo, "1.0.0", None).await.unwrap_err();
    assert_eq!(anonymous.reason(), "Unauthorized");
}

// ---------- the fake registry ----------

async fn fake() -> FakeRegistry {
    watch_cluster::install_crypto_provider();
    FakeRegistry::start().await.unwrap()
}

fn tag_requests(fake: &FakeRegistry, name: &str) -> Vec<Instant> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path == format!("/v2/{name}/tags/list"))
        .map(|r| r.at)
        .collect()
}

#[tokio::test]
async fn link_pagination_collects_1000_tags() {
    let fake = fake().await;
    fake.set_tags("big/app", tags(1000));
    let client = client(RegistryConfig {
        page_size: 100,
        ..config(&[&fake.host()])
    });
    let listed = client
        .list_tags(&repo(&fake.host(), "big/app"), None)
        .await
        .unwrap();
    let mut expected = tags(1000);
    expected.sort();
    assert_eq!(listed.to_vec(), expected);
    assert_eq!(fake.count(Method::GET, "/v2/big/app/tags/list"), 10);
}

#[tokio::test]
async fn a_registry_ignoring_n_and_last_does_not_loop() {
    let fake = fake().await;
    fake.set_tag_list_mode(TagListMode::IgnorePagination);
    fake.set_tags("many/app", tags(250));
    fake.set_tags("exact/app", tags(100));
    let client = client(RegistryConfig {
        page_size: 100,
        ..config(&[&fake.host()])
    });
    let many = client
        .list_tags(&repo(&fake.host(), "many/app"), None)
        .await
        .unwrap();
    assert_eq!(many.len(), 250);
    assert_eq!(
        fake.count(Method::GET, "/v2/many/app/tags/list"),
        1,
        "a page larger than n is everything"
    );
    let exact = client
        .list_tags(&repo(&fake.host(), "exact/app"), None)
        .await
        .unwrap();
    assert_eq!(exact.len(), 100);
    assert_eq!(
        fake.count(Method::GET, "/v2/exact/app/tags/list"),
        2,
        "a page with no new tags ends it"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_holds_every_request_back_until_it_elapses() {
    let fake = fake().await;
    fake.set_tags("limited/app", tags(3));
    fake.set_digest(
        "limited/app",
        "1.0.0",
        &format!("sha256:{}", "a".repeat(64)),
    );
    fake.fault("/v2/limited/app/tags/list", Fault::too_many_requests(2));
    let (client, metrics) = client_with_metrics(config(&[&fake.host()]));
    let repo = repo(&fake.host(), "limited/app");

    let listing = {
        let (client, repo) = (client.clone(), repo.clone());
        tokio::spawn(async move { client.list_tags(&repo, None).await })
    };
    // Once the listing waits out the pause, another lookup of the same registry must wait as well.
    let waiting = format!(
        "registry_rate_limit_waits_total{{registry=\"{}\"}} 1",
        fake.host()
    );
    tokio::time::timeout(WAIT, async {
        while !metrics_text(&metrics).contains(&waiting) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the listing never waited for the rate limit");
    let digest = client.head_digest(&repo, "1.0.0", None).await.unwrap();
    assert_eq!(digest, format!("sha256:{}", "a".repeat(64)));
    assert_eq!(listing.await.unwrap().unwrap().len(), 3);

    let log = fake.requests();
    let limited_at = tag_requests(&fake, "limited/app")[0];
    let after: Vec<_> = log.iter().filter(|r| r.at > limited_at).collect();
    assert_eq!(after.len(), 2, "one retried listing and one HEAD");
    for request in after {
        let waited = request.at - limited_at;
        assert!(
            waited >= Duration::from_secs(2),
            "{} {} sent after {waited:?}",
            request.method,
            request.path
        );
    }
    let waits = format!(
        "registry_rate_limit_waits_total{{registry=\"{}\"}} 2",
        fake.host()
    );
    assert!(
        metrics_text(&metrics).contains(&waits),
        "{}",
        metrics_text(&metrics)
    );
}

#[tokio::test]
async fn a_long_retry_after_fails_fast_with_rate_limited_and_sends_nothing_more() {
    let fake = fake().await;
    fake.set_tags("slow/app", tags(3));
    fake.fault("/v2/slow/app/tags/list", Fault::too_many_requests(120));
    let client = client(config(&[&fake.host()]));
    let repo = repo(&fake.host(), "slow/app");

    let err = client.list_tags(&repo, None).await.unwrap_err();
    assert!(matches!(err, RegistryError::RateLimited { .. }), "{err}");
    let again = client.head_digest(&repo, "1.0.0", None).await.unwrap_err();
    assert_eq!(again.reason(), "RateLimited");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn ratelimit_remaining_zero_pauses_the_registry_for_its_window() {
    let fake = fake().await;
    fake.set_tags("hub/app", tags(2));
    fake.set_digest("hub/app", "1.0.0", &format!("sha256:{}", "b".repeat(64)));
    fake.fault(
        "/v2/hub/app/tags/list",
        Fault::ok().rate_limit("100;w=21600", "0;w=3"),
    );
    let client = client(config(&[&fake.host()]));
    let repo = repo(&fake.host(), "hub/app");

    assert_eq!(
        client.list_tags(&repo, None).await.unwrap().len(),
        2,
        "the answer itself is used"
    );
    client.head_digest(&repo, "1.0.0", None).await.unwrap();
    let log = fake.requests();
    assert_eq!(log.len(), 2);
    let waited = log[1].at - log[0].at;
    assert!(
        waited >= Duration::from_secs(3),
        "HEAD sent after {waited:?}"
    );
}

#[tokio::test]
async fn one_token_request_serves_many_concurrent_lookups() {
    let fake = fake().await;
    let names = tags(20);
    for (i, tag) in names.iter().enumerate() {
        fake.set_digest("tok/app", tag, &format!("sha256:{i:064x}"));
    }
    fake.require_bearer(Some(("ci", "pw")), 300);
    let client = client(config(&[&fake.host()]));
    let repo = repo(&fake.host(), "tok/app");
    let credential = Credential::new("ci", "pw");

    let lookups = names.iter().map(|tag| {
        let (client, repo, credential, tag) = (
            client.clone(),
            repo.clone(),
            credential.clone(),
            tag.clone(),
        );
        tokio::spawn(async move { client.head_digest(&repo, &tag, Some(&credential)).await })
    });
    for (i, lookup) in lookups.enumerate() {
        assert_eq!(lookup.await.unwrap().unwrap(), format!("sha256:{i:064x}"));
    }
    assert_eq!(
        client
            .list_tags(&repo, Some(&credential))
            .await
            .unwrap()
            .len(),
        20
    );
    assert_eq!(fake.token_requests(), 1);
    let token_request = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert!(
        token_request
            .query
            .unwrap()
            .contains("scope=repository%3Atok%2Fapp%3Apull")
    );
}

#[tokio::test]
async fn malformed_tag_lists_and_digests_are_typed_errors() {
    let fake = fake().await;
    fake.set_tags("bad/app", tags(2));
    fake.set_digest("bad/app", "1.0.0", &format!("sha256:{}", "c".repeat(64)));
    fake.fault("/v2/bad/app/tags/list", Fault::ok().malformed_body());
    fake.fault(
        "/v2/bad/app/manifests/1.0.0",
        Fault::ok().wrong_digest("sha256:not-hex"),
    );
    let client = client(config(&[&fake.host()]));
    let repo = repo(&fake.host(), "bad/app");

    let err = client.list_tags(&repo, None).await.unwrap_err();
    assert_eq!(err.reason(), "Malformed", "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("failed to list tags of {}/bad/app", fake.host()))
    );
    let err = client.head_digest(&repo, "1.0.0", None).await.unwrap_err();
    assert_eq!(err.reason(), "Malformed", "{err}");
    let err = client
        .child_digests(&repo, "sha256:short", None)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "Malformed");
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let fake = fake().await;
    fake.set_tags("flaky/app", tags(2));
    fake.set_tags("down/app", tags(2));
    fake.fault("/v2/flaky/app/tags/list", Fault::status(503));
    fake.fault_always("/v2/down/app/tags/list", Fault::status(502));
    let client = client(config(&[&fake.host()]));

    assert_eq!(
        client
            .list_tags(&repo(&fake.host(), "flaky/app"), None)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(fake.count(Method::GET, "/v2/flaky/app"), 2);
    let err = client
        .list_tags(&repo(&fake.host(), "down/app"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 502, .. }),
        "{err}"
    );
    assert_eq!(fake.count(Method::GET, "/v2/down/app"), 3);
}

#[tokio::test]
async fn a_request_that_times_out_is_retried() {
    let fake = fake().await;
    fake.set_tags("stall/app", tags(2));
    fake.fault(
        "/v2/stall/app/tags/list",
        Fault::ok().delay(Duration::from_secs(5)),
    );
    let client = client(RegistryConfig {
        request_timeout: Duration::from_millis(300),
        ..config(&[&fake.host()])
    });
    let listed = client
        .list_tags(&repo(&fake.host(), "stall/app"), None)
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(fake.count(Method::GET, "/v2/stall/app/tags/list"), 2);
}

#[tokio::test]
async fn concurrent_requests_to_one_registry_are_bounded() {
    let fake = fake().await;
    for i in 0..6 {
        fake.set_digest("busy/app", &format!("1.{i}.0"), &format!("sha256:{i:064x}"));
    }
    let hold = Duration::from_millis(300);
    fake.fault_times("/v2/busy/app/manifests", Fault::ok().delay(hold), 6);
    let client = client(RegistryConfig {
        max_concurrent_per_registry: 2,
        ..config(&[&fake.host()])
    });
    let lookups: Vec<_> = (0..6)
        .map(|i| {
            let (client, repo) = (client.clone(), repo(&fake.host(), "busy/app"));
            tokio::spawn(async move { client.head_digest(&repo, &format!("1.{i}.0"), None).await })
        })
        .collect();
    for lookup in lookups {
        lookup.await.unwrap().unwrap();
    }
    let arrivals: Vec<Instant> = fake.requests().iter().map(|r| r.at).collect();
    assert_eq!(arrivals.len(), 6);
    // Two at a time: the third and fifth requests start only once earlier ones were answered.
    assert!(
        arrivals[2] - arrivals[0] >= hold,
        "{:?}",
        arrivals[2] - arrivals[0]
    );
    assert!(
        arrivals[4] - arrivals[0] >= hold * 2,
        "{:?}",
        arrivals[4] - arrivals[0]
    );
}

#[tokio::test]
async fn concurrent_identical_lookups_are_coalesced_and_shared() {
    let fake = fake().await;
    for r in 0..10 {
        for t in 0..2 {
            fake.set_digest(
                &format!("share/app{r}"),
                &format!("1.{t}.0"),
                &format!("sha256:{:064x}", r * 10 + t),
            );
        }
    }
    let (client, metrics) = client_with_metrics(config(&[&fake.host()]));
    let host = fake.host();
    let lookups: Vec<_> = (0..200)
        .map(|i| {
            let client = client.clone();
            let repo = repo(&host, &format!("share/app{}", i % 10));
            let tag = format!("1.{}.0", (i / 10) % 2);
            tokio::spawn(async move {
                let tags = client.list_tags(&repo, None).await?;
                let digest = client.head_digest(&repo, &tag, None).await?;
                Ok::<_, RegistryError>((tags, digest))
            })
        })
        .collect();
    for lookup in lookups {
        let (tags, digest) = lookup.await.unwrap().unwrap();
        assert_eq!(tags.len(), 2);
        assert!(digest.starts_with("sha256:"));
    }
    assert_eq!(fake.count(Method::GET, "/v2/share/"), 10, "tag listings");
    assert_eq!(fake.count(Method::HEAD, "/v2/share/"), 20, "HEADs");
    let text = metrics_text(&metrics);
    let line =
        format!("registry_requests_total{{registry=\"{host}\",method=\"HEAD\",status=\"200\"}} 20");
    assert!(text.contains(&line), "{text}");
}

/// A registry on 127.0.0.1 that demands Basic auth and redirects manifest GETs to a storage path on the
/// same host (where a default HTTP client would keep `Authorization`); it logs what storage received.
async fn redirecting_registry(body: &'static [u8]) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let storage_log = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&storage_log);
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let log = Arc::clone(&log);
        async move {
            let auth = request
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned());
            let path = request.uri().path().to_owned();
            if path.starts_with("/storage/") {
                log.lock().unwrap().push(auth);
                return (
                    [(
                        header::CONTENT_TYPE,
                        "application/vnd.oci.image.index.v1+json",
                    )],
                    body,
                )
                    .into_response();
            }
            if auth.as_deref() != Some("Basic dTpw") {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Basic realm=\"r\"")],
                )
                    .into_response();
            }
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, "/storage/blob")],
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (host, storage_log)
}

#[tokio::test]
async fn authorization_is_never_forwarded_on_redirects() {
    const INDEX: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let (host, storage_log) = redirecting_registry(INDEX).await;
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(INDEX))
    );
    let client = client(config(&[&host]));

    let children = client
        .child_digests(
            &repo(&host, "redir/app"),
            &digest,
            Some(&Credential::new("u", "p")),
        )
        .await
        .unwrap();
    assert!(children.is_empty());
    assert_eq!(
        *storage_log.lock().unwrap(),
        vec![None],
        "storage saw no Authorization"
    );
}

// ---------- the `check` command ----------

fn check_command(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_watch-cluster"))
        .arg("check")
        .args(args)
        .env_remove("INSECURE_REGISTRIES")
        .env_remove("REGISTRY_CA_FILE")
        .output()
        .unwrap()
}

#[tokio::test]
async fn check_prints_the_pinned_decision_for_a_real_registry_image() {
    let registry = real(RegistryAuth::None).await;
    registry
        .push("web/app", "1.2.3", ImageKind::OciManifest, "a")
        .await
        .unwrap();
    let newest = registry
        .push("web/app", "1.3.0", ImageKind::OciIndex, "b")
        .await
        .unwrap();
    registry
        .push("web/app", "2.0.0-rc1", ImageKind::OciManifest, "c")
        .await
        .unwrap();
    let host = registry.host();
    let image = format!("{host}/web/app:1.2.3");

    let output = tokio::task::spawn_blocking(move || {
        check_command(&[
            &image,
            "--strategy",
            "version",
            "--insecure-registries",
            &host,
        ])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pinned = format!("{}/web/app:1.3.0@{}", registry.host(), newest.digest);
    assert!(stdout.contains(&pinned), "{stdout}");
    assert!(
        stdout.contains("2.0.0-rc1"),
        "rejected candidates are listed: {stdout}"
    );
}

#[tokio::test]
async fn check_with_latest_pins_the_tag_to_the_registry_digest() {
    let registry = real(RegistryAuth::None).await;
    let pushed = registry
        .push("web/site", "stable", ImageKind::DockerManifestList, "a")
        .await
        .unwrap();
    let host = registry.host();
    let image = format!("{host}/web/site:stable");
    let output = tokio::task::spawn_blocking(move || {
        check_command(&[
            &image,
            "--strategy",
            "LATEST",
            "--insecure-registries",
            &format!("other:1,{host}"),
        ])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pinned = format!("{}/web/site:stable@{}", registry.host(), pushed.digest);
    assert!(
        stdout.contains(&format!("decision: update to {pinned}")),
        "{stdout}"
    );
}

#[tokio::test]
async fn check_exits_1_with_one_line_for_an_unreachable_registry_and_a_bad_reference() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let unreachable = format!("127.0.0.1:{port}/team/app:1.0.0");
    let insecure = format!("127.0.0.1:{port}");
    for args in [
        vec![
            unreachable.as_str(),
            "--insecure-registries",
            insecure.as_str(),
        ],
        vec!["Not A Reference!"],
    ] {
        let owned: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let output = tokio::task::spawn_blocking(move || {
            check_command(&owned.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}

#[test]
fn a_missing_or_empty_ca_file_fails_client_construction_naming_the_setting() {
    watch_cluster::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    for path in [dir.path().join("absent.pem"), empty] {
        let config = RegistryConfig {
            ca_file: Some(path),
            ..config(&[])
        };
        let err = RegistryClient::new(config, &mut Registry::default()).unwrap_err();
        assert_eq!(err.reason(), "Config");
        assert!(err.to_string().contains("REGISTRY_CA_FILE"), "{err}");
    }
}
