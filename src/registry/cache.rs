//! Shared answers: a map from lookup key to one in-flight-or-finished fetch.
//!
//! Input: a key and a fetch that yields a result plus the instant until which a success may be reused.
//! Output: the result, fetched at most once for all callers asking at the same time (coalescing) and
//! reused while fresh. Failures are shared only with the callers that waited for them: the next caller
//! fetches again, so an outage is not remembered past its own request. A caller may also bound the age
//! of the answer it accepts (a check never uses an answer older than its own schedule interval): an
//! answer is as old as the moment its fetch started.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::RegistryError;

struct Answer<V, E> {
    result: Result<V, E>,
    fresh_until: Instant,
}

/// One fetch: when it started, and its outcome once it finished.
struct Entry<V, E> {
    started: Instant,
    outcome: OnceCell<Answer<V, E>>,
}

type Cell<V, E> = Arc<Entry<V, E>>;

/// A coalescing cache of registry answers (and of the few API reads every check of a window shares:
/// `decide::reads`).
pub(crate) struct Coalescing<K, V, E = RegistryError> {
    entries: Mutex<HashMap<K, Cell<V, E>>>,
    max_entries: usize,
}

impl<K: Eq + Hash + Clone, V: Clone, E: Clone> Coalescing<K, V, E> {
    /// A cache that prunes stale entries once it holds more than `max_entries`.
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_entries,
        }
    }

    /// The answer for `key`: a fresh cached one, the one being fetched right now, or a new fetch.
    pub(crate) async fn get_or_fetch<F, Fut>(&self, key: &K, fetch: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = (Result<V, E>, Instant)>,
    {
        self.get_or_fetch_within(key, None, fetch).await
    }

    /// As [`Coalescing::get_or_fetch`], but an answer whose fetch started more than `max_age` ago is not
    /// used: it is fetched again (and the new answer replaces it for everyone).
    pub(crate) async fn get_or_fetch_within<F, Fut>(
        &self,
        key: &K,
        max_age: Option<Duration>,
        fetch: F,
    ) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = (Result<V, E>, Instant)>,
    {
        let cell = self.cell_for(key, max_age);
        let outcome = cell
            .outcome
            .get_or_init(|| async move {
                let (result, fresh_until) = fetch().await;
                Answer {
                    result,
                    fresh_until,
                }
            })
            .await;
        outcome.result.clone()
    }

    /// Forgets `key` (e.g. a token the registry refused).
    pub(crate) fn invalidate(&self, key: &K) {
        self.lock().remove(key);
    }

    /// Forgets every key `matches` selects (a push event made them stale). A fetch in flight still
    /// answers the callers already waiting on it; the next caller fetches again.
    pub(crate) fn invalidate_where(&self, matches: impl Fn(&K) -> bool) {
        self.lock().retain(|key, _| !matches(key));
    }

    fn cell_for(&self, key: &K, max_age: Option<Duration>) -> Cell<V, E> {
        let now = Instant::now();
        let mut entries = self.lock();
        let young_enough = |c: &Cell<V, E>| max_age.is_none_or(|age| now - c.started <= age);
        if let Some(cell) = entries
            .get(key)
            .filter(|c| usable(c, now) && young_enough(c))
        {
            return Arc::clone(cell);
        }
        if entries.len() >= self.max_entries {
            entries.retain(|_, c| usable(c, now));
        }
        if entries.len() >= self.max_entries {
            entries.retain(|_, c| !c.outcome.initialized());
        }
        let cell = Arc::new(Entry {
            started: now,
            outcome: OnceCell::new(),
        });
        entries.insert(key.clone(), Arc::clone(&cell));
        cell
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Cell<V, E>>> {
        // A panic while holding this lock cannot leave the map inconsistent: recover it.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// In flight, or finished successfully and still fresh.
fn usable<V, E>(cell: &Entry<V, E>, now: Instant) -> bool {
    match cell.outcome.get() {
        None => true,
        Some(o) => o.result.is_ok() && now < o.fresh_until,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_identical_lookups_share_one_fetch() {
        let cache = Arc::new(Coalescing::<String, u32>::new(16));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(&"k".to_owned(), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        (Ok(7), Instant::now() + Duration::from_secs(30))
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_and_stale_answers_are_fetched_again() {
        let cache = Coalescing::<u8, u32>::new(16);
        let err = RegistryError::NotFound { target: "x".into() };
        let r = cache
            .get_or_fetch(&1, || async { (Err(err), Instant::now()) })
            .await;
        assert!(r.is_err());
        let r = cache
            .get_or_fetch(&1, || async { (Ok(1), Instant::now()) })
            .await;
        assert_eq!(r.unwrap(), 1);
        let r = cache
            .get_or_fetch(&1, || async {
                (Ok(2), Instant::now() + Duration::from_secs(60))
            })
            .await;
        assert_eq!(r.unwrap(), 2, "an answer fresh only until 'now' is stale");
        let r = cache
            .get_or_fetch(&1, || async { (Ok(3), Instant::now()) })
            .await;
        assert_eq!(r.unwrap(), 2, "a fresh answer is reused");
    }

    #[tokio::test]
    async fn invalidated_keys_are_fetched_again_and_the_others_are_kept() {
        let cache = Coalescing::<u8, u32>::new(16);
        let ttl = || Instant::now() + Duration::from_secs(60);
        for key in [1, 2, 3] {
            let r = cache.get_or_fetch(&key, || async { (Ok(10), ttl()) }).await;
            assert_eq!(r.unwrap(), 10);
        }
        cache.invalidate_where(|k| *k != 2);
        for (key, expected) in [(1, 20), (2, 10), (3, 20)] {
            let r = cache.get_or_fetch(&key, || async { (Ok(20), ttl()) }).await;
            assert_eq!(r.unwrap(), expected, "key {key}");
        }
    }

    #[tokio::test]
    async fn a_fresh_answer_older_than_the_callers_max_age_is_fetched_again() {
        let cache = Coalescing::<u8, u32>::new(16);
        let ttl = || Instant::now() + Duration::from_secs(60);
        let r = cache.get_or_fetch(&1, || async { (Ok(1), ttl()) }).await;
        assert_eq!(r.unwrap(), 1);
        let hour = Some(Duration::from_secs(3600));
        let r = cache
            .get_or_fetch_within(&1, hour, || async { (Ok(2), ttl()) })
            .await;
        assert_eq!(r.unwrap(), 1, "young enough for this caller");
        let r = cache
            .get_or_fetch_within(&1, Some(Duration::ZERO), || async { (Ok(3), ttl()) })
            .await;
        assert_eq!(r.unwrap(), 3, "older than this caller accepts");
        let r = cache.get_or_fetch(&1, || async { (Ok(4), ttl()) }).await;
        assert_eq!(r.unwrap(), 3, "the newer answer replaced the older one");
    }
}
