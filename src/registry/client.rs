//! [`RegistryClient`]: the three lookups the controller needs, shared and coalesced.
//!
//! Input: a [`Repository`], an optional [`Credential`], a tag or digest. Output: `Arc`-shared answers.
//! Tag lists and tag digests are shared per (registry, repository, credential) for `cache_ttl`; identical
//! lookups in flight at once make one request. Child digests of an index are kept for the life of the
//! process (digests are immutable), still keyed by credential so one namespace's secret never answers
//! another's lookup. [`RegistryClient::with_max_age`] bounds the age of shared answers a caller accepts. With [`RegistryConfig::sharing`] off (the benchmark's naive baseline) every lookup
//! is its own request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::LINK;

use super::cache::Coalescing;
use super::manifest;
use super::metrics::Metrics;
use super::tags::{self, Next, Pager};
use super::transport::{Call, Transport};
use super::{Credential, RegistryConfig, RegistryError, Repository, api_host};

/// Entries beyond this many are pruned when stale.
const MAX_ENTRIES: usize = 16_384;
/// "For the life of the process" for immutable answers.
const IMMUTABLE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

#[derive(Clone, PartialEq, Eq, Hash)]
struct LookupKey {
    registry: String,
    name: String,
    item: String,
    credential: String,
}

impl LookupKey {
    fn new(repo: &Repository, item: &str, credential: Option<&Credential>) -> Self {
        Self {
            registry: api_host(&repo.registry),
            name: repo.name.clone(),
            item: item.to_owned(),
            credential: Credential::cache_key(credential),
        }
    }
}

pub(super) struct Inner {
    pub(super) transport: Transport,
    tags: Coalescing<LookupKey, Arc<[String]>>,
    digests: Coalescing<LookupKey, String>,
    children: Coalescing<LookupKey, Arc<[String]>>,
    /// Called by [`RegistryClient::forget_repository`]: caches kept elsewhere about a repository
    /// (signature rejections, docs/signatures.md#cache) are dropped with the client's own answers.
    forget_hooks: std::sync::Mutex<Vec<ForgetHook>>,
}

/// Something to drop when a repository is forgotten.
pub type ForgetHook = Box<dyn Fn(&Repository) + Send + Sync>;

/// A registry client shared by every check of the process. Cheap to clone.
#[derive(Clone)]
pub struct RegistryClient {
    pub(super) inner: Arc<Inner>,
    /// The oldest shared answer this handle accepts (tags and tag digests), besides `cache_ttl`.
    max_age: Option<Duration>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient").finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// This client for lookups that must not use a shared answer older than `max_age`.
    ///
    /// A check passes the time since its workload's previous fire time, so a re-pushed tag is seen on
    /// the next tick of a fast schedule rather than after `REGISTRY_CACHE_TTL`; the answers it fetches
    /// are still shared with every other lookup.
    pub fn with_max_age(&self, max_age: Duration) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            max_age: Some(max_age),
        }
    }

    /// Builds the client and registers its metrics into `metrics`.
    ///
    /// Fails when `ca_file` cannot be read or holds no certificate, or the HTTP client cannot be built.
    pub fn new(
        config: RegistryConfig,
        metrics: &mut prometheus_client::registry::Registry,
    ) -> Result<Self, RegistryError> {
        let transport = Transport::new(config, Metrics::register(metrics))?;
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                tags: Coalescing::new(MAX_ENTRIES),
                digests: Coalescing::new(MAX_ENTRIES),
                children: Coalescing::new(MAX_ENTRIES),
                forget_hooks: std::sync::Mutex::default(),
            }),
            max_age: None,
        })
    }

    /// Every tag of `repo`, in the registry's order, following pagination.
    pub async fn list_tags(
        &self,
        repo: &Repository,
        credential: Option<&Credential>,
    ) -> Result<Arc<[String]>, RegistryError> {
        let inner = &self.inner;
        if !inner.sharing() {
            return inner.fetch_tags(repo, credential).await;
        }
        let key = LookupKey::new(repo, "", credential);
        inner
            .tags
            .get_or_fetch_within(&key, self.max_age, || async {
                let result = inner.fetch_tags(repo, credential).await;
                (result, inner.fresh_until())
            })
            .await
    }

    /// The digest `tag` points to (the index digest for multi-arch images), by a manifest `HEAD`.
    pub async fn head_digest(
        &self,
        repo: &Repository,
        tag: &str,
        credential: Option<&Credential>,
    ) -> Result<String, RegistryError> {
        let inner = &self.inner;
        if !inner.sharing() {
            return inner.fetch_digest(repo, tag, credential).await;
        }
        let key = LookupKey::new(repo, tag, credential);
        inner
            .digests
            .get_or_fetch_within(&key, self.max_age, || async {
                let result = inner.fetch_digest(repo, tag, credential).await;
                (result, inner.fresh_until())
            })
            .await
    }

    /// Whether the registry still serves the manifest `digest` (a `HEAD` by digest, cached like a tag's):
    /// `Ok(false)` when it answers 404, so a digest no longer served can be forgotten.
    pub async fn digest_exists(
        &self,
        repo: &Repository,
        digest: &str,
        credential: Option<&Credential>,
    ) -> Result<bool, RegistryError> {
        match self.head_digest(repo, digest, credential).await {
            Ok(_) => Ok(true),
            Err(RegistryError::NotFound { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Drops the shared tag lists and tag digests of `repo` for every credential, and whatever the
    /// [`RegistryClient::on_forget`] hooks keep about it (signature rejections): a push event says they
    /// are stale (SPEC §12). Child digests stay: digests are immutable.
    pub fn forget_repository(&self, repo: &Repository) {
        let registry = api_host(&repo.registry);
        let of_repo = |key: &LookupKey| key.registry == registry && key.name == repo.name;
        self.inner.tags.invalidate_where(of_repo);
        self.inner.digests.invalidate_where(of_repo);
        let hooks = self
            .inner
            .forget_hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for hook in hooks.iter() {
            hook(repo);
        }
    }

    /// Registers `hook` to run on every [`RegistryClient::forget_repository`].
    pub fn on_forget(&self, hook: ForgetHook) {
        self.inner
            .forget_hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(hook);
    }

    /// The child manifest digests of the index `index_digest` (empty for a single-image manifest).
    pub async fn child_digests(
        &self,
        repo: &Repository,
        index_digest: &str,
        credential: Option<&Credential>,
    ) -> Result<Arc<[String]>, RegistryError> {
        let inner = &self.inner;
        if !inner.sharing() {
            return inner.fetch_children(repo, index_digest, credential).await;
        }
        let key = LookupKey::new(repo, index_digest, credential);
        inner
            .children
            .get_or_fetch(&key, || async {
                let result = inner.fetch_children(repo, index_digest, credential).await;
                (result, Instant::now() + IMMUTABLE)
            })
            .await
    }
}

impl Inner {
    /// Whether answers are cached and coalesced ([`RegistryConfig::sharing`]).
    fn sharing(&self) -> bool {
        self.transport.config.sharing
    }

    fn fresh_until(&self) -> Instant {
        Instant::now() + self.transport.config.cache_ttl
    }

    async fn fetch_tags(
        &self,
        repo: &Repository,
        credential: Option<&Credential>,
    ) -> Result<Arc<[String]>, RegistryError> {
        let target = format!("list tags of {repo}");
        let config = &self.transport.config;
        let mut pager = Pager::new(config.page_size.max(1), config.max_pages.max(1));
        let mut url =
            pager.first_url(&self.transport.repo_url(repo, &["tags", "list"], &target)?);
        loop {
            let call = Call {
                repo,
                method: Method::GET,
                url: url.clone(),
                manifest_accept: false,
                credential,
                target: &target,
            };
            let reply = self.transport.send(&call).await?;
            let page =
                tags::decode_page(&reply.body).map_err(|d| RegistryError::malformed(&target, d))?;
            let link = reply
                .headers
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|h| tags::next_link(h, &url));
            match pager.accept(page, link, &url) {
                Next::Fetch(next) => url = next,
                Next::Done => break,
                Next::Stopped(why) => {
                    tracing::warn!(registry = %repo.registry, repository = %repo.name, why, "stopped paging a tag list");
                    break;
                }
            }
        }
        Ok(pager.into_tags().into())
    }

    pub(super) async fn fetch_digest(
        &self,
        repo: &Repository,
        tag: &str,
        credential: Option<&Credential>,
    ) -> Result<String, RegistryError> {
        let target = format!("resolve {repo}:{tag}");
        let call = Call {
            repo,
            method: Method::HEAD,
            url: self
                .transport
                .repo_url(repo, &["manifests", tag], &target)?,
            manifest_accept: true,
            credential,
            target: &target,
        };
        let reply = self.transport.send(&call).await?;
        let header = reply
            .headers
            .get("docker-content-digest")
            .ok_or_else(|| RegistryError::malformed(&target, "no Docker-Content-Digest header"))?;
        let digest = header.to_str().unwrap_or_default().trim();
        if !manifest::is_valid_digest(digest) {
            let shown: String = digest.chars().take(80).collect();
            return Err(RegistryError::malformed(
                &target,
                format!("invalid Docker-Content-Digest `{shown}`"),
            ));
        }
        Ok(digest.to_owned())
    }

    async fn fetch_children(
        &self,
        repo: &Repository,
        digest: &str,
        credential: Option<&Credential>,
    ) -> Result<Arc<[String]>, RegistryError> {
        let target = format!("read the index {repo}@{digest}");
        if !manifest::is_valid_digest(digest) {
            return Err(RegistryError::malformed(
                &target,
                "not a sha256/sha512 digest",
            ));
        }
        let call = Call {
            repo,
            method: Method::GET,
            url: self
                .transport
                .repo_url(repo, &["manifests", digest], &target)?,
            manifest_accept: true,
            credential,
            target: &target,
        };
        let reply = self.transport.send(&call).await?;
        manifest::verify_body(digest, &reply.body)
            .map_err(|d| RegistryError::malformed(&target, d))?;
        let children = manifest::child_digests(&reply.body)
            .map_err(|d| RegistryError::malformed(&target, d))?;
        Ok(children.into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use watch_cluster_testkit::FakeRegistry;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    async fn setup(sharing: bool) -> (FakeRegistry, RegistryClient, Repository) {
        crate::install_crypto_provider();
        let fake = FakeRegistry::start().await.unwrap();
        fake.set_digest("team/app", "1.0", DIGEST);
        let config = RegistryConfig {
            insecure_registries: vec![fake.host()],
            sharing,
            ..RegistryConfig::default()
        };
        let client = RegistryClient::new(
            config,
            &mut prometheus_client::registry::Registry::default(),
        )
        .unwrap();
        let repo = Repository::new(fake.host(), "team/app");
        (fake, client, repo)
    }

    async fn look_up_twice(client: &RegistryClient, repo: &Repository) {
        for _ in 0..2 {
            assert_eq!(client.list_tags(repo, None).await.unwrap().len(), 1);
            assert_eq!(client.head_digest(repo, "1.0", None).await.unwrap(), DIGEST);
        }
    }

    #[tokio::test]
    async fn shared_answers_are_fetched_once_per_window() {
        let (fake, client, repo) = setup(true).await;
        look_up_twice(&client, &repo).await;
        assert_eq!(fake.count(http::Method::GET, "/v2/team/app/tags/list"), 1);
        assert_eq!(fake.count(http::Method::HEAD, "/v2/team/app/manifests/"), 1);
    }

    #[tokio::test]
    async fn a_re_pushed_tag_is_seen_by_a_lookup_whose_max_age_the_shared_answer_exceeds() {
        let (fake, client, repo) = setup(true).await;
        assert_eq!(
            client.head_digest(&repo, "1.0", None).await.unwrap(),
            DIGEST
        );
        let pushed = format!("sha256:{}", "2".repeat(64));
        fake.set_digest("team/app", "1.0", &pushed);
        assert_eq!(
            client.head_digest(&repo, "1.0", None).await.unwrap(),
            DIGEST,
            "within REGISTRY_CACHE_TTL the shared answer stands"
        );
        let every_second = client.with_max_age(Duration::ZERO);
        assert_eq!(
            every_second.head_digest(&repo, "1.0", None).await.unwrap(),
            pushed
        );
        let relaxed = client.with_max_age(Duration::from_secs(60));
        assert_eq!(
            relaxed.head_digest(&repo, "1.0", None).await.unwrap(),
            pushed
        );
        assert_eq!(fake.count(http::Method::HEAD, "/v2/team/app/manifests/"), 2);
    }

    #[tokio::test]
    async fn a_digest_exists_while_the_registry_serves_it_and_not_after() {
        let (fake, client, repo) = setup(false).await;
        let served = fake.set_manifest(
            "team/app",
            None,
            watch_cluster_testkit::registry::OCI_INDEX,
            b"{}",
        );
        assert!(client.digest_exists(&repo, &served, None).await.unwrap());
        let gone = format!("sha256:{}", "9".repeat(64));
        assert!(!client.digest_exists(&repo, &gone, None).await.unwrap());
        let head = format!("/v2/team/app/manifests/{gone}");
        assert_eq!(fake.count(http::Method::HEAD, &head), 1);
    }

    #[tokio::test]
    async fn a_forgotten_repository_is_asked_again_and_other_repositories_are_not() {
        let (fake, client, repo) = setup(true).await;
        fake.set_digest("team/other", "1.0", DIGEST);
        let other = Repository::new(fake.host(), "team/other");
        look_up_twice(&client, &repo).await;
        assert_eq!(
            client.head_digest(&other, "1.0", None).await.unwrap(),
            DIGEST
        );
        let pushed = format!("sha256:{}", "2".repeat(64));
        fake.set_digest("team/app", "1.0", &pushed);
        client.forget_repository(&repo);
        assert_eq!(
            client.head_digest(&repo, "1.0", None).await.unwrap(),
            pushed
        );
        assert_eq!(client.list_tags(&repo, None).await.unwrap().len(), 1);
        assert_eq!(
            client.head_digest(&other, "1.0", None).await.unwrap(),
            DIGEST
        );
        assert_eq!(fake.count(http::Method::GET, "/v2/team/app/tags/list"), 2);
        assert_eq!(fake.count(http::Method::HEAD, "/v2/team/app/manifests/"), 2);
        assert_eq!(
            fake.count(http::Method::HEAD, "/v2/team/other/manifests/"),
            1
        );
    }

    #[tokio::test]
    async fn without_sharing_every_lookup_is_its_own_request() {
        let (fake, client, repo) = setup(false).await;
        look_up_twice(&client, &repo).await;
        assert_eq!(fake.count(http::Method::GET, "/v2/team/app/tags/list"), 2);
        assert_eq!(fake.count(http::Method::HEAD, "/v2/team/app/manifests/"), 2);
    }
}
