//! The opt-in annotations tests put on workloads.

/// Every second: tests do not wait for the default 5 minutes.
pub const EVERY_SECOND: &str = "* * * * * ?";
/// A cron that does not fire during a test: only `check-now` triggers a check.
pub const NEVER_SOON: &str = "0 0 0 1 1 ? 2099";

/// The annotations of an enabled workload checked every second with `strategy`.
pub fn enabled(strategy: &str) -> Vec<(&'static str, String)> {
    vec![
        ("watch-cluster.io/enabled", "true".to_owned()),
        ("watch-cluster.io/cron", EVERY_SECOND.to_owned()),
        ("watch-cluster.io/strategy", strategy.to_owned()),
    ]
}

/// Borrows annotation pairs for the environments' `create`.
pub fn as_pairs<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
