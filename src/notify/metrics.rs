//! Webhook metrics: every outcome of every delivery attempt, counted with bounded labels only.
//!
//! Input: the registry passed at construction. Output: `webhook_deliveries_total{receiver,event_type,outcome}`
//! and `webhook_queue_dropped_total{receiver,event_type}` (prometheus-client appends `_total` to counters).
//! Labels are closed enums, never URLs, ids or error text: `receiver` is the service (`webhook`, `generic`,
//! `slack`, `discord`, `teams`, SPEC §15), so cardinality stays at 5 × 4 × 4 series however many URLs are set.
//! The Grafana dashboard queries these names and labels (docs/notifications.md#metrics).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::payload::EventType;
use super::receiver::Service;

/// What became of one attempt or one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AttemptResult {
    /// The receiver answered 2xx.
    Delivered,
    /// Not delivered and no retry left (or not retryable).
    Failed,
    /// An attempt failed and another one follows.
    Retried,
    /// Never attempted: the best-effort queue was full or closed.
    Dropped,
}

impl EncodeLabelValue for AttemptResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self {
            AttemptResult::Delivered => "delivered",
            AttemptResult::Failed => "failed",
            AttemptResult::Retried => "retried",
            AttemptResult::Dropped => "dropped",
        })
    }
}

impl EncodeLabelValue for EventType {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.as_str())
    }
}

impl EncodeLabelValue for Service {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.label())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DeliveryLabels {
    receiver: Service,
    event_type: EventType,
    outcome: AttemptResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct QueueLabels {
    receiver: Service,
    event_type: EventType,
}

/// The webhook component's counters; cheap to clone (shared atomics).
#[derive(Debug, Clone, Default)]
pub(crate) struct WebhookMetrics {
    deliveries: Family<DeliveryLabels, Counter>,
    queue_dropped: Family<QueueLabels, Counter>,
}

impl WebhookMetrics {
    /// Creates the counters and registers them into `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "webhook_deliveries",
            "Webhook notifications by receiver service, event type and outcome (delivered, failed, retried, dropped)",
            metrics.deliveries.clone(),
        );
        registry.register(
            "webhook_queue_dropped",
            "Best-effort webhook notifications dropped because the receiver's queue was full",
            metrics.queue_dropped.clone(),
        );
        metrics
    }

    pub(crate) fn record(&self, receiver: Service, event_type: EventType, outcome: AttemptResult) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                receiver,
                event_type,
                outcome,
            })
            .inc();
    }

    pub(crate) fn record_dropped(&self, receiver: Service, event_type: EventType) {
        self.record(receiver, event_type, AttemptResult::Dropped);
        self.queue_dropped
            .get_or_create(&QueueLabels {
                receiver,
                event_type,
            })
            .inc();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_exposed_with_wire_event_names_and_lowercase_outcomes() {
        let mut registry = Registry::default();
        let metrics = WebhookMetrics::register(&mut registry);
        metrics.record(
            Service::Slack,
            EventType::ImageRolloutCompleted,
            AttemptResult::Retried,
        );
        metrics.record_dropped(Service::Webhook, EventType::DeploymentDetected);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(
            "webhook_deliveries_total{receiver=\"slack\",event_type=\"IMAGE_ROLLOUT_COMPLETED\",outcome=\"retried\"} 1"
        ), "{text}");
        assert!(text.contains(
            "webhook_deliveries_total{receiver=\"webhook\",event_type=\"DEPLOYMENT_DETECTED\",outcome=\"dropped\"} 1"
        ), "{text}");
        assert!(text.contains(
            "webhook_queue_dropped_total{receiver=\"webhook\",event_type=\"DEPLOYMENT_DETECTED\"} 1"
        ), "{text}");
    }
}
