//! Cloud registry identity for GCP and Azure (docs/cloud-registries.md) against in-process fakes of the GKE
//! metadata server, Entra ID and ACR; each fake is also exercised by the provider's own Python client
//! (tests/pyclients/, run with testbed/pyclients/venv), so the fakes answer what the real services answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::registry::Registry;
use watch_cluster::registry::cloud::azure::{self, WorkloadIdentity};
use watch_cluster::registry::cloud::gcp::{self, MetadataServer};
use watch_cluster::registry::cloud::{CloudConfig, CloudError, Env, Issued, Provider};
use watch_cluster::registry::{
    Credential, RegistryClient, RegistryConfig, RegistryError, Repository,
};
use watch_cluster_testkit::cloud_gcp_azure::{FEDERATED_AUDIENCE, federated_token, jwt_claims};
use watch_cluster_testkit::{FakeAcr, FakeEntraId, FakeGkeMetadata, TestCa, pyclients};

const EMAIL: &str = "puller@project.iam.gserviceaccount.com";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const SUBJECT: &str = "system:serviceaccount:watch-cluster:watch-cluster";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/pyclients")
        .join(name)
}

fn http(ca: Option<&TestCa>) -> reqwest::Client {
    watch_cluster::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy();
    if let Some(ca) = ca {
        builder = builder
            .tls_certs_only([reqwest::Certificate::from_pem(ca.ca_pem().as_bytes()).unwrap()]);
    }
    builder.build().unwrap()
}

/// The error of a fetch that must fail (`Issued` has no `Debug`: it holds a credential).
fn refused<T>(result: Result<T, CloudError>) -> CloudError {
    match result {
        Ok(_) => panic!("the fetch succeeded where it must be refused"),
        Err(e) => e,
    }
}

fn assert_near(actual: SystemTime, expected: SystemTime) {
    let gap = actual
        .duration_since(expected)
        .or_else(|_| expected.duration_since(actual))
        .unwrap();
    assert!(
        gap < Duration::from_secs(5),
        "{actual:?} is not near {expected:?}"
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

impl Captured {
    /// Captures every event of this thread (the tests' runtime is single-threaded) until the guard drops.
    fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Self::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    fn assert_free_of(&self, secrets: &[&str]) {
        let log = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        assert!(
            log.contains("issued a registry credential from cloud identity"),
            "{log}"
        );
        for secret in secrets {
            assert!(
                !log.contains(secret),
                "{secret} leaked into the log:\n{log}"
            );
        }
    }
}

// ---- GKE metadata server ----

async fn metadata() -> (FakeGkeMetadata, MetadataServer) {
    let fake = FakeGkeMetadata::start(EMAIL).await.unwrap();
    let server = MetadataServer::at(Some(&fake.host())).unwrap();
    (fake, server)
}

#[tokio::test]
async fn the_metadata_token_is_the_password_of_oauth2accesstoken_until_it_expires() {
    let (fake, server) = metadata().await;
    let issued = gcp::issue_from(&http(None), &server).await.unwrap();

    assert_eq!(
        issued.credential,
        Credential::new("oauth2accesstoken", "ya29.testkit-1")
    );
    assert_near(
        issued.expires_at,
        SystemTime::now() + Duration::from_secs(3599),
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, http::Method::GET);
    assert_eq!(
        requests[0].path,
        "/computeMetadata/v1/instance/service-accounts/default/token"
    );
    assert_eq!(requests[0].header("metadata-flavor"), Some("Google"));
}

#[tokio::test]
async fn the_metadata_server_is_found_through_gce_metadata_host() {
    let (fake, _) = metadata().await;
    let env = Env::from_pairs([("GCE_METADATA_HOST", fake.host())]);
    let issued = gcp::issue_with(&http(None), &env).await.unwrap();
    assert_eq!(issued.credential.password, "ya29.testkit-1");

    let env = Env::from_pairs([("GCE_METADATA_HOST", "metadata.evil.example")]);
    let err = refused(gcp::issue_with(&http(None), &env).await);
    assert!(
        err.message
            .starts_with("GCE_METADATA_HOST=`metadata.evil.example`"),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 1);
}

/// The controller's path for GAR and GCR: the dispatch chooses GCP by the host pattern, caches one token for
/// both, and never logs it.
#[tokio::test]
async fn the_controllers_cloud_dispatch_issues_a_gar_credential_without_logging_it() {
    let (fake, _) = metadata().await;
    let (log, _guard) = Captured::start();
    watch_cluster::install_crypto_provider();
    let config = RegistryConfig {
        cloud: CloudConfig {
            providers: vec![Provider::Gcp],
            namespaces: Vec::new(),
            env: Env::from_pairs([("GCE_METADATA_HOST", fake.host())]),
        },
        ..RegistryConfig::default()
    };
    let client = RegistryClient::new(config, &mut Registry::default()).unwrap();
    let credential = client
        .cloud_credential("team-a", "europe-west1-docker.pkg.dev")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credential.username, "oauth2accesstoken");
    assert_eq!(credential.password, "ya29.testkit-1");
    assert_eq!(credential.cloud_provider(), Some(Provider::Gcp));
    let gcr = client
        .cloud_credential("team-a", "eu.gcr.io")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        gcr, credential,
        "one identity, one cached token for GAR and GCR"
    );
    assert_eq!(fake.issued_tokens().len(), 1);
    assert!(
        client
            .cloud_credential("team-a", "gcr.io.evil.example")
            .await
            .is_none()
    );
    log.assert_free_of(&["ya29.testkit-1"]);
}

#[tokio::test]
async fn each_issue_fetches_a_new_token_with_its_own_expiry() {
    let (fake, server) = metadata().await;
    let client = http(None);
    let first = gcp::issue_from(&client, &server).await.unwrap();
    fake.set_expires_in(120);
    let second = gcp::issue_from(&client, &server).await.unwrap();

    assert_eq!(fake.issued_tokens(), ["ya29.testkit-1", "ya29.testkit-2"]);
    assert_eq!(second.credential.password, "ya29.testkit-2");
    assert_near(
        second.expires_at,
        SystemTime::now() + Duration::from_secs(120),
    );
    assert!(second.expires_at < first.expires_at);
}

#[tokio::test]
async fn a_refusal_of_the_metadata_server_names_the_step_and_its_status() {
    let (fake, server) = metadata().await;
    fake.refuse_next_token(
        403,
        "Workload Identity: the KSA is not bound to a Google service account.\n",
    );
    let err = refused(gcp::issue_from(&http(None), &server).await);
    assert_eq!(
        err.to_string(),
        "GKE metadata server token: 403 Forbidden: Workload Identity: the KSA is not bound to a Google service account."
    );
}

#[tokio::test]
async fn an_answer_without_metadata_flavor_google_is_not_trusted() {
    let (fake, server) = metadata().await;
    fake.omit_flavor_header();
    let err = refused(gcp::issue_from(&http(None), &server).await);
    assert_eq!(err.step, "GKE metadata server token");
    assert!(
        err.message.contains("lacks `Metadata-Flavor: Google`"),
        "{err}"
    );
    assert!(
        err.message.contains("is not a GCE metadata server"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_metadata_server_is_named_with_the_fix() {
    let (fake, server) = metadata().await;
    drop(fake);
    let err = refused(gcp::issue_from(&http(None), &server).await);
    assert!(
        err.message
            .starts_with("cannot reach the metadata server at http://127.0.0.1:"),
        "{err}"
    );
    assert!(err.message.contains("Workload Identity"), "{err}");
}

#[tokio::test]
async fn the_fake_metadata_server_refuses_requests_without_metadata_flavor_as_gke_does() {
    let (fake, server) = metadata().await;
    let url = server
        .base()
        .join("computeMetadata/v1/instance/service-accounts/default/token")
        .unwrap();
    let answer = http(None).get(url.clone()).send().await.unwrap();
    assert_eq!(answer.status(), 403);
    assert_eq!(answer.headers()["metadata-flavor"], "Google");
    let forwarded = http(None)
        .get(url)
        .header("Metadata-Flavor", "Google")
        .header("X-Forwarded-For", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), 403);
    assert!(fake.issued_tokens().is_empty());
}

#[tokio::test]
async fn google_auth_compute_engine_credentials_refresh_against_the_fake_metadata_server() {
    let (fake, _) = metadata().await;
    let host = fake.host();
    let got = pyclients::run_json(
        &script("gke_metadata.py"),
        &[],
        &[("GCE_METADATA_HOST", &host), ("GCE_METADATA_IP", &host)],
    )
    .await
    .unwrap();

    assert_eq!(got["ping"], true, "{got}");
    assert_eq!(got["token"], "ya29.testkit-1");
    assert_eq!(got["email"], EMAIL);
    assert!(
        got["expiry"].as_str().is_some_and(|e| !e.is_empty()),
        "{got}"
    );
    let token_requests: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/token"))
        .collect();
    assert_eq!(token_requests.len(), 1);
    assert_eq!(token_requests[0].header("metadata-flavor"), Some("Google"));
}

// ---- Entra ID and ACR ----

struct Azure {
    ca: TestCa,
    entra: FakeEntraId,
    acr: FakeAcr,
    dir: tempfile::TempDir,
    identity: WorkloadIdentity,
    http: reqwest::Client,
}

impl Azure {
    async fn start() -> Self {
        let ca = TestCa::new().unwrap();
        let assertion = federated_token(FEDERATED_AUDIENCE, SUBJECT, 1);
        let entra = FakeEntraId::start(&ca, TENANT, CLIENT_ID, &assertion)
            .await
            .unwrap();
        let acr = FakeAcr::start(&ca, TENANT).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("azure-identity-token");
        std::fs::write(&token_file, &assertion).unwrap();
        let identity = WorkloadIdentity {
            client_id: CLIENT_ID.to_owned(),
            tenant_id: TENANT.to_owned(),
            token_file,
            authority: Some(url::Url::parse(&entra.authority()).unwrap()),
        };
        let http = http(Some(&ca));
        Self {
            ca,
            entra,
            acr,
            dir,
            identity,
            http,
        }
    }

    fn write_token(&self, token: &str) {
        std::fs::write(&self.identity.token_file, token).unwrap();
    }

    async fn issue(&self) -> Result<Issued, CloudError> {
        azure::issue_from(&self.http, &self.identity, &self.acr.host()).await
    }

    fn ca_file(&self) -> PathBuf {
        let path = self.dir.path().join("ca.pem");
        std::fs::write(&path, self.ca.ca_pem()).unwrap();
        path
    }
}

fn exp_of(token: &str) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(jwt_claims(token).unwrap()["exp"].as_u64().unwrap())
}

#[tokio::test]
async fn workload_identity_is_exchanged_for_an_acr_refresh_token_that_expires_at_its_exp() {
    let azure = Azure::start().await;
    let issued = azure.issue().await.unwrap();

    let refresh = azure.acr.refresh_tokens();
    assert_eq!(refresh.len(), 1);
    assert_eq!(
        issued.credential,
        Credential::new("00000000-0000-0000-0000-000000000000", refresh[0].as_str())
    );
    assert_eq!(issued.expires_at, exp_of(&refresh[0]));
    assert_near(
        issued.expires_at,
        SystemTime::now() + Duration::from_secs(3 * 3600),
    );

    let entra = azure.entra.requests();
    assert_eq!(entra.len(), 1);
    assert_eq!(entra[0].path, format!("/{TENANT}/oauth2/v2.0/token"));
    let assertion = std::fs::read_to_string(&azure.identity.token_file).unwrap();
    let form: Vec<(&str, &str)> = entra[0]
        .form
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        form,
        [
            ("client_id", CLIENT_ID),
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            ),
            ("client_assertion", assertion.as_str()),
            ("scope", "https://containerregistry.azure.net/.default"),
        ]
    );
    let exchange = azure.acr.requests();
    assert_eq!(exchange.len(), 1);
    assert_eq!(exchange[0].path, "/oauth2/exchange");
    let aad = azure.entra.issued_tokens();
    let host = azure.acr.host();
    let form: Vec<(&str, &str)> = exchange[0]
        .form
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        form,
        [
            ("grant_type", "access_token"),
            ("service", host.as_str()),
            ("tenant", TENANT),
            ("access_token", aad[0].as_str()),
        ]
    );
}

#[tokio::test]
async fn the_acr_credential_lists_tags_through_the_registry_token_flow() {
    let azure = Azure::start().await;
    azure.acr.set_tags("team/app", &["1.0", "1.1"]);
    let issued = azure.issue().await.unwrap();
    watch_cluster::install_crypto_provider();
    let config = RegistryConfig {
        ca_file: Some(azure.ca_file()),
        ..RegistryConfig::default()
    };
    let client = RegistryClient::new(config, &mut Registry::default()).unwrap();
    let repo = Repository::new(azure.acr.host(), "team/app");

    let tags = client
        .list_tags(&repo, Some(&issued.credential))
        .await
        .unwrap();
    assert_eq!(tags.as_ref(), ["1.0", "1.1"]);
    let token_request = azure
        .acr
        .requests()
        .into_iter()
        .find(|r| r.path == "/oauth2/token")
        .expect("the registry token flow asked ACR's token service");
    assert_eq!(
        token_request.query_param("service"),
        Some(azure.acr.host().as_str())
    );
    assert_eq!(
        token_request.query_param("scope"),
        Some("repository:team/app:pull")
    );
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "00000000-0000-0000-0000-000000000000:{}",
        issued.credential.password
    ));
    assert_eq!(
        token_request.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );

    let anonymous = client
        .list_tags(&Repository::new(azure.acr.host(), "team/other"), None)
        .await;
    assert!(
        matches!(anonymous, Err(RegistryError::Unauthorized { .. })),
        "{anonymous:?}"
    );
}

/// The controller's path: the cloud dispatch of `RegistryClient` chooses Azure by the host pattern, issues the
/// credential from the environment, caches it, and the transport lets it go only to the ACR host over HTTPS.
#[tokio::test]
async fn the_controllers_cloud_dispatch_lists_acr_tags_with_workload_identity() {
    const ACR: &str = "watchcluster.azurecr.io";
    let ca = TestCa::with_names(&[ACR]).unwrap();
    let assertion = federated_token(FEDERATED_AUDIENCE, SUBJECT, 1);
    let entra = FakeEntraId::start(&ca, TENANT, CLIENT_ID, &assertion)
        .await
        .unwrap();
    let acr = FakeAcr::start_named(&ca, TENANT, ACR).await.unwrap();
    acr.set_tags("team/app", &["2.0", "2.1"]);
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, token_file) = (dir.path().join("ca.pem"), dir.path().join("token"));
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    std::fs::write(&token_file, &assertion).unwrap();
    watch_cluster::install_crypto_provider();
    let config = RegistryConfig {
        ca_file: Some(ca_file),
        cloud: CloudConfig {
            providers: vec![Provider::Azure],
            namespaces: vec!["team-a".to_owned()],
            env: Env::from_pairs([
                ("AZURE_CLIENT_ID", CLIENT_ID.to_owned()),
                ("AZURE_TENANT_ID", TENANT.to_owned()),
                (
                    "AZURE_FEDERATED_TOKEN_FILE",
                    token_file.display().to_string(),
                ),
                ("AZURE_AUTHORITY_HOST", entra.authority()),
            ]),
        },
        resolve: vec![(ACR.to_owned(), acr.addr())],
        ..RegistryConfig::default()
    };
    let client = RegistryClient::new(config, &mut Registry::default()).unwrap();
    let (log, _guard) = Captured::start();

    let credential = client
        .cloud_credential("team-a", ACR)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credential.username, "00000000-0000-0000-0000-000000000000");
    assert_eq!(credential.cloud_provider(), Some(Provider::Azure));
    let tags = client
        .list_tags(&Repository::new(ACR, "team/app"), Some(&credential))
        .await
        .unwrap();
    assert_eq!(tags.as_ref(), ["2.0", "2.1"]);
    let again = client
        .cloud_credential("team-a", ACR)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, credential);
    assert_eq!(entra.issued_tokens().len(), 1, "the credential is cached");
    assert_eq!(acr.refresh_tokens().len(), 1);
    let token = acr
        .requests()
        .into_iter()
        .find(|r| r.path == "/oauth2/token")
        .unwrap();
    assert_eq!(token.query_param("service"), Some(ACR));
    assert!(
        client.cloud_credential("team-b", ACR).await.is_none(),
        "team-b may not borrow the identity"
    );
    let mut secrets = vec![assertion.clone(), credential.password.clone()];
    secrets.extend(entra.issued_tokens());
    secrets.extend((1..=3).map(|n| format!("acr-access-{n}")));
    log.assert_free_of(&secrets.iter().map(String::as_str).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_rotated_federated_token_is_read_again_on_the_next_fetch() {
    let azure = Azure::start().await;
    azure.issue().await.unwrap();
    let rotated = federated_token(FEDERATED_AUDIENCE, SUBJECT, 2);
    azure.write_token(&format!("{rotated}\n"));
    azure.entra.expect_assertion(&rotated);

    let issued = azure.issue().await.unwrap();
    let sent: Vec<String> = azure
        .entra
        .requests()
        .iter()
        .map(|r| r.form_field("client_assertion").unwrap().to_owned())
        .collect();
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[0], rotated);
    assert_eq!(sent[1], rotated);
    assert_eq!(issued.credential.password, azure.acr.refresh_tokens()[1]);
}

#[tokio::test]
async fn the_identity_is_read_from_the_variables_the_webhook_injects() {
    let azure = Azure::start().await;
    let token_file = azure.identity.token_file.to_str().unwrap().to_owned();
    let env = Env::from_pairs([
        ("AZURE_CLIENT_ID", CLIENT_ID.to_owned()),
        ("AZURE_TENANT_ID", TENANT.to_owned()),
        ("AZURE_FEDERATED_TOKEN_FILE", token_file),
        ("AZURE_AUTHORITY_HOST", azure.entra.authority()),
    ]);
    let issued = azure::issue_with(&azure.http, &azure.acr.host(), &env)
        .await
        .unwrap();
    assert_eq!(issued.credential.password, azure.acr.refresh_tokens()[0]);

    let plain = Env::from_pairs([
        ("AZURE_CLIENT_ID", CLIENT_ID),
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent"),
        ("AZURE_AUTHORITY_HOST", "http://login.example/"),
    ]);
    let err = refused(azure::issue_with(&azure.http, &azure.acr.host(), &plain).await);
    assert!(err.message.contains("AZURE_AUTHORITY_HOST"), "{err}");
}

#[tokio::test]
async fn the_expiry_follows_the_refresh_token_lifetime() {
    let azure = Azure::start().await;
    azure.acr.set_refresh_lifetime(600);
    let issued = azure.issue().await.unwrap();
    assert_near(
        issued.expires_at,
        SystemTime::now() + Duration::from_secs(600),
    );
}

#[tokio::test]
async fn an_opaque_refresh_token_expires_with_the_entra_id_token() {
    let azure = Azure::start().await;
    azure.acr.issue_opaque_refresh_tokens();
    azure.entra.set_expires_in(900);
    let issued = azure.issue().await.unwrap();
    assert!(issued.credential.password.starts_with("opaque-refresh-1."));
    assert_near(
        issued.expires_at,
        SystemTime::now() + Duration::from_secs(900),
    );
}

#[tokio::test]
async fn a_federated_token_for_another_audience_is_refused_by_entra_id() {
    let azure = Azure::start().await;
    azure.write_token(&federated_token("api://SomethingElse", SUBJECT, 1));
    let err = refused(azure.issue().await);
    assert_eq!(
        err.to_string(),
        "Entra ID token: 400 Bad Request: AADSTS700212: No matching federated identity record found for presented assertion audience 'api://SomethingElse'."
    );
    assert!(azure.acr.requests().is_empty());
}

#[tokio::test]
async fn a_client_assertion_other_than_the_expected_token_is_refused() {
    let azure = Azure::start().await;
    azure.write_token(&federated_token(
        FEDERATED_AUDIENCE,
        "system:serviceaccount:other:thief",
        1,
    ));
    let err = refused(azure.issue().await);
    assert!(err.to_string().starts_with("Entra ID token: 400 Bad Request: AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:other:thief'."), "{err}");

    azure.write_token(&federated_token(FEDERATED_AUDIENCE, SUBJECT, 99));
    let err = refused(azure.issue().await);
    assert_eq!(
        err.to_string(),
        "Entra ID token: 401 Unauthorized: AADSTS50013: Assertion failed signature validation."
    );
}

#[tokio::test]
async fn an_unknown_client_id_is_refused_with_its_aadsts_code() {
    let mut azure = Azure::start().await;
    azure.identity.client_id = "99999999-0000-0000-0000-000000000000".to_owned();
    let err = refused(azure.issue().await);
    assert_eq!(err.step, "Entra ID token");
    assert!(err.message.starts_with("400 Bad Request: AADSTS700016: Application with identifier '99999999-0000-0000-0000-000000000000' was not found"), "{err}");
}

#[tokio::test]
async fn refusals_of_entra_id_and_of_the_acr_exchange_name_their_steps() {
    let azure = Azure::start().await;
    azure.entra.refuse_next(
        403,
        "access_denied",
        50105,
        "The signed in user is not assigned to a role for the application.",
    );
    let err = refused(azure.issue().await);
    assert_eq!(
        err.to_string(),
        "Entra ID token: 403 Forbidden: AADSTS50105: The signed in user is not assigned to a role for the application."
    );

    azure.acr.refuse_next(
        "/oauth2/exchange",
        401,
        "UNAUTHORIZED",
        "authentication required",
    );
    let err = refused(azure.issue().await);
    assert_eq!(
        err.to_string(),
        "ACR /oauth2/exchange: 401 Unauthorized: UNAUTHORIZED authentication required; grant the identity the AcrPull role on the registry"
    );
    azure.acr.refuse_next(
        "/oauth2/exchange",
        403,
        "DENIED",
        "requested access to the resource is denied",
    );
    let err = refused(azure.issue().await);
    assert!(
        err.to_string()
            .starts_with("ACR /oauth2/exchange: 403 Forbidden: DENIED"),
        "{err}"
    );
    assert!(azure.issue().await.is_ok());
}

#[tokio::test]
async fn a_refused_acr_token_request_is_an_unauthorized_registry_error() {
    let azure = Azure::start().await;
    azure.acr.set_tags("team/app", &["1.0"]);
    let issued = azure.issue().await.unwrap();
    azure.acr.refuse_next(
        "/oauth2/token",
        401,
        "UNAUTHORIZED",
        "authentication required",
    );
    watch_cluster::install_crypto_provider();
    let config = RegistryConfig {
        ca_file: Some(azure.ca_file()),
        ..RegistryConfig::default()
    };
    let client = RegistryClient::new(config, &mut Registry::default()).unwrap();
    let err = client
        .list_tags(
            &Repository::new(azure.acr.host(), "team/app"),
            Some(&issued.credential),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Unauthorized { ref detail, .. } if detail.contains("token server")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_missing_federated_token_file_is_named() {
    let mut azure = Azure::start().await;
    azure.identity.token_file = azure.dir.path().join("absent");
    let err = refused(azure.issue().await);
    assert_eq!(err.step, "Azure federated token file");
    assert!(
        err.message.starts_with(&format!(
            "AZURE_FEDERATED_TOKEN_FILE `{}` cannot be read",
            azure.identity.token_file.display()
        )),
        "{err}"
    );
    assert!(azure.entra.requests().is_empty());
}

#[tokio::test]
async fn acr_token_service_also_takes_its_documented_refresh_token_grant() {
    let azure = Azure::start().await;
    let issued = azure.issue().await.unwrap();
    let host = azure.acr.host();
    let answer = azure
        .http
        .post(format!("https://{host}/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("grant_type", "refresh_token"),
                    ("service", host.as_str()),
                    ("scope", "repository:team/app:pull"),
                    ("refresh_token", issued.credential.password.as_str()),
                ])
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert!(
        body["access_token"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
}

async fn azure_identity(azure: &Azure, client_id: &str) -> serde_json::Value {
    let ca_file = azure.ca_file();
    let token_file = azure.identity.token_file.to_str().unwrap().to_owned();
    let authority = azure.entra.authority();
    pyclients::run_json(
        &script("azure_workload_identity.py"),
        &[TENANT, client_id, &token_file],
        &[
            ("AZURE_AUTHORITY_HOST", authority.as_str()),
            ("REQUESTS_CA_BUNDLE", ca_file.to_str().unwrap()),
        ],
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn azure_identity_workload_identity_credential_gets_a_token_from_the_fake_entra_id() {
    let azure = Azure::start().await;
    let got = azure_identity(&azure, CLIENT_ID).await;

    assert_eq!(
        got["token"].as_str(),
        azure.entra.issued_tokens().last().map(String::as_str),
        "{got}"
    );
    let requests = azure.entra.requests();
    // azure-identity 1.27 (MSAL) with instance discovery disabled derives the token endpoint from the
    // authority without reading the OpenID configuration; the fake serves it for clients that do.
    assert!(
        requests
            .iter()
            .all(|r| r.path.starts_with(&format!("/{TENANT}/"))),
        "{requests:?}"
    );
    let token = requests
        .iter()
        .find(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .unwrap();
    let assertion = std::fs::read_to_string(&azure.identity.token_file).unwrap();
    assert_eq!(
        token.form_field("client_assertion"),
        Some(assertion.as_str())
    );
    assert_eq!(token.form_field("client_id"), Some(CLIENT_ID));
    assert_eq!(token.form_field("grant_type"), Some("client_credentials"));
    assert_eq!(
        token.form_field("client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(
        token.form_field("scope"),
        Some("https://containerregistry.azure.net/.default")
    );
}

#[tokio::test]
async fn the_fake_entra_id_openid_configuration_points_at_its_own_token_endpoint() {
    let azure = Azure::start().await;
    let authority = azure.entra.authority();
    let config: serde_json::Value = azure
        .http
        .get(format!(
            "{authority}{TENANT}/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        config["token_endpoint"],
        format!("{authority}{TENANT}/oauth2/v2.0/token")
    );
    assert_eq!(config["issuer"], format!("{authority}{TENANT}/v2.0"));
    let other = azure
        .http
        .get(format!(
            "{authority}other-tenant/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 400);
}

#[tokio::test]
async fn azure_identity_reports_the_fake_entra_ids_aadsts_refusal() {
    let azure = Azure::start().await;
    let got = azure_identity(&azure, "99999999-0000-0000-0000-000000000000").await;
    let error = got["error"].as_str().unwrap_or_default();
    assert!(error.contains("AADSTS700016"), "{got}");
    assert!(azure.entra.issued_tokens().is_empty());
}

// ---- the examples of docs/cloud-registries.md ----

fn example(name: &str) -> Vec<serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("k8s/examples")
        .join(name);
    serde_saphyr::from_multiple(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn document<'a>(docs: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    let found = docs.iter().find(|d| d["kind"] == kind);
    let doc = found.unwrap_or_else(|| panic!("the example has no {kind}"));
    assert_eq!(doc["metadata"]["name"], "watch-cluster");
    assert_eq!(doc["metadata"]["namespace"], "watch-cluster");
    doc
}

#[test]
fn the_gcp_example_binds_the_service_account_and_opts_in() {
    let docs = example("cloud-gcp.yaml");
    let sa = document(&docs, "ServiceAccount");
    assert!(
        sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
            .as_str()
            .is_some_and(|v| v.ends_with(".iam.gserviceaccount.com"))
    );
    assert_eq!(
        document(&docs, "ConfigMap")["data"]["CLOUD_REGISTRY_AUTH"],
        "gcp"
    );
}

#[test]
fn the_azure_example_labels_the_pod_annotates_the_service_account_and_opts_in() {
    let docs = example("cloud-azure.yaml");
    let sa = document(&docs, "ServiceAccount");
    assert!(sa["metadata"]["annotations"]["azure.workload.identity/client-id"].is_string());
    let pod_labels = &document(&docs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    assert_eq!(pod_labels["azure.workload.identity/use"], "true");
    assert_eq!(
        document(&docs, "ConfigMap")["data"]["CLOUD_REGISTRY_AUTH"],
        "azure"
    );
}
