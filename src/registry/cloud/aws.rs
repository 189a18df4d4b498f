//! Amazon ECR credentials from the controller's AWS identity (docs/cloud-registries.md#amazon-ecr).
//!
//! Input: an ECR registry host (its region), and the environment EKS injects: IRSA (`AWS_ROLE_ARN`,
//! `AWS_WEB_IDENTITY_TOKEN_FILE`, optional `AWS_ROLE_SESSION_NAME`) or EKS Pod Identity
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`); endpoint overrides
//! `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL_ECR`, `AWS_ENDPOINT_URL`. Output: an [`Issued`] Basic credential
//! `AWS:<password>` and when it expires, or a [`CloudError`] naming the step.
//!
//! Two steps: temporary keys (STS `AssumeRoleWithWebIdentity`, Query API with an XML answer, unsigned; or the
//! Pod Identity agent's JSON), then ECR `GetAuthorizationToken` (JSON 1.1 protocol, SigV4-signed). The
//! projected token files are read on every fetch: kubelet rotates them (hourly for IRSA).

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use url::Url;

use super::sigv4::{self, Keys, Scope};
use super::{CloudError, Env, Issued, Provider, check_source, describe, endpoint_in};
use crate::registry::Credential;

const STEP_TOKEN_FILE: &str = "read the web identity token";
const STEP_STS: &str = "STS AssumeRoleWithWebIdentity";
const STEP_POD_TOKEN: &str = "read the Pod Identity token";
const STEP_POD: &str = "EKS Pod Identity";
const STEP_ECR: &str = "ECR GetAuthorizationToken";
const STEP_IDENTITY: &str = "AWS identity";
/// Answers larger than this are refused (an STS answer is ~2 KB).
const MAX_ANSWER: usize = 256 * 1024;
const ECR_TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";

/// The region of an ECR registry host, and which AWS partition and endpoint variant it lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// `us-east-1`.
    pub name: String,
    /// `amazonaws.com` or `amazonaws.com.cn`.
    pub dns_suffix: &'static str,
    /// `dkr.ecr-fips.…`: the FIPS endpoints.
    pub fips: bool,
}

impl Region {
    /// Reads the region from `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]` (port ignored).
    pub fn of_host(registry: &str) -> Result<Self, CloudError> {
        let host = super::host_of(registry);
        if !Provider::Aws.serves(&host) {
            return Err(CloudError::new(
                STEP_IDENTITY,
                format!(
                    "{host} is not an ECR registry host (<account>.dkr.ecr.<region>.amazonaws.com)"
                ),
            ));
        }
        let mut labels = host.split('.').skip(2);
        let fips = labels.next() == Some("ecr-fips");
        let name = labels.next().unwrap_or_default().to_owned();
        let dns_suffix = if host.ends_with(".cn") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        Ok(Self {
            name,
            dns_suffix,
            fips,
        })
    }

    fn sts_default(&self) -> String {
        format!("https://sts.{}.{}", self.name, self.dns_suffix)
    }

    fn ecr_default(&self) -> String {
        let service = if self.fips { "ecr-fips" } else { "api.ecr" };
        format!("https://{service}.{}.{}", self.name, self.dns_suffix)
    }
}

/// Who the controller is to AWS, for the cache identity: the role ARN (IRSA), or `pod-identity`.
pub fn principal(env: &Env) -> String {
    match (
        env.get("AWS_ROLE_ARN"),
        env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    ) {
        (Some(role), _) => role,
        (None, Some(_)) => "pod-identity".to_owned(),
        (None, None) => "none".to_owned(),
    }
}

/// An ECR credential for `registry_host`, from the identity the process environment describes.
pub async fn issue(http: &reqwest::Client, registry_host: &str) -> Result<Issued, CloudError> {
    issue_with(http, registry_host, &Env::process()).await
}

/// As [`issue`], with the environment given.
pub async fn issue_with(
    http: &reqwest::Client,
    registry_host: &str,
    env: &Env,
) -> Result<Issued, CloudError> {
    let region = Region::of_host(registry_host)?;
    let keys = temporary_keys(http, &region, env).await?;
    let ecr = override_or(env, "AWS_ENDPOINT_URL_ECR", &region.ecr_default())?;
    get_authorization_token(http, &ecr, &region, &keys.keys, SystemTime::now()).await
}

/// Temporary keys and when they expire.
pub struct Temporary {
    /// The keys.
    pub keys: Keys,
    /// When they stop working.
    pub expires_at: SystemTime,
}

async fn temporary_keys(
    http: &reqwest::Client,
    region: &Region,
    env: &Env,
) -> Result<Temporary, CloudError> {
    if let (Some(role), Some(token_file)) = (
        env.get("AWS_ROLE_ARN"),
        env.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
    ) {
        let sts = override_or(env, "AWS_ENDPOINT_URL_STS", &region.sts_default())?;
        let session = env
            .get("AWS_ROLE_SESSION_NAME")
            .unwrap_or_else(|| "watch-cluster".to_owned());
        return assume_role_with_web_identity(http, &sts, &role, &session, &token_file).await;
    }
    if let Some(uri) = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        return pod_identity(http, &uri, env).await;
    }
    Err(CloudError::new(
        STEP_IDENTITY,
        "no AWS identity: set AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (IRSA: annotate the ServiceAccount with \
         eks.amazonaws.com/role-arn), or AWS_CONTAINER_CREDENTIALS_FULL_URI (an EKS Pod Identity association)",
    ))
}

/// `var`, else `AWS_ENDPOINT_URL` (the SDKs' shared override), else the regional default.
fn override_or(env: &Env, var: &str, default: &str) -> Result<Url, CloudError> {
    if env.get(var).is_some() {
        return endpoint_in(env, var, default);
    }
    endpoint_in(env, "AWS_ENDPOINT_URL", default)
}

/// STS `AssumeRoleWithWebIdentity` (Query API, unsigned: the web identity token is the proof).
pub async fn assume_role_with_web_identity(
    http: &reqwest::Client,
    sts: &Url,
    role_arn: &str,
    session_name: &str,
    token_file: &str,
) -> Result<Temporary, CloudError> {
    // Read on every fetch: kubelet rewrites the projected token before it expires.
    let token = read_token(STEP_TOKEN_FILE, "AWS_WEB_IDENTITY_TOKEN_FILE", token_file).await?;
    check_source(STEP_STS, sts)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithWebIdentity")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", role_arn)
        .append_pair("RoleSessionName", session_name)
        .append_pair("WebIdentityToken", &token)
        .finish();
    let request = http
        .post(sts.clone())
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .header("accept", "text/xml")
        .body(body);
    let (status, answer) = send(STEP_STS, request).await?;
    if !(200..300).contains(&status) {
        let code = xml_text(&answer, "Code").unwrap_or_else(|| format!("HTTP {status}"));
        let message = xml_text(&answer, "Message").unwrap_or_default();
        return Err(CloudError::new(
            STEP_STS,
            format!("{code}: {message} (role {role_arn})"),
        ));
    }
    let field = |name: &str| {
        xml_text(&answer, name).ok_or_else(|| {
            CloudError::new(STEP_STS, format!("the answer has no Credentials/{name}"))
        })
    };
    Ok(Temporary {
        keys: Keys {
            access_key_id: field("AccessKeyId")?,
            secret_access_key: field("SecretAccessKey")?,
            session_token: Some(field("SessionToken")?),
        },
        expires_at: parse_time(STEP_STS, &field("Expiration")?)?,
    })
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PodCredentials {
    access_key_id: String,
    secret_access_key: String,
    token: String,
    expiration: String,
}

/// The EKS Pod Identity agent (or any container credentials endpoint): `GET <full uri>` with the projected
/// token as `Authorization`.
pub async fn pod_identity(
    http: &reqwest::Client,
    uri: &str,
    env: &Env,
) -> Result<Temporary, CloudError> {
    let url = Url::parse(uri).map_err(|e| {
        CloudError::new(
            STEP_POD,
            format!("AWS_CONTAINER_CREDENTIALS_FULL_URI={uri:?} is not a URL ({e})"),
        )
    })?;
    check_source(STEP_POD, &url)?;
    let authorization = match env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(file) => Some(
            read_token(
                STEP_POD_TOKEN,
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                &file,
            )
            .await?,
        ),
        None => env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    };
    let mut request = http.get(url).header("accept", "application/json");
    if let Some(token) = authorization {
        request = request.header("authorization", token);
    }
    let (status, answer) = send(STEP_POD, request).await?;
    if !(200..300).contains(&status) {
        return Err(CloudError::new(STEP_POD, json_error(status, &answer)));
    }
    let parsed: PodCredentials = serde_json::from_slice(&answer).map_err(|e| {
        CloudError::new(
            STEP_POD,
            format!("the answer is not the credentials JSON (AccessKeyId, SecretAccessKey, Token, Expiration): {e}"),
        )
    })?;
    Ok(Temporary {
        keys: Keys {
            access_key_id: parsed.access_key_id,
            secret_access_key: parsed.secret_access_key,
            session_token: Some(parsed.token),
        },
        expires_at: parse_time(STEP_POD, &parsed.expiration)?,
    })
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizationAnswer {
    #[serde(default)]
    authorization_data: Vec<AuthorizationData>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizationData {
    authorization_token: String,
    /// Seconds since the epoch (the JSON 1.1 protocol's timestamp), possibly with a fraction.
    expires_at: f64,
}

/// ECR `GetAuthorizationToken`, signed with the temporary keys, decoded into `AWS:<password>`.
pub async fn get_authorization_token(
    http: &reqwest::Client,
    ecr: &Url,
    region: &Region,
    keys: &Keys,
    now: SystemTime,
) -> Result<Issued, CloudError> {
    check_source(STEP_ECR, ecr)?;
    let body = b"{}";
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", ECR_TARGET),
    ];
    let request = sigv4::Request {
        method: "POST",
        url: ecr,
        headers: &headers,
        body,
    };
    let scope = Scope {
        region: &region.name,
        service: "ecr",
    };
    let signed = sigv4::sign(&request, keys, scope, DateTime::<Utc>::from(now));
    let mut builder = http.post(ecr.clone()).body(body.as_slice());
    for (name, value) in headers
        .iter()
        .map(|(n, v)| (*n, (*v).to_owned()))
        .chain(signed)
    {
        builder = builder.header(name, value);
    }
    let (status, answer) = send(STEP_ECR, builder).await?;
    if !(200..300).contains(&status) {
        return Err(CloudError::new(STEP_ECR, json_error(status, &answer)));
    }
    let parsed: AuthorizationAnswer = serde_json::from_slice(&answer).map_err(|e| {
        CloudError::new(
            STEP_ECR,
            format!("the answer is not GetAuthorizationToken JSON: {e}"),
        )
    })?;
    let data = parsed
        .authorization_data
        .into_iter()
        .next()
        .ok_or_else(|| CloudError::new(STEP_ECR, "the answer has no authorizationData"))?;
    let bad_token = || {
        CloudError::new(
            STEP_ECR,
            "authorizationToken is not base64 of AWS:<password>",
        )
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data.authorization_token.trim())
        .map_err(|_| bad_token())?;
    let text = String::from_utf8(decoded).map_err(|_| bad_token())?;
    let (user, password) = text.split_once(':').ok_or_else(bad_token)?;
    if !data.expires_at.is_finite() || data.expires_at < 0.0 {
        return Err(CloudError::new(STEP_ECR, "expiresAt is not a time"));
    }
    Ok(Issued {
        credential: Credential::cloud(Provider::Aws, user, password),
        expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs_f64(data.expires_at),
    })
}

async fn read_token(step: &'static str, var: &str, path: &str) -> Result<String, CloudError> {
    let raw = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| CloudError::new(step, format!("{var}={path}: {e}")))?;
    let token = raw.trim();
    if token.is_empty() {
        return Err(CloudError::new(step, format!("{var}={path} is empty")));
    }
    Ok(token.to_owned())
}

async fn send(
    step: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<(u16, Vec<u8>), CloudError> {
    let mut response = request
        .send()
        .await
        .map_err(|e| CloudError::new(step, describe(&e)))?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CloudError::new(step, describe(&e)))?
    {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(CloudError::new(step, "the answer is too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// `AccessDeniedException: User … is not authorized` from a JSON 1.1 error (`__type`, `message`).
fn json_error(status: u16, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Error {
        #[serde(rename = "__type", alias = "code", alias = "Code")]
        kind: Option<String>,
        #[serde(alias = "Message")]
        message: Option<String>,
    }
    match serde_json::from_slice::<Error>(body) {
        Ok(Error { kind, message }) => {
            // `__type` may be namespaced: `com.amazonaws.ecr#AccessDeniedException`.
            let kind = kind
                .map(|k| k.rsplit('#').next().unwrap_or_default().to_owned())
                .unwrap_or_else(|| format!("HTTP {status}"));
            format!("{kind}: {}", message.unwrap_or_default())
        }
        Err(_) => format!("HTTP {status}"),
    }
}

/// The text of the first `<name>…</name>` element, entities decoded. STS answers are flat and small; a
/// full XML parser would add a dependency for five fields.
fn xml_text(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{name}>"))?;
    Some(
        text[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

fn parse_time(step: &'static str, value: &str) -> Result<SystemTime, CloudError> {
    DateTime::parse_from_rfc3339(value)
        .map(SystemTime::from)
        .map_err(|e| {
            CloudError::new(
                step,
                format!("Expiration {value:?} is not an RFC 3339 time: {e}"),
            )
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn region_partition_and_fips_come_from_the_host() {
        let r = Region::of_host("123456789012.dkr.ecr.eu-west-3.amazonaws.com").unwrap();
        assert_eq!(
            (r.name.as_str(), r.dns_suffix, r.fips),
            ("eu-west-3", "amazonaws.com", false)
        );
        assert_eq!(r.ecr_default(), "https://api.ecr.eu-west-3.amazonaws.com");
        assert_eq!(r.sts_default(), "https://sts.eu-west-3.amazonaws.com");
        let cn = Region::of_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn:443").unwrap();
        assert_eq!(
            cn.ecr_default(),
            "https://api.ecr.cn-north-1.amazonaws.com.cn"
        );
        let fips =
            Region::of_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com").unwrap();
        assert_eq!(
            fips.ecr_default(),
            "https://ecr-fips.us-gov-west-1.amazonaws.com"
        );
        let err = Region::of_host("ecr.example.com").unwrap_err();
        assert!(err.to_string().contains("not an ECR registry host"));
    }

    #[test]
    fn sts_answers_are_read_with_entities_decoded() {
        let body =
            br#"<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>
            <SessionToken>a&amp;b</SessionToken><AccessKeyId>ASIA1</AccessKeyId></Credentials>
            </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"#;
        assert_eq!(xml_text(body, "SessionToken").as_deref(), Some("a&b"));
        assert_eq!(xml_text(body, "AccessKeyId").as_deref(), Some("ASIA1"));
        assert_eq!(xml_text(body, "Expiration"), None);
    }

    #[test]
    fn json_errors_name_the_exception_without_its_namespace() {
        let body =
            br#"{"__type":"com.amazonaws.ecr#AccessDeniedException","message":"not authorized"}"#;
        assert_eq!(
            json_error(400, body),
            "AccessDeniedException: not authorized"
        );
        assert_eq!(json_error(502, b"<html>"), "HTTP 502");
    }

    #[test]
    fn the_endpoint_override_of_the_service_wins_over_the_shared_one() {
        let env = Env::from_pairs([
            ("AWS_ENDPOINT_URL", "https://shared.example"),
            ("AWS_ENDPOINT_URL_ECR", "https://ecr.example:8443"),
        ]);
        assert_eq!(
            override_or(&env, "AWS_ENDPOINT_URL_ECR", "https://d")
                .unwrap()
                .as_str(),
            "https://ecr.example:8443/"
        );
        assert_eq!(
            override_or(&env, "AWS_ENDPOINT_URL_STS", "https://d")
                .unwrap()
                .as_str(),
            "https://shared.example/"
        );
        let none = Env::from_pairs([("X", "y")]);
        assert_eq!(
            override_or(&none, "AWS_ENDPOINT_URL_STS", "https://d")
                .unwrap()
                .as_str(),
            "https://d/"
        );
    }

    #[test]
    fn the_principal_is_the_role_or_pod_identity() {
        assert_eq!(
            principal(&Env::from_pairs([(
                "AWS_ROLE_ARN",
                "arn:aws:iam::1:role/r"
            )])),
            "arn:aws:iam::1:role/r"
        );
        assert_eq!(
            principal(&Env::from_pairs([(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/v1/credentials"
            )])),
            "pod-identity"
        );
    }
}
