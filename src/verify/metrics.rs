//! The verifier's metric (README.md#metrics): `signature_verifications_total{result}`, `result` one of
//! `verified`, `rejected` or `error` (a registry failure while reading signatures).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::Verdict;
use crate::registry::RegistryError;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Default)]
pub(crate) struct Metrics {
    verifications: Family<ResultLabels, Counter>,
}

impl Metrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "signature_verifications",
            "Signature verifications of candidate images, by result (verified, rejected, error)",
            metrics.verifications.clone(),
        );
        metrics
    }

    pub(crate) fn count(&self, result: &Result<Verdict, RegistryError>) {
        let result = match result {
            Ok(Verdict::Verified(_)) => "verified",
            Ok(Verdict::Rejected(_)) => "rejected",
            Err(_) => "error",
        };
        self.verifications
            .get_or_create(&ResultLabels { result })
            .inc();
    }
}
