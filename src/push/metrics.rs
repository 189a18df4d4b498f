//! Events by provider and result (`watch_cluster_push_events_total`). Both labels come from fixed sets.

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use super::Provider;

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum EventResult {
    /// At least one new push: its repositories were sent on.
    accepted,
    /// Authenticated and parseable, nothing that counts (pulls, blobs, deletes, `ping`…).
    ignored,
    /// Every push in it was seen before (a replay).
    duplicate,
    /// Missing or wrong token or signature (401).
    unauthorized,
    /// Not the provider's payload (400).
    malformed,
    /// Over the body limit (413).
    too_large,
    /// This replica does not lead (503).
    not_leader,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum ProviderLabel {
    distribution,
    dockerhub,
    github,
    harbor,
    quay,
}

impl From<Provider> for ProviderLabel {
    fn from(provider: Provider) -> Self {
        match provider {
            Provider::Distribution => ProviderLabel::distribution,
            Provider::DockerHub => ProviderLabel::dockerhub,
            Provider::GitHub => ProviderLabel::github,
            Provider::Harbor => ProviderLabel::harbor,
            Provider::Quay => ProviderLabel::quay,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Labels {
    provider: ProviderLabel,
    result: EventResult,
}

/// The listener's metrics; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    events: Family<Labels, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "push_events",
            "Registry push events received, by provider and result",
            metrics.events.clone(),
        );
        metrics
    }

    /// Counts one request.
    pub fn count(&self, provider: Provider, result: EventResult) {
        self.events
            .get_or_create(&Labels {
                provider: provider.into(),
                result,
            })
            .inc();
    }

    /// The count so far, for tests.
    pub fn get(&self, provider: Provider, result: EventResult) -> u64 {
        self.events
            .get_or_create(&Labels {
                provider: provider.into(),
                result,
            })
            .get()
    }
}
