//! The webhook [`Notifier`]: the handle controllers hold; all I/O happens in its writer task.
//!
//! Input: [`Notification`]s from reconcile and rollout observers. Output: at most one request sequence per
//! notification, sent by [`writer`](super::writer), and for reliable deliveries a [`DeliveryOutcome`].
//!
//! Two paths, as docs/guarantees.md#outcome-delivery promises (decisions apart from writers: docs/architecture.md#notify):
//! - [`Notifier::try_notify`] (DETECTED, STARTED): a bounded queue; when full the notification is dropped,
//!   logged and counted. It never waits.
//! - [`Notifier::deliver`] (COMPLETED, FAILED): never dropped. The returned future resolves once the
//!   receiver accepted it or retries are exhausted, so the caller can then remove the `rollout`
//!   annotation. Await it in the caller's own task: it waits for queue space, never for other workloads'
//!   receivers beyond the bounded in-flight pool.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::config::WebhookConfig;
use super::delivery::{DeliveryOutcome, Prepared, Sender};
use super::metrics::WebhookMetrics;
use super::payload::{EventType, Notification};
use super::writer::{Job, Writer};

/// What [`Notifier::try_notify`] did with a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued for the writer.
    Queued,
    /// Not sent: webhooks off or this event type not enabled.
    Disabled,
    /// Dropped: the queue was full, the notifier is shutting down, or the payload could not be built.
    Dropped,
}

/// Why the notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// The HTTP client could not be built (TLS setup).
    #[error("failed to build the webhook HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Cheap-to-clone handle to the webhook writer task.
#[derive(Clone)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    config: WebhookConfig,
    metrics: WebhookMetrics,
    best_effort: mpsc::Sender<Job>,
    reliable: mpsc::Sender<Job>,
    stop: Mutex<Option<(oneshot::Sender<Instant>, JoinHandle<()>)>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(inner) => write!(f, "Notifier({})", inner.config.summary()),
            None => f.write_str("Notifier(disabled)"),
        }
    }
}

impl Notifier {
    /// Registers the webhook metrics and, when a URL is configured, spawns the writer task.
    ///
    /// Must be called inside a Tokio runtime. Installs the process crypto provider if none is yet
    /// ([`crate::install_crypto_provider`]), since building the HTTP client without one panics in rustls.
    pub fn start(config: WebhookConfig, registry: &mut Registry) -> Result<Self, NotifierError> {
        crate::install_crypto_provider();
        let metrics = WebhookMetrics::register(registry);
        let Some(sender) = Sender::new(&config, metrics.clone()).map_err(NotifierError::Client)?
        else {
            return Ok(Self::disabled());
        };
        let (best_effort, best_rx) = mpsc::channel(config.queue_capacity);
        // Reliable jobs wait in their callers' tasks for space, so this bound only limits memory.
        let (reliable, reliable_rx) = mpsc::channel(config.queue_capacity);
        let (stop_tx, stop_rx) = oneshot::channel();
        let writer = Writer::new(Arc::new(sender), config.max_in_flight, config.timeout);
        let handle = tokio::spawn(writer.serve(reliable_rx, best_rx, stop_rx));
        let stop = Mutex::new(Some((stop_tx, handle)));
        Ok(Notifier {
            inner: Some(Arc::new(Inner {
                config,
                metrics,
                best_effort,
                reliable,
                stop,
            })),
        })
    }

    /// A notifier that never sends anything.
    pub fn disabled() -> Self {
        Notifier { inner: None }
    }

    /// Whether a notification of `event_type` would be sent.
    pub fn sends(&self, event_type: EventType) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| inner.config.sends(event_type))
    }

    /// Queues a best-effort notification (meant for DETECTED and STARTED); never waits.
    pub fn try_notify(&self, notification: &Notification) -> Enqueued {
        let event_type = notification.event_type();
        let Some(inner) = self
            .inner
            .as_ref()
            .filter(|inner| inner.config.sends(event_type))
        else {
            return Enqueued::Disabled;
        };
        let Some(prepared) = inner.prepare(notification) else {
            return Enqueued::Dropped;
        };
        match inner.best_effort.try_send(Job {
            prepared,
            reply: None,
        }) {
            Ok(()) => Enqueued::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                inner.metrics.record_dropped(event_type);
                warn!(%event_type, delivery = %notification.delivery_id, "webhook queue full; notification dropped");
                Enqueued::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                inner.metrics.record_dropped(event_type);
                debug!(%event_type, delivery = %notification.delivery_id, "webhook notifier shut down; notification dropped");
                Enqueued::Dropped
            }
        }
    }

    /// Delivers a notification that must not be lost (meant for COMPLETED and FAILED).
    ///
    /// The future owns everything it needs (`'static`): spawn it or await it in the caller's task.
    /// It resolves to [`DeliveryOutcome::Delivered`] or [`DeliveryOutcome::Exhausted`] once the writer is
    /// done, to [`DeliveryOutcome::Disabled`] at once when the event type is not sent, and to
    /// [`DeliveryOutcome::Interrupted`] when the notifier shut down first (keep the `rollout` annotation).
    pub fn deliver(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = DeliveryOutcome> + Send + use<> {
        let event_type = notification.event_type();
        let job = self
            .inner
            .as_ref()
            .filter(|inner| inner.config.sends(event_type))
            .map(|inner| (inner.reliable.clone(), inner.prepare(notification)));
        async move {
            let (queue, prepared) = match job {
                None => return DeliveryOutcome::Disabled,
                Some((_, None)) => return DeliveryOutcome::Exhausted,
                Some((queue, Some(prepared))) => (queue, prepared),
            };
            let (reply, outcome) = oneshot::channel();
            if queue
                .send(Job {
                    prepared,
                    reply: Some(reply),
                })
                .await
                .is_err()
            {
                return DeliveryOutcome::Interrupted;
            }
            outcome.await.unwrap_or(DeliveryOutcome::Interrupted)
        }
    }

    /// Stops accepting notifications and flushes the queued ones for at most `deadline`.
    ///
    /// Deliveries still running at the deadline are abandoned; their [`Notifier::deliver`] futures resolve to
    /// [`DeliveryOutcome::Interrupted`]. Calling it again, or on a disabled notifier, returns at once.
    pub async fn shutdown(&self, deadline: Duration) {
        let Some(inner) = &self.inner else { return };
        let stop = inner
            .stop
            .lock()
            .map(|mut stop| stop.take())
            .unwrap_or(None);
        let Some((stop, handle)) = stop else { return };
        let _ = stop.send(Instant::now() + deadline);
        if let Err(join_error) = handle.await {
            error!(error = %join_error, "webhook writer task ended abnormally");
        }
    }
}

impl Inner {
    fn prepare(&self, notification: &Notification) -> Option<Prepared> {
        match Prepared::new(notification, &self.config) {
            Ok(prepared) => Some(prepared),
            Err(error) => {
                let event_type = notification.event_type();
                self.metrics
                    .record(event_type, super::metrics::AttemptResult::Failed);
                error!(%event_type, error = &error as &dyn std::error::Error, "webhook notification not sent");
                None
            }
        }
    }
}
