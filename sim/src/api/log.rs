//! The request log: every request the API server answered (method, path, query, content type,
//! body, identity, status), kept in memory so tests can assert on what a client really sent.

use std::sync::{Arc, Mutex};

/// One answered request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub body: String,
    /// The authenticated user name, if the bearer token was known.
    pub identity: Option<String>,
    pub status: u16,
    /// When the request arrived and when it was answered: which requests were in flight at once.
    pub received_at: std::time::Instant,
    pub answered_at: std::time::Instant,
}

impl LoggedRequest {
    /// The value of one query parameter, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// Shared handle to the log; cheap to clone.
#[derive(Clone, Default)]
pub struct RequestLog {
    entries: Arc<Mutex<Vec<LoggedRequest>>>,
}

impl RequestLog {
    pub(crate) fn record(&self, entry: LoggedRequest) {
        tracing::debug!(method = %entry.method, path = %entry.path, status = entry.status, "request");
        self.lock().push(entry);
    }

    /// A copy of every entry so far, oldest first.
    pub fn entries(&self) -> Vec<LoggedRequest> {
        self.lock().clone()
    }

    /// Entries for which `pred` holds.
    pub fn matching(&self, pred: impl Fn(&LoggedRequest) -> bool) -> Vec<LoggedRequest> {
        self.lock().iter().filter(|e| pred(e)).cloned().collect()
    }

    /// Forgets all entries.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<LoggedRequest>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
