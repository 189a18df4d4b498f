//! The push-event parts of the runtime (docs/push-events.md): the listener on `EVENTS_ADDR`, the
//! consumer that hands each pushed repository to the controller, and the leader label.
//!
//! Input: the controller's [`Context`] (leadership, registry client), the settings, the election's
//! [`Handover`]. Output: running tasks, and the shutdown steps [`super::Runtime::stop`] calls in order:
//! stop listening as soon as shutdown starts; remove the leader label before the Lease is released;
//! join the listener last.

use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    config::EventsConfig,
    controller::{self, Context},
    leader::Handover,
    push::{self, RepositoryPushed, label::LeaderLabel, server::Listener},
    registry::Repository,
};

/// The running push-event parts.
pub(super) struct Events {
    stop: CancellationToken,
    listener: JoinHandle<()>,
    consumer: JoinHandle<()>,
    label: Option<Label>,
}

/// The label task and what removing the label at shutdown needs.
struct Label {
    stop: CancellationToken,
    task: JoinHandle<()>,
    label: LeaderLabel,
}

impl Events {
    /// Binds `EVENTS_ADDR` (a busy port fails startup) and starts the consumer and the label.
    pub(super) async fn start(
        ctx: &Arc<Context>,
        settings: &EventsConfig,
        client: &kube::Client,
        namespace: &str,
        handover: Handover,
        metrics: &mut Registry,
    ) -> anyhow::Result<Self> {
        let (sink, pushed) = mpsc::unbounded_channel();
        let listener = Arc::new(Listener {
            tokens: settings.tokens.clone(),
            aliases: settings.host_aliases.clone(),
            leader: ctx.leader.clone(),
            metrics: push::Metrics::register(metrics),
            sink,
            registry: Some(ctx.registry.clone()),
            seen: Mutex::new(push::dedup::Seen::default()),
        });
        let stop = CancellationToken::new();
        let listener = push::server::serve(settings.addr, listener, stop.clone()).await?;
        let consumer = tokio::spawn(consume(ctx.clone(), pushed));
        let label = start_label(ctx, settings, client, namespace, handover);
        Ok(Self {
            stop,
            listener,
            consumer,
            label,
        })
    }

    /// Shutdown step 1: no new events (checks are stopping too), and the label is left as it is until
    /// [`Events::remove_label`]: the label task stops here, so nothing but that step writes it.
    pub(super) fn stop_listening(&self) {
        self.stop.cancel();
        if let Some(label) = &self.label {
            label.stop.cancel();
            // It may be mid-patch: a late `true` after the removal would leave the label behind.
            label.task.abort();
        }
    }

    /// Shutdown step before the Lease release: the events Service stops routing here.
    pub(super) async fn remove_label(&mut self) {
        if let Some(label) = self.label.take() {
            let _ = label.task.await;
            label.label.remove_own().await;
        }
    }

    /// Last step: the listener's open connections end within `deadline`.
    pub(super) async fn join(self, deadline: std::time::Duration) {
        let abort = self.listener.abort_handle();
        if tokio::time::timeout(deadline, self.listener).await.is_err() {
            abort.abort();
        }
        self.consumer.abort();
    }

    /// Stops at once.
    pub(super) fn abort(&self) {
        self.stop.cancel();
        self.listener.abort();
        self.consumer.abort();
        if let Some(label) = &self.label {
            label.task.abort();
        }
    }
}

fn start_label(
    ctx: &Arc<Context>,
    settings: &EventsConfig,
    client: &kube::Client,
    namespace: &str,
    handover: Handover,
) -> Option<Label> {
    let Some(pod) = settings.pod_name.clone() else {
        tracing::info!(
            "POD_NAME is unset: no leader label is written, so the events Service cannot select the leader"
        );
        return None;
    };
    let label = LeaderLabel::new(client.clone(), namespace, pod);
    let stop = CancellationToken::new();
    let task = tokio::spawn(
        label
            .clone()
            .follow(ctx.leader.clone(), handover, stop.clone()),
    );
    Some(Label { stop, task, label })
}

/// THE PUSH CONSUMER CALL SITE: each accepted (registry, repository) goes to [`controller::on_push`],
/// which checks now every enabled workload using it (coalesced per workload by kube-runtime).
/// `pushed.signature` says cached signature rejections of the repository are stale (SPEC §12, §13):
/// the verification cache, once it exists, drops them here.
async fn consume(ctx: Arc<Context>, mut pushed: mpsc::UnboundedReceiver<RepositoryPushed>) {
    while let Some(item) = pushed.recv().await {
        let repository = Repository::new(item.registry, item.repository);
        controller::on_push(&ctx, &repository);
    }
}
