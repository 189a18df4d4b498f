//! The controller's own metrics (README.md#metrics), registered into the process's one prometheus-client registry.
//!
//! Registry requests and rate-limit waits are counted by `registry/`, webhook deliveries by `notify/`; this
//! module counts checks, updates, rollouts, watched workloads and leadership. Every label value comes from a
//! fixed set (outcomes, kinds): object names and error texts never become labels.

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::workload::Kind;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum CheckOutcome {
    /// The workload was patched.
    updated,
    /// Nothing newer.
    no_update,
    /// Not checked now (paused, mid-rollout...).
    skipped,
    /// `DRY_RUN` would have updated.
    dry_run,
    /// An update was found and a gate holds it (hold, update-window, min-age, a rollout slot).
    held,
    /// Registry error, invalid annotation, refused patch.
    failed,
}

/// How a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RolloutResult {
    /// Complete.
    completed,
    /// Failed and rolled back.
    rolled_back,
    /// Failed, not rolled back (rollback disabled, or superseded).
    failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: CheckOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RolloutLabels {
    outcome: RolloutResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// The controller's metrics; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    checks: Family<OutcomeLabels, Counter>,
    updates: Counter,
    rollouts: Family<RolloutLabels, Counter>,
    rollout_duration: Histogram,
    watched: Family<KindLabels, Gauge>,
    leader: Gauge,
    rollout_queue: Gauge,
    pushed: Family<PushLabels, Counter>,
}

/// What became of the workloads a push event named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum PushMatch {
    /// A workload using the pushed repository was woken for a check.
    woken,
    /// No watched workload uses the pushed repository.
    unmatched,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PushLabels {
    result: PushMatch,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            checks: Family::default(),
            updates: Counter::default(),
            rollouts: Family::default(),
            // 5 s … ~85 min: rollouts take seconds to many minutes.
            rollout_duration: Histogram::new([
                5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 2400.0, 5100.0,
            ]),
            watched: Family::default(),
            leader: Gauge::default(),
            rollout_queue: Gauge::default(),
            pushed: Family::default(),
        }
    }
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "checks",
            "Workload checks by outcome",
            metrics.checks.clone(),
        );
        registry.register(
            "updates",
            "Update patches accepted by the API server",
            metrics.updates.clone(),
        );
        registry.register(
            "rollouts",
            "Observed rollouts by outcome",
            metrics.rollouts.clone(),
        );
        registry.register(
            "rollout_duration_seconds",
            "Time from the update patch to the rollout's outcome",
            metrics.rollout_duration.clone(),
        );
        registry.register(
            "watched_workloads",
            "Workloads opted in with valid annotations, by kind",
            metrics.watched.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            metrics.leader.clone(),
        );
        registry.register(
            "rollout_queue",
            "Due updates waiting for a rollout slot (MAX_CONCURRENT_ROLLOUTS)",
            metrics.rollout_queue.clone(),
        );
        registry.register(
            "push_checks",
            "Workloads woken by push events, and pushes of repositories no workload uses",
            metrics.pushed.clone(),
        );
        metrics
    }

    /// Counts a finished check.
    pub fn check(&self, outcome: CheckOutcome) {
        self.checks.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts an accepted update patch.
    pub fn update(&self) {
        self.updates.inc();
    }

    /// Counts a finished rollout and its duration.
    pub fn rollout(&self, outcome: RolloutResult, seconds: f64) {
        self.rollouts
            .get_or_create(&RolloutLabels { outcome })
            .inc();
        self.rollout_duration.observe(seconds);
    }

    /// One more (or one fewer) watched workload of `kind`.
    pub fn watched(&self, kind: Kind, delta: i64) {
        self.watched
            .get_or_create(&KindLabels {
                kind: kind.as_str().to_owned(),
            })
            .inc_by(delta);
    }

    /// How many updates wait for a rollout slot.
    pub fn set_rollout_queue(&self, waiting: usize) {
        self.rollout_queue.set(waiting as i64);
    }

    /// Counts what a push event led to.
    pub fn pushed(&self, result: PushMatch, n: u64) {
        self.pushed.get_or_create(&PushLabels { result }).inc_by(n);
    }

    /// Records leadership.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn the_exposition_carries_bounded_labels_only() {
        let mut registry = Registry::with_prefix("watch_cluster");
        let metrics = Metrics::register(&mut registry);
        metrics.check(CheckOutcome::no_update);
        metrics.check(CheckOutcome::updated);
        metrics.update();
        metrics.rollout(RolloutResult::completed, 12.0);
        metrics.watched(Kind::Deployment, 2);
        metrics.watched(Kind::Deployment, -1);
        metrics.set_leader(true);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            "watch_cluster_checks_total{outcome=\"no_update\"} 1",
            "watch_cluster_updates_total 1",
            "watch_cluster_rollouts_total{outcome=\"completed\"} 1",
            "watch_cluster_rollout_duration_seconds_count 1",
            "watch_cluster_watched_workloads{kind=\"Deployment\"} 1",
            "watch_cluster_leader 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
