//! Per-registry pauses from rate-limit headers (docs/guarantees.md#registries).
//!
//! Input: `Retry-After` (seconds or an HTTP date, read by [`crate::retry::retry_after`]) and `RateLimit-Remaining` (`0` or Docker Hub's
//! `0;w=<seconds>`) headers. Output: the instant before which no request is sent to that registry.
//! Pauses only grow: a later, shorter hint never shortens a pause already in force.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::HeaderMap;

/// The pause after a 429 that carries no usable `Retry-After`.
pub(crate) const DEFAULT_429_PAUSE: Duration = Duration::from_secs(1);
/// The pause for `RateLimit-Remaining: 0` without a window.
const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// Parses `RateLimit-Remaining`: `Some(window)` when nothing remains (`0`, `0;w=21600`).
pub(crate) fn exhausted_window(value: &str) -> Option<Duration> {
    let mut parts = value.split(';');
    let remaining: u64 = parts.next()?.trim().parse().ok()?;
    if remaining > 0 {
        return None;
    }
    let window = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim() == "w").then(|| v.trim().parse::<u64>().ok())?
    });
    Some(window.map_or(DEFAULT_WINDOW, Duration::from_secs))
}

/// How long a response asks us to stay away from its registry, if at all.
pub(crate) fn pause_from(headers: &HeaderMap, status: u16, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let retry_after = crate::retry::retry_after(headers, now);
    let exhausted = header("ratelimit-remaining").and_then(exhausted_window);
    match (status == 429, retry_after, exhausted) {
        (_, Some(r), _) if status == 429 || exhausted.is_some() => Some(r),
        (_, None, Some(w)) => Some(w),
        (true, None, None) => Some(DEFAULT_429_PAUSE),
        _ => None,
    }
}

/// The pauses in force, by registry.
#[derive(Default)]
pub(crate) struct Pauses {
    until: Mutex<HashMap<String, Instant>>,
}

impl Pauses {
    /// Pauses `registry` for `duration` from now (never shortening a longer pause).
    pub(crate) fn pause(&self, registry: &str, duration: Duration) {
        let until = Instant::now() + duration;
        let mut map = self.lock();
        let entry = map.entry(registry.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// How long `registry` stays paused from now, if it is.
    pub(crate) fn remaining(&self, registry: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut map = self.lock();
        let until = *map.get(registry)?;
        if until <= now {
            map.remove(registry);
            return None;
        }
        Some(until - now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn ratelimit_remaining_zero_pauses_for_its_window() {
        assert_eq!(exhausted_window("0;w=3"), Some(Duration::from_secs(3)));
        assert_eq!(exhausted_window("0"), Some(DEFAULT_WINDOW));
        assert_eq!(exhausted_window("99;w=21600"), None);
        assert_eq!(exhausted_window("x"), None);
    }

    #[test]
    fn a_429_pauses_by_retry_after_or_by_default() {
        let now = SystemTime::now();
        let mut headers = HeaderMap::new();
        assert_eq!(pause_from(&headers, 429, now), Some(DEFAULT_429_PAUSE));
        assert_eq!(pause_from(&headers, 200, now), None);
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(pause_from(&headers, 429, now), Some(Duration::from_secs(2)));
        assert_eq!(
            pause_from(&headers, 200, now),
            None,
            "Retry-After alone on a 200 is no limit"
        );
        headers.insert("ratelimit-remaining", HeaderValue::from_static("0;w=3"));
        assert_eq!(pause_from(&headers, 200, now), Some(Duration::from_secs(2)));
        headers.remove("retry-after");
        assert_eq!(pause_from(&headers, 200, now), Some(Duration::from_secs(3)));
    }

    #[test]
    fn pauses_only_grow_and_end() {
        let p = Pauses::default();
        assert_eq!(p.remaining("r"), None);
        p.pause("r", Duration::from_secs(60));
        p.pause("r", Duration::from_secs(1));
        assert!(p.remaining("r").unwrap() > Duration::from_secs(50));
        p.pause("q", Duration::ZERO);
        assert_eq!(p.remaining("q"), None);
    }
}
