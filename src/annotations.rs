//! The `watch-cluster.io/` annotations (docs/annotations.md): what users write, and what the controller records.
//!
//! Input: a workload's `metadata.annotations`. Output: typed [`Settings`], or an [`InvalidAnnotation`] that
//! names the annotation, the value and a valid example: a value that cannot be used never falls back
//! silently to a default, because "checked every 5 minutes with the wrong strategy" is worse than "not checked".

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::gate::Gates;
use crate::{schedule::Schedule, strategy::Strategy};

/// The prefix of every annotation the controller reads or writes.
pub const PREFIX: &str = "watch-cluster.io/";
/// `"true"` (any case) opts a workload in.
pub const ENABLED: &str = "watch-cluster.io/enabled";
/// When to check.
pub const CRON: &str = "watch-cluster.io/cron";
/// How to choose the next image.
pub const STRATEGY: &str = "watch-cluster.io/strategy";
/// Which containers to manage.
pub const CONTAINERS: &str = "watch-cluster.io/containers";
/// Presence triggers one check now.
pub const CHECK_NOW: &str = "watch-cluster.io/check-now";
/// `"false"` disables automatic rollback.
pub const ROLLBACK: &str = "watch-cluster.io/rollback";
/// Written: epoch milliseconds of the last update.
pub const LAST_UPDATE: &str = "watch-cluster.io/last-update";
/// Written: the image(s) of the last update.
pub const LAST_UPDATE_IMAGE: &str = "watch-cluster.io/last-update-image";
/// Written: `<previous> -> <new>`.
pub const CHANGE: &str = "watch-cluster.io/change";
/// Written: digest(s) before the last update.
pub const LAST_UPDATE_FROM_DIGEST: &str = "watch-cluster.io/last-update-from-digest";
/// Written: digest(s) after the last update.
pub const LAST_UPDATE_TO_DIGEST: &str = "watch-cluster.io/last-update-to-digest";
/// Written: the (cron, strategy) last announced with `DEPLOYMENT_DETECTED`.
pub const DETECTED: &str = "watch-cluster.io/detected";
/// Written: the update in flight, as JSON.
pub const ROLLOUT: &str = "watch-cluster.io/rollout";
/// Written: images whose rollout failed, as JSON.
pub const QUARANTINE: &str = "watch-cluster.io/quarantine";
/// When an update may start: `<cron> for <duration>; …`.
pub const UPDATE_WINDOW: &str = "watch-cluster.io/update-window";
/// How long a candidate must have been seen before it is taken.
pub const MIN_AGE: &str = "watch-cluster.io/min-age";
/// `"true"` (any case): report what would be done, apply nothing.
pub const HOLD: &str = "watch-cluster.io/hold";
/// Tags and `tag@sha256:…` never to take.
pub const SKIP: &str = "watch-cluster.io/skip";
/// A regular expression candidate tags must match.
pub const TAG_FILTER: &str = "watch-cluster.io/tag-filter";
/// `cosign`: a candidate is taken only if its signature verifies with `VERIFY_KEYS` (docs/signatures.md).
pub const VERIFY: &str = "watch-cluster.io/verify";
/// Written: candidates waiting for `min-age`, as JSON.
pub const PENDING: &str = "watch-cluster.io/pending";

/// The default schedule: every 5 minutes.
pub const DEFAULT_CRON: &str = "0 */5 * * * ?";

/// Whether the workload is opted in: `enabled` is `"true"` in any case.
pub fn is_enabled(annotations: &BTreeMap<String, String>) -> bool {
    annotations
        .get(ENABLED)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// What the user asked for, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The effective cron expression (the default when unset).
    pub cron: String,
    /// The parsed schedule.
    pub schedule: Schedule,
    /// The effective strategy.
    pub strategy: Strategy,
    /// Container names to manage; `None` manages every regular container the strategy can handle.
    pub containers: Option<Vec<String>>,
    /// Whether a failed rollout is rolled back.
    pub rollback: bool,
    /// Whether `check-now` is present (any value).
    pub check_now: bool,
    /// Whether `check-now` is `"force"` (any case): skips `update-window` and `min-age`, no other gate.
    pub force: bool,
    /// The safety gates (§11); a gate whose annotation is invalid is left at its default here and its
    /// error is in `gate_errors`.
    pub gates: Gates,
    /// Invalid gate annotations, one per annotation. They do not stop checks, but no update may start
    /// while there is one (docs/annotations.md#invalid-values).
    pub gate_errors: Vec<InvalidAnnotation>,
}

/// An annotation value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "annotation {annotation}={value:?} is invalid: {problem}; for example {annotation}: {example:?}"
)]
pub struct InvalidAnnotation {
    /// The full annotation key.
    pub annotation: &'static str,
    /// The value as found.
    pub value: String,
    /// What is wrong.
    pub problem: String,
    /// A value that would be accepted.
    pub example: String,
}

impl Settings {
    /// These settings where the controller has `VERIFY_KEYS` or not: `verify` without a key is an invalid
    /// gate annotation (no update starts until a key is configured or the annotation removed).
    pub fn with_keys(mut self, keys_configured: bool) -> Self {
        if self.gates.verify && !keys_configured {
            self.gate_errors.push(InvalidAnnotation {
                annotation: VERIFY,
                value: "cosign".into(),
                problem:
                    "the controller has no key to verify with: set VERIFY_KEYS (docs/signatures.md)"
                        .into(),
                example: "cosign".into(),
            });
        }
        self
    }

    /// Reads the user's annotations of an enabled workload.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
        tz: chrono_tz::Tz,
    ) -> Result<Self, InvalidAnnotation> {
        let cron = non_empty(annotations, CRON)
            .unwrap_or(DEFAULT_CRON)
            .to_owned();
        let schedule = Schedule::parse(&cron, tz).map_err(|e| InvalidAnnotation {
            annotation: CRON,
            value: cron.clone(),
            problem: e.to_string(),
            example: DEFAULT_CRON.into(),
        })?;
        if schedule.next_after(Utc::now()).is_none() {
            return Err(InvalidAnnotation {
                annotation: CRON,
                value: cron,
                problem: "it never fires again (a past year, or a date that does not exist)".into(),
                example: DEFAULT_CRON.into(),
            });
        }
        let strategy = match non_empty(annotations, STRATEGY) {
            None => Strategy::Version,
            Some(s) => s.parse::<Strategy>().map_err(|e| InvalidAnnotation {
                annotation: STRATEGY,
                value: s.to_owned(),
                problem: e.to_string(),
                example: "version-lock-major".into(),
            })?,
        };
        let containers = non_empty(annotations, CONTAINERS)
            .map(parse_containers)
            .transpose()?;
        let rollback = match non_empty(annotations, ROLLBACK).map(str::to_ascii_lowercase) {
            None => true,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(_) => {
                return Err(InvalidAnnotation {
                    annotation: ROLLBACK,
                    value: annotations.get(ROLLBACK).cloned().unwrap_or_default(),
                    problem: "expected true or false".into(),
                    example: "false".into(),
                });
            }
        };
        let (gates, gate_errors) = Gates::from_annotations(annotations, tz, strategy);
        Ok(Self {
            cron,
            schedule,
            strategy,
            containers,
            rollback,
            check_now: annotations.contains_key(CHECK_NOW),
            force: annotations
                .get(CHECK_NOW)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("force")),
            gates,
            gate_errors,
        })
    }

    /// The (cron, strategy) pair announced with `DEPLOYMENT_DETECTED`.
    pub fn detected(&self) -> Detected {
        Detected {
            cron: self.cron.clone(),
            strategy: self.strategy.to_string(),
        }
    }
}

pub(crate) fn non_empty<'a>(
    annotations: &'a BTreeMap<String, String>,
    key: &str,
) -> Option<&'a str> {
    annotations
        .get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

fn parse_containers(raw: &str) -> Result<Vec<String>, InvalidAnnotation> {
    let mut names: Vec<String> = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let valid = name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(InvalidAnnotation {
                annotation: CONTAINERS,
                value: raw.to_owned(),
                problem: format!("{name:?} is not a container name"),
                example: "app,sidecar".into(),
            });
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    if names.is_empty() {
        return Err(InvalidAnnotation {
            annotation: CONTAINERS,
            value: raw.to_owned(),
            problem: "names no container".into(),
            example: "app,sidecar".into(),
        });
    }
    Ok(names)
}

/// The value of the `detected` annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detected {
    /// The effective cron expression.
    pub cron: String,
    /// The effective strategy, canonical name.
    pub strategy: String,
}

impl Detected {
    /// Reads the annotation; an unreadable value counts as absent (it is ours and will be rewritten).
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Option<Self> {
        serde_json::from_str(annotations.get(DETECTED)?).ok()
    }

    /// The annotation value.
    pub fn to_value(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The `rollout` annotation: the update in flight, so a restarted controller or a new leader finishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRecord {
    /// Stable id of this update; the webhook delivery ids derive from it.
    pub id: String,
    /// Container name → image before the update.
    pub from: BTreeMap<String, String>,
    /// Container name → image written.
    pub to: BTreeMap<String, String>,
    /// When the update patch was accepted.
    pub started_at: DateTime<Utc>,
    /// Set once the rollout ended; delivered, then the annotation is removed.
    pub outcome: Option<RolloutOutcome>,
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum RolloutOutcome {
    /// Complete as `kubectl rollout status` decides.
    #[serde(rename_all = "camelCase")]
    Completed {
        /// When completion was observed.
        at: DateTime<Utc>,
        /// Milliseconds from `startedAt`.
        duration_ms: u64,
        /// The receivers that have it.
        #[serde(default, skip_serializing_if = "Delivered::is_empty")]
        delivered: Delivered,
    },
    /// Failed, timed out, or superseded.
    #[serde(rename_all = "camelCase")]
    Failed {
        /// When the failure was decided.
        at: DateTime<Utc>,
        /// Why.
        error: String,
        /// Container → image restored, when rolled back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rolled_back_to: Option<BTreeMap<String, String>>,
        /// The receivers that have it.
        #[serde(default, skip_serializing_if = "Delivered::is_empty")]
        delivered: Delivered,
    },
}

impl RolloutOutcome {
    /// The receivers that have this outcome (SPEC §15).
    pub fn delivered(&self) -> &Delivered {
        match self {
            RolloutOutcome::Completed { delivered, .. }
            | RolloutOutcome::Failed { delivered, .. } => delivered,
        }
    }

    /// The same outcome with `receiver_id` listed as having it.
    pub fn with_delivered(mut self, receiver_id: &str) -> Self {
        match &mut self {
            RolloutOutcome::Completed { delivered, .. }
            | RolloutOutcome::Failed { delivered, .. } => {
                delivered.0.insert(receiver_id.to_owned());
            }
        }
        self
    }
}

/// The outcome's `delivered` list: ids of the receivers that accepted it (`webhook`, `slack:1a2b3c4d`, …),
/// so a restarted controller or a new leader sends only to the others (docs/annotations.md#rollout).
///
/// Sorted and without duplicates (a set), and left out of the record when empty: a record written before
/// this field existed reads, serializes and seals exactly as before.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Delivered(std::collections::BTreeSet<String>);

impl Delivered {
    /// Whether no receiver is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `receiver_id` is listed.
    pub fn contains(&self, receiver_id: &str) -> bool {
        self.0.contains(receiver_id)
    }

    /// The ids, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl<S: Into<String>> FromIterator<S> for Delivered {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Delivered(iter.into_iter().map(Into::into).collect())
    }
}

impl RolloutRecord {
    /// Reads the annotation. `Err` carries the raw value for the log: a corrupt record is reported, not guessed at.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Option<Result<Self, String>> {
        let raw = annotations.get(ROLLOUT)?;
        Some(serde_json::from_str(raw).map_err(|e| format!("{e}: {raw}")))
    }

    /// The annotation value.
    pub fn to_value(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn enabled_is_true_in_any_case_and_nothing_else() {
        assert!(is_enabled(&annotations(&[(ENABLED, "TRUE")])));
        assert!(is_enabled(&annotations(&[(ENABLED, " true ")])));
        for off in ["false", "yes", "1", ""] {
            assert!(!is_enabled(&annotations(&[(ENABLED, off)])), "{off}");
        }
        assert!(!is_enabled(&annotations(&[])));
    }

    #[test]
    fn defaults_apply_when_only_enabled_is_set() {
        let s =
            Settings::from_annotations(&annotations(&[(ENABLED, "true")]), chrono_tz::UTC).unwrap();
        assert_eq!(s.cron, DEFAULT_CRON);
        assert_eq!(s.strategy, Strategy::Version);
        assert_eq!(s.containers, None);
        assert!(s.rollback);
        assert!(!s.check_now);
    }

    #[test]
    fn an_unknown_strategy_names_the_annotation_and_an_example() {
        let err = Settings::from_annotations(&annotations(&[(STRATEGY, "newest")]), chrono_tz::UTC)
            .unwrap_err();
        assert_eq!(err.annotation, STRATEGY);
        assert_eq!(err.value, "newest");
        let text = err.to_string();
        assert!(
            text.contains("watch-cluster.io/strategy=\"newest\""),
            "{text}"
        );
        assert!(text.contains("version-lock-major"), "{text}");
    }

    #[test]
    fn a_bad_cron_is_invalid_and_not_replaced_by_the_default() {
        let err =
            Settings::from_annotations(&annotations(&[(CRON, "every minute")]), chrono_tz::UTC)
                .unwrap_err();
        assert_eq!(err.annotation, CRON);
        assert!(err.to_string().contains(DEFAULT_CRON));
    }

    #[test]
    fn containers_are_a_deduplicated_list_of_names() {
        let s = Settings::from_annotations(
            &annotations(&[(CONTAINERS, "app, sidecar,app"), (CHECK_NOW, "")]),
            chrono_tz::UTC,
        )
        .unwrap();
        assert_eq!(s.containers.unwrap(), ["app", "sidecar"]);
        assert!(s.check_now);
        for bad in [",", "App", "a b"] {
            let err =
                Settings::from_annotations(&annotations(&[(CONTAINERS, bad)]), chrono_tz::UTC)
                    .unwrap_err();
            assert_eq!(err.annotation, CONTAINERS, "{bad}");
        }
    }

    #[test]
    fn rollback_accepts_true_or_false_only() {
        let s = Settings::from_annotations(&annotations(&[(ROLLBACK, "False")]), chrono_tz::UTC)
            .unwrap();
        assert!(!s.rollback);
        assert!(
            Settings::from_annotations(&annotations(&[(ROLLBACK, "no")]), chrono_tz::UTC).is_err()
        );
    }

    #[test]
    fn check_now_force_is_read_in_any_case_and_any_value_still_checks_now() {
        let read = |v: &str| {
            Settings::from_annotations(&annotations(&[(CHECK_NOW, v)]), chrono_tz::UTC).unwrap()
        };
        assert!(read("Force").force && read("Force").check_now);
        assert!(read(" FORCE ").force);
        assert!(!read("true").force && read("true").check_now);
        assert!(!read("").force && read("").check_now);
    }

    #[test]
    fn rollout_records_round_trip_through_the_annotation() {
        let record = RolloutRecord {
            id: "abc".into(),
            from: [("app".to_owned(), "app:1.0.0".to_owned())].into(),
            to: [("app".to_owned(), "app:1.0.1@sha256:00".to_owned())].into(),
            started_at: DateTime::from_timestamp(1_704_067_200, 0).unwrap(),
            outcome: Some(RolloutOutcome::Failed {
                delivered: Default::default(),
                at: DateTime::from_timestamp(1_704_067_260, 0).unwrap(),
                error: "ProgressDeadlineExceeded".into(),
                rolled_back_to: Some([("app".to_owned(), "app:1.0.0".to_owned())].into()),
            }),
        };
        let value = record.to_value();
        assert!(
            value.contains("\"startedAt\":\"2024-01-01T00:00:00Z\""),
            "{value}"
        );
        assert!(value.contains("\"result\":\"failed\""), "{value}");
        let map = annotations(&[(ROLLOUT, &value)]);
        assert_eq!(
            RolloutRecord::from_annotations(&map).unwrap().unwrap(),
            record
        );
        let broken = annotations(&[(ROLLOUT, "{")]);
        assert!(RolloutRecord::from_annotations(&broken).unwrap().is_err());
    }
}
