#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end on real Kubernetes: the test bed's kube-apiserver v1.36.3 with its own controllers and the
//! project's node agent (docs/testbed.md), the product installed from `k8s/` with kubectl, and the
//! controller binary run with a ServiceAccount token. Run through the test wrapper, which starts the test
//! bed: `.ci/test -E 'binary(real)'`.

// Shared with the scenarios binary, which uses other parts of it.
#[allow(dead_code)]
#[path = "real/env.rs"]
mod env;
#[path = "real/modes.rs"]
mod modes;
#[path = "real/refusals.rs"]
mod refusals;
#[path = "real/smoke.rs"]
mod smoke;

/// Every second: tests do not wait for the default 5 minutes.
pub const EVERY_SECOND: &str = "* * * * * ?";

/// The annotations of an enabled workload checked every second.
pub fn enabled(strategy: &str) -> Vec<(&'static str, String)> {
    vec![
        ("watch-cluster.io/enabled", "true".to_owned()),
        ("watch-cluster.io/cron", EVERY_SECOND.to_owned()),
        ("watch-cluster.io/strategy", strategy.to_owned()),
    ]
}

/// Borrows annotation pairs for `RealEnv::create`.
pub fn notes<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
