//! One logical registry request: rate-limit gate, concurrency bound, authentication and retries.
//!
//! Input: a [`Call`] (repository, method, URL, optional credential). Output: the registry's 2xx [`Reply`]
//! or a typed error. The HTTP exchange itself (TLS policy, manual redirects) is in `http`.
//!
//! Authentication follows the registry's challenge: the first request to a registry goes out anonymous;
//! a 401 names Basic or Bearer, which is remembered per registry host so later requests authenticate at
//! once. Bearer tokens are cached per (registry, repository scope, credential) until shortly before they
//! expire, and one token request serves every lookup waiting for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use reqwest::Method;
use reqwest::header::WWW_AUTHENTICATE;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use super::auth::{self, Challenge, Token};
use super::cache::Coalescing;
use super::http::{Exchange, Http, Reply};
use super::metrics::Metrics;
use super::ratelimit::Pauses;
use super::{Credential, RegistryConfig, RegistryError, Repository, api_host};
use crate::retry::Backoff;

/// Cached tokens beyond this many are pruned when stale.
const MAX_TOKENS: usize = 4096;
/// 429 answers waited out within one lookup before giving up with `RateLimited`.
const MAX_RATE_LIMITED_ATTEMPTS: u32 = 3;
/// The longest wait between retries of a 5xx or a timeout, however many attempts are configured.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// One request to make for a lookup.
pub(crate) struct Call<'a> {
    pub(crate) repo: &'a Repository,
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) manifest_accept: bool,
    pub(crate) credential: Option<&'a Credential>,
    /// What is being done, for errors: "list tags of registry:5000/team/app".
    pub(crate) target: &'a str,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    host: String,
    scope: String,
    credential: String,
}

/// Shared request machinery of one [`super::RegistryClient`].
pub(crate) struct Transport {
    pub(crate) http: Http,
    pub(crate) config: RegistryConfig,
    pub(crate) metrics: Metrics,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
    pauses: Pauses,
    challenges: Mutex<HashMap<String, Challenge>>,
    tokens: Coalescing<TokenKey, Token>,
}

impl Transport {
    pub(crate) fn new(config: RegistryConfig, metrics: Metrics) -> Result<Self, RegistryError> {
        Ok(Self {
            http: Http::new(&config)?,
            config,
            metrics,
            semaphores: Mutex::default(),
            pauses: Pauses::default(),
            challenges: Mutex::default(),
            tokens: Coalescing::new(MAX_TOKENS),
        })
    }

    /// `<scheme>://<api host>/v2/<name>/<segments…>`; plain HTTP only for insecure registries.
    pub(crate) fn repo_url(
        &self,
        repo: &Repository,
        segments: &[&str],
        target: &str,
    ) -> Result<Url, RegistryError> {
        self.http.repo_url(repo, segments, target)
    }

    /// Sends `call`, authenticating as the registry asks, and returns its successful reply.
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<Reply, RegistryError> {
        let host = api_host(&call.repo.registry);
        refuse_cloud_credential(call, &call.url, "registry")?;
        let mut auth = self.authorization(call, &host).await?;
        let (mut challenged, mut failures, mut limited) = (false, 0u32, 0u32);
        loop {
            let reply = match self
                .exchange(call, &host, call.url.clone(), auth.clone())
                .await
            {
                Err(e) if is_timeout(&e) && failures + 1 < self.config.max_attempts => {
                    failures += 1;
                    self.backoff(failures).await;
                    continue;
                }
                other => other?,
            };
            match reply.status {
                s if (200..300).contains(&s) => return Ok(reply),
                401 if !challenged => {
                    challenged = true;
                    let next = self.answer_challenge(call, &host, &reply).await?;
                    if next.is_none() || next == auth {
                        return Err(unauthorized(call, "the registry refused anonymous access"));
                    }
                    auth = next;
                }
                401 | 403 => {
                    return Err(unauthorized(call, "the registry refused the credentials"));
                }
                404 => {
                    return Err(RegistryError::NotFound {
                        target: call.target.to_owned(),
                    });
                }
                429 => {
                    limited += 1;
                    self.after_rate_limit(call, &host, limited)?;
                }
                s if (s >= 500 || s == 408) && failures + 1 < self.config.max_attempts => {
                    failures += 1;
                    self.backoff(failures).await;
                }
                status => {
                    return Err(RegistryError::Status {
                        target: call.target.to_owned(),
                        status,
                    });
                }
            }
        }
    }

    async fn exchange(
        &self,
        call: &Call<'_>,
        host: &str,
        url: Url,
        authorization: Option<String>,
    ) -> Result<Reply, RegistryError> {
        let _permit = self.admit(call, host).await?;
        let exchange = Exchange {
            registry_label: &call.repo.registry,
            registry_host: host,
            method: call.method.clone(),
            url,
            manifest_accept: call.manifest_accept,
            authorization,
            target: call.target,
        };
        let reply = self.http.exchange(exchange, &self.metrics).await?;
        if let Some(pause) = reply.pause {
            self.pauses.pause(host, pause);
        }
        Ok(reply)
    }

    /// Waits out a short pause of the registry, then takes one of its concurrency permits.
    async fn admit(
        &self,
        call: &Call<'_>,
        host: &str,
    ) -> Result<OwnedSemaphorePermit, RegistryError> {
        loop {
            if let Some(remaining) = self.pauses.remaining(host) {
                if remaining > self.config.max_rate_limit_wait {
                    return Err(RegistryError::RateLimited {
                        target: call.target.to_owned(),
                        until: SystemTime::now() + remaining,
                    });
                }
                self.metrics.rate_limit_wait(&call.repo.registry);
                tracing::debug!(registry = %call.repo.registry, wait_ms = remaining.as_millis() as u64, "waiting out a registry rate limit");
                tokio::time::sleep(remaining).await;
                continue;
            }
            let permit = Arc::clone(&self.semaphore(host))
                .acquire_owned()
                .await
                .map_err(|_| RegistryError::Config {
                    detail: "the registry concurrency limiter was closed".to_owned(),
                    source: None,
                })?;
            if self.pauses.remaining(host).is_none() {
                return Ok(permit);
            }
        }
    }

    fn semaphore(&self, host: &str) -> Arc<Semaphore> {
        let mut map = self
            .semaphores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let permits = self.config.max_concurrent_per_registry.max(1);
        Arc::clone(
            map.entry(host.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(permits))),
        )
    }

    fn after_rate_limit(
        &self,
        call: &Call<'_>,
        host: &str,
        limited: u32,
    ) -> Result<(), RegistryError> {
        let remaining = self.pauses.remaining(host).unwrap_or_default();
        if limited < MAX_RATE_LIMITED_ATTEMPTS && remaining <= self.config.max_rate_limit_wait {
            return Ok(());
        }
        Err(RegistryError::RateLimited {
            target: call.target.to_owned(),
            until: SystemTime::now() + remaining,
        })
    }

    async fn backoff(&self, failures: u32) {
        let backoff = Backoff::new(self.config.retry_base_delay, MAX_RETRY_DELAY);
        tokio::time::sleep(backoff.delay(failures)).await;
    }

    /// Remembers the challenge of a 401 and computes the `Authorization` answering it.
    async fn answer_challenge(
        &self,
        call: &Call<'_>,
        host: &str,
        reply: &Reply,
    ) -> Result<Option<String>, RegistryError> {
        let values = reply
            .headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let Some(challenge) = auth::select_challenge(values) else {
            return Err(unauthorized(
                call,
                "the registry sent no usable WWW-Authenticate challenge",
            ));
        };
        self.lock_challenges().insert(host.to_owned(), challenge);
        self.tokens.invalidate(&token_key(call, host));
        self.authorization(call, host).await
    }

    /// The `Authorization` value for `call`, from the registry's known challenge (none before the first 401).
    async fn authorization(
        &self,
        call: &Call<'_>,
        host: &str,
    ) -> Result<Option<String>, RegistryError> {
        let challenge = self.lock_challenges().get(host).cloned();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(call.credential.map(auth::basic_header)),
            Some(Challenge::Bearer { realm, service }) => {
                let key = token_key(call, host);
                let token = self
                    .tokens
                    .get_or_fetch(&key, || async {
                        match self
                            .fetch_token(call, host, &realm, service.as_deref(), &key.scope)
                            .await
                        {
                            Ok(t) => {
                                let until = t.use_until;
                                (Ok(t), until)
                            }
                            Err(e) => (Err(e), Instant::now()),
                        }
                    })
                    .await?;
                Ok(Some(format!("Bearer {}", token.value)))
            }
        }
    }

    /// Asks the realm the registry named for a pull token; the credential goes only there.
    async fn fetch_token(
        &self,
        call: &Call<'_>,
        host: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Token, RegistryError> {
        let mut url = Url::parse(realm).map_err(|e| {
            RegistryError::malformed(
                call.target,
                format!("token realm `{realm}` is not a URL: {e}"),
            )
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        refuse_cloud_credential(call, &url, "token realm")?;
        let token_call = Call {
            method: Method::GET,
            url: url.clone(),
            manifest_accept: false,
            ..*call
        };
        let authorization = call.credential.map(auth::basic_header);
        let reply = self.exchange(&token_call, host, url, authorization).await?;
        match reply.status {
            200 => auth::decode_token(&reply.body, Instant::now())
                .map_err(|d| RegistryError::malformed(call.target, d)),
            401 | 403 => Err(unauthorized(
                call,
                "the token server refused the credentials",
            )),
            429 => Err(RegistryError::RateLimited {
                target: call.target.to_owned(),
                until: SystemTime::now() + self.pauses.remaining(host).unwrap_or_default(),
            }),
            status => Err(RegistryError::Status {
                target: format!("{} (token server)", call.target),
                status,
            }),
        }
    }

    fn lock_challenges(&self) -> std::sync::MutexGuard<'_, HashMap<String, Challenge>> {
        self.challenges
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn token_key(call: &Call<'_>, host: &str) -> TokenKey {
    TokenKey {
        host: host.to_owned(),
        scope: format!("repository:{}:pull", call.repo.name),
        credential: Credential::cache_key(call.credential),
    }
}

/// A cloud credential goes only over HTTPS to its cloud's registry hosts, for the registry and its token
/// realm alike (docs/cloud-registries.md); `INSECURE_REGISTRIES` never applies to it.
fn refuse_cloud_credential(call: &Call<'_>, url: &Url, what: &str) -> Result<(), RegistryError> {
    let Some(provider) = call.credential.and_then(Credential::cloud_provider) else {
        return Ok(());
    };
    if super::cloud::may_carry(provider, url) {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    Err(RegistryError::CloudRefused {
        target: call.target.to_owned(),
        detail: format!(
            "refusing to send the controller's {provider} credential to the {what} {}://{host}: only https:// to              {provider} registry hosts is allowed (remove the host from INSECURE_REGISTRIES, or give the workload a              pull secret for it)",
            url.scheme()
        ),
    })
}

fn unauthorized(call: &Call<'_>, detail: &str) -> RegistryError {
    RegistryError::Unauthorized {
        target: call.target.to_owned(),
        detail: detail.to_owned(),
    }
}

fn is_timeout(err: &RegistryError) -> bool {
    matches!(err, RegistryError::Transport { source, .. } if source.is_timeout())
}
