use super::*;
use crate::registry::RegistryConfig;
use http::Method;
use watch_cluster_testkit::{FakeRegistry, Fault};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

async fn setup() -> (FakeRegistry, RegistryClient, Repository) {
    crate::install_crypto_provider();
    let fake = FakeRegistry::start().await.unwrap();
    let client = RegistryClient::new(
        RegistryConfig {
            insecure_registries: vec![fake.host()],
            ..RegistryConfig::default()
        },
        &mut prometheus_client::registry::Registry::default(),
    )
    .unwrap();
    let repo = Repository::new(fake.host(), "team/app");
    (fake, client, repo)
}

#[tokio::test]
async fn a_manifest_is_read_by_tag_or_digest_with_its_media_type_and_a_missing_one_is_none() {
    let (fake, client, repo) = setup().await;
    let body = br#"{"schemaVersion":2,"manifests":[]}"#;
    let digest = fake.set_manifest("team/app", Some("sha256-ab.sig"), INDEX, body);
    let by_tag = client
        .get_manifest(&repo, "sha256-ab.sig", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_tag.digest, digest);
    assert_eq!(by_tag.media_type.as_deref(), Some(INDEX));
    assert_eq!(&by_tag.body[..], body);
    let by_digest = client.get_manifest(&repo, &digest, None).await.unwrap();
    assert_eq!(by_digest, Some(by_tag));
    assert_eq!(
        client.get_manifest(&repo, "absent", None).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_manifest_or_blob_whose_bytes_do_not_hash_to_the_digest_asked_is_refused() {
    let (fake, client, repo) = setup().await;
    let digest = fake.set_manifest("team/app", None, INDEX, b"{}");
    fake.fault_always(
        &format!("/v2/team/app/manifests/{digest}"),
        Fault::ok().malformed_body(),
    );
    let error = client.get_manifest(&repo, &digest, None).await.unwrap_err();
    assert_eq!(error.reason(), "Malformed", "{error}");
    let blob = fake.set_blob("team/app", b"payload");
    fake.fault_always(
        &format!("/v2/team/app/blobs/{blob}"),
        Fault::ok().malformed_body(),
    );
    let error = client.get_blob(&repo, &blob, 1024, None).await.unwrap_err();
    assert_eq!(error.reason(), "Malformed", "{error}");
}

#[tokio::test]
async fn a_blob_is_read_within_its_bound() {
    let (fake, client, repo) = setup().await;
    let blob = fake.set_blob("team/app", b"payload");
    assert_eq!(
        &client.get_blob(&repo, &blob, 7, None).await.unwrap()[..],
        b"payload"
    );
    let error = client.get_blob(&repo, &blob, 6, None).await.unwrap_err();
    assert!(
        error.to_string().contains("more than the 6 allowed"),
        "{error}"
    );
}

#[tokio::test]
async fn referrers_come_from_the_api_and_else_from_the_sha256_tag() {
    let (fake, client, repo) = setup().await;
    let subject = format!("sha256:{}", "1".repeat(64));
    let referrer = fake.set_manifest(
        "team/app",
        None,
        "application/vnd.oci.image.manifest.v1+json",
        format!(r#"{{"artifactType":"x/y","subject":{{"digest":"{subject}"}}}}"#).as_bytes(),
    );
    let none = client.referrers(&repo, &subject, None).await.unwrap();
    assert_eq!(none.source, ReferrersSource::None);
    assert!(none.referrers.is_empty() && none.listing_digest.is_none());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"digest":"{referrer}","size":1,"artifactType":"x/y"}}]}}"#
    );
    fake.set_manifest(
        "team/app",
        Some(&format!("sha256-{}", "1".repeat(64))),
        INDEX,
        index.as_bytes(),
    );
    let tagged = client.referrers(&repo, &subject, None).await.unwrap();
    assert_eq!(tagged.source, ReferrersSource::Tag);
    let expected = vec![Referrer {
        digest: referrer.clone(),
        artifact_type: Some("x/y".into()),
    }];
    assert_eq!(tagged.referrers, expected);
    fake.set_referrers_api(true);
    let api = client.referrers(&repo, &subject, None).await.unwrap();
    assert_eq!(api.source, ReferrersSource::Api);
    assert_eq!(api.referrers, expected);
    assert_eq!(fake.count(Method::GET, "/v2/team/app/referrers/"), 3);
}

#[tokio::test]
async fn a_registry_that_does_not_route_the_referrers_path_falls_back_and_a_failing_one_is_an_error()
 {
    let (fake, client, repo) = setup().await;
    let subject = format!("sha256:{}", "2".repeat(64));
    let path = format!("/v2/team/app/referrers/{subject}");
    fake.fault(&path, Fault::status(405));
    let listed = client.referrers(&repo, &subject, None).await.unwrap();
    assert_eq!(listed.source, ReferrersSource::None);
    fake.fault_always(&path, Fault::status(503));
    let error = client.referrers(&repo, &subject, None).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
}

#[tokio::test]
async fn a_manifest_read_by_tag_must_hash_to_the_digest_the_registry_claims() {
    let (fake, client, repo) = setup().await;
    fake.set_manifest("team/app", Some("sha256-ab.sig"), INDEX, b"{}");
    let other = format!("sha256:{}", "3".repeat(64));
    fake.fault_always(
        "/v2/team/app/manifests/sha256-ab.sig",
        Fault::ok().wrong_digest(&other),
    );
    let error = client
        .get_manifest(&repo, "sha256-ab.sig", None)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "Malformed", "{error}");
}
