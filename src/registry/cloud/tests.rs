//! Host patterns, endpoint overrides, source URLs and the cache rule of [`super`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn registry_hosts_match_the_exact_patterns_only() {
    let table = [
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            Some(Provider::Aws),
        ),
        (
            "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
            Some(Provider::Aws),
        ),
        (
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
            Some(Provider::Aws),
        ),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com:8443",
            Some(Provider::Aws),
        ),
        (
            "123456789012.DKR.ECR.us-east-1.amazonaws.com",
            Some(Provider::Aws),
        ),
        ("12345678901.dkr.ecr.us-east-1.amazonaws.com", None),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.com",
            None,
        ),
        ("evil123456789012.dkr.ecr.us-east-1.amazonaws.com", None),
        ("123456789012.dkr.ecr.us_east_1.amazonaws.com", None),
        ("public.ecr.aws", None),
        ("europe-west1-docker.pkg.dev", Some(Provider::Gcp)),
        ("docker.pkg.dev", None),
        ("europe-west1-docker.pkg.dev.evil.com", None),
        ("gcr.io", Some(Provider::Gcp)),
        ("eu.gcr.io", Some(Provider::Gcp)),
        ("gcr.io.evil.com", None),
        ("a.b.gcr.io", None),
        ("myregistry.azurecr.io", Some(Provider::Azure)),
        ("myregistry.azurecr.cn", Some(Provider::Azure)),
        ("myregistry.azurecr.us", Some(Provider::Azure)),
        ("my-registry.azurecr.io", None),
        ("myregistry.azurecr.io.evil.com", None),
        ("docker.io", None),
        ("registry:5000", None),
    ];
    for (host, want) in table {
        assert_eq!(provider_for(host), want, "{host}");
    }
}

#[test]
fn a_credential_goes_only_over_https_to_its_own_clouds_hosts() {
    let url = |s: &str| Url::parse(s).unwrap();
    assert!(may_carry(
        Provider::Aws,
        &url("https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/")
    ));
    assert!(may_carry(
        Provider::Aws,
        &url("https://123456789012.dkr.ecr.us-east-1.amazonaws.com:8443/v2/")
    ));
    assert!(!may_carry(
        Provider::Aws,
        &url("http://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/")
    ));
    assert!(!may_carry(
        Provider::Aws,
        &url("https://auth.example.com/token")
    ));
    assert!(!may_carry(
        Provider::Aws,
        &url("https://eu.gcr.io/v2/token")
    ));
    assert!(may_carry(
        Provider::Gcp,
        &url("https://europe-west1-docker.pkg.dev/v2/token")
    ));
    assert!(may_carry(
        Provider::Azure,
        &url("https://myregistry.azurecr.io/oauth2/token")
    ));
}

#[test]
fn endpoint_overrides_need_https_or_a_loopback_host() {
    let env = |v: &str| Env::from_pairs([("AWS_ENDPOINT_URL_STS", v)]);
    let get = |v: &str| endpoint_in(&env(v), "AWS_ENDPOINT_URL_STS", "https://sts.amazonaws.com");
    assert_eq!(
        get("https://sts.example:8443").unwrap().as_str(),
        "https://sts.example:8443/"
    );
    assert_eq!(
        get("http://127.0.0.1:9000").unwrap().as_str(),
        "http://127.0.0.1:9000/"
    );
    assert_eq!(
        get("http://[::1]:9000").unwrap().as_str(),
        "http://[::1]:9000/"
    );
    assert_eq!(
        get("http://localhost:9000").unwrap().as_str(),
        "http://localhost:9000/"
    );
    assert_eq!(
        get("127.0.0.1:9000").unwrap().as_str(),
        "http://127.0.0.1:9000/"
    );
    assert_eq!(get("sts.example").unwrap().as_str(), "https://sts.example/");
    let refused = get("http://sts.example").unwrap_err().to_string();
    assert!(refused.contains("AWS_ENDPOINT_URL_STS"), "{refused}");
    assert!(refused.contains("loopback"), "{refused}");
    assert!(get("ftp://127.0.0.1").is_err());
    assert!(get("https://").is_err());
    let unset = Env::from_pairs([("AWS_ENDPOINT_URL_STS", " ")]);
    assert_eq!(
        endpoint_in(&unset, "AWS_ENDPOINT_URL_STS", "https://sts.amazonaws.com")
            .unwrap()
            .as_str(),
        "https://sts.amazonaws.com/"
    );
}

#[test]
fn plain_http_sources_are_only_loopback_or_the_providers_link_local_addresses() {
    let ok = |s: &str| source_url_allowed(&Url::parse(s).unwrap());
    assert!(ok("http://169.254.170.23/v1/credentials"));
    assert!(ok("http://[fd00:ec2::23]/v1/credentials"));
    assert!(ok("http://169.254.170.2/v2/credentials/x"));
    assert!(ok("http://169.254.169.254/computeMetadata/v1/"));
    assert!(ok("http://metadata.google.internal/computeMetadata/v1/"));
    assert!(ok("http://127.0.0.1:9911/"));
    assert!(ok("https://sts.amazonaws.com/"));
    assert!(!ok("http://169.254.1.1/"));
    assert!(!ok("http://sts.amazonaws.com/"));
    assert!(!ok("http://[fd00:ec2::24]/"));
    assert!(!ok("file:///etc/passwd"));
}

#[test]
fn a_credential_is_used_until_five_minutes_before_it_expires() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let issued = |left: u64| Issued {
        credential: Credential::cloud(Provider::Aws, "AWS", "pw"),
        expires_at: now + Duration::from_secs(left),
    };
    assert!(usable_at(&issued(301), now));
    assert!(!usable_at(&issued(300), now));
    assert!(!usable_at(&issued(0), now));
}

#[test]
fn namespaces_limit_who_borrows_the_identity() {
    let config = CloudConfig {
        providers: vec![Provider::Aws],
        namespaces: vec!["team-a".into()],
        env: Env::from_pairs([("X", "y")]),
    };
    assert!(config.allows_namespace("team-a"));
    assert!(!config.allows_namespace("team-b"));
    assert_eq!(
        config.provider_for("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
        Some(Provider::Aws)
    );
    assert_eq!(config.provider_for("gcr.io"), None, "gcp is not enabled");
    let all = CloudConfig {
        namespaces: vec![],
        ..config
    };
    assert!(all.allows_namespace("anything"));
}

#[test]
fn errors_name_the_step_and_escape_server_text() {
    let e = CloudError::new(
        "STS AssumeRoleWithWebIdentity",
        "AccessDenied: \u{1b}[31mno",
    );
    let shown = e.to_string();
    assert!(shown.starts_with("STS AssumeRoleWithWebIdentity: AccessDenied"));
    assert!(!shown.contains('\u{1b}'));
}

#[test]
fn provider_names_parse_in_any_case_and_unknown_words_do_not() {
    assert_eq!(Provider::parse(" AWS "), Some(Provider::Aws));
    assert_eq!(Provider::parse("gcp"), Some(Provider::Gcp));
    assert_eq!(Provider::parse("Azure"), Some(Provider::Azure));
    assert_eq!(Provider::parse("ibm"), None);
}
