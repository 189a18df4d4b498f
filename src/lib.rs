//! watch-cluster keeps Kubernetes workloads on the newest container images, safely.
//!
//! Data flows one way: **watch → schedule → resolve → decide → update → observe → notify**.
//! Each arrow is a typed value; the middle steps are pure, and [`controller`] is the conductor that does
//! their I/O. No module but the edges (`run`, `plan`, `demo`) depends on it (docs/architecture.md).
//!
//! | step | module |
//! |---|---|
//! | watch, and one workload's turn | [`controller`] (with [`workload`] and [`annotations`]) |
//! | when to check | [`schedule`] |
//! | image references, version tags | [`image`], [`version`] |
//! | what the registry has | [`registry`], then [`resolve`] |
//! | what to do about it | [`strategy`] (pure), [`decide`] |
//! | which candidate, and may it start now (safety gates, rollout slots) | [`gate`] (pure), [`admit`], [`schedule::slots`] |
//! | apply it | [`update`] |
//! | observe the rollout, roll back | [`observe`] (pure), with [`record`] sealing its state |
//! | notifications and Events | [`notify`] |
//! | registry push events: check at once what a push concerns | [`push`] |
//! | running it: settings, leadership, probes, metrics, shutdown, logs | [`config`], [`leader`], [`server`], [`metrics`], [`shutdown`], [`telemetry`], [`run`] |
//! | shared by several steps | [`retry`] (backoff, `Retry-After`), [`untrusted`] (escaping outside text), [`duration`] (`1h30m`) |
//! | commands | [`cli`], [`check`], [`plan`], `demo` |

pub mod admit;
pub mod annotations;
pub mod check;
pub mod cli;
pub mod config;
pub mod controller;
pub mod decide;
#[cfg(feature = "demo")]
pub mod demo;
pub mod duration;
pub mod gate;
pub mod image;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod observe;
pub mod plan;
pub mod push;
pub mod quarantine_store;
pub mod record;
pub mod registry;
pub mod resolve;
pub mod retry;
pub mod run;
pub mod schedule;
pub mod server;
pub mod shutdown;
pub mod strategy;
pub mod telemetry;
pub mod untrusted;
pub mod update;
pub mod verify;
pub mod version;
pub mod workload;

/// Installs the one rustls crypto provider of the process (ring, as kube uses).
///
/// kube and reqwest both build rustls clients; without a process-level provider chosen
/// first, rustls panics at client construction (docs/dependencies.md#tls-and-the-crypto-provider). Call this first thing in
/// `main` and in every test that builds a client. Calling it twice is harmless.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
