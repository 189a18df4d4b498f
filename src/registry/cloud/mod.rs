//! Registry credentials from the controller's own cloud identity (docs/cloud-registries.md).
//!
//! Input: a registry host with no matching pull secret, the workload's namespace, the enabled providers
//! (`CLOUD_REGISTRY_AUTH`, `CLOUD_REGISTRY_NAMESPACES`) and the providers' standard environment (IRSA, EKS Pod
//! Identity, GKE metadata, Azure Workload Identity). Output: a [`Credential`] whose origin says which cloud
//! issued it, cached per identity until 5 minutes before it expires, or a [`CloudError`] naming the step
//! that failed.
//!
//! The provider is chosen by the registry host alone, with the exact patterns of docs/cloud-registries.md:
//! a host that merely looks like a cloud registry (`evil.com/123456789012.dkr.ecr…`, `gcr.io.evil.com`) never
//! receives the controller's identity. The transport enforces the same patterns again on every request and
//! token realm that carries a cloud credential (`registry::transport`).
//!
//! Credential sources (STS, the Pod Identity agent, the GKE metadata server, Entra ID) are reached with one
//! HTTP client of their own: no redirects, HTTPS with the platform roots plus `REGISTRY_CA_FILE`, and plain
//! HTTP only to a loopback override or to the link-local addresses the providers define.

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod sigv4;

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use regex::Regex;
use url::Url;

use super::{Credential, RegistryError};

/// A credential is renewed this long before the cloud says it expires (docs/cloud-registries.md).
pub const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Timeout of one request to a credential source.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(15);

/// A registry credential issued by a cloud, and when it stops working.
#[derive(Clone)]
pub struct Issued {
    /// The credential (its origin names the cloud).
    pub credential: Credential,
    /// When the cloud says it stops working.
    pub expires_at: SystemTime,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("credential", &self.credential)
            .field("expires_at", &httpdate::fmt_http_date(self.expires_at))
            .finish()
    }
}

/// Which step of a cloud flow failed, e.g. step "STS AssumeRoleWithWebIdentity", message "AccessDenied: …".
/// Never holds a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{step}: {message}")]
pub struct CloudError {
    /// The step, as the provider names its API ("ECR GetAuthorizationToken").
    pub step: &'static str,
    /// What went wrong; text from the cloud is escaped and cut short.
    pub message: String,
}

impl CloudError {
    /// An error of `step`; `message` may quote a server, so it is escaped for logs and Events.
    pub fn new(step: &'static str, message: impl Into<String>) -> Self {
        Self {
            step,
            message: crate::untrusted::echo(&message.into()).into_owned(),
        }
    }
}

/// A cloud whose identity can be used for its registries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    /// Amazon ECR.
    Aws,
    /// Google Artifact Registry and Container Registry.
    Gcp,
    /// Azure Container Registry.
    Azure,
}

impl Provider {
    /// The name used in `CLOUD_REGISTRY_AUTH` and cache identities.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::Gcp => "gcp",
            Self::Azure => "azure",
        }
    }

    /// `aws`, `gcp` or `azure` (any case).
    pub fn parse(word: &str) -> Option<Self> {
        match word.trim().to_ascii_lowercase().as_str() {
            "aws" => Some(Self::Aws),
            "gcp" => Some(Self::Gcp),
            "azure" => Some(Self::Azure),
            _ => None,
        }
    }

    /// Whether `host` (no port, lowercase) is one of this provider's registry hosts.
    pub fn serves(self, host: &str) -> bool {
        patterns(self).iter().any(|p| p.is_match(host))
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// The exact patterns of docs/cloud-registries.md (SPEC §14). Anchored: a suffix or prefix match would hand
// the identity to `123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.com`.
static ECR: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"^[0-9]{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"));
static GAR: LazyLock<Regex> = LazyLock::new(|| pattern(r"^[a-z0-9-]+-docker\.pkg\.dev$"));
static GCR: LazyLock<Regex> = LazyLock::new(|| pattern(r"^([a-z]+\.)?gcr\.io$"));
static ACR: LazyLock<Regex> = LazyLock::new(|| pattern(r"^[a-z0-9]+\.azurecr\.(io|cn|us)$"));

#[allow(clippy::expect_used)]
fn pattern(source: &str) -> Regex {
    // The patterns are constants checked by the tests below; failing here is a bug, not input.
    Regex::new(source).expect("the cloud registry patterns are valid regular expressions")
}

fn patterns(provider: Provider) -> Vec<&'static Regex> {
    match provider {
        Provider::Aws => vec![&*ECR],
        Provider::Gcp => vec![&*GAR, &*GCR],
        Provider::Azure => vec![&*ACR],
    }
}

/// The provider whose registry `registry` (`host[:port]` as in an image reference) is, by the exact patterns.
pub fn provider_for(registry: &str) -> Option<Provider> {
    let host = host_of(registry);
    [Provider::Aws, Provider::Gcp, Provider::Azure]
        .into_iter()
        .find(|p| p.serves(&host))
}

/// Whether a URL may carry a credential of `provider`: HTTPS to a host of the provider's patterns (the
/// registry itself or a token realm on such a host).
pub fn may_carry(provider: Provider, url: &Url) -> bool {
    url.scheme() == "https" && url.host_str().is_some_and(|h| provider.serves(h))
}

/// `Registry:5000` → `registry`: patterns are matched on the host alone (a port is not part of it).
fn host_of(registry: &str) -> String {
    let lower = registry.trim().to_ascii_lowercase();
    match lower.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host.to_owned(),
        _ => lower,
    }
}

/// The environment a credential flow reads (the providers' standard variables). Tests hand in a map; the
/// controller reads the process environment, which kubelet and the providers' webhooks populate.
#[derive(Clone)]
pub struct Env(Arc<Lookup>);

/// Reads one variable.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Self(Arc::new(|name| std::env::var(name).ok()))
    }

    /// Fixed variables (tests, `check` with explicit settings).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map: HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self(Arc::new(move |name| map.get(name).cloned()))
    }

    /// The value of `name`; an empty variable counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::process()
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Env(..)")
    }
}

/// The base URL of a credential source: the provider's default, or its standard override variable, which is
/// accepted as http:// only for a loopback host (SPEC §14).
pub fn endpoint(var: &str, default: &str) -> Result<Url, CloudError> {
    endpoint_in(&Env::process(), var, default)
}

/// As [`endpoint`], reading `var` from `env`.
pub fn endpoint_in(env: &Env, var: &str, default: &str) -> Result<Url, CloudError> {
    let (raw, overridden) = match env.get(var) {
        Some(value) => (value, true),
        None => (default.to_owned(), false),
    };
    // Overrides are often written without a scheme (`GCE_METADATA_HOST=127.0.0.1:8080`).
    let with_scheme = if raw.contains("://") {
        raw.clone()
    } else if overridden && is_loopback_authority(&raw) {
        format!("http://{raw}")
    } else {
        format!("https://{raw}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| {
        CloudError::new(
            "endpoint",
            format!("{var}={raw:?} is not a URL ({e}); example: {var}=https://host.example:8443"),
        )
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if overridden && url.host().is_some_and(|h| is_loopback(&h)) => Ok(url),
        "http" if !overridden => Ok(url),
        _ => Err(CloudError::new(
            "endpoint",
            format!(
                "{var}={raw:?} is refused: credentials are fetched over https://, or http:// to a loopback \
                 host only (127.0.0.1, ::1, localhost)"
            ),
        )),
    }
}

fn is_loopback_authority(authority: &str) -> bool {
    Url::parse(&format!("http://{authority}"))
        .ok()
        .and_then(|u| u.host().map(|h| is_loopback(&h)))
        .unwrap_or(false)
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// The link-local addresses the providers serve credentials on over plain HTTP: the EKS Pod Identity agent
/// (`169.254.170.23`, `fd00:ec2::23`), the ECS agent (`169.254.170.2`) and the GKE/GCE metadata server
/// (`169.254.169.254`, `metadata.google.internal`).
pub fn is_provider_link_local(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("metadata.google.internal"),
        Some(url::Host::Ipv4(ip)) => [
            [169, 254, 170, 23],
            [169, 254, 170, 2],
            [169, 254, 169, 254],
        ]
        .contains(&ip.octets()),
        Some(url::Host::Ipv6(ip)) => ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23),
        None => false,
    }
}

/// Whether a request to a credential source may go to `url`: HTTPS, or HTTP to loopback or to a provider's
/// link-local address.
pub fn source_url_allowed(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => url.host().is_some_and(|h| is_loopback(&h)) || is_provider_link_local(url),
        _ => false,
    }
}

/// Settings of cloud identity (docs/settings.md#cloud-registries).
#[derive(Debug, Clone, Default)]
pub struct CloudConfig {
    /// Enabled providers (`CLOUD_REGISTRY_AUTH`); empty: cloud identity is off.
    pub providers: Vec<Provider>,
    /// Namespaces allowed to use it (`CLOUD_REGISTRY_NAMESPACES`); empty: every watched namespace.
    pub namespaces: Vec<String>,
    /// The providers' environment.
    pub env: Env,
}

impl CloudConfig {
    /// Whether `namespace` may use cloud identity at all.
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }

    /// The enabled provider serving `registry`, if any.
    pub fn provider_for(&self, registry: &str) -> Option<Provider> {
        provider_for(registry).filter(|p| self.providers.contains(p))
    }
}

/// Labels of `cloud_credential_fetches_total`: bounded (three providers, a fixed list of step names).
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct FetchLabels {
    provider: &'static str,
    /// `issued`, or the step that failed ("STS AssumeRoleWithWebIdentity").
    outcome: &'static str,
}

/// One cached credential and the lock that makes concurrent fetches of it one.
type Slot = Arc<tokio::sync::Mutex<Option<Issued>>>;

/// Issues and caches cloud credentials for one process.
pub struct CloudIdentity {
    config: CloudConfig,
    http: reqwest::Client,
    slots: Mutex<HashMap<String, Slot>>,
    fetches: Family<FetchLabels, Counter>,
}

impl fmt::Debug for CloudIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudIdentity")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CloudIdentity {
    /// The credential-source client and an empty cache. `ca_file` is `REGISTRY_CA_FILE`, trusted besides the
    /// platform roots (docs/cloud-registries.md: for overridden endpoints in tests and sovereign clouds).
    ///
    /// `resolve` is `RegistryConfig::resolve`: ACR's `/oauth2/exchange` is on the registry host itself, so a
    /// test reaching a fake registry by name must reach its exchange the same way.
    pub fn new(
        config: CloudConfig,
        ca_file: Option<&std::path::Path>,
        resolve: &[(String, std::net::SocketAddr)],
    ) -> Result<Self, RegistryError> {
        crate::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            // A credential source that redirects is not followed: the next host could be anyone's.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(SOURCE_TIMEOUT)
            .connect_timeout(SOURCE_TIMEOUT)
            .user_agent(concat!("watch-cluster/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            builder = builder.tls_certs_merge(super::http::read_ca_file(path)?);
        }
        for (host, addr) in resolve {
            builder = builder.resolve(host, *addr);
        }
        let http = builder.build().map_err(|e| RegistryError::Config {
            detail: "the HTTP client for cloud credential sources could not be built".to_owned(),
            source: Some(Arc::new(e)),
        })?;
        Ok(Self {
            config,
            http,
            slots: Mutex::default(),
            fetches: Family::default(),
        })
    }

    /// Registers `cloud_credential_fetches_total{provider, outcome}`: every fetch from a cloud (cache hits are
    /// not fetches), `outcome` being `issued` or the step that failed.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "cloud_credential_fetches",
            "Registry credentials fetched with the controller's cloud identity, by provider and outcome",
            self.fetches.clone(),
        );
    }

    /// The settings.
    pub fn config(&self) -> &CloudConfig {
        &self.config
    }

    /// The credential for `registry` used by a workload in `namespace`: `None` when cloud identity does not
    /// apply (namespace not allowed, no enabled provider serves the host).
    pub async fn credential_for(
        &self,
        namespace: &str,
        registry: &str,
    ) -> Option<Result<Credential, CloudError>> {
        if !self.config.allows_namespace(namespace) {
            tracing::debug!(
                namespace,
                registry,
                "cloud identity is not allowed in this namespace"
            );
            return None;
        }
        let provider = self.config.provider_for(registry)?;
        Some(
            self.issue_cached(provider, registry, SystemTime::now())
                .await,
        )
    }

    /// The cached credential of the identity serving `registry` (`host[:port]`), or a fresh one. Callers
    /// asking at the same time wait for one fetch.
    pub async fn issue_cached(
        &self,
        provider: Provider,
        registry: &str,
        now: SystemTime,
    ) -> Result<Credential, CloudError> {
        let host = host_of(registry);
        let host = host.as_str();
        let identity = self.identity(provider, host)?;
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(slots.entry(identity.clone()).or_default())
        };
        let mut cached = slot.lock().await;
        if let Some(issued) = cached.as_ref().filter(|i| usable_at(i, now)) {
            return Ok(issued.credential.clone());
        }
        let span = tracing::info_span!("cloud_credential", provider = %provider, registry = host, identity = %identity);
        let outcome = tracing::Instrument::instrument(self.issue(provider, registry), span).await;
        let labels = FetchLabels {
            provider: provider.name(),
            outcome: outcome.as_ref().map_or_else(|e| e.step, |_| "issued"),
        };
        self.fetches.get_or_create(&labels).inc();
        let mut issued = outcome?;
        // Whatever the provider built, the transport must know it is this cloud's: that is what keeps it
        // to the cloud's own HTTPS hosts.
        issued.credential.origin = super::Origin::Cloud(provider);
        tracing::info!(provider = %provider, registry = host, identity = %identity,
            expires_at = %httpdate::fmt_http_date(issued.expires_at), "issued a registry credential from cloud identity");
        let credential = issued.credential.clone();
        *cached = Some(issued);
        Ok(credential)
    }

    /// `cloud:<provider>:<role or client id>`, plus what the credential is scoped to beyond the identity
    /// (an ECR token is per region, an ACR token per registry).
    fn identity(&self, provider: Provider, host: &str) -> Result<String, CloudError> {
        let env = &self.config.env;
        Ok(match provider {
            Provider::Aws => format!(
                "cloud:aws:{}@{}",
                aws::principal(env),
                aws::Region::of_host(host)?.name
            ),
            Provider::Gcp => "cloud:gcp:default".to_owned(),
            Provider::Azure => format!(
                "cloud:azure:{}@{host}",
                env.get("AZURE_CLIENT_ID").unwrap_or_default()
            ),
        })
    }

    async fn issue(&self, provider: Provider, registry: &str) -> Result<Issued, CloudError> {
        match provider {
            Provider::Aws => aws::issue_with(&self.http, registry, &self.config.env).await,
            Provider::Gcp => gcp::issue_with(&self.http, &self.config.env).await,
            Provider::Azure => azure::issue_with(&self.http, registry, &self.config.env).await,
        }
    }
}

/// Whether a credential issued earlier is still used at `now`: until 5 minutes before it expires.
pub fn usable_at(issued: &Issued, now: SystemTime) -> bool {
    issued
        .expires_at
        .checked_sub(RENEW_BEFORE_EXPIRY)
        .is_some_and(|renew_at| now < renew_at)
}

// A failed request to a credential source is described as a registry request's is: its kind and innermost
// cause, never its headers.
pub(crate) use super::error::describe_transport as describe;

/// Refuses a plain-HTTP source that is neither loopback nor a provider's link-local address.
pub(crate) fn check_source(step: &'static str, url: &Url) -> Result<(), CloudError> {
    if source_url_allowed(url) {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    Err(CloudError::new(
        step,
        format!(
            "refusing {}://{host}: credential sources are reached over https://, or http:// only on loopback or \
             the provider's link-local address",
            url.scheme()
        ),
    ))
}

#[cfg(test)]
mod tests;
