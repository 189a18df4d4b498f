#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end: the controller binary as its own process, against the simulated cluster (RBAC of `k8s/`
//! enforced) and the real registry, with webhooks received on a real HTTP server. Each test asserts the
//! final images and annotations, the Events, and the webhook bodies in order.

#[path = "e2e/chat.rs"]
mod chat;
#[path = "e2e/demo.rs"]
mod demo;
// Shared with the scenarios binary, which uses other parts of it.
#[allow(dead_code)]
#[path = "e2e/env.rs"]
mod env;
#[path = "e2e/lifecycle.rs"]
mod lifecycle;
#[path = "e2e/manifests.rs"]
mod manifests;
#[path = "e2e/operations.rs"]
mod operations;
#[path = "e2e/push.rs"]
mod push;
#[path = "e2e/receivers.rs"]
mod receivers;
#[path = "e2e/records.rs"]
mod records;
#[path = "e2e/safety.rs"]
mod safety;
#[path = "e2e/signatures.rs"]
mod signatures;
#[path = "e2e/updates.rs"]
mod updates;

pub use watch_cluster_testkit::annotations::{EVERY_SECOND, NEVER_SOON, as_pairs, enabled};
