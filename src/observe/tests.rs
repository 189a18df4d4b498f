#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::workload::Container;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn workload(image: &str, progress: Progress) -> Workload {
    Workload {
        kind: Kind::Deployment,
        namespace: "team".into(),
        name: "web".into(),
        uid: "uid-1".into(),
        resource_version: "7".into(),
        annotations: BTreeMap::from([(annotations::ENABLED.to_owned(), "true".to_owned())]),
        containers: vec![Container {
            name: "app".into(),
            image: image.into(),
            init: false,
            index: 0,
        }],
        paused: false,
        on_delete: false,
        image_pull_secrets: vec![],
        service_account: "default".into(),
        selector: BTreeMap::new(),
        progress,
        progress_deadline_seconds: Some(600),
        generation_observed: true,
        gitops: None,
    }
}

const NEW: &str = "r/app:1.1.0@sha256:new";

fn record() -> RolloutRecord {
    RolloutRecord {
        id: "id".into(),
        from: BTreeMap::from([("app".into(), "r/app:1.0.0".into())]),
        to: BTreeMap::from([("app".into(), NEW.into())]),
        started_at: at(0),
        outcome: None,
    }
}

fn seen<'a>(record: &'a RolloutRecord, workload: &'a Workload, now: i64) -> Observation<'a> {
    Observation {
        record,
        workload,
        now: at(now),
        watched_for: Duration::from_secs(u64::try_from(now).unwrap_or(0)),
        rollout_timeout: None,
        pods: &[],
    }
}

#[test]
fn a_complete_rollout_is_recorded_with_its_duration() {
    let (record, workload) = (record(), workload(NEW, Progress::Complete));
    let Step::Complete(done) = step(&seen(&record, &workload, 42)) else {
        panic!("complete");
    };
    assert_eq!(
        done.outcome,
        Some(RolloutOutcome::Completed {
            delivered: Default::default(),
            at: at(42),
            duration_ms: 42_000
        })
    );
}

#[test]
fn a_stuck_rollout_is_rolled_back_to_the_recorded_images() {
    let record = record();
    let workload = workload(NEW, Progress::Failed("ProgressDeadlineExceeded".into()));
    let Step::Fail {
        outcome, roll_back, ..
    } = step(&seen(&record, &workload, 5))
    else {
        panic!("fail");
    };
    assert!(roll_back);
    let Some(RolloutOutcome::Failed { rolled_back_to, .. }) = outcome.outcome else {
        panic!("failed outcome");
    };
    assert_eq!(rolled_back_to, Some(record.from.clone()));
}

#[test]
fn another_writers_image_supersedes_ours_and_is_never_rolled_back() {
    let record = record();
    let workload = workload("r/app:9.9.9", Progress::InProgress("1 of 2".into()));
    assert!(matches!(
        step(&seen(&record, &workload, 5)),
        Step::Fail { roll_back: false, failure: Failure::Superseded { ref image }, .. } if image == "r/app:9.9.9"
    ));
}

#[test]
fn rollback_false_records_the_failure_without_restoring() {
    let record = record();
    let mut workload = workload(NEW, Progress::Failed("stuck".into()));
    workload
        .annotations
        .insert(annotations::ROLLBACK.into(), "False".into());
    assert!(matches!(
        step(&seen(&record, &workload, 5)),
        Step::Fail {
            roll_back: false,
            ..
        }
    ));
}

#[test]
fn an_invalid_cron_or_strategy_does_not_change_how_a_rollout_ends() {
    let record = record();
    let mut workload = workload(NEW, Progress::Failed("stuck".into()));
    workload
        .annotations
        .insert(annotations::CRON.into(), "not a cron".into());
    workload
        .annotations
        .insert(annotations::ENABLED.into(), "false".into());
    assert!(matches!(
        step(&seen(&record, &workload, 5)),
        Step::Fail {
            roll_back: true,
            ..
        }
    ));
}

#[test]
fn a_rollout_in_progress_waits_until_its_limit_then_fails() {
    let record = record();
    let workload = workload(NEW, Progress::InProgress("1 of 2 updated".into()));
    assert_eq!(
        step(&seen(&record, &workload, 60)),
        Step::Wait(Duration::from_secs(600))
    );
    assert!(matches!(
        step(&seen(&record, &workload, 660)),
        Step::Fail {
            failure: Failure::TimedOut { .. },
            roll_back: true,
            ..
        }
    ));
}

#[test]
fn a_record_left_for_days_is_judged_from_when_watching_began_not_from_its_start() {
    // Disabled mid-rollout, re-enabled three days later while a replica restarts: the rollout it sees now
    // gets its full limit; the old `startedAt` must not make it "late".
    let record = record();
    let workload = workload(NEW, Progress::InProgress("1 of 2 available".into()));
    let three_days = 3 * 86_400;
    let observation = Observation {
        watched_for: Duration::from_secs(1),
        ..seen(&record, &workload, three_days + 1)
    };
    assert_eq!(step(&observation), Step::Wait(Duration::from_secs(659)));
}

#[test]
fn a_wall_clock_stepped_forward_fails_nothing() {
    let record = record();
    let workload = workload(NEW, Progress::InProgress("1 of 2 available".into()));
    let observation = Observation {
        watched_for: Duration::from_secs(30),
        ..seen(&record, &workload, 86_400)
    };
    assert_eq!(step(&observation), Step::Wait(Duration::from_secs(630)));
}

#[test]
fn a_healthy_workload_is_completed_however_late() {
    let record = record();
    let workload = workload(NEW, Progress::Complete);
    assert!(matches!(
        step(&seen(&record, &workload, 10 * 86_400)),
        Step::Complete(_)
    ));
}

#[test]
fn a_recorded_outcome_is_delivered_not_judged_again() {
    let mut record = record();
    record.outcome = Some(RolloutOutcome::Completed {
        delivered: Default::default(),
        at: at(1),
        duration_ms: 1000,
    });
    let workload = workload("r/app:9.9.9", Progress::Failed("x".into()));
    assert_eq!(step(&seen(&record, &workload, 5)), Step::Deliver);
}

#[test]
fn an_unreadable_quarantine_is_replaced_and_reported_not_read_as_empty() {
    let mut workload = workload(NEW, Progress::Failed("x".into()));
    workload
        .annotations
        .insert(annotations::QUARANTINE.into(), "{garbage".into());
    let update = quarantine_after(&workload, &record(), at(5));
    assert_eq!(update.replaced.as_deref(), Some("{garbage"));
    let quarantine = Quarantine::from_annotation(&update.value).unwrap();
    assert_eq!(quarantine.entries().len(), 1);
    assert_eq!(quarantine.entries()[0].image, NEW);
}

#[test]
fn the_quarantine_keeps_at_most_twenty_entries() {
    let mut workload = workload(NEW, Progress::Failed("x".into()));
    let many: Vec<QuarantineEntry> = (0..25)
        .map(|i| QuarantineEntry {
            container: "app".into(),
            image: format!("r/app:0.{i}.0@sha256:{i}"),
            at: at(i),
        })
        .collect();
    workload.annotations.insert(
        annotations::QUARANTINE.into(),
        serde_json::to_string(&many).unwrap(),
    );
    let update = quarantine_after(&workload, &record(), at(100));
    let quarantine = Quarantine::from_annotation(&update.value).unwrap();
    assert_eq!(quarantine.entries().len(), Quarantine::LIMIT);
    assert_eq!(quarantine.entries().last().unwrap().image, NEW);
    assert_eq!(update.replaced, None);
}

#[test]
fn retries_double_from_two_seconds_to_five_minutes() {
    assert_eq!(retry_after(0), Duration::from_secs(2));
    assert_eq!(retry_after(1), Duration::from_secs(4));
    assert_eq!(retry_after(7), Duration::from_secs(256));
    assert_eq!(retry_after(8), Duration::from_secs(300));
    assert_eq!(retry_after(u32::MAX), Duration::from_secs(300));
}

#[test]
fn deployments_get_their_own_deadline_plus_a_minute_unless_the_timeout_is_shorter() {
    assert_eq!(
        rollout_limit(Kind::Deployment, Some(600), None),
        Duration::from_secs(660)
    );
    assert_eq!(
        rollout_limit(Kind::Deployment, Some(30), Some(Duration::from_secs(600))),
        Duration::from_secs(90)
    );
    assert_eq!(
        rollout_limit(Kind::StatefulSet, None, None),
        DEFAULT_TIMEOUT
    );
    assert_eq!(
        rollout_limit(Kind::DaemonSet, None, Some(Duration::from_secs(42))),
        Duration::from_secs(42)
    );
}

fn pod(image: &str, waiting: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-1", "namespace": "team", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {"containerStatuses": [{"name": "app", "image": image, "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": waiting}}}]},
    }))
    .unwrap()
}

#[test]
fn a_failure_carries_what_the_new_pods_blame() {
    let record = record();
    let mut workload = workload(NEW, Progress::Failed("ProgressDeadlineExceeded".into()));
    workload.selector = BTreeMap::from([("app".into(), "web".into())]);
    let pods = [pod(NEW, "ImagePullBackOff")];
    let observation = Observation {
        pods: &pods,
        ..seen(&record, &workload, 5)
    };
    let failed = step(&observation);
    assert!(needs_pods(&failed));
    let Step::Fail { cause, .. } = failed else {
        panic!("fail");
    };
    let Cause::Image(blamed) = cause else {
        panic!("image-caused: {cause:?}");
    };
    assert_eq!(blamed[0].fault, cause::ImageFault::ImagePullBackOff);
    assert_eq!(blamed[0].image, NEW);

    // Pods that merely never get Ready, or none listed: the workload's alone.
    let pods = [pod(NEW, "ContainerCreating")];
    let observation = Observation {
        pods: &pods,
        ..seen(&record, &workload, 5)
    };
    assert!(matches!(
        step(&observation),
        Step::Fail {
            cause: Cause::Workload,
            ..
        }
    ));
}

#[test]
fn a_superseded_rollout_blames_no_image_even_when_pods_fail() {
    let record = record();
    let mut workload = workload("r/app:9.9.9", Progress::InProgress("1 of 2".into()));
    workload.selector = BTreeMap::from([("app".into(), "web".into())]);
    let pods = [pod(NEW, "ErrImagePull")];
    let observation = Observation {
        pods: &pods,
        ..seen(&record, &workload, 5)
    };
    let superseded = step(&observation);
    assert!(!needs_pods(&superseded));
    assert!(matches!(
        superseded,
        Step::Fail {
            cause: Cause::Workload,
            ..
        }
    ));
}
