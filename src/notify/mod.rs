//! Notifications: the last step of the flow (watch → … → observe → **notify**).
//!
//! Input: what the controller decided and observed, as typed [`Notification`]s. Output: webhook requests
//! (docs/notifications.md) sent by a writer task, never inside reconcile. Kubernetes Events live beside this in `events`.
//!
//! | file | responsibility |
//! |---|---|
//! | [`config`] | `WEBHOOK_*` variables → [`WebhookConfig`] |
//! | [`payload`] | [`Notification`] → exact JSON body, [`delivery_id`] |
//! | [`receiver`] | `NOTIFY_URLS` → [`Receiver`]s: service, events, endpoint, masked form, `delivered` id |
//! | [`format`] | the body each service gets |
//! | `webhook` | the [`Notifier`] handle: one lane (queues, writer) per receiver; best-effort and reliable deliveries |
//! | `writer` | one receiver's writer task: bounded pool of deliveries, graceful flush |
//! | `delivery` | one delivery: signing, headers, retries, `Retry-After` |
//! | `metrics` | `webhook_deliveries_total`, `webhook_queue_dropped_total`, labelled by receiver service |

pub mod config;
mod delivery;
pub mod events;
pub mod format;
mod metrics;
pub mod payload;
pub mod receiver;
mod webhook;
mod writer;

pub use config::{NotifyConfigError, WebhookArgs, WebhookConfig, WebhookConfigError};
pub use delivery::{DELIVERY_HEADER, DeliveryOutcome, MAX_RETRY_AFTER, SIGNATURE_HEADER};
pub use payload::{Event, EventType, Facts, Notification, WorkloadKind, WorkloadRef, delivery_id};
pub use receiver::{EventSet, Receiver, ReceiverError, Service};
pub use webhook::{Enqueued, Notifier, NotifierError};
