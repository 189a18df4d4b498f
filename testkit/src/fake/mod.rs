//! An in-process fake OCI registry for fault injection (axum on `127.0.0.1:0`).
//!
//! Input: programmed repositories ([`FakeRegistry::set_tags`], [`FakeRegistry::set_digest`],
//! [`FakeRegistry::set_manifest`]), an optional auth mode ([`FakeRegistry::require_basic`],
//! [`FakeRegistry::require_bearer`]), a tag-list mode ([`TagListMode`]) and queued [`Fault`]s. Output: answers of
//! the distribution API (`/v2/`, `tags/list`, `manifests`, and a `/token` endpoint) and a log of every request
//! with the instant it arrived, so tests can assert exact requests, counts and timing (for example that nothing
//! was sent before a `Retry-After` elapsed).
//!
//! The real registry (see [`crate::registry`]) is the reference for behaviour; this fake exists for what the real
//! one cannot do: paginate tags, rate-limit, fail, stall, or lie.

mod fault;
mod routes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use http::{HeaderMap, Method};
use tokio::sync::watch;

use crate::serve::{Server, Stopped, stop_signal};
pub use fault::{Fault, RetryAfter};
use fault::{QueuedFault, Times};

/// The service name in the fake's Bearer challenges.
pub const FAKE_SERVICE: &str = "fake-registry";

/// How `tags/list` treats `n` and `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagListMode {
    /// Sorted tags, pages of `n` after `last`, and a `Link: <…>; rel="next"` header while more remain.
    #[default]
    Paginate,
    /// Every tag in the order set, `n`/`last` ignored, no `Link` (distribution 2.8's behaviour).
    IgnorePagination,
}

/// A request as the fake registry saw it.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// HTTP method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// Query string without `?`, if any.
    pub query: Option<String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// When it arrived (monotonic).
    pub at: Instant,
    /// When it arrived (wall clock, to compare with HTTP-date `Retry-After`).
    pub wall: SystemTime,
}

impl LoggedRequest {
    /// The value of header `name` when present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of header `name` (e.g. each `Accept` line).
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }
}

/// One programmed repository.
#[derive(Debug, Clone, Default)]
pub(crate) struct Repo {
    /// Tags in the order they were set.
    pub(crate) tags: Vec<String>,
    /// Tag → (digest, media type).
    pub(crate) digests: HashMap<String, (String, String)>,
    /// Digest → (media type, body) for GET.
    pub(crate) manifests: HashMap<String, (String, bytes::Bytes)>,
    /// Digest → body for `GET /v2/<repo>/blobs/<digest>`.
    pub(crate) blobs: HashMap<String, bytes::Bytes>,
}

/// Authentication the fake demands.
#[derive(Debug, Clone, Default)]
pub(crate) enum Auth {
    #[default]
    None,
    Basic {
        user: String,
        password: String,
    },
    Bearer {
        credentials: Option<(String, String)>,
        expires_in: u64,
    },
}

#[derive(Debug, Default)]
pub(crate) struct Programmed {
    pub(crate) repos: HashMap<String, Repo>,
    pub(crate) mode: TagListMode,
    pub(crate) auth: Auth,
    pub(crate) faults: Vec<QueuedFault>,
    /// Issued Bearer token → when it expires.
    pub(crate) tokens: HashMap<String, Instant>,
    /// Whether `GET /v2/<repo>/referrers/<digest>` is served (OCI distribution 1.1); off answers 404,
    /// as distribution 2.8 does.
    pub(crate) referrers_api: bool,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) programmed: Mutex<Programmed>,
    pub(crate) log: Mutex<Vec<LoggedRequest>>,
    pub(crate) stopped: Stopped,
    /// `http://127.0.0.1:PORT`, known once bound (for the token realm).
    pub(crate) base_url: Mutex<String>,
    /// Number of logged requests; waiters wake on each one.
    pub(crate) logged: watch::Sender<usize>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler cannot leave these plain maps half-updated in a way later tests would rely on.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake registry; stops on drop.
#[derive(Debug)]
pub struct FakeRegistry {
    server: Server,
    shared: Arc<Shared>,
}

impl FakeRegistry {
    /// Starts an empty fake registry: anonymous, paginating, no faults.
    pub async fn start() -> anyhow::Result<Self> {
        let (tx, stopped) = stop_signal();
        let shared = Arc::new(Shared {
            programmed: Mutex::new(Programmed::default()),
            log: Mutex::new(Vec::new()),
            stopped: stopped.clone(),
            base_url: Mutex::new(String::new()),
            logged: watch::Sender::new(0),
        });
        let app = Router::new()
            .fallback(routes::handle)
            .with_state(shared.clone());
        let server = Server::spawn(app, (tx, stopped)).await?;
        *lock(&shared.base_url) = format!("http://{}", server.addr());
        Ok(Self { server, shared })
    }

    /// `127.0.0.1:PORT`, the registry host as it appears in image references.
    pub fn host(&self) -> String {
        self.server.addr().to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Replaces the tag list of `repo` (creating it); tags keep this order in [`TagListMode::IgnorePagination`].
    pub fn set_tags(&self, repo: &str, tags: Vec<String>) {
        let mut p = lock(&self.shared.programmed);
        p.repos.entry(repo.to_owned()).or_default().tags = tags;
    }

    /// Points `repo:tag` at `digest` (media type: OCI image index), adding the tag to the list if new.
    pub fn set_digest(&self, repo: &str, tag: &str, digest: &str) {
        self.point(repo, tag, digest, crate::registry::OCI_INDEX);
    }

    /// Stores `body` as a manifest of `media_type` under its SHA-256 digest, so GET by digest serves it; when
    /// `tag` is given, points the tag at it. Returns the digest.
    pub fn set_manifest(
        &self,
        repo: &str,
        tag: Option<&str>,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let digest = crate::registry::digest_of(body);
        {
            let mut p = lock(&self.shared.programmed);
            let r = p.repos.entry(repo.to_owned()).or_default();
            r.manifests.insert(
                digest.clone(),
                (media_type.to_owned(), bytes::Bytes::copy_from_slice(body)),
            );
        }
        if let Some(tag) = tag {
            self.point(repo, tag, &digest, media_type);
        }
        digest
    }

    fn point(&self, repo: &str, tag: &str, digest: &str, media_type: &str) {
        let mut p = lock(&self.shared.programmed);
        let r = p.repos.entry(repo.to_owned()).or_default();
        if !r.tags.iter().any(|t| t == tag) {
            r.tags.push(tag.to_owned());
        }
        r.digests
            .insert(tag.to_owned(), (digest.to_owned(), media_type.to_owned()));
    }

    /// Stores `body` as a blob of `repo`; returns its SHA-256 digest.
    pub fn set_blob(&self, repo: &str, body: &[u8]) -> String {
        let digest = crate::registry::digest_of(body);
        let mut p = lock(&self.shared.programmed);
        p.repos
            .entry(repo.to_owned())
            .or_default()
            .blobs
            .insert(digest.clone(), bytes::Bytes::copy_from_slice(body));
        digest
    }

    /// Serves the referrers API: an OCI index of the stored manifests whose `subject` is the digest.
    pub fn set_referrers_api(&self, enabled: bool) {
        lock(&self.shared.programmed).referrers_api = enabled;
    }

    /// Chooses how `tags/list` treats `n` and `last`.
    pub fn set_tag_list_mode(&self, mode: TagListMode) {
        lock(&self.shared.programmed).mode = mode;
    }

    /// Demands Basic credentials on `/v2/…` (401 with `WWW-Authenticate: Basic realm="fake-registry"` otherwise).
    pub fn require_basic(&self, user: &str, password: &str) {
        lock(&self.shared.programmed).auth = Auth::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        };
    }

    /// Demands Bearer tokens on `/v2/…`: 401 with `WWW-Authenticate: Bearer realm="<base>/token",
    /// service="fake-registry",scope="repository:<name>:pull"`. `/token` checks Basic `credentials` when given
    /// (anonymous otherwise) and issues tokens valid for `expires_in` seconds.
    pub fn require_bearer(&self, credentials: Option<(&str, &str)>, expires_in: u64) {
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        lock(&self.shared.programmed).auth = Auth::Bearer {
            credentials,
            expires_in,
        };
    }

    /// Queues `fault` for the next request whose path starts with `path_prefix`.
    pub fn fault(&self, path_prefix: &str, fault: Fault) {
        self.queue(path_prefix, fault, Times::Remaining(1));
    }

    /// Queues `fault` for the next `times` matching requests.
    pub fn fault_times(&self, path_prefix: &str, fault: Fault, times: usize) {
        if times > 0 {
            self.queue(path_prefix, fault, Times::Remaining(times));
        }
    }

    /// Applies `fault` to every matching request until [`FakeRegistry::clear_faults`].
    pub fn fault_always(&self, path_prefix: &str, fault: Fault) {
        self.queue(path_prefix, fault, Times::Always);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.programmed).faults.clear();
    }

    fn queue(&self, path_prefix: &str, fault: Fault, times: Times) {
        lock(&self.shared.programmed).faults.push(QueuedFault {
            path_prefix: path_prefix.to_owned(),
            fault,
            times,
        });
    }

    /// Every request so far (including `/token`), in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).clone()
    }

    /// How many requests had `method` and a path starting with `path_prefix`.
    pub fn count(&self, method: Method, path_prefix: &str) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .count()
    }

    /// How many requests reached the token endpoint.
    pub fn token_requests(&self) -> usize {
        self.count(Method::GET, "/token")
    }

    /// Waits until `count(method, path_prefix) >= n`; fails after `timeout`. Wakes on every logged request.
    pub async fn wait_for_count(
        &self,
        method: Method,
        path_prefix: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let mut logged = self.shared.logged.subscribe();
        let reached = logged.wait_for(|_| self.count(method.clone(), path_prefix) >= n);
        match tokio::time::timeout(timeout, reached).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => anyhow::bail!("fake registry stopped while waiting for requests"),
            Err(_) => anyhow::bail!(
                "timed out after {timeout:?} waiting for {n} {method} {path_prefix}…; saw {}",
                self.count(method.clone(), path_prefix)
            ),
        }
    }
}
