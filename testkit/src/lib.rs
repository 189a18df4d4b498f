//! Test support for watch-cluster: the real-registry harness, the fault-injecting fake registry and the webhook
//! receiver. Every server listens on `127.0.0.1` only and stops (or is killed) when its handle is dropped.
//!
//! - [`registry`]: Debian's `docker-registry` as a child process, plain / Basic / TLS / Bearer token, with helpers
//!   that push synthetic images of the four manifest kinds and read manifests with chosen Accept types.
//! - [`fake`]: an in-process fake registry for what the real one cannot do: paginate, rate-limit, fail, stall.
//! - [`admin`], [`annotations`]: the controller's admin server (ports, metrics) and its opt-in annotations.
//! - [`cluster`]: the real control plane of the test bed (`testbed/up`): install, namespaces, controller tokens.
//! - [`fake::aws`]: in-process HTTPS fakes of STS, ECR (API and registry) and the EKS Pod Identity agent.
//! - [`cloud_gcp_azure`]: fakes of the GKE metadata server, Entra ID and ACR; [`pyclients`]: the providers'
//!   Python clients that check them.
//! - [`webhook`]: an HTTP server that records every request exactly and answers as scripted.
//! - [`cosign`]: the real cosign (`testbed/cosign/`) signing offline in the harness registry, both layouts,
//!   and forgeries of what it writes.
//! - [`counting`]: a reverse proxy in front of the real registry that records every request.
//! - [`npmcheck`]: the Slack, Discord and Teams libraries from npm (`testbed/npmcheck/`) judging chat bodies.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use watch_cluster_testkit::{FakeRegistry, Fault, ImageKind, RealRegistry, RegistryAuth};
//!
//! let registry = RealRegistry::start(RegistryAuth::basic("ci", "secret")).await?;
//! let pushed = registry.push("team/app", "1.0", ImageKind::OciIndex, "a").await?;
//! assert_eq!(pushed.children.len(), 2);
//!
//! let fake = FakeRegistry::start().await?;
//! fake.set_digest("team/app", "1.0", &pushed.digest);
//! fake.fault("/v2/team/app/", Fault::too_many_requests(2));
//! # Ok(()) }
//! ```
//!
//! Clients built by callers need a rustls crypto provider: call
//! `rustls::crypto::ring::default_provider().install_default()` first (the registry harness does it itself).

pub mod admin;
pub mod annotations;
pub mod cloud_gcp_azure;
pub mod cluster;
pub mod cosign;
pub mod counting;
pub mod fake;
pub mod npmcheck;
pub mod pyclients;
pub mod registry;
mod serve;
pub mod webhook;

pub use cloud_gcp_azure::{FakeAcr, FakeEntraId, FakeGkeMetadata, TestCa};
pub use cluster::{ControllerCredentials, ImageFault, TestNamespace, Testbed};
pub use cosign::{Cosign, KeyKind, KeyPair, Layout};
pub use fake::{FakeRegistry, Fault, LoggedRequest, TagListMode};
pub use registry::{ImageKind, ManifestAnswer, Notify, Pushed, RealRegistry, RegistryAuth, Staged};
pub use webhook::{ReceivedRequest, Response, WebhookReceiver};
