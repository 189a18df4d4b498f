//! ECR credentials from the controller's AWS identity, end to end against in-process fakes of STS, ECR and
//! the Pod Identity agent over HTTPS (testkit `fake::aws`), and the fakes and our SigV4 signer checked
//! against botocore (docs/cloud-registries.md#how-it-is-tested).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use watch_cluster::registry::cloud::{CloudConfig, Env, Provider};
use watch_cluster::registry::{
    Credential, RegistryClient, RegistryConfig, RegistryError, Repository,
};
use watch_cluster_testkit::fake::aws::{ECR_HOST, FakeAws, Step};
use watch_cluster_testkit::pyclients;

const ROLE: &str = "arn:aws:iam::123456789012:role/watch-cluster";

struct Bed {
    fake: FakeAws,
    dir: tempfile::TempDir,
}

impl Bed {
    async fn start() -> Self {
        watch_cluster::install_crypto_provider();
        let fake = FakeAws::start(ROLE, "web-identity-1").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), fake.ca_pem()).unwrap();
        std::fs::write(dir.path().join("token"), "web-identity-1\n").unwrap();
        std::fs::write(dir.path().join("pod-token"), fake.pod_token()).unwrap();
        Self { fake, dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn irsa_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ROLE_ARN", ROLE.to_owned()),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", self.path("token")),
            ("AWS_ENDPOINT_URL_STS", self.fake.endpoint()),
            ("AWS_ENDPOINT_URL_ECR", self.fake.endpoint()),
        ]
    }

    fn client(
        &self,
        env: Vec<(&'static str, String)>,
        namespaces: &[&str],
        insecure: &[String],
    ) -> RegistryClient {
        let config = RegistryConfig {
            ca_file: Some(self.dir.path().join("ca.pem")),
            insecure_registries: insecure.to_vec(),
            cloud: CloudConfig {
                providers: vec![Provider::Aws],
                namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
                env: Env::from_pairs(env),
            },
            resolve: vec![(ECR_HOST.to_owned(), self.fake.addr())],
            sharing: false,
            max_attempts: 1,
            ..RegistryConfig::default()
        };
        RegistryClient::new(
            config,
            &mut prometheus_client::registry::Registry::default(),
        )
        .unwrap()
    }

    fn repo(&self) -> Repository {
        Repository::new(self.fake.registry(), "team/app")
    }
}

async fn credential(
    client: &RegistryClient,
    bed: &Bed,
    namespace: &str,
) -> Result<Credential, RegistryError> {
    client
        .cloud_credential(namespace, &bed.fake.registry())
        .await
        .expect("cloud identity applies to an ECR host")
}

#[tokio::test]
async fn irsa_credentials_list_tags_of_the_ecr_registry() {
    let bed = Bed::start().await;
    let client = bed.client(bed.irsa_env(), &[], &[]);
    let credential = credential(&client, &bed, "team-a").await.unwrap();
    assert_eq!(credential.username, "AWS");
    assert_eq!(credential.cloud_provider(), Some(Provider::Aws));
    let tags = client
        .list_tags(&bed.repo(), Some(&credential))
        .await
        .unwrap();
    assert_eq!(&*tags, ["1.0.0", "1.1.0"]);

    let sts = bed.fake.requests_to("sts");
    assert_eq!(sts.len(), 1);
    assert_eq!(sts[0].form("RoleArn").as_deref(), Some(ROLE));
    assert_eq!(
        sts[0].form("WebIdentityToken").as_deref(),
        Some("web-identity-1")
    );
    assert_eq!(
        sts[0].form("RoleSessionName").as_deref(),
        Some("watch-cluster")
    );
    let ecr = bed.fake.requests_to("ecr");
    assert_eq!(
        ecr.len(),
        1,
        "the fake verified the SigV4 signature and session token"
    );
    assert_eq!(ecr[0].body.as_ref(), b"{}");
}

#[tokio::test]
async fn eks_pod_identity_credentials_work_too() {
    let bed = Bed::start().await;
    let env = vec![
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("{}/v1/credentials", bed.fake.endpoint()),
        ),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            bed.path("pod-token"),
        ),
        ("AWS_ENDPOINT_URL_ECR", bed.fake.endpoint()),
    ];
    let client = bed.client(env, &[], &[]);
    let credential = credential(&client, &bed, "team-a").await.unwrap();
    assert_eq!(credential.password, bed.fake.password());
    assert_eq!(bed.fake.requests_to("pod-identity").len(), 1);
    assert!(bed.fake.requests_to("sts").is_empty());
}

#[tokio::test]
async fn a_credential_is_cached_per_identity_and_concurrent_fetches_are_one() {
    let bed = Bed::start().await;
    let client = bed.client(bed.irsa_env(), &[], &[]);
    let fetches = (0..5).map(|_| credential(&client, &bed, "team-a"));
    for result in futures::future::join_all(fetches).await {
        result.unwrap();
    }
    credential(&client, &bed, "team-b").await.unwrap();
    assert_eq!(bed.fake.requests_to("sts").len(), 1);
    assert_eq!(bed.fake.requests_to("ecr").len(), 1);
}

#[tokio::test]
async fn every_fetch_is_counted_by_provider_and_outcome() {
    let bed = Bed::start().await;
    let config = RegistryConfig {
        ca_file: Some(bed.dir.path().join("ca.pem")),
        cloud: CloudConfig {
            providers: vec![Provider::Aws],
            namespaces: vec![],
            env: Env::from_pairs(bed.irsa_env()),
        },
        ..RegistryConfig::default()
    };
    let mut metrics = prometheus_client::registry::Registry::default();
    let client = RegistryClient::new(config, &mut metrics).unwrap();
    bed.fake.fail(Step::Ecr, 403, "AccessDeniedException", "no");
    credential(&client, &bed, "a").await.unwrap_err();
    bed.fake.heal();
    credential(&client, &bed, "a").await.unwrap();
    credential(&client, &bed, "a").await.unwrap();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &metrics).unwrap();
    assert!(
        text.contains(r#"cloud_credential_fetches_total{provider="aws",outcome="issued"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"cloud_credential_fetches_total{provider="aws",outcome="ECR GetAuthorizationToken"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_credential_near_expiry_is_renewed_with_the_rotated_token_file() {
    let bed = Bed::start().await;
    // 4 minutes left at issue: inside the 5-minute margin, so every use fetches again.
    bed.fake.set_password_lifetime(Duration::from_secs(240));
    let client = bed.client(bed.irsa_env(), &[], &[]);
    credential(&client, &bed, "team-a").await.unwrap();
    // kubelet rotates the projected token; STS accepts only the new one from now on.
    std::fs::write(bed.path("token"), "web-identity-2").unwrap();
    bed.fake.rotate_web_identity_token("web-identity-2");
    credential(&client, &bed, "team-a").await.unwrap();
    let tokens: Vec<String> = bed
        .fake
        .requests_to("sts")
        .iter()
        .filter_map(|r| r.form("WebIdentityToken"))
        .collect();
    assert_eq!(tokens, ["web-identity-1", "web-identity-2"]);
    // With a long-lived password the next use is served from the cache.
    bed.fake.set_password_lifetime(Duration::from_secs(3600));
    credential(&client, &bed, "team-a").await.unwrap();
    credential(&client, &bed, "team-a").await.unwrap();
    assert_eq!(bed.fake.requests_to("sts").len(), 3);
}

#[tokio::test]
async fn a_refusal_at_each_step_names_the_step() {
    let bed = Bed::start().await;
    let client = bed.client(bed.irsa_env(), &[], &[]);
    bed.fake.fail(
        Step::Sts,
        403,
        "AccessDenied",
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    );
    let err = credential(&client, &bed, "team-a").await.unwrap_err();
    assert_eq!(err.reason(), "CloudIdentity");
    assert!(
        err.to_string()
            .contains("STS AssumeRoleWithWebIdentity: AccessDenied: Not authorized"),
        "{err}"
    );
    bed.fake.heal();
    bed.fake.fail(
        Step::Ecr,
        403,
        "AccessDeniedException",
        "not authorized to perform: ecr:GetAuthorizationToken",
    );
    let err = credential(&client, &bed, "team-a").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("ECR GetAuthorizationToken: AccessDeniedException: not authorized"),
        "{err}"
    );
    assert!(
        !err.to_string().contains("fake/secret"),
        "no secret in errors: {err}"
    );

    let pod = bed.client(
        vec![
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                format!("{}/v1/credentials", bed.fake.endpoint()),
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                bed.path("pod-token"),
            ),
            ("AWS_ENDPOINT_URL_ECR", bed.fake.endpoint()),
        ],
        &[],
        &[],
    );
    bed.fake.fail(
        Step::PodIdentity,
        403,
        "AccessDeniedException",
        "no association",
    );
    let err = credential(&pod, &bed, "team-a").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("EKS Pod Identity: AccessDeniedException: no association"),
        "{err}"
    );

    let missing = bed.client(
        vec![("AWS_ENDPOINT_URL_ECR", bed.fake.endpoint())],
        &[],
        &[],
    );
    let err = credential(&missing, &bed, "team-a").await.unwrap_err();
    assert!(
        err.to_string().contains("eks.amazonaws.com/role-arn"),
        "{err}"
    );
}

#[tokio::test]
async fn only_allowed_namespaces_borrow_the_identity() {
    let bed = Bed::start().await;
    let client = bed.client(bed.irsa_env(), &["team-a"], &[]);
    assert!(
        client
            .cloud_credential("team-b", &bed.fake.registry())
            .await
            .is_none()
    );
    assert!(client.cloud_credential("team-a", "ghcr.io").await.is_none());
    assert!(
        client
            .cloud_credential("team-a", &bed.fake.registry())
            .await
            .is_some()
    );
    assert!(bed.fake.requests_to("sts").len() == 1);
}

#[tokio::test]
async fn a_cloud_credential_is_never_sent_over_http_or_to_another_realm_host() {
    let bed = Bed::start().await;
    let insecure = bed.client(bed.irsa_env(), &[], &[bed.fake.registry()]);
    let credential = credential(&insecure, &bed, "team-a").await.unwrap();
    let err = insecure
        .list_tags(&bed.repo(), Some(&credential))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "CloudCredentialRefused", "{err}");
    assert!(err.to_string().contains("http://"), "{err}");
    assert!(
        bed.fake.requests_to("registry").is_empty(),
        "nothing was sent"
    );

    let client = bed.client(bed.irsa_env(), &[], &[]);
    bed.fake
        .set_bearer_realm(&format!("{}/token", bed.fake.endpoint()));
    let err = client
        .list_tags(&bed.repo(), Some(&credential))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "CloudCredentialRefused", "{err}");
    assert!(
        err.to_string().contains("token realm https://localhost"),
        "{err}"
    );
    let to_realm = bed
        .fake
        .requests()
        .iter()
        .filter(|r| r.uri.starts_with("/token"))
        .count();
    assert_eq!(to_realm, 0);
}

/// The fake answers botocore's own STS and ECR calls (endpoint overrides, AWS_CA_BUNDLE), and what botocore
/// parses out of them is what our client sees.
#[tokio::test]
async fn botocore_gets_an_ecr_token_from_the_fakes() {
    let bed = Bed::start().await;
    let fake = &bed.fake;
    let env = vec![
        ("AWS_ENDPOINT_URL_STS", fake.endpoint()),
        ("AWS_ENDPOINT_URL_ECR", fake.endpoint()),
        ("AWS_CA_BUNDLE", bed.path("ca.pem")),
    ];
    let input = json!({"role_arn": ROLE, "token": "web-identity-1", "region": "us-east-1"});
    let out = tokio::task::spawn_blocking(move || {
        pyclients::run_script("aws_ecr_token.py", &input, &env)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out["user"], "AWS");
    assert_eq!(out["password"], fake.password());
    assert!(
        out["access_key_id"]
            .as_str()
            .unwrap()
            .starts_with("ASIAFAKE")
    );
    assert!(out["expires_in"].as_f64().unwrap() > 11.0 * 3600.0);
    assert_eq!(
        fake.requests_to("ecr").len(),
        1,
        "botocore's signature verified"
    );
}

/// Our signer and botocore's agree on requests of every shape we could think of.
#[test]
fn our_sigv4_signatures_equal_botocores() {
    use watch_cluster::registry::cloud::sigv4::{Keys, Request, Scope, sign};
    let methods = ["GET", "POST", "PUT"];
    let paths = [
        "/",
        "/a/b",
        "/a b/c%2Fd",
        "/~user/x-y_z.",
        "/é/ü",
        "/a/./b/../c",
    ];
    let params: [&[(&str, &str)]; 4] = [
        &[],
        &[("Param2", "value2"), ("Param1", "value1")],
        &[("a b", "c&d=e"), ("z", ""), ("~", "*'()")],
        &[
            ("Action", "GetAuthorizationToken"),
            ("Version", "2015-09-21"),
        ],
    ];
    let headers: [&[(&str, &str)]; 3] = [
        &[],
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            (
                "X-Amz-Target",
                "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
            ),
        ],
        &[
            ("My-Header1", "  value1   with  spaces "),
            ("x-custom", "b"),
        ],
    ];
    let bodies = ["", "{}", "Param1=value1&x=%20"];
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    let mut n = 0usize;
    for method in methods {
        for path in paths {
            for (pi, query) in params.iter().enumerate() {
                for (hi, head) in headers.iter().enumerate() {
                    n += 1;
                    let body = bodies[n % bodies.len()];
                    let token = n.is_multiple_of(2).then(|| format!("session+/token{n}="));
                    let mut url =
                        url::Url::parse("https://api.ecr.eu-west-1.amazonaws.com").unwrap();
                    url.set_path(path);
                    for (k, v) in query.iter() {
                        url.query_pairs_mut().append_pair(k, v);
                    }
                    let keys = Keys {
                        access_key_id: format!("AKID{pi}{hi}"),
                        secret_access_key: format!("secret/+{n}"),
                        session_token: token.clone(),
                    };
                    let at = chrono::DateTime::from_timestamp(1_700_000_000 + n as i64 * 3_600, 0)
                        .unwrap();
                    let scope = Scope {
                        region: "eu-west-1",
                        service: "ecr",
                    };
                    let signed = sign(
                        &Request {
                            method,
                            url: &url,
                            headers: head,
                            body: body.as_bytes(),
                        },
                        &keys,
                        scope,
                        at,
                    );
                    ours.push(signed.last().unwrap().1.clone());
                    cases.push(json!({
                        "method": method,
                        "url": format!("https://api.ecr.eu-west-1.amazonaws.com{}", url.path()),
                        "params": query,
                        "headers": head,
                        "body": body,
                        "access_key": keys.access_key_id,
                        "secret_key": keys.secret_access_key,
                        "token": token,
                        "region": "eu-west-1",
                        "service": "ecr",
                        "time": at.format("%Y%m%dT%H%M%SZ").to_string(),
                    }));
                }
            }
        }
    }
    let theirs = pyclients::run_script("aws_sign.py", &json!(cases), &[]).unwrap();
    let theirs = theirs.as_array().unwrap();
    assert_eq!(theirs.len(), ours.len());
    let mut differ = Vec::new();
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        if Some(a.as_str()) != b["authorization"].as_str() {
            differ.push(format!(
                "case {i} {}: ours {a}\n botocore {}",
                cases[i], b["authorization"]
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} differ:\n{}",
        differ.len(),
        ours.len(),
        differ.join("\n")
    );
    eprintln!(
        "{} requests signed identically by ours and botocore",
        ours.len()
    );
}

/// A writer collecting what the subscriber formats, to read the log back.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_key_or_password_reaches_the_log() {
    let bed = Bed::start().await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let client = bed.client(bed.irsa_env(), &[], &[]);
    let credential = credential(&client, &bed, "team-a").await.unwrap();
    client
        .list_tags(&bed.repo(), Some(&credential))
        .await
        .unwrap();
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("issued a registry credential from cloud identity"),
        "{log}"
    );
    assert!(log.contains(ROLE), "the identity is named: {log}");
    for secret in [
        bed.fake.password().as_str(),
        "web-identity-1",
        "fake/secret+1",
        "FwoGZXIvYXdzEFake",
    ] {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the log:\n{log}"
        );
    }
}
