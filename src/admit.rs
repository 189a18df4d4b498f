//! Admit: may an update that was decided start now? (docs/annotations.md#gates)
//!
//! Input: the update's gates as the workload's annotations set them, the current time and whether the check
//! was forced (`check-now: "force"`). Output: `Ok` or every reason it waits ([`Held`]), each with the moment it
//! stops holding when that is known, so the caller checks again exactly then. A gate holds an update, never a
//! check: the check ran and found the update; it is decided again when the gate opens, never replayed.
//!
//! The rollout bound (`MAX_CONCURRENT_ROLLOUTS`) is asked last, by the caller, once every gate here passed:
//! its queue is ordered by when the other gates first passed. `min-age` holds are found while deciding (they
//! choose among candidates) and reach the caller in the decision's findings.

use chrono::{DateTime, Utc};

/// Why a decided update waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// `hold: "true"`.
    Hold,
    /// Outside every `update-window`.
    Window {
        /// When the next window opens (`None`: never again).
        opens_at: Option<DateTime<Utc>>,
    },
    /// The candidate was first seen less than `min-age` ago.
    MinAge {
        /// The container.
        container: String,
        /// The candidate it waits for.
        image: String,
        /// When that candidate is old enough.
        ripens_at: DateTime<Utc>,
        /// When any waiting candidate of the container is old enough: when to check again.
        recheck_at: DateTime<Utc>,
    },
    /// `MAX_CONCURRENT_ROLLOUTS` rollouts are in flight.
    Slot {
        /// Place in the queue, 1 for the next one.
        position: usize,
        /// How many wait.
        waiting: usize,
        /// The bound.
        max: usize,
    },
}

impl Held {
    /// A short name for logs, Events and `plan`.
    pub fn gate(&self) -> &'static str {
        match self {
            Held::Hold => "hold",
            Held::Window { .. } => "update-window",
            Held::MinAge { .. } => "min-age",
            Held::Slot { .. } => "rollout-slot",
        }
    }

    /// When this reason stops holding, if known: the caller checks again then.
    pub fn until(&self) -> Option<DateTime<Utc>> {
        match self {
            Held::Window { opens_at } => *opens_at,
            Held::MinAge { recheck_at, .. } => Some(*recheck_at),
            Held::Hold | Held::Slot { .. } => None,
        }
    }

    /// What makes two reports of this reason "the same" for Events: the gate and the candidate, never the
    /// moving parts (a queue position).
    pub fn identity(&self, candidate: &str) -> String {
        match self {
            Held::MinAge {
                container, image, ..
            } => format!("min-age:{container}={image}"),
            other => format!("{}:{candidate}", other.gate()),
        }
    }
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Held::Hold => f.write_str(
                "held by watch-cluster.io/hold: \"true\" (remove it, or set it to \"false\", to let updates start)",
            ),
            Held::Window {
                opens_at: Some(at),
            } => write!(
                f,
                "outside watch-cluster.io/update-window; the next window opens at {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Held::Window { opens_at: None } => f.write_str(
                "outside watch-cluster.io/update-window, and no window opens again (check its cron expressions)",
            ),
            Held::MinAge {
                container,
                image,
                ripens_at,
                ..
            } => write!(
                f,
                "container {container}: {image} is younger than watch-cluster.io/min-age; taken at {} at the earliest",
                ripens_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Held::Slot {
                position,
                waiting,
                max,
            } => write!(
                f,
                "waiting for a rollout slot: {max} rollouts in flight (MAX_CONCURRENT_ROLLOUTS); number {position} of {waiting} in the queue"
            ),
        }
    }
}
