//! Unit tests of the pure parts of [`super::decide`]: the `pending` value, min-age holds, invalid gates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::gate::PendingEntry;
use crate::resolve::{AgeOutcome, Held};

fn at(hour: u32) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.with_ymd_and_hms(2026, 1, 1, hour, 0, 0).unwrap()
}

fn pending_of(entries: &[(&str, u32)]) -> Pending {
    let mut pending = Pending::default();
    pending.set(
        "app",
        entries
            .iter()
            .map(|(image, hour)| PendingEntry {
                image: (*image).into(),
                first_seen: at(*hour),
            })
            .collect(),
    );
    pending
}

#[test]
fn pending_is_written_only_when_its_content_changes_and_removed_when_empty() {
    let one = pending_of(&[("app:1.2.0@sha256:b", 1)]);
    let value = one.to_annotation();
    assert_eq!(pending_change(Some(&value), &one), None);
    // Same content spelt differently (spaces): not rewritten.
    let spaced = value.replace(',', ", ");
    assert_eq!(pending_change(Some(&spaced), &one), None);
    assert_eq!(pending_change(None, &one), Some(value.clone()));
    assert_eq!(
        pending_change(Some(&value), &Pending::default()),
        Some(String::new())
    );
    assert_eq!(pending_change(None, &Pending::default()), None);
    // As a merge patch: null removes, a string sets, nothing leaves it.
    let merge = |pending: Option<&str>| {
        Findings {
            pending: pending.map(str::to_owned),
            ..Findings::default()
        }
        .pending_merge_value()
    };
    assert_eq!(merge(Some("")), Some(serde_json::Value::Null));
    assert_eq!(
        merge(Some(&value)),
        Some(serde_json::Value::String(value.clone()))
    );
    assert_eq!(merge(None), None);
    // An unreadable value is replaced, even by an empty list.
    assert_eq!(
        pending_change(Some("{"), &Pending::default()),
        Some(String::new())
    );
}

#[test]
fn a_container_is_held_by_its_best_waiting_candidate_and_rechecked_at_the_earliest_ripening() {
    let mut findings = Findings::default();
    let held = |image: &str, hour| Held {
        image: image.into(),
        first_seen: at(hour),
        ripens_at: at(hour + 2),
    };
    let age = AgeOutcome {
        pending: Vec::new(),
        held: vec![held("app:1.3.0@sha256:c", 5), held("app:1.2.0@sha256:b", 1)],
    };
    note_age("app", &age, &mut findings);
    note_age(
        "none",
        &AgeOutcome {
            pending: Vec::new(),
            held: Vec::new(),
        },
        &mut findings,
    );
    assert_eq!(findings.held.len(), 1);
    let h = &findings.held[0];
    assert_eq!(h.image, "app:1.3.0@sha256:c");
    assert_eq!(h.ripens_at, at(7));
    assert_eq!(h.recheck_at, at(3));
    assert_eq!(findings.recheck_at(), Some(at(3)));
    assert_eq!(
        h.to_string(),
        "app: app:1.3.0@sha256:c held by min-age until 2026-01-01T07:00:00Z"
    );
}

#[test]
fn no_update_is_proposed_while_a_gate_annotation_is_invalid() {
    let map = [(annotations::HOLD.to_owned(), "maybe".to_owned())].into();
    let settings = Settings::from_annotations(&map, chrono_tz::UTC).unwrap();
    let container = Container {
        name: "app".into(),
        image: "app:1.0.0".into(),
        init: false,
        index: 0,
    };
    let mut findings = Findings {
        changes: vec![ContainerChange {
            container,
            from_image: "app:1.0.0".into(),
            to_image: "app:1.1.0@sha256:a".into(),
            from_digest: None,
            to_digest: "sha256:a".into(),
        }],
        ..Findings::default()
    };
    hold_for_invalid_gates(&settings, &mut findings);
    assert!(findings.changes.is_empty());
    assert_eq!(
        findings.kept[0].to_string(),
        "app: app:1.1.0@sha256:a is not applied while watch-cluster.io/hold is invalid"
    );
}

#[test]
fn a_refused_pull_secret_is_named_and_other_errors_pass_through() {
    let refused = RegistryError::Unauthorized {
        target: "list tags of r/app".into(),
        detail: "the registry refused the credentials".into(),
    };
    let named = name_refused_secret(refused.clone(), Some("team-a/pull"));
    assert_eq!(named.reason(), "PullSecretRefused");
    assert!(named.to_string().contains("Secret team-a/pull"), "{named}");
    // Without a secret (anonymous or cloud identity) the error stays as it was.
    assert_eq!(name_refused_secret(refused, None).reason(), "Unauthorized");
    let missing = RegistryError::NotFound { target: "t".into() };
    assert_eq!(name_refused_secret(missing, Some("s")).reason(), "NotFound");
}

mod credential_choice {
    use super::*;
    use crate::registry::cloud::{CloudConfig, Env, Provider};
    use crate::registry::{Credential, RegistryConfig};
    use watch_cluster_testkit::fake::aws::{ECR_HOST, FakeAws, Step};

    const ROLE: &str = "arn:aws:iam::123456789012:role/watch-cluster";

    async fn bed() -> (FakeAws, tempfile::TempDir, RegistryClient) {
        crate::install_crypto_provider();
        let fake = FakeAws::start(ROLE, "web-identity").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), fake.ca_pem()).unwrap();
        std::fs::write(dir.path().join("token"), "web-identity").unwrap();
        let env = Env::from_pairs([
            ("AWS_ROLE_ARN", ROLE.to_owned()),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                dir.path().join("token").display().to_string(),
            ),
            ("AWS_ENDPOINT_URL", fake.endpoint()),
        ]);
        let config = RegistryConfig {
            ca_file: Some(dir.path().join("ca.pem")),
            cloud: CloudConfig {
                providers: vec![Provider::Aws],
                namespaces: vec!["team-a".into()],
                env,
            },
            resolve: vec![(ECR_HOST.to_owned(), fake.addr())],
            ..RegistryConfig::default()
        };
        let client = RegistryClient::new(
            config,
            &mut prometheus_client::registry::Registry::default(),
        )
        .unwrap();
        (fake, dir, client)
    }

    fn secret_for(host: &str) -> (String, DockerConfig) {
        let json = format!(r#"{{"auths":{{"{host}":{{"username":"u","password":"p"}}}}}}"#);
        let config = DockerConfig::from_config_json(json.as_bytes(), "test").unwrap();
        ("team-a/pull".to_owned(), config)
    }

    #[tokio::test]
    async fn a_matching_pull_secret_wins_and_cloud_identity_is_not_asked() {
        let (fake, _dir, client) = bed().await;
        let secrets = [secret_for(&fake.registry())];
        let (credential, secret) = choose_credential(&client, "team-a", &secrets, &fake.registry())
            .await
            .unwrap();
        assert_eq!(credential, Some(Credential::new("u", "p")));
        assert_eq!(secret.as_deref(), Some("team-a/pull"));
        assert!(fake.requests().is_empty());
    }

    #[tokio::test]
    async fn without_a_matching_secret_an_allowed_namespace_gets_the_cloud_credential() {
        let (fake, _dir, client) = bed().await;
        let other = [secret_for("ghcr.io")];
        let (credential, secret) = choose_credential(&client, "team-a", &other, &fake.registry())
            .await
            .unwrap();
        let credential = credential.unwrap();
        assert_eq!(credential.cloud_provider(), Some(Provider::Aws));
        assert_eq!(credential.password, fake.password());
        assert_eq!(secret, None);
        // Another namespace goes anonymous: it may not borrow the controller's identity.
        let (credential, _) = choose_credential(&client, "team-b", &other, &fake.registry())
            .await
            .unwrap();
        assert_eq!(credential, None);
        // A registry no enabled cloud serves goes anonymous too.
        let (credential, _) = choose_credential(&client, "team-a", &[], "quay.io")
            .await
            .unwrap();
        assert_eq!(credential, None);
    }

    #[tokio::test]
    async fn a_cloud_failure_is_a_registry_error_naming_the_step() {
        let (fake, _dir, client) = bed().await;
        fake.fail(Step::Sts, 403, "AccessDenied", "not allowed");
        let err = choose_credential(&client, "team-a", &[], &fake.registry())
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "CloudIdentity");
        assert!(
            err.to_string()
                .contains("STS AssumeRoleWithWebIdentity: AccessDenied: not allowed"),
            "{err}"
        );
    }
}
