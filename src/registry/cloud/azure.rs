//! Azure Container Registry credentials from Azure Workload Identity
//! (docs/cloud-registries.md#azure-container-registry).
//!
//! Input: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE` (what the workload identity webhook
//! injects), optional `AZURE_AUTHORITY_HOST`, the registry host and an HTTP client. Output: an [`Issued`]
//! credential — user `00000000-0000-0000-0000-000000000000` and an ACR refresh token — which the registry token
//! flow presents as Basic credentials to the registry's `/oauth2/token` realm, as `az acr login` does.
//!
//! Two steps, each named in errors:
//! 1. Entra ID: the client-credentials grant with the projected ServiceAccount token as the client assertion
//!    (`POST {authority}{tenant}/oauth2/v2.0/token`, scope `https://containerregistry.azure.net/.default`).
//!    The token file is read on every call: kubelet rotates it, and a cached copy expires.
//! 2. ACR: `POST https://<registry>/oauth2/exchange` trades the Entra ID access token for a registry refresh
//!    token. The credential expires at the refresh token's `exp` when it is a readable JWT (ACR's are), else
//!    with the Entra ID token.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use url::Url;

use super::{CloudError, Env, Issued};
use crate::registry::Credential;

/// The user name ACR expects with a refresh token as the password.
pub const USERNAME: &str = "00000000-0000-0000-0000-000000000000";
/// The Entra ID scope of Azure Container Registry, the same in every cloud.
pub const SCOPE: &str = "https://containerregistry.azure.net/.default";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const IDENTITY_STEP: &str = "Azure Workload Identity";
const TOKEN_FILE_STEP: &str = "Azure federated token file";
const ENTRA_STEP: &str = "Entra ID token";
const EXCHANGE_STEP: &str = "ACR /oauth2/exchange";
/// Token answers are a few KiB; anything far larger is refused.
const MAX_BODY_BYTES: usize = 256 * 1024;
const FIX: &str = "label the controller's pod `azure.workload.identity/use: \"true\"` and annotate its \
                   ServiceAccount `azure.workload.identity/client-id` (docs/cloud-registries.md)";

/// The controller's Azure Workload Identity, as the workload identity webhook injects it.
#[derive(Debug, Clone)]
pub struct WorkloadIdentity {
    /// The application (client) id of the user-assigned identity or app registration (`AZURE_CLIENT_ID`).
    pub client_id: String,
    /// The Entra ID tenant (`AZURE_TENANT_ID`): a GUID or a domain name.
    pub tenant_id: String,
    /// The projected ServiceAccount token, re-read on every call (`AZURE_FEDERATED_TOKEN_FILE`).
    pub token_file: PathBuf,
    /// The Entra ID authority (`AZURE_AUTHORITY_HOST`); `None` picks it from the registry's cloud.
    pub authority: Option<Url>,
}

impl WorkloadIdentity {
    /// Reads the identity from `env`; a missing variable is an error naming it and the fix.
    pub fn from_env(env: &Env) -> Result<Self, CloudError> {
        let authority = match env.get("AZURE_AUTHORITY_HOST") {
            Some(_) => Some(super::endpoint_in(env, "AZURE_AUTHORITY_HOST", "")?),
            None => None,
        };
        Self::from_vars(|name| env.get(name), authority)
    }

    /// The identity from variables looked up by `var`, with `authority` already resolved.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        authority: Option<Url>,
    ) -> Result<Self, CloudError> {
        let required = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| identity_error(format!("{name} is not set: {FIX}")))
        };
        let identity = Self {
            client_id: required("AZURE_CLIENT_ID")?,
            tenant_id: required("AZURE_TENANT_ID")?,
            token_file: PathBuf::from(required("AZURE_FEDERATED_TOKEN_FILE")?),
            authority,
        };
        identity.validate()?;
        Ok(identity)
    }

    fn validate(&self) -> Result<(), CloudError> {
        // Both go into the token request; the tenant is a path segment, so it must not carry `/`, `?` or `..`.
        let name_like = |v: &str| {
            v.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                && !v.starts_with('.')
        };
        if !name_like(&self.tenant_id) {
            return Err(identity_error(format!(
                "AZURE_TENANT_ID=`{}` is not a tenant id (a GUID or a domain name such as contoso.onmicrosoft.com)",
                self.tenant_id
            )));
        }
        if !name_like(&self.client_id) {
            return Err(identity_error(format!(
                "AZURE_CLIENT_ID=`{}` is not a client id (the GUID of the managed identity or app registration)",
                self.client_id
            )));
        }
        Ok(())
    }

    fn token_url(&self, registry_host: &str) -> Result<Url, CloudError> {
        let mut authority = match &self.authority {
            Some(url) => url.clone(),
            None => Url::parse(default_authority(registry_host)).map_err(|e| {
                step_error(
                    ENTRA_STEP,
                    format!("the default authority is not a URL: {e}"),
                )
            })?,
        };
        // `join` replaces the last segment unless the base ends with `/`; users write the host either way.
        if !authority.path().ends_with('/') {
            authority.set_path(&format!("{}/", authority.path()));
        }
        authority
            .join(&format!("{}/oauth2/v2.0/token", self.tenant_id))
            .map_err(|e| {
                step_error(
                    ENTRA_STEP,
                    format!("cannot build the token URL on {authority}: {e}"),
                )
            })
    }
}

/// The Entra ID authority of the cloud a registry is in: Azure China for `.azurecr.cn`, Azure Government for
/// `.azurecr.us`, the public cloud otherwise.
pub fn default_authority(registry_host: &str) -> &'static str {
    let host = registry_host.split(':').next().unwrap_or_default();
    let host = host.to_ascii_lowercase();
    if host.ends_with(".azurecr.cn") {
        "https://login.chinacloudapi.cn/"
    } else if host.ends_with(".azurecr.us") {
        "https://login.microsoftonline.us/"
    } else {
        "https://login.microsoftonline.com/"
    }
}

/// A credential for the ACR at `registry_host` from the Workload Identity in the environment.
pub async fn issue(http: &reqwest::Client, registry_host: &str) -> Result<Issued, CloudError> {
    issue_with(http, registry_host, &Env::process()).await
}

/// As [`issue`], reading the identity from `env`.
pub async fn issue_with(
    http: &reqwest::Client,
    registry_host: &str,
    env: &Env,
) -> Result<Issued, CloudError> {
    issue_from(http, &WorkloadIdentity::from_env(env)?, registry_host).await
}

/// A credential for the ACR at `registry_host` (`host[:port]`, reached over HTTPS) from `identity`.
#[tracing::instrument(skip_all, fields(provider = "azure", registry = %registry_host, client_id = %identity.client_id))]
pub async fn issue_from(
    http: &reqwest::Client,
    identity: &WorkloadIdentity,
    registry_host: &str,
) -> Result<Issued, CloudError> {
    let assertion = read_assertion(&identity.token_file).await?;
    let entra = entra_token(http, identity, registry_host, &assertion).await?;
    let refresh_token = exchange(http, registry_host, &identity.tenant_id, &entra.token).await?;
    let expires_at = jwt_expiry(&refresh_token).unwrap_or(entra.expires_at);
    Ok(Issued {
        credential: Credential::new(USERNAME, refresh_token),
        expires_at,
    })
}

async fn read_assertion(path: &Path) -> Result<String, CloudError> {
    let fail = |why: String| {
        step_error(
            TOKEN_FILE_STEP,
            format!("AZURE_FEDERATED_TOKEN_FILE `{}` {why}", path.display()),
        )
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| fail(format!("cannot be read: {e}; {FIX}")))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(fail("is empty".to_owned()));
    }
    Ok(token.to_owned())
}

struct EntraToken {
    token: String,
    expires_at: SystemTime,
}

#[derive(serde::Deserialize)]
struct EntraAnswer {
    access_token: String,
    expires_in: u64,
}

async fn entra_token(
    http: &reqwest::Client,
    identity: &WorkloadIdentity,
    registry_host: &str,
    assertion: &str,
) -> Result<EntraToken, CloudError> {
    let url = identity.token_url(registry_host)?;
    let form = [
        ("client_id", identity.client_id.as_str()),
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
        ("scope", SCOPE),
    ];
    let (status, body) = post_form(http, &url, &form, ENTRA_STEP).await?;
    if !status.is_success() {
        return Err(step_error(
            ENTRA_STEP,
            format!("{status}: {}", entra_reason(&body)),
        ));
    }
    let answer: EntraAnswer = serde_json::from_slice(&body).map_err(|e| {
        step_error(
            ENTRA_STEP,
            format!("the answer is not {{access_token, expires_in}}: {e}"),
        )
    })?;
    Ok(EntraToken {
        token: answer.access_token,
        expires_at: SystemTime::now() + Duration::from_secs(answer.expires_in),
    })
}

#[derive(serde::Deserialize)]
struct ExchangeAnswer {
    refresh_token: String,
}

async fn exchange(
    http: &reqwest::Client,
    registry_host: &str,
    tenant: &str,
    access_token: &str,
) -> Result<String, CloudError> {
    let url = Url::parse(&format!("https://{registry_host}/oauth2/exchange")).map_err(|e| {
        step_error(
            EXCHANGE_STEP,
            format!("`{registry_host}` is not a registry host: {e}"),
        )
    })?;
    let form = [
        ("grant_type", "access_token"),
        ("service", registry_host),
        ("tenant", tenant),
        ("access_token", access_token),
    ];
    let (status, body) = post_form(http, &url, &form, EXCHANGE_STEP).await?;
    if !status.is_success() {
        let hint = if status.as_u16() == 401 || status.as_u16() == 403 {
            "; grant the identity the AcrPull role on the registry"
        } else {
            ""
        };
        return Err(step_error(
            EXCHANGE_STEP,
            format!("{status}: {}{hint}", acr_reason(&body)),
        ));
    }
    let answer: ExchangeAnswer = serde_json::from_slice(&body).map_err(|e| {
        step_error(
            EXCHANGE_STEP,
            format!("the answer is not {{refresh_token}}: {e}"),
        )
    })?;
    if answer.refresh_token.is_empty() {
        return Err(step_error(
            EXCHANGE_STEP,
            "the answer's refresh_token is empty".to_owned(),
        ));
    }
    Ok(answer.refresh_token)
}

async fn post_form(
    http: &reqwest::Client,
    url: &Url,
    form: &[(&str, &str)],
    step: &'static str,
) -> Result<(reqwest::StatusCode, Vec<u8>), CloudError> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut response = http
        .post(url.clone())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| step_error(step, format!("cannot reach {url}: {}", super::describe(&e))))?;
    let status = response.status();
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        step_error(
            step,
            format!(
                "reading the answer of {url} failed: {}",
                super::describe(&e)
            ),
        )
    })? {
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(step_error(
                step,
                format!("the answer of {url} exceeds {MAX_BODY_BYTES} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((status, bytes))
}

/// Entra ID explains refusals in `error_description`, starting with the AADSTS code; its trace and correlation
/// ids follow on later lines and are left out.
fn entra_reason(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Refusal {
        error: Option<String>,
        error_description: Option<String>,
    }
    match serde_json::from_slice::<Refusal>(body) {
        Ok(Refusal {
            error_description: Some(d),
            ..
        }) => one_line(d.lines().next().unwrap_or_default()),
        Ok(Refusal { error: Some(e), .. }) => one_line(&e),
        _ => one_line(&String::from_utf8_lossy(body)),
    }
}

/// ACR answers errors in the distribution shape `{"errors":[{"code","message"}]}`.
fn acr_reason(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Detail>,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(Errors { errors }) if !errors.is_empty() => errors
            .iter()
            .map(|d| {
                let parts: Vec<&str> = [d.code.as_deref(), d.message.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                one_line(&parts.join(" "))
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => one_line(&String::from_utf8_lossy(body)),
    }
}

/// Server text on one line, escaped and cut short for logs and Events.
fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::untrusted::echo(&line).into_owned()
}

/// The `exp` claim of a JWT, read without verifying it: it only decides when we fetch a new one.
fn jwt_expiry(token: &str) -> Option<SystemTime> {
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: u64,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    (claims.exp > 0).then(|| UNIX_EPOCH + Duration::from_secs(claims.exp))
}

fn identity_error(message: String) -> CloudError {
    step_error(IDENTITY_STEP, message)
}

/// Our own guidance is kept whole; text quoted from Entra ID or the registry goes through [`one_line`].
fn step_error(step: &'static str, message: String) -> CloudError {
    CloudError { step, message }
}

#[cfg(test)]
mod tests;
