//! Fault injection: make the next N matching requests fail or slow down, drop every open
//! watch, stop bookmarks. Tests use it to drive a client through the error paths a real
//! cluster produces only occasionally (429 with Retry-After, 500s, timeouts, broken watches).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// A rule for the next `count` requests matching `method` and `path`.
#[derive(Clone, Debug)]
pub struct Fault {
    /// HTTP method to match (`None`: any).
    pub method: Option<String>,
    /// Path pattern; `*` matches any run of characters (e.g. `/apis/apps/v1/*/deployments/*`).
    pub path: String,
    /// How many requests it applies to.
    pub count: usize,
    /// Answer with this status (a `Status` body) instead of serving the request.
    pub status: Option<u16>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// `Retry-After` seconds on the error answer.
    pub retry_after: Option<u64>,
}

impl Fault {
    /// The next `count` requests to `path` (any method) answer `status`.
    pub fn status(path: &str, status: u16, count: usize) -> Fault {
        Fault {
            method: None,
            path: path.to_string(),
            count,
            status: Some(status),
            delay: None,
            retry_after: None,
        }
    }

    /// The next `count` requests to `path` (any method) wait `delay` first.
    pub fn delay(path: &str, delay: Duration, count: usize) -> Fault {
        Fault {
            method: None,
            path: path.to_string(),
            count,
            status: None,
            delay: Some(delay),
            retry_after: None,
        }
    }

    pub fn method(mut self, method: &str) -> Fault {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Fault {
        self.retry_after = Some(seconds);
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method) && glob(&self.path, path)
    }
}

/// What to do with one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Injected {
    pub status: Option<u16>,
    pub delay: Option<Duration>,
    pub retry_after: Option<u64>,
}

/// Shared fault controls; cheap to clone.
#[derive(Clone)]
pub struct Faults {
    rules: Arc<Mutex<Vec<Fault>>>,
    bookmarks: Arc<AtomicBool>,
    drop_watches: Arc<watch::Sender<u64>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rules: Arc::default(),
            bookmarks: Arc::new(AtomicBool::new(true)),
            drop_watches: Arc::new(watch::channel(0).0),
        }
    }
}

impl Faults {
    /// Adds a rule; rules are consulted in insertion order.
    pub fn inject(&self, fault: Fault) {
        self.lock().push(fault);
    }

    /// Removes every pending rule.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Ends every open watch stream now (clients see the connection close).
    pub fn drop_watches(&self) {
        self.drop_watches.send_modify(|generation| *generation += 1);
    }

    /// Turns watch bookmarks on or off.
    pub fn set_bookmarks(&self, enabled: bool) {
        self.bookmarks.store(enabled, Ordering::SeqCst);
    }

    pub(crate) fn bookmarks_enabled(&self) -> bool {
        self.bookmarks.load(Ordering::SeqCst)
    }

    pub(crate) fn watch_drops(&self) -> watch::Receiver<u64> {
        self.drop_watches.subscribe()
    }

    /// Consumes one use of the first rule matching the request.
    pub(crate) fn take(&self, method: &str, path: &str) -> Option<Injected> {
        let mut rules = self.lock();
        let index = rules
            .iter()
            .position(|r| r.count > 0 && r.matches(method, path))?;
        let rule = &mut rules[index];
        rule.count -= 1;
        let injected = Injected {
            status: rule.status,
            delay: rule.delay,
            retry_after: rule.retry_after,
        };
        if rule.count == 0 {
            rules.remove(index);
        }
        Some(injected)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Glob match where `*` matches any (possibly empty) run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_anywhere() {
        assert!(glob(
            "/apis/apps/v1/*/deployments/*",
            "/apis/apps/v1/namespaces/a/deployments/x"
        ));
        assert!(glob("*", "/x"));
        assert!(!glob("/api/v1/pods", "/api/v1/pods/x"));
        assert!(glob("/api/*", "/api/v1/pods"));
    }

    #[test]
    fn a_rule_applies_count_times_then_expires() {
        let faults = Faults::default();
        faults.inject(Fault::status("/x", 503, 2).method("get"));
        assert!(faults.take("POST", "/x").is_none());
        assert_eq!(faults.take("GET", "/x").and_then(|i| i.status), Some(503));
        assert!(faults.take("GET", "/x").is_some());
        assert!(faults.take("GET", "/x").is_none());
    }
}
