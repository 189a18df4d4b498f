//! The workload controllers of the simulated cluster: Deployment (through ReplicaSets),
//! ReplicaSet, StatefulSet and DaemonSet controllers, and a simulated kubelet that takes pods to
//! `Running`/`Ready` and reports the image digests it pulled.
//!
//! Input: the [`Store`]'s change stream. Output: writes to the store, as kube-controller-manager
//! and kubelets would make them, so that clients (`kubectl rollout status`, kube-rs watchers,
//! watch-cluster) see realistic rollouts: revision annotations, `Progressing`/`Available`
//! conditions, `ProgressDeadlineExceeded`, `imageID`s. Timing is configurable and scaled
//! ([`ControllerConfig`]) so tests run in milliseconds; [`RolloutControl`] decides per workload
//! or image whether a rollout completes, gets stuck or never becomes ready.
//!
//! Start with [`spawn`]; everything runs in one task (see `runner`).

mod args;
mod cache;
mod control;
mod ctx;
mod daemonset;
mod deployment;
mod hash;
pub mod images;
mod kubelet;
mod kubelet_status;
mod meta;
mod pods;
mod queue;
mod replicaset;
mod revisions;
mod runner;
mod statefulset;

use std::sync::Arc;
use std::time::Duration;

pub use args::{ControllerArgs, ControllerArgsError};
pub use control::{Outcome, ParseOutcomeError, RolloutControl};
pub use images::{
    HttpResolver, HttpResolverError, ImageRef, ImageResolver, PullError, RegistryEndpoint,
    StaticResolver, SyntheticResolver,
};

use crate::store::Store;

/// Timing, image resolution and outcome control of the simulated controllers.
#[derive(Clone)]
pub struct ControllerConfig {
    /// From a pod's creation (or its last image pull) to `Running`.
    pub pod_start_delay: Duration,
    /// From `Running` to `Ready`.
    pub pod_ready_delay: Duration,
    /// How long a pod stays in `ImagePullBackOff` before the pull is retried.
    pub image_pull_backoff: Duration,
    /// Real seconds per simulated second for durations taken from objects
    /// (`progressDeadlineSeconds`, `minReadySeconds`): 0.01 makes 600 s last 6 s.
    pub time_scale: f64,
    /// Resolves container images to the digests the kubelet reports.
    pub resolver: Arc<dyn ImageResolver>,
    /// Per-workload and per-image outcomes of rollouts.
    pub control: RolloutControl,
}

impl Default for ControllerConfig {
    /// Real time; pods start after 200 ms and are ready 300 ms later; every image exists.
    fn default() -> Self {
        Self {
            pod_start_delay: Duration::from_millis(200),
            pod_ready_delay: Duration::from_millis(300),
            image_pull_backoff: Duration::from_secs(2),
            time_scale: 1.0,
            resolver: Arc::new(SyntheticResolver),
            control: RolloutControl::new(),
        }
    }
}

impl std::fmt::Debug for ControllerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerConfig")
            .field("pod_start_delay", &self.pod_start_delay)
            .field("pod_ready_delay", &self.pod_ready_delay)
            .field("image_pull_backoff", &self.image_pull_backoff)
            .field("time_scale", &self.time_scale)
            .finish_non_exhaustive()
    }
}

impl ControllerConfig {
    /// Test timing: pods start after 20 ms, are ready 30 ms later, pulls retry after 100 ms,
    /// and object durations run 100 times faster.
    pub fn fast() -> Self {
        Self {
            pod_start_delay: Duration::from_millis(20),
            pod_ready_delay: Duration::from_millis(30),
            image_pull_backoff: Duration::from_millis(100),
            time_scale: 0.01,
            ..Self::default()
        }
    }

    /// The same configuration with another image resolver.
    pub fn with_resolver(mut self, resolver: impl ImageResolver) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// `seconds` of simulated time as real time.
    pub fn scaled(&self, seconds: f64) -> Duration {
        let real = seconds * self.time_scale;
        if real.is_finite() && real > 0.0 {
            Duration::from_secs_f64(real)
        } else {
            Duration::ZERO
        }
    }
}

/// Starts the controllers on `store`; they run until the returned task is aborted.
pub fn spawn(store: Store, config: ControllerConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(runner::run(store, config))
}
