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

/// Requests answered by verb (`get`, `list`, `watch`, `patch`, `create`…) and resource (`deployments`,
/// `serviceaccounts`, `deployments/status`…), with a snapshot at any moment: what a benchmark needs to
/// count a client's requests per window without keeping every request's body as the [`RequestLog`] does.
#[derive(Clone, Default)]
pub struct RequestCounts {
    counts: Arc<Mutex<RequestTally>>,
}

/// Counts by (verb, resource).
pub type RequestTally = std::collections::BTreeMap<(String, String), u64>;

impl RequestCounts {
    pub(crate) fn record(&self, verb: &str, resource: &str) {
        let mut counts = self.lock();
        match counts.get_mut(&(verb.to_owned(), resource.to_owned())) {
            Some(n) => *n += 1,
            None => {
                counts.insert((verb.to_owned(), resource.to_owned()), 1);
            }
        }
    }

    /// The counts so far.
    pub fn snapshot(&self) -> RequestTally {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RequestTally> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What happened between two snapshots: `later` minus `earlier`, without the zeros.
pub fn tally_since(earlier: &RequestTally, later: &RequestTally) -> RequestTally {
    later
        .iter()
        .filter_map(|(key, n)| {
            let delta = n - earlier.get(key).copied().unwrap_or(0).min(*n);
            (delta > 0).then(|| (key.clone(), delta))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_by_verb_and_resource_and_differences_drop_what_did_not_move() {
        let counts = RequestCounts::default();
        counts.record("get", "deployments");
        let before = counts.snapshot();
        counts.record("get", "deployments");
        counts.record("patch", "deployments");
        counts.record("create", "events");
        counts.record("create", "events");
        let after = counts.snapshot();
        let key = |v: &str, r: &str| (v.to_owned(), r.to_owned());
        assert_eq!(after[&key("get", "deployments")], 2);
        let delta = tally_since(&before, &after);
        assert_eq!(
            delta,
            RequestTally::from([
                (key("create", "events"), 2),
                (key("get", "deployments"), 1),
                (key("patch", "deployments"), 1),
            ])
        );
    }
}
