//! `watch-cluster run`: assemble the controller from its settings and run it until shutdown (docs/settings.md).
//!
//! Input: validated settings. Output: a running controller (watches, leader election, admin server,
//! webhook writer, push-event listener) that exits cleanly on SIGTERM. [`Runtime`] is the one assembly of those parts, used by
//! `run` and by `demo`; [`Runtime::stop`] is the one shutdown, in an order that keeps "two replicas never
//! act at once" and a deadline on every step, so it ends within the grace period whatever the API
//! server does:
//! 1. no new checks: the shutdown token is cancelled (reconcile no longer acts, `/readyz` answers 503),
//!    and the push-event listener stops accepting;
//! 2. drain: reconciles in flight finish and the work they detached (outcome deliveries) ends,
//!    within [`DRAIN_DEADLINE`];
//! 3. queued webhooks are flushed within [`FLUSH_DEADLINE`];
//! 4. the leader label comes off this Pod (so the events Service stops routing here), within the label
//!    call timeout; then the Lease is released, within the Lease call timeout — only when the drain
//!    finished: otherwise work may still be running, and the Lease is left to expire after this process
//!    has gone;
//! 5. the admin server and the push-event listener stop within [`ADMIN_DEADLINE`] each.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    controller::{self, Context},
    leader::{self, LeaseConfig},
    notify::WebhookConfig,
    server::{self, Admin, ApiHealth},
    shutdown,
};

/// How long in-flight reconciles and deliveries may take to finish on shutdown.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(15);
/// How long queued webhooks may take to flush on shutdown.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(5);
/// How long the admin server may take to stop.
pub const ADMIN_DEADLINE: Duration = Duration::from_secs(1);
/// The Deployment's `terminationGracePeriodSeconds` (k8s/base/deployment.yaml): the kubelet's SIGKILL.
pub const GRACE_PERIOD: Duration = Duration::from_secs(30);

// Every step's deadline, added up, ends before the kubelet's SIGKILL.
const _: () = assert!(
    DRAIN_DEADLINE.as_secs()
        + FLUSH_DEADLINE.as_secs()
        + crate::push::label::CALL_TIMEOUT.as_secs()
        + leader::CALL_TIMEOUT.as_secs()
        + 2 * ADMIN_DEADLINE.as_secs()
        < GRACE_PERIOD.as_secs()
);

/// Connects to the cluster the way `kubectl` would: in-cluster service account, else `KUBECONFIG` or
/// `~/.kube/config`. Never falls back to a simulated cluster.
pub async fn kube_client() -> anyhow::Result<kube::Client> {
    let config = kube::Config::infer().await.map_err(|e| {
        let kubeconfig = std::error::Error::source(&e).and_then(|s| s.downcast_ref());
        let file = std::env::var("KUBECONFIG")
            .ok()
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "~/.kube/config".into());
        no_connection(kubeconfig, &file)
    })?;
    kube::Client::try_from(config).context("failed to build the Kubernetes client")
}

/// One line for a failed connection: kube's own error spans lines (its YAML errors quote the file with a
/// caret), and a user needs the file and the fix, not the in-cluster probe that was never expected to work.
fn no_connection(kubeconfig: Option<&kube::config::KubeconfigError>, file: &str) -> anyhow::Error {
    use kube::config::KubeconfigError::{FindPath, ReadConfig};
    match kubeconfig {
        None | Some(FindPath) => anyhow::anyhow!(
            "no Kubernetes connection: not running in a cluster and no kubeconfig found; \
             set KUBECONFIG=/path/to/kubeconfig"
        ),
        Some(ReadConfig(e, path)) if e.kind() == std::io::ErrorKind::NotFound => anyhow::anyhow!(
            "no Kubernetes connection: not running in a cluster and the kubeconfig {} does not exist; \
             set KUBECONFIG=/path/to/kubeconfig",
            path.display()
        ),
        Some(error) => {
            let shown = error.to_string();
            let first = shown.lines().next().unwrap_or_default();
            anyhow::anyhow!(
                "cannot use the kubeconfig {file}: {}; fix the file or set KUBECONFIG=/path/to/a/valid/kubeconfig",
                crate::untrusted::echo(first)
            )
        }
    }
}

/// Runs the controller until a signal stops it.
pub async fn serve(config: Config, webhook: WebhookConfig) -> anyhow::Result<()> {
    let client = kube_client().await?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        watch_namespaces = ?config.watch_namespaces,
        insecure_registries = ?config.insecure_registries,
        registry_ca_file = ?config.registry_ca_file,
        registry_cache_ttl = ?config.registry_cache_ttl,
        rollout_timeout = ?config.rollout_timeout,
        time_zone = %config.time_zone,
        dry_run = config.dry_run,
        admin_addr = %config.admin_addr,
        leader_election = config.leader_election,
        quarantine_scope = ?config.quarantine_scope,
        events_addr = ?config.events.as_ref().map(|e| e.addr),
        webhook = %webhook.summary(),
        "starting watch-cluster"
    );
    let identity = identity();
    let namespace = own_namespace();
    // Signals are honoured from here on: a SIGTERM while the API server cannot be reached still exits.
    let stop = CancellationToken::new();
    shutdown::on_signals(stop.clone());
    let Some(record_key) = record_key_until_stopped(&client, &namespace, &stop).await? else {
        tracing::info!("stopped before the record key could be read");
        return Ok(());
    };
    let lease = config
        .leader_election
        .then(|| LeaseConfig::new(namespace, config.lease_name.clone(), identity.clone()));
    let runtime = Runtime::start(Parts {
        client,
        config,
        webhook,
        identity,
        lease,
        admin: true,
        record_key,
    })
    .await?;
    let started = runtime.shutdown_token();
    tokio::select! {
        () = stop.cancelled() => started.cancel(),
        () = started.cancelled() => {}
    }
    runtime.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// What [`Runtime::start`] assembles.
pub struct Parts {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// The settings.
    pub config: Config,
    /// Webhook settings.
    pub webhook: WebhookConfig,
    /// This replica's name in Events and in the Lease.
    pub identity: String,
    /// The Lease to elect a leader on; `None`: this replica always leads.
    pub lease: Option<LeaseConfig>,
    /// Whether to serve `/healthz`, `/readyz` and `/metrics` on `ADMIN_ADDR`.
    pub admin: bool,
    /// The key that seals rollout records ([`crate::record`]).
    pub record_key: crate::record::RecordKey,
}

/// The running controller: its tasks, and what stopping them needs.
pub struct Runtime {
    ctx: Arc<Context>,
    controllers: JoinHandle<()>,
    election: Option<Election>,
    admin: Option<(CancellationToken, JoinHandle<()>)>,
    /// The push-event listener, its consumer and the leader label (`EVENTS_ADDR` set).
    events: Option<events::Events>,
    background: Vec<JoinHandle<()>>,
}

/// The leader-election task and the token that makes it release the Lease.
struct Election {
    task: JoinHandle<()>,
    release: CancellationToken,
}

impl Runtime {
    /// Starts the watches, the election (if any), the admin server (if asked) and the API probe.
    pub async fn start(parts: Parts) -> anyhow::Result<Runtime> {
        let mut metrics = Registry::with_prefix("watch_cluster");
        let (leader_tx, leader_rx) = tokio::sync::watch::channel(parts.lease.is_none());
        let ctx = Arc::new(
            Context::build(
                parts.client.clone(),
                parts.config.clone(),
                parts.webhook,
                parts.identity,
                leader_rx,
                parts.record_key,
                &mut metrics,
            )?
            .with_quarantine_namespace(&own_namespace()),
        );
        let handover = parts
            .lease
            .as_ref()
            .map(|lease| lease.handover.clone())
            .unwrap_or_default();
        let lease_namespace = parts.lease.as_ref().map(|lease| lease.namespace.clone());
        let election = parts.lease.map(|lease| {
            // Its own token: the Lease is released only once the drain has finished (see `stop`).
            let release = CancellationToken::new();
            let task = tokio::spawn(leader::campaign(
                parts.client.clone(),
                lease,
                leader_tx,
                release.clone(),
            ));
            Election { task, release }
        });
        let events = match &parts.config.events {
            Some(settings) => {
                // The label goes on Pods of the controller's namespace, where its Lease is.
                let namespace = lease_namespace.unwrap_or_else(own_namespace);
                let started = events::Events::start(
                    &ctx,
                    settings,
                    &parts.client,
                    &namespace,
                    handover,
                    &mut metrics,
                );
                Some(started.await?)
            }
            None => None,
        };
        let api = ApiHealth::default();
        let background = vec![
            tokio::spawn(leader_gauge(ctx.clone())),
            tokio::spawn(server::probe_api(parts.client, api.clone())),
        ];
        let admin = if parts.admin {
            let stop = CancellationToken::new();
            let admin = Arc::new(Admin {
                readiness: ctx.readiness(),
                registry: metrics,
                api,
            });
            let task = server::serve(parts.config.admin_addr, admin, stop.clone()).await?;
            Some((stop, task))
        } else {
            None
        };
        let controllers = tokio::spawn(controller::watch_all(ctx.clone()));
        Ok(Runtime {
            ctx,
            controllers,
            election,
            admin,
            events,
            background,
        })
    }

    /// Cancelled when shutdown starts; cancel it to start shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.ctx.shutdown_token()
    }

    /// Shuts down in the order of the module docs, every step under its deadline.
    pub async fn stop(mut self) {
        self.ctx.shutdown.cancel();
        if let Some(events) = &self.events {
            events.stop_listening();
        }
        let drained = self.drain().await;
        self.ctx.notifier.shutdown(FLUSH_DEADLINE).await;
        if let Some(events) = &mut self.events {
            events.remove_label().await;
        }
        if let Some(election) = self.election {
            if drained {
                election.release.cancel();
                // The election bounds its release call by the Lease call timeout; this bounds the rest.
                let wait = leader::CALL_TIMEOUT + Duration::from_secs(1);
                let abort = election.task.abort_handle();
                if tokio::time::timeout(wait, election.task).await.is_err() {
                    abort.abort();
                }
            } else {
                tracing::warn!(
                    "in-flight work did not finish in time; the Lease is left to expire"
                );
                election.task.abort();
            }
        }
        if let Some((stop, task)) = self.admin {
            stop.cancel();
            let abort = task.abort_handle();
            if tokio::time::timeout(ADMIN_DEADLINE, task).await.is_err() {
                abort.abort();
            }
        }
        if let Some(events) = self.events {
            events.join(ADMIN_DEADLINE).await;
        }
        for task in self.background {
            task.abort();
        }
    }

    /// Waits for in-flight reconciles and the work they detached: whether all of it ended in time.
    async fn drain(&mut self) -> bool {
        let tasks = self.ctx.tasks.clone();
        tasks.close();
        let controllers = &mut self.controllers;
        let all = async move {
            // The controllers end once their in-flight reconciles have (kube's graceful shutdown); only
            // then is nothing left to detach more work.
            let _ = controllers.await;
            tasks.wait().await;
        };
        let drained = tokio::time::timeout(DRAIN_DEADLINE, all).await.is_ok();
        if !drained {
            // Dropping the reconciles is all we can do; the process exits right after.
            self.controllers.abort();
        }
        drained
    }

    /// Stops at once, without draining (the demo was interrupted).
    pub fn abort(&self) {
        self.ctx.shutdown.cancel();
        self.controllers.abort();
        if let Some(election) = &self.election {
            election.task.abort();
        }
        if let Some((stop, task)) = &self.admin {
            stop.cancel();
            task.abort();
        }
        if let Some(events) = &self.events {
            events.abort();
        }
        for task in &self.background {
            task.abort();
        }
    }
}

mod events;

/// Keeps the `watch_cluster_leader` gauge on the leadership flag.
async fn leader_gauge(ctx: Arc<Context>) {
    let mut leadership = ctx.leader.clone();
    loop {
        ctx.metrics.set_leader(*leadership.borrow_and_update());
        if leadership.changed().await.is_err() {
            break;
        }
    }
}

/// How long one attempt to read (or make) the record key may take.
const KEY_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts while the API server cannot be reached.
const KEY_RETRY: Duration = Duration::from_secs(2);

/// Reads the record key, retrying while the API server cannot be reached, until `stop` is cancelled
/// (`None`). An answer of the API server (RBAC, a missing namespace) or an unusable Secret ends the start
/// with its error: retrying cannot fix it.
async fn record_key_until_stopped(
    client: &kube::Client,
    namespace: &str,
    stop: &CancellationToken,
) -> anyhow::Result<Option<crate::record::RecordKey>> {
    use crate::record::secret::load_or_create;
    loop {
        let attempt = tokio::time::timeout(
            KEY_ATTEMPT_TIMEOUT,
            load_or_create(client.clone(), namespace),
        );
        let error = tokio::select! {
            () = stop.cancelled() => return Ok(None),
            result = attempt => match result {
                Ok(Ok(key)) => return Ok(Some(key)),
                // Retrying cannot fix it; the message says what can.
                Ok(Err(error)) if error.is_final() => return Err(error.into()),
                Ok(Err(error)) => format!("{error:#}"),
                Err(_) => format!("no answer within {}s", KEY_ATTEMPT_TIMEOUT.as_secs()),
            },
        };
        tracing::warn!(%error, "cannot read the record key yet; retrying");
        tokio::select! {
            () = stop.cancelled() => return Ok(None),
            () = tokio::time::sleep(KEY_RETRY) => {}
        }
    }
}

/// The controller's own namespace (downward API), where its Lease and record key live.
pub(crate) fn own_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "watch-cluster".into())
}

/// This replica's identity: the pod name (downward API) or the host name.
fn identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| format!("watch-cluster-{}", std::process::id()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_garbage_kubeconfig_is_one_line_naming_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, "garbage: [unclosed\n").unwrap();
        let error = kube::config::Kubeconfig::read_from(&path).unwrap_err();
        let shown = no_connection(Some(&error), &path.display().to_string()).to_string();
        assert_eq!(shown.lines().count(), 1, "{shown}");
        assert!(shown.contains(&path.display().to_string()), "{shown}");
        assert!(shown.contains("line 1 column 10"), "{shown}");
        assert!(shown.contains("KUBECONFIG="), "{shown}");
    }

    /// The parts of a replica `replica-1` leading in `default` on the in-process API.
    fn replica_1(api: &watch_cluster_sim::InProcess, config: Config) -> Parts {
        Parts {
            client: api.client.clone(),
            config,
            webhook: WebhookConfig::disabled(),
            identity: "replica-1".into(),
            lease: Some(LeaseConfig::new(
                "default".into(),
                "watch-cluster".into(),
                "replica-1".into(),
            )),
            admin: false,
            record_key: crate::record::RecordKey::from_bytes(&[3; 32]).unwrap(),
        }
    }

    fn holder(api: &watch_cluster_sim::InProcess) -> Option<String> {
        let lease = api.store.get(
            watch_cluster_sim::Kind::Lease,
            Some("default"),
            "watch-cluster",
        )?;
        lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
    }

    async fn pass(duration: Duration) {
        let step = Duration::from_millis(250);
        let mut passed = Duration::ZERO;
        while passed < duration {
            tokio::time::sleep(step).await;
            passed += step;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_lease_is_released_only_after_in_flight_work_has_finished() {
        crate::install_crypto_provider();
        let api =
            watch_cluster_sim::InProcess::new(watch_cluster_sim::ApiConfig::default()).unwrap();
        let config = Config::from_args(&crate::config::RunArgs::default()).unwrap();
        let runtime = Runtime::start(replica_1(&api, config)).await.unwrap();
        pass(Duration::from_secs(2)).await;
        assert_eq!(holder(&api).as_deref(), Some("replica-1"), "it leads");
        // A delivery still running when SIGTERM comes (deliveries are tracked tasks).
        runtime
            .ctx
            .tasks
            .spawn(tokio::time::sleep(Duration::from_secs(8)));
        let stopping = tokio::spawn(runtime.stop());
        pass(Duration::from_secs(6)).await;
        assert_eq!(
            holder(&api).as_deref(),
            Some("replica-1"),
            "held while the delivery runs: no new leader may act beside it"
        );
        pass(Duration::from_secs(6)).await;
        assert!(stopping.is_finished(), "stopped within the drain deadline");
        assert_eq!(holder(&api), None, "released once the work is done");
    }

    fn pod_label(api: &watch_cluster_sim::InProcess) -> Option<String> {
        let pod = api
            .store
            .get(watch_cluster_sim::Kind::Pod, Some("default"), "replica-1")?;
        pod["metadata"]["labels"]["watch-cluster.io/leader"]
            .as_str()
            .map(str::to_owned)
    }

    fn resource_version(
        api: &watch_cluster_sim::InProcess,
        kind: watch_cluster_sim::Kind,
        name: &str,
    ) -> u64 {
        let object = api.store.get(kind, Some("default"), name).unwrap();
        object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_leader_labels_its_pod_and_removes_the_label_before_releasing_the_lease() {
        crate::install_crypto_provider();
        let api =
            watch_cluster_sim::InProcess::new(watch_cluster_sim::ApiConfig::default()).unwrap();
        api.store
            .create(
                watch_cluster_sim::Kind::Pod,
                serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "replica-1", "namespace": "default"},
                    "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}),
            )
            .unwrap();
        let args = crate::config::RunArgs {
            events: crate::config::EventsArgs {
                events_addr: Some("127.0.0.1:0".into()),
                events_token: Some("0123456789abcdef0123456789abcdef".into()),
                pod_name: Some("replica-1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let runtime = Runtime::start(replica_1(&api, Config::from_args(&args).unwrap()))
            .await
            .unwrap();
        pass(Duration::from_secs(2)).await;
        assert_eq!(holder(&api).as_deref(), Some("replica-1"));
        assert_eq!(
            pod_label(&api).as_deref(),
            Some("true"),
            "the leader's Pod is labelled"
        );
        runtime.stop().await;
        assert_eq!(pod_label(&api), None, "the label is removed on shutdown");
        assert_eq!(holder(&api), None, "and the Lease released");
        // One global resourceVersion: the Pod's last write came before the Lease's.
        let pod = resource_version(&api, watch_cluster_sim::Kind::Pod, "replica-1");
        let lease = resource_version(&api, watch_cluster_sim::Kind::Lease, "watch-cluster");
        assert!(
            pod < lease,
            "label removed (rv {pod}) before the Lease was released (rv {lease})"
        );
    }
}
