//! Test support for watch-cluster: the real-registry harness, the fault-injecting fake registry and the webhook
//! receiver. Every server listens on `127.0.0.1` only and stops (or is killed) when its handle is dropped.
//!
//! - [`registry`]: Debian's `docker-registry` as a child process, plain / Basic / TLS / Bearer token, with helpers
//!   that push synthetic images of the four manifest kinds and read manifests with chosen Accept types.
//! - [`webhook`]: an HTTP server that records every request exactly and answers as scripted.
//!
//! Clients built by callers need a rustls crypto provider: call
//! `rustls::crypto::ring::default_provider().install_default()` first (the registry harness does it itself).

pub mod registry;
mod serve;
pub mod webhook;

pub use registry::{ImageKind, ManifestAnswer, Pushed, RealRegistry, RegistryAuth};
pub use webhook::{ReceivedRequest, Response, WebhookReceiver};
