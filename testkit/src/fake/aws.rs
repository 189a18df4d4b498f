//! In-process HTTPS fakes of the AWS services an ECR pull credential comes from, written to AWS's published
//! shapes: STS `AssumeRoleWithWebIdentity` (Query API, XML), ECR `GetAuthorizationToken` (JSON 1.1, SigV4
//! verified), the EKS Pod Identity agent (JSON), and an ECR *registry* that wants Basic `AWS:<password>`.
//!
//! Input: the role, web identity token and Pod Identity token it accepts, failures to inject per step
//! ([`FakeAws::fail`]), how long the ECR password lives. Output: one HTTPS server on `127.0.0.1` whose
//! certificate (signed by a fresh test CA, [`FakeAws::ca_pem`]) also names [`ECR_HOST`], and a log of every
//! request. Botocore is pointed at it in tests (tests/cloud_aws.rs), so the shapes are checked by code we did
//! not write.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};

use crate::registry::certs;
use crate::serve::{Server, stop_signal};

/// The ECR registry host the fake's certificate names; reach it with a resolve override to [`FakeAws::addr`].
pub const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
/// The region the fake ECR API serves.
pub const REGION: &str = "us-east-1";

/// An AWS step that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// STS `AssumeRoleWithWebIdentity`.
    Sts,
    /// ECR `GetAuthorizationToken`.
    Ecr,
    /// The Pod Identity agent.
    PodIdentity,
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct AwsRequest {
    /// Which service answered it: `sts`, `ecr`, `pod-identity`, `registry`.
    pub service: &'static str,
    /// Method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl AwsRequest {
    /// A form field of an STS request.
    pub fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(&self.body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

struct Keys {
    secret: String,
    token: String,
}

struct FakeState {
    role_arn: String,
    web_identity_token: String,
    pod_token: String,
    password: String,
    password_lifetime: Duration,
    issued: u32,
    keys: HashMap<String, Keys>,
    failures: HashMap<Step, (u16, String, String)>,
    realm: Option<String>,
    tags: Vec<String>,
    log: Vec<AwsRequest>,
}

/// The running fake; stops when dropped.
pub struct FakeAws {
    server: Server,
    state: Arc<Mutex<FakeState>>,
    ca_pem: String,
}

impl FakeAws {
    /// Starts the fake accepting `role_arn` with web identity token `token`, Pod Identity token
    /// `pod-identity-token`, ECR passwords valid for 12 hours (as ECR's are).
    pub async fn start(role_arn: &str, token: &str) -> anyhow::Result<Self> {
        let tls = certs::tls_material_for(&[ECR_HOST])?;
        let state = Arc::new(Mutex::new(FakeState {
            role_arn: role_arn.to_owned(),
            web_identity_token: token.to_owned(),
            pod_token: "pod-identity-token".to_owned(),
            password: "ecr-password-1".to_owned(),
            password_lifetime: Duration::from_secs(12 * 3600),
            issued: 0,
            keys: HashMap::new(),
            failures: HashMap::new(),
            realm: None,
            tags: vec!["1.0.0".to_owned(), "1.1.0".to_owned()],
            log: Vec::new(),
        }));
        let app = Router::new()
            .fallback(dispatch)
            .with_state(Arc::clone(&state));
        let server = Server::spawn_tls(app, stop_signal(), &tls).await?;
        Ok(Self {
            server,
            state,
            ca_pem: tls.ca_pem,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `https://localhost:<port>`: the value for `AWS_ENDPOINT_URL_STS` / `_ECR`.
    pub fn endpoint(&self) -> String {
        format!("https://localhost:{}", self.addr().port())
    }

    /// The PEM of the CA that signed its certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The registry as image references name it: `<ECR_HOST>:<port>`.
    pub fn registry(&self) -> String {
        format!("{ECR_HOST}:{}", self.addr().port())
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        lock(&self.state)
    }

    /// Accepts only `token` as web identity from now on (kubelet rotated the projected token).
    pub fn rotate_web_identity_token(&self, token: &str) {
        self.lock().web_identity_token = token.to_owned();
    }

    /// The Pod Identity agent's token.
    pub fn pod_token(&self) -> String {
        self.lock().pod_token.clone()
    }

    /// ECR passwords issued from now on live this long.
    pub fn set_password_lifetime(&self, lifetime: Duration) {
        self.lock().password_lifetime = lifetime;
    }

    /// The registry password ECR currently issues and the registry accepts.
    pub fn password(&self) -> String {
        self.lock().password.clone()
    }

    /// Makes `step` answer `status` with AWS's error `code` and `message` until [`FakeAws::heal`].
    pub fn fail(&self, step: Step, status: u16, code: &str, message: &str) {
        self.lock()
            .failures
            .insert(step, (status, code.to_owned(), message.to_owned()));
    }

    /// Removes every injected failure.
    pub fn heal(&self) {
        self.lock().failures.clear();
    }

    /// Makes the registry answer with a Bearer challenge naming `realm` (ECR itself uses Basic).
    pub fn set_bearer_realm(&self, realm: &str) {
        self.lock().realm = Some(realm.to_owned());
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<AwsRequest> {
        self.lock().log.clone()
    }

    /// The requests one service received.
    pub fn requests_to(&self, service: &str) -> Vec<AwsRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.service == service)
            .collect()
    }
}

fn lock(state: &Mutex<FakeState>) -> MutexGuard<'_, FakeState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn dispatch(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let host = header("host");
    let service = if host.starts_with(ECR_HOST) {
        "registry"
    } else if uri.path().starts_with("/v1/credentials") {
        "pod-identity"
    } else if !header("x-amz-target").is_empty() {
        "ecr"
    } else {
        "sts"
    };
    let mut st = lock(&state);
    st.log.push(AwsRequest {
        service,
        method: method.clone(),
        uri: uri.to_string(),
        headers: headers.clone(),
        body: body.clone(),
    });
    match service {
        "registry" => registry(&st, &uri, &header("authorization")),
        "pod-identity" => pod_identity(&mut st, &header("authorization")),
        "ecr" => ecr(&mut st, &method, &uri, &headers, &body),
        _ => sts(&mut st, &method, &body),
    }
}

fn failure(st: &FakeState, step: Step) -> Option<(u16, String, String)> {
    st.failures.get(&step).cloned()
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn sts_error(code: u16, kind: &str, message: &str) -> Response {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{kind}</Code><Message>{message}</Message></Error><RequestId>fake-1</RequestId></ErrorResponse>"
    );
    (status(code), [("content-type", "text/xml")], body).into_response()
}

/// STS `AssumeRoleWithWebIdentity` as AWS documents it (API reference, "Response Elements").
fn sts(st: &mut FakeState, method: &Method, body: &Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    if *method != Method::POST
        || field("Action") != "AssumeRoleWithWebIdentity"
        || field("Version") != "2011-06-15"
    {
        return sts_error(400, "InvalidAction", "Could not find operation");
    }
    if let Some((code, kind, message)) = failure(st, Step::Sts) {
        return sts_error(code, &kind, &message);
    }
    if field("RoleArn") != st.role_arn {
        return sts_error(
            403,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        );
    }
    if field("WebIdentityToken") != st.web_identity_token {
        return sts_error(
            400,
            "InvalidIdentityToken",
            "The web identity token is not valid",
        );
    }
    if field("RoleSessionName").is_empty() {
        return sts_error(400, "ValidationError", "RoleSessionName is required");
    }
    let (key_id, secret, token) = issue_keys(st);
    let expiration = chrono::Utc::now() + chrono::Duration::hours(1);
    let body = format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <AssumeRoleWithWebIdentityResult>\
         <SubjectFromWebIdentityToken>system:serviceaccount:watch-cluster:watch-cluster</SubjectFromWebIdentityToken>\
         <Audience>sts.amazonaws.com</Audience>\
         <AssumedRoleUser><Arn>{role}/{session}</Arn><AssumedRoleId>AROA:{session}</AssumedRoleId></AssumedRoleUser>\
         <Credentials><SessionToken>{token}</SessionToken><SecretAccessKey>{secret}</SecretAccessKey>\
         <Expiration>{exp}</Expiration><AccessKeyId>{key_id}</AccessKeyId></Credentials>\
         <SourceIdentity></SourceIdentity><Provider>oidc.eks.us-east-1.amazonaws.com/id/FAKE</Provider>\
         </AssumeRoleWithWebIdentityResult>\
         <ResponseMetadata><RequestId>fake-2</RequestId></ResponseMetadata>\
         </AssumeRoleWithWebIdentityResponse>",
        role = st.role_arn,
        session = field("RoleSessionName"),
        exp = expiration.format("%Y-%m-%dT%H:%M:%SZ"),
    );
    ([("content-type", "text/xml")], body).into_response()
}

fn issue_keys(st: &mut FakeState) -> (String, String, String) {
    st.issued += 1;
    let key_id = format!("ASIAFAKE{:08}", st.issued);
    // A `+` and `/` in the secret, as real ones have, so encoding slips would show.
    let secret = format!("fake/secret+{}", st.issued);
    let token = format!("FwoGZXIvYXdzEFake//token+{}=", st.issued);
    st.keys.insert(
        key_id.clone(),
        Keys {
            secret: secret.clone(),
            token: token.clone(),
        },
    );
    (key_id, secret, token)
}

/// The EKS Pod Identity agent: `GET /v1/credentials` with the projected token as `Authorization`.
fn pod_identity(st: &mut FakeState, authorization: &str) -> Response {
    if let Some((code, kind, message)) = failure(st, Step::PodIdentity) {
        let body = serde_json::json!({"code": kind, "message": message});
        return (status(code), axum::Json(body)).into_response();
    }
    if authorization != st.pod_token {
        let body = serde_json::json!({"code": "AccessDeniedException", "message": "invalid token"});
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    let (key_id, secret, token) = issue_keys(st);
    let expiration = chrono::Utc::now() + chrono::Duration::hours(6);
    axum::Json(serde_json::json!({
        "AccessKeyId": key_id,
        "SecretAccessKey": secret,
        "Token": token,
        "AccountId": "123456789012",
        "Expiration": expiration.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }))
    .into_response()
}

fn ecr_error(code: u16, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({"__type": kind, "message": message});
    (
        status(code),
        [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amzn-errortype", kind),
        ],
        body.to_string(),
    )
        .into_response()
}

/// ECR `GetAuthorizationToken` (JSON 1.1): the SigV4 signature must verify with keys the fake issued.
fn ecr(
    st: &mut FakeState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    if header("x-amz-target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
        || !header("content-type").starts_with("application/x-amz-json-1.1")
    {
        return ecr_error(400, "UnknownOperationException", "unknown operation");
    }
    if let Err(why) = verify_sigv4(st, method, uri, headers, body) {
        return ecr_error(403, "InvalidSignatureException", &why);
    }
    if let Some((code, kind, message)) = failure(st, Step::Ecr) {
        return ecr_error(code, &kind, &message);
    }
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{}", st.password));
    let expires = SystemTime::now() + st.password_lifetime;
    let expires_at = expires
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let body = serde_json::json!({"authorizationData": [{
        "authorizationToken": token,
        "expiresAt": expires_at,
        "proxyEndpoint": format!("https://{ECR_HOST}"),
    }]});
    (
        [("content-type", "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

/// Checks an `AWS4-HMAC-SHA256` signature: credential scope (region, `ecr`), the session token, and the
/// signature over the headers it lists (AWS "Signature Version 4 signing process").
fn verify_sigv4(
    st: &FakeState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let auth = header("authorization");
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let part = |name: &str| {
        rest.split(", ")
            .find_map(|p| p.strip_prefix(name))
            .map(str::to_owned)
            .ok_or(format!("no {name}"))
    };
    let credential = part("Credential=")?;
    let signed_headers = part("SignedHeaders=")?;
    let signature = part("Signature=")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err("malformed credential scope".into());
    };
    if region != REGION || service != "ecr" {
        return Err(format!("scope {region}/{service} is not {REGION}/ecr"));
    }
    let keys = st
        .keys
        .get(key_id)
        .ok_or("The security token included in the request is invalid")?;
    if header("x-amz-security-token") != keys.token {
        return Err("The security token included in the request is invalid".into());
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    for required in ["host", "x-amz-date", "x-amz-security-token"] {
        if !names.contains(&required) {
            return Err(format!("{required} is not signed"));
        }
    }
    let mut canonical_headers = String::new();
    for name in &names {
        let value = header(name)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let canonical = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        uri.path(),
        uri.query().unwrap_or_default(),
        hex::encode(Sha256::digest(body))
    );
    let amz_date = header("x-amz-date");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{}", keys.secret).as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    if hex::encode(hmac(&key, to_sign.as_bytes())) != signature {
        return Err(
            "The request signature we calculated does not match the signature you provided".into(),
        );
    }
    Ok(())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// The ECR registry: Basic `AWS:<password>` (ECR's challenge), or a Bearer challenge when one was set.
fn registry(st: &FakeState, uri: &Uri, authorization: &str) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("AWS:{}", st.password))
    );
    if authorization != expected {
        let challenge = match &st.realm {
            Some(realm) => format!("Bearer realm=\"{realm}\",service=\"ecr.amazonaws.com\""),
            None => format!("Basic realm=\"https://{ECR_HOST}/\",service=\"ecr.amazonaws.com\""),
        };
        return (
            StatusCode::UNAUTHORIZED,
            [
                ("www-authenticate", challenge),
                ("docker-distribution-api-version", "registry/2.0".into()),
            ],
            r#"{"errors":[{"code":"DENIED","message":"Not Authorized"}]}"#,
        )
            .into_response();
    }
    let path = uri.path();
    match path
        .strip_prefix("/v2/")
        .and_then(|p| p.strip_suffix("/tags/list"))
    {
        Some(name) => {
            axum::Json(serde_json::json!({"name": name, "tags": st.tags})).into_response()
        }
        None if path == "/v2/" => "{}".into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
