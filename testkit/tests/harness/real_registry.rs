//! The real-registry harness: every auth variant stores and serves every manifest kind.

use watch_cluster_testkit::registry::{ImageKind, OCI_MANIFEST, RealRegistry, RegistryAuth};

use super::{ALL_TYPES, KINDS, client, sha256};

/// Pushes each of the four kinds and reads each back with all four Accept types: HEAD gives the pushed digest, GET
/// gives the pushed media type and bytes whose SHA-256 is that digest, and index children resolve by digest.
async fn push_and_read_back_every_kind(registry: &RealRegistry) {
    for (i, kind) in KINDS.into_iter().enumerate() {
        let repo = format!("team/app{i}");
        let pushed = registry.push(&repo, "1.0", kind, "a").await.unwrap();
        assert_eq!(pushed.media_type, kind.media_type());
        let head = registry
            .head_manifest(&repo, "1.0", &ALL_TYPES)
            .await
            .unwrap();
        assert_eq!(
            head.status,
            200,
            "{kind:?}: {head:?}\n{}",
            registry.log_output()
        );
        assert_eq!(
            head.digest.as_deref(),
            Some(pushed.digest.as_str()),
            "{kind:?}"
        );
        let get = registry
            .get_manifest(&repo, "1.0", &ALL_TYPES)
            .await
            .unwrap();
        assert_eq!(
            get.content_type.as_deref(),
            Some(kind.media_type()),
            "{kind:?}"
        );
        assert_eq!(sha256(&get.body), pushed.digest, "{kind:?}");
        assert_eq!(get.body.len(), pushed.size);
        let listed: Vec<String> = match kind {
            ImageKind::OciIndex | ImageKind::DockerManifestList => {
                let json: serde_json::Value = serde_json::from_slice(&get.body).unwrap();
                json["manifests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["digest"].as_str().unwrap().to_owned())
                    .collect()
            }
            _ => vec![],
        };
        let children: Vec<String> = pushed.children.iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(listed, children, "{kind:?}");
        for (platform, digest) in &pushed.children {
            let child = registry
                .head_manifest(&repo, digest, &ALL_TYPES)
                .await
                .unwrap();
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
    let registry = RealRegistry::start(RegistryAuth::basic("alice", "s3cret"))
        .await
        .unwrap();
    push_and_read_back_every_kind(&registry).await;
    let anonymous = client()
        .get(format!("{}/v2/team/app0/tags/list", registry.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
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
    assert!(
        untrusting.is_err(),
        "a client without the test CA must refuse the certificate"
    );
    let ca = reqwest::Certificate::from_pem(registry.ca_pem().unwrap().as_bytes()).unwrap();
    let trusting = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
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
    let registry = RealRegistry::start(RegistryAuth::token("carol", "tok-pw"))
        .await
        .unwrap();
    assert_eq!(registry.token_requests(), 0);
    push_and_read_back_every_kind(&registry).await;
    assert!(registry.token_requests() > 0);

    // The registry challenges with the harness realm, service and the scope asked for.
    let c = client();
    let anonymous = c
        .head(format!(
            "{}/v2/team/app0/manifests/1.0",
            registry.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let realm = registry.token_realm().unwrap();
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{realm}\"")),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"repository:team/app0:pull\""),
        "{challenge}"
    );

    // Anonymous tokens pull but cannot push; wrong credentials get no token.
    let token: serde_json::Value = c
        .get(&realm)
        .query(&[
            ("service", "testkit-registry"),
            ("scope", "repository:team/app0:pull,push"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(token["expires_in"].as_i64().unwrap() > 0);
    let bearer = token["token"].as_str().unwrap();
    let pulled = c
        .head(format!(
            "{}/v2/team/app0/manifests/1.0",
            registry.base_url()
        ))
        .header("accept", OCI_MANIFEST)
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), 200);
    let upload = c
        .post(format!(
            "{}/v2/team/app0/blobs/uploads/",
            registry.base_url()
        ))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 401);
    let refused = c
        .get(&realm)
        .basic_auth("carol", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}
