//! The registry client's Prometheus metrics (README.md#metrics).
//!
//! `registry_requests_total{registry, method, status}` counts every HTTP exchange (status is the code, or
//! `error` when no response came); `registry_rate_limit_waits_total{registry}` counts requests held back
//! by a rate-limit pause. The `registry` label is the registry as written in image references, so its
//! values are bounded by the images configured in the cluster.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    registry: String,
    method: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabels {
    registry: String,
}

/// Counters of the registry client.
#[derive(Clone, Default)]
pub(crate) struct Metrics {
    requests: Family<RequestLabels, Counter>,
    rate_limit_waits: Family<RegistryLabels, Counter>,
}

impl Metrics {
    /// Creates the counters and registers them into `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "registry_requests",
            "HTTP requests to container registries, by registry, method and status",
            metrics.requests.clone(),
        );
        registry.register(
            "registry_rate_limit_waits",
            "Requests held back because a registry asked us to slow down",
            metrics.rate_limit_waits.clone(),
        );
        metrics
    }

    /// Counts one exchange; `status` is `None` when no response arrived.
    pub(crate) fn request(&self, registry: &str, method: &str, status: Option<u16>) {
        let labels = RequestLabels {
            registry: registry.to_owned(),
            method: method.to_owned(),
            status: status.map_or_else(|| "error".to_owned(), |s| s.to_string()),
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// Counts one request held back by a pause.
    pub(crate) fn rate_limit_wait(&self, registry: &str) {
        let labels = RegistryLabels {
            registry: registry.to_owned(),
        };
        self.rate_limit_waits.get_or_create(&labels).inc();
    }
}
