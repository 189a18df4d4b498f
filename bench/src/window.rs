//! One check window: the registry requests, checks, patches and CPU time that fall into it.
//!
//! Input: the window's wall-clock range and the raw records (fake registry log, controller log, store
//! history). Output: [`WindowStats`]. Everything is attributed by wall-clock time, so the figures do not
//! depend on how quickly the harness looked.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use watch_cluster_sim::RequestTally;
use watch_cluster_testkit::LoggedRequest;

use crate::observe::History;
use crate::scenario::Minimum;
use crate::stats::{Summary, summarize};

/// A wall-clock range `[start, end)`.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// The fire time.
    pub start: SystemTime,
    /// The next fire time.
    pub end: SystemTime,
}

impl Range {
    /// Whether `t` falls in `[start, end)`.
    pub fn contains(&self, t: SystemTime) -> bool {
        t >= self.start && t < self.end
    }
}

/// Registry requests by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    /// `GET …/tags/list` (every page counts).
    pub tag_lists: usize,
    /// `HEAD …/manifests/…`.
    pub heads: usize,
    /// `GET …/manifests/…`.
    pub gets: usize,
    /// Anything else (`/v2/`, tokens).
    pub other: usize,
}

impl Requests {
    /// Tag lists and HEADs over the minimum of both (what the ratio compares).
    pub fn ratio(&self, minimum: &Minimum) -> Option<f64> {
        let min = minimum.tag_lists + minimum.heads;
        (min > 0).then(|| (self.tag_lists + self.heads) as f64 / min as f64)
    }
}

/// Classifies the registry requests that arrived in `range`.
pub fn count_requests(log: &[LoggedRequest], range: Range) -> Requests {
    let mut r = Requests::default();
    for req in log.iter().filter(|q| range.contains(q.wall)) {
        let manifest = req.path.contains("/manifests/");
        match req.method.as_str() {
            "GET" if req.path.ends_with("/tags/list") => r.tag_lists += 1,
            "HEAD" if manifest => r.heads += 1,
            "GET" if manifest => r.gets += 1,
            _ => r.other += 1,
        }
    }
    r
}

/// What one window cost and how long it took.
#[derive(Debug, Clone)]
pub struct WindowStats {
    /// Whether updates were due in it.
    pub due: bool,
    /// Registry requests.
    pub requests: Requests,
    /// The minimum for this window.
    pub minimum: Minimum,
    /// Controller CPU time spent in the window.
    pub cpu: Duration,
    /// Checks that finished in the window.
    pub checks: usize,
    /// Fire time to the last check finished.
    pub last_decision: Option<Duration>,
    /// Fire time to each update patch that landed in the window.
    pub patches: Option<Summary>,
    /// The controller's requests to the API server in the window, by verb and resource (the simulator's
    /// counts at the window's two ends; the controller is the API server's only client while it runs).
    pub api: RequestTally,
}

impl WindowStats {
    /// The window's API requests divided by the checks that finished in it.
    pub fn api_per_check(&self) -> Option<f64> {
        let total: u64 = self.api.values().sum();
        (self.checks > 0).then(|| total as f64 / self.checks as f64)
    }
}

/// `get deployments 1000, patch deployments 1000, …`: the requests of a window, most first.
pub fn describe_requests(tally: &RequestTally) -> String {
    let mut rows: Vec<(&(String, String), &u64)> = tally.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let parts: Vec<String> = rows
        .into_iter()
        .map(|((verb, resource), n)| format!("{verb} {resource} {n}"))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// Checks finished in `range` and the delay of the last one.
pub fn decisions(check_times: &[DateTime<Utc>], range: Range) -> (usize, Option<Duration>) {
    let inside: Vec<SystemTime> = check_times
        .iter()
        .map(|t| SystemTime::from(*t))
        .filter(|t| range.contains(*t))
        .collect();
    let last = inside
        .iter()
        .max()
        .and_then(|t| t.duration_since(range.start).ok());
    (inside.len(), last)
}

/// Fire time to each image patch that landed in `range`.
pub fn patch_delays(histories: &HashMap<String, History>, range: Range) -> Option<Summary> {
    let delays: Vec<Duration> = histories
        .values()
        .flat_map(|h| h.patches.iter())
        .filter(|t| range.contains(**t))
        .filter_map(|t| t.duration_since(range.start).ok())
        .collect();
    summarize(delays)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_compares_lists_and_heads_with_their_minimum() {
        let r = Requests {
            tag_lists: 50,
            heads: 250,
            gets: 3,
            other: 1,
        };
        let min = Minimum {
            tag_lists: 50,
            heads: 200,
            gets: 0,
        };
        assert_eq!(r.ratio(&min), Some(1.2));
        assert_eq!(r.ratio(&Minimum::default()), None);
    }

    #[test]
    fn api_requests_are_divided_by_the_checks_of_the_window_and_described_most_first() {
        let key = |v: &str, r: &str| (v.to_owned(), r.to_owned());
        let mut w = WindowStats {
            due: true,
            requests: Requests::default(),
            minimum: Minimum::default(),
            cpu: Duration::ZERO,
            checks: 4,
            last_decision: None,
            patches: None,
            api: RequestTally::from([
                (key("patch", "deployments"), 4),
                (key("create", "events"), 6),
            ]),
        };
        assert_eq!(w.api_per_check(), Some(2.5));
        assert_eq!(
            describe_requests(&w.api),
            "create events 6, patch deployments 4"
        );
        w.checks = 0;
        assert_eq!(w.api_per_check(), None);
        assert_eq!(describe_requests(&RequestTally::new()), "none");
    }

    #[test]
    fn decisions_outside_the_window_are_not_counted() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:10Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |ms: i64| start + chrono::Duration::milliseconds(ms);
        let range = Range {
            start: SystemTime::from(start),
            end: SystemTime::from(at(10_000)),
        };
        let (n, last) = decisions(&[at(-1), at(0), at(420), at(10_000)], range);
        assert_eq!((n, last), (2, Some(Duration::from_millis(420))));
    }
}
