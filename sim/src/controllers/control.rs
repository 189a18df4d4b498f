//! Test-time control over how simulated rollouts turn out.
//!
//! Input: outcomes set by a test (per workload object or per image substring). Output: the
//! [`Outcome`] the simulated kubelet gives each pod it starts. The outcome is decided once, when
//! the kubelet first sees a pod, so changing it affects only pods created afterwards (old, ready
//! pods stay ready — exactly what a failing new version looks like in a real cluster).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::store::Kind;

/// How the pods of a rollout behave.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Outcome {
    /// Pods start and become ready after the configured delays.
    #[default]
    Complete,
    /// Pods stay `Pending` (containers waiting in `ContainerCreating`): a Deployment reports
    /// `ProgressDeadlineExceeded` after its (scaled) `spec.progressDeadlineSeconds`.
    Stuck,
    /// Pods run but never pass readiness (`Ready` False); a Deployment also times out.
    NeverReady,
    /// The image cannot be pulled: containers wait in `ImagePullBackOff` (the node agent's `pull`).
    PullFails,
    /// Containers start and exit: they wait in `CrashLoopBackOff` with a restart counted (the node
    /// agent's `crash`).
    Crash,
    /// Like `Complete`, with every delay multiplied by the factor.
    Slow(f64),
}

/// An outcome string could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error(
    "failed to parse outcome {0:?}: expected complete, stuck, never-ready, pull-fails, crash or slow:<factor>"
)]
pub struct ParseOutcomeError(String);

impl FromStr for Outcome {
    type Err = ParseOutcomeError;

    /// Parses `complete`, `stuck`, `never-ready`, `pull-fails`, `crash` or `slow:<factor>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "complete" => Ok(Outcome::Complete),
            "stuck" => Ok(Outcome::Stuck),
            "never-ready" => Ok(Outcome::NeverReady),
            "pull-fails" => Ok(Outcome::PullFails),
            "crash" => Ok(Outcome::Crash),
            _ => s
                .strip_prefix("slow:")
                .and_then(|f| f.parse::<f64>().ok())
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(Outcome::Slow)
                .ok_or_else(|| ParseOutcomeError(s.to_string())),
        }
    }
}

impl Outcome {
    /// The factor applied to pod start and ready delays.
    pub(crate) fn delay_factor(self) -> f64 {
        match self {
            Outcome::Slow(f) => f,
            _ => 1.0,
        }
    }
}

type ObjectKey = (Kind, String, String);

#[derive(Default)]
struct Rules {
    objects: HashMap<ObjectKey, Outcome>,
    /// In insertion order; the last matching rule wins.
    images: Vec<(String, Outcome)>,
}

/// A cloneable handle that decides the [`Outcome`] of new pods. Cheap to clone; all clones share
/// the same rules.
#[derive(Clone, Default)]
pub struct RolloutControl {
    rules: Arc<Mutex<Rules>>,
}

impl std::fmt::Debug for RolloutControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutControl").finish_non_exhaustive()
    }
}

impl RolloutControl {
    /// A handle under which every rollout completes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the outcome for new pods of one workload (`Deployment`, `StatefulSet` or `DaemonSet`).
    pub fn set_outcome(&self, kind: Kind, namespace: &str, name: &str, outcome: Outcome) {
        self.with_rules(|r| {
            r.objects
                .insert((kind, namespace.to_string(), name.to_string()), outcome);
        });
    }

    /// Sets the outcome for new pods with a container whose image contains `image_substring`.
    /// A per-object outcome takes precedence; among image rules, the one set last wins.
    pub fn set_outcome_for_image(&self, image_substring: &str, outcome: Outcome) {
        self.with_rules(|r| {
            r.images.retain(|(s, _)| s != image_substring);
            r.images.push((image_substring.to_string(), outcome));
        });
    }

    /// Removes every rule: all new pods complete again.
    pub fn clear(&self) {
        self.with_rules(|r| *r = Rules::default());
    }

    /// The outcome for a new pod owned by `workload` (if any) running `images`.
    pub(crate) fn outcome_for(
        &self,
        workload: Option<(Kind, &str, &str)>,
        images: &[&str],
    ) -> Outcome {
        self.with_rules(|r| {
            let by_object = workload
                .and_then(|(k, ns, n)| r.objects.get(&(k, ns.to_string(), n.to_string())).copied());
            by_object
                .or_else(|| {
                    r.images
                        .iter()
                        .rev()
                        .find(|(s, _)| images.iter().any(|i| i.contains(s.as_str())))
                        .map(|(_, o)| *o)
                })
                .unwrap_or_default()
        })
    }

    fn with_rules<T>(&self, f: impl FnOnce(&mut Rules) -> T) -> T {
        // A panic while holding the lock cannot leave the rules half-written, so keep going.
        let mut guard = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_parse_from_their_flag_spelling() {
        assert_eq!("stuck".parse::<Outcome>().unwrap(), Outcome::Stuck);
        assert_eq!(
            "never-ready".parse::<Outcome>().unwrap(),
            Outcome::NeverReady
        );
        assert_eq!("slow:2.5".parse::<Outcome>().unwrap(), Outcome::Slow(2.5));
        assert_eq!("pull-fails".parse::<Outcome>().unwrap(), Outcome::PullFails);
        assert_eq!("crash".parse::<Outcome>().unwrap(), Outcome::Crash);
        assert!("slow:-1".parse::<Outcome>().is_err());
        assert!("fast".parse::<Outcome>().is_err());
    }

    #[test]
    fn object_rule_wins_over_image_rule_and_last_image_rule_wins() {
        let c = RolloutControl::new();
        c.set_outcome_for_image("app:2", Outcome::NeverReady);
        c.set_outcome_for_image("app", Outcome::Stuck);
        assert_eq!(c.outcome_for(None, &["reg/app:2"]), Outcome::Stuck);
        c.set_outcome(Kind::Deployment, "ns", "web", Outcome::Slow(3.0));
        let w = Some((Kind::Deployment, "ns", "web"));
        assert_eq!(c.outcome_for(w, &["reg/app:2"]), Outcome::Slow(3.0));
        assert_eq!(c.outcome_for(None, &["other:1"]), Outcome::Complete);
        c.clear();
        assert_eq!(c.outcome_for(w, &["reg/app:2"]), Outcome::Complete);
    }
}
