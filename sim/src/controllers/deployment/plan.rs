//! The arithmetic of a Deployment rollout, as kube-controller-manager does it: surge and
//! unavailability fenceposts, how far to scale the new ReplicaSet up, and how far to scale the
//! old ones down. Pure functions over [`RsInfo`] snapshots.

use serde_json::Value;

use crate::controllers::meta;

/// What a rollout step needs to know about one ReplicaSet.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RsInfo {
    pub name: String,
    pub spec_replicas: i64,
    pub status_replicas: i64,
    pub ready: i64,
    pub available: i64,
    pub revision: i64,
}

impl RsInfo {
    pub fn of(rs: &Value) -> Self {
        Self {
            name: meta::name(rs).to_string(),
            spec_replicas: meta::i64_at(rs, "/spec/replicas").unwrap_or(1),
            status_replicas: meta::i64_at(rs, "/status/replicas").unwrap_or(0),
            ready: meta::i64_at(rs, "/status/readyReplicas").unwrap_or(0),
            available: meta::i64_at(rs, "/status/availableReplicas").unwrap_or(0),
            revision: meta::annotation(rs, super::REVISION)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
        }
    }
}

/// `(maxSurge, maxUnavailable)` of a RollingUpdate strategy for `replicas`: surge rounds up,
/// unavailability down, and both zero means one may be unavailable.
pub(crate) fn fenceposts(strategy: &Value, replicas: i64) -> (i64, i64) {
    let ru = strategy.get("rollingUpdate");
    let pct = Value::String("25%".to_string());
    let surge_v = ru.and_then(|r| r.get("maxSurge")).unwrap_or(&pct);
    let unavail_v = ru.and_then(|r| r.get("maxUnavailable")).unwrap_or(&pct);
    let surge = meta::scaled_value(Some(surge_v), replicas, true, 0);
    let unavailable = meta::scaled_value(Some(unavail_v), replicas, false, 0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

pub(crate) fn is_rolling(strategy: &Value) -> bool {
    strategy.get("type").and_then(Value::as_str) != Some("Recreate")
}

/// How many pods may be unavailable during the rollout (0 for Recreate).
pub(crate) fn max_unavailable(strategy: &Value, replicas: i64) -> i64 {
    if !is_rolling(strategy) || replicas == 0 {
        return 0;
    }
    fenceposts(strategy, replicas).1.min(replicas)
}

/// How many pods may exist above `replicas` (0 for Recreate).
pub(crate) fn max_surge(strategy: &Value, replicas: i64) -> i64 {
    if is_rolling(strategy) {
        fenceposts(strategy, replicas).0
    } else {
        0
    }
}

/// The new ReplicaSet's replica count for this step of a rolling update.
pub(crate) fn new_rs_replicas(
    replicas: i64,
    surge: i64,
    all_spec_total: i64,
    new_current: i64,
) -> i64 {
    let max_total = replicas + surge;
    if all_spec_total >= max_total {
        return new_current;
    }
    let up = (max_total - all_spec_total)
        .min(replicas - new_current)
        .max(0);
    new_current + up
}

/// Target replica counts for the old ReplicaSets (oldest first): first drop their unavailable
/// pods, then available ones while enough pods stay available.
pub(crate) fn scale_down_old(
    replicas: i64,
    max_unavailable: i64,
    new: Option<&RsInfo>,
    olds: &[RsInfo],
) -> Vec<i64> {
    let mut targets: Vec<i64> = olds.iter().map(|r| r.spec_replicas).collect();
    let old_pods: i64 = targets.iter().sum();
    if old_pods == 0 {
        return targets;
    }
    let (new_spec, new_available) = new.map_or((0, 0), |n| (n.spec_replicas, n.available));
    let min_available = replicas - max_unavailable;
    let max_scaled_down = old_pods + new_spec - min_available - (new_spec - new_available);
    if max_scaled_down <= 0 {
        return targets;
    }
    let mut cleaned = 0;
    for (target, rs) in targets.iter_mut().zip(olds) {
        let unhealthy = *target - rs.available;
        if cleaned >= max_scaled_down || *target == 0 || unhealthy <= 0 {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(unhealthy);
        *target -= n;
        cleaned += n;
    }
    let available: i64 = olds.iter().map(|r| r.available).sum::<i64>() + new_available;
    let mut budget = (available - min_available).max(0);
    for target in &mut targets {
        let n = (*target).min(budget);
        *target -= n;
        budget -= n;
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(spec: i64, available: i64) -> RsInfo {
        RsInfo {
            spec_replicas: spec,
            status_replicas: spec,
            ready: available,
            available,
            ..RsInfo::default()
        }
    }

    #[test]
    fn default_fenceposts_round_surge_up_and_unavailable_down() {
        let s = json!({"type": "RollingUpdate"});
        assert_eq!(fenceposts(&s, 3), (1, 0));
        assert_eq!(fenceposts(&s, 10), (3, 2));
        let zero = json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "10%"}});
        assert_eq!(fenceposts(&zero, 3), (0, 1));
        assert_eq!(max_unavailable(&json!({"type": "Recreate"}), 3), 0);
    }

    #[test]
    fn new_replica_set_grows_within_the_surge() {
        assert_eq!(new_rs_replicas(3, 1, 3, 0), 1);
        assert_eq!(new_rs_replicas(3, 1, 4, 1), 1);
        assert_eq!(new_rs_replicas(3, 1, 2, 2), 3);
        assert_eq!(new_rs_replicas(10, 3, 10, 0), 3);
    }

    #[test]
    fn old_replica_sets_shrink_only_while_enough_pods_stay_available() {
        // 3 replicas, surge 1, unavailable 0: new RS has 1 pod not yet available.
        assert_eq!(scale_down_old(3, 0, Some(&rs(1, 0)), &[rs(3, 3)]), vec![3]);
        // The new pod became available: one old pod may go.
        assert_eq!(scale_down_old(3, 0, Some(&rs(1, 1)), &[rs(3, 3)]), vec![2]);
        // Unavailable old pods are dropped first, even without spare availability.
        assert_eq!(scale_down_old(3, 0, Some(&rs(1, 1)), &[rs(3, 2)]), vec![2]);
        assert_eq!(
            scale_down_old(3, 0, Some(&rs(3, 3)), &[rs(1, 1), rs(1, 0)]),
            vec![0, 0]
        );
    }
}
