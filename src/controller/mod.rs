//! Watch and schedule (docs/architecture.md#watch): one kube-runtime `Controller` per workload kind and namespace scope.
//!
//! Input: watches of Deployments, StatefulSets and DaemonSets (all namespaces, or each of `WATCH_NAMESPACES`).
//! Output: calls of `reconcile::reconcile`, each ending in `Action::requeue` at the workload's next fire
//! time or its rollout's deadline. The reflector keeps a slim copy: `managedFields`, labels and every
//! annotation but ours are dropped before an object is stored (the 4 KB `last-applied-configuration`
//! among them); an opted-in workload keeps its images and status, which is all deciding "is a rollout
//! done?" needs, so rollouts are observed from this one watch; any other workload keeps only its metadata
//! ([`Watched`]). A check decides from this copy and guards its patch with the copy's resourceVersion; the
//! object is read from the API server only after that patch met a concurrent change.

mod checker;
mod deliver;
mod observe;
mod reconcile;
mod release;
mod wake;
mod watch_state;
mod watched;

pub use wake::{Wake, on_push};
pub use watched::Watched;

use std::{
    collections::{HashMap, HashSet},
    fmt::Debug,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{FutureExt, StreamExt, TryStreamExt, future::join_all};
use k8s_openapi::{
    NamespaceResourceScope,
    api::apps::v1::{DaemonSet, Deployment, StatefulSet},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        Controller, WatchStreamExt, controller::Config as ControllerConfig, reflector, watcher,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    notify::{Notifier, events::EventRecorder},
    registry::RegistryClient,
    workload::{Kind, Workload},
};

pub use crate::schedule::{Poll, ScheduleState};

/// How many reconciles one kube-runtime `Controller` (one kind in one namespace scope) runs at once. The
/// expensive part, the check, is bounded once for the whole process by `Context::checks`.
const CONCURRENCY: u16 = 64;

/// A workload kind the controller manages.
pub trait ManagedKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Default
    + Send
    + Sync
    + 'static
{
    /// The kind.
    const KIND: Kind;
    /// The compact projection.
    fn project(&self) -> Workload;
    /// Keeps only what [`project`](Self::project) reads of the spec (and all of the status).
    fn slim_spec(&mut self);
}

impl ManagedKind for Deployment {
    const KIND: Kind = Kind::Deployment;
    fn project(&self) -> Workload {
        Workload::from(self)
    }
    fn slim_spec(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            watched::slim_template(&mut spec.template);
            spec.strategy = None;
        }
    }
}

impl ManagedKind for StatefulSet {
    const KIND: Kind = Kind::StatefulSet;
    fn project(&self) -> Workload {
        Workload::from(self)
    }
    fn slim_spec(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            watched::slim_template(&mut spec.template);
            spec.volume_claim_templates = None;
        }
    }
}

impl ManagedKind for DaemonSet {
    const KIND: Kind = Kind::DaemonSet;
    fn project(&self) -> Workload {
        Workload::from(self)
    }
    fn slim_spec(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            watched::slim_template(&mut spec.template);
        }
    }
}

/// Identifies a workload across reconciles.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadKey {
    /// Its kind.
    pub kind: Kind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// What the controller remembers about one workload between reconciles.
#[derive(Debug, Default)]
pub struct WorkloadMemory {
    /// When its next check is due.
    pub schedule: Option<ScheduleState>,
    /// An image another writer reverted: not applied again until a newer one appears (docs/guarantees.md#updates).
    pub reverted: Option<String>,
    /// Spacing of scheduled checks after consecutive failures.
    pub backoff: crate::schedule::FailureBackoff,
    /// The images whose update the API server last refused: the same refusal is reported once (docs/guarantees.md#updates).
    pub refused: Option<String>,
    /// The sealed rollout record being watched: since when, and how its writes and deliveries went.
    pub rollout: Option<observe::Watching>,
    /// Why it should be checked at its next reconcile although no tick is due.
    pub woken: Option<Wake>,
    /// When a gate that holds its update opens: it is checked then, not at its next tick.
    pub recheck_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The repositories its managed containers use, for push events.
    pub repositories: Vec<crate::registry::Repository>,
    /// Checks a push woke that found the pushed tag not served yet, in a row.
    pub push_not_found: u8,
    /// A check a push woke found nothing new and one more look is pending.
    pub push_confirmed: bool,
    /// The `UpdateHeld` reasons reported while they keep holding (gate and candidate).
    pub held_reported: std::collections::BTreeSet<String>,
    /// The `SignatureRejected` reasons reported while they keep rejecting (container, candidate, kind).
    pub rejections_reported: std::collections::BTreeSet<String>,
}

/// Everything reconcile needs, shared by every controller. Its parts are the crate's own: the edges get
/// handles to what they need ([`Context::readiness`], [`Context::shutdown_token`]), never the whole bag.
pub struct Context {
    /// The Kubernetes client.
    pub(crate) client: Client,
    /// The settings.
    pub(crate) config: Config,
    /// The shared registry client.
    pub(crate) registry: RegistryClient,
    /// ServiceAccount and pull-secret reads shared by the checks of a window, and pod reads.
    pub(crate) reads: crate::decide::ClusterReads,
    /// The webhook writer.
    pub(crate) notifier: Notifier,
    /// The one Event recorder.
    pub(crate) events: EventRecorder,
    /// Per-workload memory.
    pub(crate) memory: Mutex<HashMap<WorkloadKey, WorkloadMemory>>,
    /// Outcome deliveries running now, one per workload.
    pub(crate) deliveries: observe::Deliveries,
    /// Seals the `rollout` records this controller writes; a record without its seal is never acted on.
    pub(crate) record_key: crate::record::RecordKey,
    /// Cancelled when shutdown starts: no new checks.
    pub(crate) shutdown: CancellationToken,
    /// Work reconciles detach (outcome deliveries): shutdown waits for it before the Lease is released.
    pub(crate) tasks: tokio_util::task::TaskTracker,
    /// Whether this replica may act (leader election, docs/guarantees.md#leadership).
    pub(crate) leader: tokio::sync::watch::Receiver<bool>,
    /// How many watches have finished their initial list (readiness, docs/settings.md#admin-server).
    pub(crate) synced: Arc<std::sync::atomic::AtomicUsize>,
    /// Checks, updates, rollouts, watched workloads.
    pub(crate) metrics: crate::metrics::Metrics,
    /// Permits for checks (`MAX_CONCURRENT_CHECKS`): one bound over every kind and namespace, where each
    /// `Controller`'s own concurrency would multiply with their number.
    pub(crate) checks: tokio::sync::Semaphore,
    /// The cluster quarantine (`QUARANTINE_SCOPE=cluster`); `None` with the default scope.
    pub(crate) cluster_quarantine: Option<crate::quarantine_store::QuarantineStore>,
    /// `MAX_CONCURRENT_ROLLOUTS`: the queue of due updates and the grants not yet visible in records.
    pub(crate) slots: Mutex<crate::schedule::slots::Slots<WorkloadKey>>,
    /// Each watch's stored `rollout` records, counted by the rollout bound.
    pub(crate) inventory: wake::Inventory,
    /// How to reconcile a workload now (push events, gates that opened, freed slots).
    pub(crate) wakers: wake::Wakers,
    /// Which candidates must have a verified signature, and the verifier (docs/signatures.md).
    pub(crate) signatures: crate::verify::SignaturePolicy,
}

impl Context {
    /// How many watches [`watch_all`] starts.
    pub fn watch_count(&self) -> usize {
        3 * self.config.watch_namespaces.len().max(1)
    }

    /// Whether every watch has synced.
    pub fn is_synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::Acquire) >= self.watch_count()
    }

    /// What `/readyz` needs: whether the watches synced and whether shutdown began.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            shutdown: self.shutdown.clone(),
            synced: self.synced.clone(),
            watches: self.watch_count(),
        }
    }

    /// Cancelled when shutdown starts; cancel it to start shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// A replica's readiness as the watches see it, for the admin server.
#[derive(Debug, Clone)]
pub struct Readiness {
    shutdown: CancellationToken,
    synced: Arc<std::sync::atomic::AtomicUsize>,
    watches: usize,
}

/// Why a replica is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// Shutdown began.
    ShuttingDown,
    /// Some watch has not finished its first list.
    Syncing,
}

impl Readiness {
    /// `Ok` when every watch synced and shutdown has not begun.
    pub fn check(&self) -> Result<(), NotReady> {
        if self.shutdown.is_cancelled() {
            Err(NotReady::ShuttingDown)
        } else if self.synced.load(std::sync::atomic::Ordering::Acquire) < self.watches {
            Err(NotReady::Syncing)
        } else {
            Ok(())
        }
    }

    /// A handle for tests of the admin server: `watches` watches, `synced` of them synced.
    pub fn for_tests(
        watches: usize,
    ) -> (
        Readiness,
        Arc<std::sync::atomic::AtomicUsize>,
        CancellationToken,
    ) {
        let synced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let shutdown = CancellationToken::new();
        let readiness = Readiness {
            shutdown: shutdown.clone(),
            synced: synced.clone(),
            watches,
        };
        (readiness, synced, shutdown)
    }
}

/// The context could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The registry client (TLS, CA file).
    #[error("failed to set up the registry client")]
    Registry(#[source] crate::registry::RegistryError),
    /// The webhook writer.
    #[error("failed to set up webhooks")]
    Webhooks(#[source] crate::notify::NotifierError),
}

impl Context {
    /// Assembles the controller from its settings; every component registers its metrics into `metrics`.
    /// `instance` names this replica in Events; `leader` says when it may act.
    pub fn build(
        client: Client,
        config: Config,
        webhook: crate::notify::WebhookConfig,
        instance: String,
        leader: tokio::sync::watch::Receiver<bool>,
        record_key: crate::record::RecordKey,
        metrics: &mut prometheus_client::registry::Registry,
    ) -> Result<Self, BuildError> {
        let controller_metrics = crate::metrics::Metrics::register(metrics);
        let registry =
            RegistryClient::new(registry_config(&config), metrics).map_err(BuildError::Registry)?;
        let notifier = Notifier::start(webhook, metrics).map_err(BuildError::Webhooks)?;
        let signatures = crate::verify::SignaturePolicy::new(&config.verify, &registry, metrics);
        Ok(Self {
            signatures,
            events: EventRecorder::new(client.clone(), Some(instance)),
            reads: crate::decide::ClusterReads::new(client.clone()),
            client,
            registry,
            notifier,
            memory: Default::default(),
            deliveries: Default::default(),
            record_key,
            shutdown: CancellationToken::new(),
            tasks: tokio_util::task::TaskTracker::new(),
            leader,
            synced: Default::default(),
            metrics: controller_metrics,
            checks: tokio::sync::Semaphore::new(config.max_concurrent_checks),
            cluster_quarantine: None,
            slots: Mutex::new(crate::schedule::slots::Slots::new(
                config.max_concurrent_rollouts,
            )),
            inventory: Default::default(),
            wakers: Default::default(),
            config,
        })
    }

    /// Uses the cluster quarantine in `namespace` when `QUARANTINE_SCOPE=cluster`.
    pub fn with_quarantine_namespace(mut self, namespace: &str) -> Self {
        self.cluster_quarantine = crate::quarantine_store::QuarantineStore::for_scope(
            self.client.clone(),
            self.config.quarantine_scope,
            namespace,
        );
        self
    }

    /// Whether this replica is the leader and not shutting down.
    pub fn may_act(&self) -> bool {
        *self.leader.borrow() && !self.shutdown.is_cancelled()
    }

    /// Runs `f` on the memory of `key`; a workload with memory counts as watched.
    pub fn with_memory<T>(&self, key: &WorkloadKey, f: impl FnOnce(&mut WorkloadMemory) -> T) -> T {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let entry = memory.entry(key.clone()).or_insert_with(|| {
            self.metrics.watched(key.kind, 1);
            WorkloadMemory::default()
        });
        f(entry)
    }

    /// Forgets a workload that was deleted, opted out, or became invalid.
    pub fn forget(&self, key: &WorkloadKey) {
        let removed = self
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        if removed.is_some() {
            self.metrics.watched(key.kind, -1);
        }
    }
}

impl Context {
    /// Whether a reconcile of `obj` can do anything: it is opted in or has an update in flight (kept as
    /// [`Watched::Projected`]), or the controller still holds something of it to forget (its memory, its
    /// Event conditions). Any other workload's reconcile would forget nothing and return, so it is not
    /// queued at all: at 10,000 Deployments of which 1,000 are opted in, that is 9,000 reconciles per
    /// start and per leadership skipped, and kube-runtime's scheduler no longer sizes its queue (kept
    /// after it drains) for all of them (BENCHMARKS.md, "Memory").
    fn needs_reconcile<K: ManagedKind>(&self, obj: &Watched<K>) -> bool {
        if !matches!(obj, Watched::Metadata(_)) {
            return true;
        }
        let key = key_of::<K>(obj);
        let remembered = self
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&key);
        remembered || self.events.remembers(&reference_of::<K>(&key, obj.uid()))
    }

    /// Forgets the workloads of `kind` in `namespace` (`None`: every namespace) that are not in `listed`.
    fn forget_unlisted(&self, kind: Kind, namespace: Option<&str>, listed: &HashSet<WorkloadKey>) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let before = memory.len();
        memory.retain(|key, _| {
            key.kind != kind
                || namespace.is_some_and(|ns| key.namespace != ns)
                || listed.contains(key)
        });
        let forgotten = before - memory.len();
        if forgotten > 0 {
            tracing::debug!(%kind, forgotten, "forgot workloads deleted while the watch was down");
            self.metrics.watched(kind, -(forgotten as i64));
        }
    }
}

/// Runs the controllers of every kind until `ctx.shutdown` is cancelled.
pub async fn watch_all(ctx: Arc<Context>) {
    let namespaces: Vec<Option<String>> = if ctx.config.watch_namespaces.is_empty() {
        vec![None]
    } else {
        ctx.config
            .watch_namespaces
            .iter()
            .cloned()
            .map(Some)
            .collect()
    };
    let mut controllers = Vec::new();
    for namespace in namespaces {
        controllers.push(watch_kind::<Deployment>(ctx.clone(), namespace.clone()).boxed());
        controllers.push(watch_kind::<StatefulSet>(ctx.clone(), namespace.clone()).boxed());
        controllers.push(watch_kind::<DaemonSet>(ctx.clone(), namespace).boxed());
    }
    join_all(controllers).await;
}

async fn watch_kind<K: ManagedKind>(ctx: Arc<Context>, namespace: Option<String>) {
    let api: Api<Watched<K>> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let (reader, writer) = reflector::store::<Watched<K>>();
    let scanned = reader.clone();
    ctx.inventory.register(Box::new(move |record_key| {
        scanned
            .state()
            .iter()
            .filter_map(|obj| {
                let key = key_of::<K>(obj.as_ref());
                let uid = obj.uid()?;
                let state = wake::record_state(record_key, &key, &uid, obj.annotations())?;
                Some((key, state))
            })
            .collect()
    }));
    let (wake_tx, wake_rx) = tokio::sync::mpsc::unbounded_channel::<WorkloadKey>();
    ctx.wakers.register(K::KIND, namespace.clone(), wake_tx);
    let woken = tokio_stream::wrappers::UnboundedReceiverStream::new(wake_rx)
        .map(|key| reflector::ObjectRef::new(&key.name).within(&key.namespace));
    let watch_ctx = ctx.clone();
    let mut state = watch_state::WatchState::new(namespace.clone());
    let filter_ctx = ctx.clone();
    let stream = watcher(api, watcher_config())
        .default_backoff()
        .modify(watched::compact::<K>)
        .inspect_ok(move |event| state.observe(&watch_ctx, event))
        .reflect(writer)
        .applied_objects()
        .try_filter(move |obj| std::future::ready(filter_ctx.needs_reconcile::<K>(obj)));
    let shutdown = ctx.shutdown.clone();
    tracing::info!(kind = %K::KIND, namespace = namespace.as_deref().unwrap_or("*"), "watching");
    // When this replica becomes the leader, every workload is reconciled: schedules start, and rollouts a
    // previous leader left unfinished are picked up from their `rollout` annotation.
    // Every workload a reconcile can do something for, that is ([`Context::needs_reconcile`]).
    let (leading_ctx, leading_reader) = (ctx.clone(), reader.clone());
    let became_leader = tokio_stream::wrappers::WatchStream::new(ctx.leader.clone())
        .filter_map(|leading| std::future::ready(leading.then_some(())))
        .flat_map(move |()| {
            let due: Vec<_> = leading_reader
                .state()
                .iter()
                .filter(|obj| leading_ctx.needs_reconcile::<K>(obj))
                .map(|obj| reflector::ObjectRef::from_obj(obj.as_ref()))
                .collect();
            futures::stream::iter(due)
        });
    Controller::for_stream(stream, reader)
        .with_config(ControllerConfig::default().concurrency(CONCURRENCY))
        .reconcile_on(became_leader)
        .reconcile_on(woken)
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile::reconcile::<K>, reconcile::error_policy::<K>, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile ended with an error");
            }
        })
        .await;
}

/// Lists come in pages of [`LIST_PAGE_SIZE`]: every page is decoded whole before it is slimmed, so the page
/// size bounds the memory a (re)list of thousands of workloads needs at once.
fn watcher_config() -> watcher::Config {
    watcher::Config::default()
        .any_semantic()
        .page_size(LIST_PAGE_SIZE)
}

/// Objects per list page (kube's default is 500).
const LIST_PAGE_SIZE: u32 = 100;

/// The registry client's settings from the controller's.
pub fn registry_config(config: &Config) -> crate::registry::RegistryConfig {
    crate::registry::RegistryConfig {
        insecure_registries: config.insecure_registries.clone(),
        ca_file: config.registry_ca_file.clone(),
        cache_ttl: config.registry_cache_ttl,
        sharing: config.registry_sharing,
        cloud: crate::registry::cloud::CloudConfig {
            providers: config.cloud_registry_auth.clone(),
            namespaces: config.cloud_registry_namespaces.clone(),
            env: crate::registry::cloud::Env::process(),
        },
        ..crate::registry::RegistryConfig::default()
    }
}

/// The key of a workload object.
pub fn key_of<K: ManagedKind>(obj: &impl ResourceExt) -> WorkloadKey {
    WorkloadKey {
        kind: K::KIND,
        namespace: obj.namespace().unwrap_or_default(),
        name: obj.name_any(),
    }
}

/// The reference Events are recorded against.
pub fn reference_of<K: ManagedKind>(
    key: &WorkloadKey,
    uid: Option<String>,
) -> k8s_openapi::api::core::v1::ObjectReference {
    k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: Some(key.name.clone()),
        namespace: Some(key.namespace.clone()),
        uid,
        ..Default::default()
    }
}

/// The workload as webhook payloads name it.
pub fn notify_ref(key: &WorkloadKey) -> crate::notify::WorkloadRef {
    crate::notify::WorkloadRef {
        kind: match key.kind {
            Kind::Deployment => crate::notify::WorkloadKind::Deployment,
            Kind::StatefulSet => crate::notify::WorkloadKind::StatefulSet,
            Kind::DaemonSet => crate::notify::WorkloadKind::DaemonSet,
        },
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    }
}

/// Retry delay after a reconcile error that is not the workload's fault (API server unreachable...).
pub const ERROR_REQUEUE: Duration = Duration::from_secs(30);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    use super::*;
    use crate::{
        config::{Config, RunArgs},
        notify::events::Reason,
    };

    fn context() -> Context {
        crate::install_crypto_provider();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        Context::build(
            kube::Client::try_from(config).unwrap(),
            Config::from_args(&RunArgs::default()).unwrap(),
            crate::notify::WebhookConfig::disabled(),
            "test".into(),
            tokio::sync::watch::channel(true).1,
            crate::record::RecordKey::from_bytes(&[7; 32]).unwrap(),
            &mut prometheus_client::registry::Registry::default(),
        )
        .unwrap()
    }

    fn watched(annotations: serde_json::Value) -> Watched<Deployment> {
        let mut watched: Watched<Deployment> = serde_json::from_value(json!({
            "metadata": {"namespace": "shop", "name": "web", "uid": "u1", "annotations": annotations},
        }))
        .unwrap();
        watched::compact(&mut watched);
        watched
    }

    /// A workload not opted in is queued only while the controller holds something of it to forget.
    #[tokio::test]
    async fn only_workloads_a_reconcile_can_act_on_are_queued() {
        let ctx = context();
        let enabled = watched(json!({"watch-cluster.io/enabled": "true"}));
        let in_flight = watched(json!({"watch-cluster.io/rollout": "{}"}));
        let off = watched(json!({"watch-cluster.io/cron": "0 * * * * ?"}));
        assert!(ctx.needs_reconcile(&enabled));
        assert!(ctx.needs_reconcile(&in_flight));
        assert!(!ctx.needs_reconcile(&off), "nothing to forget");

        // Opted out after a reconcile gave it memory: queued once more, to forget it.
        let key = key_of::<Deployment>(&off);
        ctx.with_memory(&key, |_| ());
        assert!(ctx.needs_reconcile(&off));
        ctx.forget(&key);
        assert!(!ctx.needs_reconcile(&off));

        // Opted out with a remembered Warning (an invalid annotation forgets the memory, not the Warning):
        // queued, so that opting in again with the same mistake shows the Warning again.
        let reference = reference_of::<Deployment>(&key, off.uid());
        ctx.events
            .publish_once(&reference, Reason::InvalidAnnotation, "bad cron".into())
            .await;
        assert!(ctx.needs_reconcile(&off));
        ctx.events.forget(&reference);
        assert!(!ctx.needs_reconcile(&off));
    }
}
