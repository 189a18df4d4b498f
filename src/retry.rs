//! Waiting before trying again: the crate's one `Retry-After` parser and its one exponential backoff.
//!
//! Input: a response's headers and the current time, or a count of consecutive failures. Output: how long
//! to wait. Users: the registry transport (retries of 5xx and timeouts) and its rate-limit pauses, webhook
//! delivery (retries), and the spacing of failed checks (`schedule::FailureBackoff`).
//! Each caller caps what a server may ask for in its own terms (webhooks: 60 s; registry: its longest
//! rate-limit wait), so the parser returns the request as sent.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, header::RETRY_AFTER};

/// The wait a `Retry-After` header asks for (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date counted
/// from `now` (a date already past asks for no wait). `None` when absent or unreadable.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential backoff: `base`, then doubled after each further failure, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// Waits of `base × 2^(n-1)` after the `n`th consecutive failure, at most `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The wait after `failures` consecutive failures; none before the first.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(failures - 1);
        self.base.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn asking(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_reads_delay_seconds_and_http_dates_from_now() {
        let now = httpdate::parse_http_date("Mon, 01 Jan 2024 12:00:00 GMT").unwrap();
        assert_eq!(
            retry_after(&asking(" 2 "), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&asking("3600"), now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            retry_after(&asking("Mon, 01 Jan 2024 12:00:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&asking("Mon, 01 Jan 2024 11:00:00 GMT"), now),
            Some(Duration::ZERO),
            "a date already past"
        );
        assert_eq!(retry_after(&asking("soon"), now), None);
        assert_eq!(retry_after(&asking("-1"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let waits: Vec<u64> = (0..=7).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(waits, [0, 1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(30));
        let uncapped = Backoff::new(Duration::from_millis(250), Duration::MAX);
        assert_eq!(uncapped.delay(3), Duration::from_secs(1));
    }

    /// One parser and one backoff: any other file that parses an HTTP date or raises 2 to a power is a
    /// second copy of what lives here.
    #[test]
    fn retry_after_parsing_and_exponential_backoff_live_only_here() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut copies = Vec::new();
        let mut dirs = vec![src];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("retry.rs")
                {
                    let text = std::fs::read_to_string(&path).unwrap();
                    if text.contains("parse_http_date") || text.contains("saturating_pow") {
                        copies.push(path.display().to_string());
                    }
                }
            }
        }
        assert!(copies.is_empty(), "copies of retry.rs logic in {copies:?}");
    }
}
