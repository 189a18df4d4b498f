#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end on real Kubernetes: the test bed's kube-apiserver v1.36.3 with its own controllers and the
//! project's node agent (docs/testbed.md), the product installed from `k8s/` with kubectl, and the
//! controller binary run with a ServiceAccount token. Run through the test wrapper, which starts the test
//! bed: `.ci/test -E 'binary(real)'`.

// Shared with the scenarios binary, which uses other parts of it.
#[allow(dead_code)]
#[path = "real/apiserver.rs"]
mod apiserver;
// Shared with the scenarios binary, which uses other parts of it.
#[allow(dead_code)]
#[path = "real/env.rs"]
mod env;
#[path = "real/modes.rs"]
mod modes;
#[path = "real/receivers.rs"]
mod receivers;
#[path = "real/refusals.rs"]
mod refusals;
#[path = "real/smoke.rs"]
mod smoke;
#[path = "real/verify.rs"]
mod verify;
// The real cosign, shared with tests/signatures.rs.
#[allow(dead_code)]
#[path = "signatures/fixture.rs"]
mod fixture;

pub use watch_cluster_testkit::admin::{free_port, http_get, more_checks};
pub use watch_cluster_testkit::annotations::{EVERY_SECOND, as_pairs, enabled};
