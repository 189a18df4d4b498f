//! The webhook [`Notifier`]: the handle controllers hold; all I/O happens in its writer tasks.
//!
//! Input: [`Notification`]s from reconcile and rollout observers. Output: at most one request sequence per
//! notification and receiver, sent by [`writer`](super::writer), and for reliable deliveries a
//! [`DeliveryOutcome`] per receiver.
//!
//! One lane per receiver (SPEC §15, "its own queue (a slow one never delays another)"): each receiver has
//! its own queues, its own writer task and its own bound on deliveries in flight, so a receiver that hangs
//! until its timeout fills only its own lane while the others go on delivering.
//!
//! Two paths, as docs/guarantees.md#outcome-delivery promises (decisions apart from writers: docs/architecture.md#notify):
//! - [`Notifier::try_notify`] (DETECTED, STARTED): a bounded queue per receiver; when a receiver's queue is
//!   full the notification is dropped for that receiver only, logged (naming the receiver masked) and
//!   counted. It never waits.
//! - [`Notifier::deliver_to`] (COMPLETED, FAILED): never dropped. The returned future resolves once that
//!   receiver accepted it or its retries are exhausted, so the caller can then list the receiver in the
//!   `rollout` record's `delivered` (or remove the record). Await it in the caller's own task: it waits for
//!   queue space, never for other receivers. [`Notifier::deliver`] does the same for every receiver at once.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::config::WebhookConfig;
use super::delivery::{self, DeliveryOutcome, Prepared, Sender};
use super::metrics::{AttemptResult, WebhookMetrics};
use super::payload::{EventType, Notification};
use super::receiver::Receiver;
use super::writer::{Job, Writer};

/// What [`Notifier::try_notify`] did with a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued for every receiver that takes this event type.
    Queued,
    /// Not sent: no receiver takes this event type.
    Disabled,
    /// Dropped for at least one receiver: its queue was full, the notifier is shutting down, or the body
    /// could not be built. Other receivers may have it queued.
    Dropped,
}

/// Why the notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// The HTTP client could not be built (TLS setup).
    #[error("failed to build the webhook HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Cheap-to-clone handle to the receivers' writer tasks.
#[derive(Clone)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    config: WebhookConfig,
    metrics: WebhookMetrics,
    lanes: Vec<Lane>,
}

/// One receiver's queues and writer task.
struct Lane {
    receiver: Receiver,
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
    /// Registers the webhook metrics and spawns one writer task per configured receiver.
    ///
    /// Must be called inside a Tokio runtime. Installs the process crypto provider if none is yet
    /// ([`crate::install_crypto_provider`]), since building the HTTP client without one panics in rustls.
    pub fn start(config: WebhookConfig, registry: &mut Registry) -> Result<Self, NotifierError> {
        crate::install_crypto_provider();
        let metrics = WebhookMetrics::register(registry);
        if config.receivers.is_empty() {
            return Ok(Self::disabled());
        }
        let client = delivery::client(&config).map_err(NotifierError::Client)?;
        let lanes = config
            .receivers
            .iter()
            .map(|receiver| Lane::start(client.clone(), receiver, &config, &metrics))
            .collect();
        Ok(Notifier {
            inner: Some(Arc::new(Inner {
                config,
                metrics,
                lanes,
            })),
        })
    }

    /// A notifier that never sends anything.
    pub fn disabled() -> Self {
        Notifier { inner: None }
    }

    /// Whether a notification of `event_type` would be sent to at least one receiver.
    pub fn sends(&self, event_type: EventType) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| inner.config.sends(event_type))
    }

    /// The ids of the receivers that take `event_type`, in configuration order: those a recorded outcome
    /// must reach before its `rollout` record is removed.
    pub fn targets(&self, event_type: EventType) -> Vec<String> {
        self.lanes(event_type)
            .map(|lane| lane.receiver.id.clone())
            .collect()
    }

    fn lanes(&self, event_type: EventType) -> impl Iterator<Item = &Lane> {
        self.inner
            .iter()
            .flat_map(|inner| inner.lanes.iter())
            .filter(move |lane| lane.receiver.events.contains(event_type))
    }

    /// Queues a best-effort notification (meant for DETECTED and STARTED) for every receiver that takes
    /// it; never waits. A full queue drops it for that receiver only.
    pub fn try_notify(&self, notification: &Notification) -> Enqueued {
        let Some(inner) = &self.inner else {
            return Enqueued::Disabled;
        };
        let event_type = notification.event_type();
        let mut result = Enqueued::Disabled;
        for lane in self.lanes(event_type) {
            let queued = lane.try_queue(inner, notification);
            if result != Enqueued::Dropped {
                result = queued;
            }
        }
        result
    }

    /// Delivers a notification that must not be lost (meant for COMPLETED and FAILED) to the receiver
    /// whose id is `receiver_id`.
    ///
    /// The future owns everything it needs (`'static`): spawn it or await it in the caller's task.
    /// It resolves to [`DeliveryOutcome::Delivered`] or [`DeliveryOutcome::Exhausted`] once that receiver's
    /// writer is done, to [`DeliveryOutcome::Disabled`] at once when no such receiver takes the event type,
    /// and to [`DeliveryOutcome::Interrupted`] when the notifier shut down first (keep the `rollout` record).
    pub fn deliver_to(
        &self,
        receiver_id: &str,
        notification: &Notification,
    ) -> impl Future<Output = DeliveryOutcome> + Send + use<> {
        let event_type = notification.event_type();
        let job = self.inner.as_ref().and_then(|inner| {
            let lane = self
                .lanes(event_type)
                .find(|lane| lane.receiver.id == receiver_id)?;
            Some((lane.reliable.clone(), lane.prepare(inner, notification)))
        });
        async move {
            let (queue, prepared) = match job {
                None => return DeliveryOutcome::Disabled,
                Some((_, None)) => return DeliveryOutcome::Exhausted,
                Some((queue, Some(prepared))) => (queue, prepared),
            };
            let (reply, outcome) = oneshot::channel();
            let job = Job {
                prepared,
                reply: Some(reply),
            };
            if queue.send(job).await.is_err() {
                return DeliveryOutcome::Interrupted;
            }
            outcome.await.unwrap_or(DeliveryOutcome::Interrupted)
        }
    }

    /// Delivers to every receiver that takes the event type, all at once; for a caller that keeps no
    /// record of who has it (a FAILED that could not be recorded). Resolves to the least final outcome:
    /// `Interrupted` if any was, else `Exhausted` if any was, else `Delivered` (`Disabled` with no receiver).
    pub fn deliver(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = DeliveryOutcome> + Send + use<> {
        let each: Vec<_> = self
            .targets(notification.event_type())
            .iter()
            .map(|id| self.deliver_to(id, notification))
            .collect();
        async move {
            let outcomes = futures::future::join_all(each).await;
            [
                DeliveryOutcome::Interrupted,
                DeliveryOutcome::Exhausted,
                DeliveryOutcome::Delivered,
            ]
            .into_iter()
            .find(|o| outcomes.contains(o))
            .unwrap_or(DeliveryOutcome::Disabled)
        }
    }

    /// Stops accepting notifications and flushes every receiver's queued ones for at most `deadline`.
    ///
    /// Deliveries still running at the deadline are abandoned; their futures resolve to
    /// [`DeliveryOutcome::Interrupted`]. Calling it again, or on a disabled notifier, returns at once.
    pub async fn shutdown(&self, deadline: Duration) {
        let Some(inner) = &self.inner else { return };
        let at = Instant::now() + deadline;
        let stopping = inner.lanes.iter().filter_map(|lane| {
            let stop = lane.stop.lock().map(|mut s| s.take()).unwrap_or(None);
            let (stop, handle) = stop?;
            let _ = stop.send(at);
            Some(handle)
        });
        for done in futures::future::join_all(stopping.collect::<Vec<_>>()).await {
            if let Err(join_error) = done {
                error!(error = %join_error, "webhook writer task ended abnormally");
            }
        }
    }
}

impl Lane {
    fn start(
        client: reqwest::Client,
        receiver: &Receiver,
        config: &WebhookConfig,
        metrics: &WebhookMetrics,
    ) -> Self {
        let sender = Sender::new(client, receiver, config, metrics.clone());
        let (best_effort, best_rx) = mpsc::channel(config.queue_capacity);
        // Reliable jobs wait in their callers' tasks for space, so this bound only limits memory.
        let (reliable, reliable_rx) = mpsc::channel(config.queue_capacity);
        let (stop_tx, stop_rx) = oneshot::channel();
        let writer = Writer::new(Arc::new(sender), config.max_in_flight, config.timeout);
        let handle = tokio::spawn(writer.serve(reliable_rx, best_rx, stop_rx));
        Lane {
            receiver: receiver.clone(),
            best_effort,
            reliable,
            stop: Mutex::new(Some((stop_tx, handle))),
        }
    }

    fn try_queue(&self, inner: &Inner, notification: &Notification) -> Enqueued {
        let event_type = notification.event_type();
        let Some(prepared) = self.prepare(inner, notification) else {
            return Enqueued::Dropped;
        };
        let job = Job {
            prepared,
            reply: None,
        };
        let service = self.receiver.service;
        let receiver = &self.receiver.masked;
        match self.best_effort.try_send(job) {
            Ok(()) => Enqueued::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                inner.metrics.record_dropped(service, event_type);
                warn!(%receiver, %event_type, delivery = %notification.delivery_id, "webhook queue of this receiver full; notification dropped");
                Enqueued::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                inner.metrics.record_dropped(service, event_type);
                debug!(%receiver, %event_type, delivery = %notification.delivery_id, "webhook notifier shut down; notification dropped");
                Enqueued::Dropped
            }
        }
    }

    fn prepare(&self, inner: &Inner, notification: &Notification) -> Option<Prepared> {
        let service = self.receiver.service;
        match Prepared::new(notification, &self.receiver, &inner.config) {
            Ok(prepared) => Some(prepared),
            Err(error) => {
                let event_type = notification.event_type();
                inner
                    .metrics
                    .record(service, event_type, AttemptResult::Failed);
                error!(receiver = %self.receiver.masked, %event_type, error = &error as &dyn std::error::Error, "webhook notification not sent");
                None
            }
        }
    }
}
