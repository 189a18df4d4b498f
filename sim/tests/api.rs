//! Fidelity tests of the simulated API server against real clients: kube's `Api`, `watcher`
//! and events `Recorder`, raw HTTP for wire details, and kubectl against the standalone binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/kubectl.rs"]
mod kubectl;
#[path = "api/objects.rs"]
mod objects;
#[path = "api/patches.rs"]
mod patches;
#[path = "api/rbac_faults.rs"]
mod rbac_faults;
#[path = "api/support.rs"]
mod support;
#[path = "api/watches.rs"]
mod watches;
