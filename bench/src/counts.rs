//! The controller's own counters, read from its `/metrics` before and after a phase of the push bench.
//!
//! Input: the OpenMetrics text of `/metrics`. Output: [`Counts`], the few series the push bench reports,
//! keyed by a short name (`events/accepted`, `checks/no_update`, `requests/GET`, `updates`…), and the
//! difference of two snapshots. Registry requests are summed over registry and status, by method: the
//! controller labels requests by method only, so a tag-list GET and a manifest GET count alike.

use std::collections::BTreeMap;

/// Push events by result (`provider="distribution"` only).
const EVENTS: &str = "watch_cluster_push_events_total";
/// Workloads woken by push events, or pushes no workload uses.
const PUSH_CHECKS: &str = "watch_cluster_push_checks_total";
/// Finished checks by outcome.
const CHECKS: &str = "watch_cluster_checks_total";
/// HTTP requests to registries.
const REQUESTS: &str = "watch_cluster_registry_requests_total";
/// Update patches written.
const UPDATES: &str = "watch_cluster_updates_total";

/// Selected counters, by short name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts(pub BTreeMap<String, f64>);

impl Counts {
    /// The counters of one `/metrics` text.
    pub fn parse(text: &str) -> Self {
        let mut counts = BTreeMap::new();
        for (name, labels, value) in text.lines().filter_map(sample) {
            let label = |key: &str| {
                labels
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("?")
            };
            let key = match name.as_str() {
                EVENTS if label("provider") == "distribution" => {
                    format!("events/{}", label("result"))
                }
                PUSH_CHECKS => format!("push_checks/{}", label("result")),
                CHECKS => format!("checks/{}", label("outcome")),
                REQUESTS => format!("requests/{}", label("method")),
                UPDATES => "updates".to_owned(),
                _ => continue,
            };
            *counts.entry(key).or_insert(0.0) += value;
        }
        Self(counts)
    }

    /// `self − before`, for every name either has.
    pub fn since(&self, before: &Counts) -> Counts {
        let mut out = BTreeMap::new();
        for key in self.0.keys().chain(before.0.keys()) {
            out.insert(key.clone(), self.get(key) - before.get(key));
        }
        Counts(out)
    }

    /// One counter; 0 when absent.
    pub fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    /// The sum of every counter under `prefix/`.
    pub fn total(&self, prefix: &str) -> f64 {
        self.under(prefix).map(|(_, v)| v).sum()
    }

    /// `(suffix, value)` of every counter under `prefix/`.
    pub fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        self.0.iter().filter_map(move |(k, v)| {
            k.strip_prefix(prefix)?
                .strip_prefix('/')
                .map(|suffix| (suffix, *v))
        })
    }
}

/// Label pairs of one sample, in order.
type Labels = Vec<(String, String)>;

/// One sample line: name, labels, value. `None` for comments and anything unreadable.
fn sample(line: &str) -> Option<(String, Labels, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    match series.split_once('{') {
        None => Some((series.to_owned(), Vec::new(), value)),
        Some((name, rest)) => {
            let labels = labels(rest.strip_suffix('}')?)?;
            Some((name.to_owned(), labels, value))
        }
    }
}

/// `a="x",b="y\"z"` as pairs; `None` when malformed.
fn labels(text: &str) -> Option<Labels> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        out.push((key.trim_start_matches(',').to_owned(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP watch_cluster_checks Checks.
# TYPE watch_cluster_checks counter
watch_cluster_checks_total{outcome="no_update"} 3
watch_cluster_checks_total{outcome="updated"} 2
watch_cluster_push_events_total{provider="distribution",result="accepted"} 5
watch_cluster_push_events_total{provider="distribution",result="ignored"} 40
watch_cluster_push_events_total{provider="github",result="accepted"} 7
watch_cluster_push_checks_total{result="woken"} 10
watch_cluster_registry_requests_total{registry="127.0.0.1:5000",method="GET",status="200"} 4
watch_cluster_registry_requests_total{registry="127.0.0.1:5000",method="GET",status="404"} 1
watch_cluster_registry_requests_total{registry="odd\"name,x",method="HEAD",status="200"} 6
watch_cluster_updates_total 2
watch_cluster_updates_created 1.7e9
# EOF"#;

    #[test]
    fn the_reported_series_are_read_and_requests_summed_by_method() {
        let c = Counts::parse(TEXT);
        assert_eq!(c.get("events/accepted"), 5.0, "distribution only");
        assert_eq!(c.get("events/ignored"), 40.0);
        assert_eq!(c.get("push_checks/woken"), 10.0);
        assert_eq!(c.get("requests/GET"), 5.0);
        assert_eq!(c.get("requests/HEAD"), 6.0, "quotes and commas in values");
        assert_eq!(c.get("updates"), 2.0);
        assert_eq!(c.total("checks"), 5.0);
        assert_eq!(c.total("requests"), 11.0);
        assert_eq!(c.0.len(), 8, "nothing else: {:?}", c.0);
    }

    #[test]
    fn a_difference_covers_series_that_appeared_meanwhile() {
        let before = Counts::parse("watch_cluster_updates_total 2\n");
        let after = Counts::parse(TEXT);
        let d = after.since(&before);
        assert_eq!(d.get("updates"), 0.0);
        assert_eq!(d.get("checks/updated"), 2.0);
        let under: Vec<_> = d.under("checks").collect();
        assert_eq!(under, vec![("no_update", 3.0), ("updated", 2.0)]);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(sample("watch_cluster_checks_total{outcome=\"x\" 3"), None);
        assert_eq!(sample("no value here"), None);
        assert_eq!(
            labels(r#"a="1",b="x\"y""#).unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "x\"y".into())]
        );
    }
}
