#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use tokio::time::Instant;

use super::*;

fn spec(holder: Option<&str>, renewed_secs_ago: i64, now: DateTime<Utc>) -> LeaseSpec {
    LeaseSpec {
        holder_identity: holder.map(str::to_owned),
        lease_duration_seconds: Some(15),
        renew_time: Some(micro(now - chrono::Duration::seconds(renewed_secs_ago))),
        ..Default::default()
    }
}

fn observed(holder: Option<&str>, seen_at: Instant) -> Observed {
    let lease = Lease {
        spec: Some(spec(holder, 0, Utc::now())),
        ..Default::default()
    };
    Observed {
        record: Record::of(&lease),
        seen_at,
    }
}

#[test]
fn a_held_lease_seen_changing_recently_cannot_be_taken_by_another_replica() {
    let seen = Instant::now();
    let later = seen + Duration::from_secs(14);
    assert!(!observed(Some("a"), seen).may_take("b", later));
    assert!(observed(Some("a"), seen).may_take("a", later));
}

#[test]
fn a_lease_unchanged_for_its_duration_or_released_can_be_taken() {
    let seen = Instant::now();
    assert!(observed(Some("a"), seen).may_take("b", seen + LEASE_DURATION));
    assert!(observed(None, seen).may_take("b", seen));
    assert!(observed(Some(""), seen).may_take("b", seen));
}

#[test]
fn taking_over_counts_a_transition_and_renewing_does_not() {
    let now = Utc::now();
    let config = lease_config("b");
    let previous = LeaseSpec {
        lease_transitions: Some(2),
        ..spec(Some("a"), 20, now)
    };
    assert_eq!(
        held_spec(Some(&previous), &config, now).lease_transitions,
        Some(3)
    );
    let ours = LeaseSpec {
        lease_transitions: Some(3),
        ..spec(Some("b"), 1, now)
    };
    assert_eq!(
        held_spec(Some(&ours), &config, now).lease_transitions,
        Some(3)
    );
}

// Election against the in-memory Lease API, on paused time: every wait below is the election's own
// timers, advanced by tokio as soon as nothing else can run.

use tokio::sync::watch;

use super::fake::FakeLeases;

fn lease_config(identity: &str) -> LeaseConfig {
    LeaseConfig::new(
        "watch-cluster".into(),
        "watch-cluster".into(),
        identity.into(),
    )
}

/// Starts `identity`'s election against `leases`; the receiver says when it leads.
fn elect(leases: &FakeLeases, identity: &str) -> (watch::Receiver<bool>, CancellationToken) {
    let (tx, rx) = watch::channel(false);
    let stop = CancellationToken::new();
    tokio::spawn(campaign(
        leases.client(),
        lease_config(identity),
        tx,
        stop.clone(),
    ));
    (rx, stop)
}

/// A Lease held by `holder` whose renewTime is `skew` away from our wall clock.
fn held_by(holder: &str, skew: chrono::Duration) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("watch-cluster".into()),
            namespace: Some("watch-cluster".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(micro(Utc::now() + skew)),
            ..Default::default()
        }),
    }
}

fn holder(leases: &FakeLeases) -> Option<String> {
    leases.get()?.spec?.holder_identity
}

#[tokio::test(start_paused = true)]
async fn a_hung_lease_call_ends_leadership_before_the_lease_could_expire() {
    let leases = FakeLeases::default();
    let (mut leading, _stop) = elect(&leases, "a");
    tokio::time::timeout(RENEW_INTERVAL, leading.wait_for(|l| *l))
        .await
        .expect("a free Lease is taken at once")
        .unwrap();
    // The API server stops answering right after a renewal: the next one hangs.
    leases.hang(true);
    let renewed = Instant::now();
    let dropped = tokio::time::timeout(LEASE_DURATION, leading.wait_for(|l| !*l)).await;
    assert!(
        dropped.is_ok(),
        "still leader {:?} after the last renewal, when a follower may take the Lease",
        renewed.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_live_lease_whose_renew_time_lags_our_clock_is_not_taken() {
    let leases = FakeLeases::default();
    // The holder's clock is an hour behind ours, but it renews every 5 s.
    leases.put(held_by("a", -chrono::Duration::hours(1)));
    let renewer = leases.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RENEW_INTERVAL).await;
            renewer.put(held_by("a", -chrono::Duration::hours(1)));
        }
    });
    let (leading, _stop) = elect(&leases, "b");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(holder(&leases).as_deref(), Some("a"));
    assert!(!*leading.borrow());
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_lease_is_taken_after_the_lease_duration_on_our_clock_whatever_its_renew_time()
{
    let leases = FakeLeases::default();
    // The holder's clock was an hour ahead; it then stopped renewing.
    leases.put(held_by("a", chrono::Duration::hours(1)));
    let started = Instant::now();
    let (mut leading, _stop) = elect(&leases, "b");
    let taken = tokio::time::timeout(Duration::from_secs(30), leading.wait_for(|l| *l)).await;
    assert!(taken.is_ok(), "the abandoned Lease was never taken");
    assert!(
        started.elapsed() >= LEASE_DURATION,
        "taken after {:?}, before the Lease could expire",
        started.elapsed()
    );
    assert_eq!(holder(&leases).as_deref(), Some("b"));
}

#[tokio::test(start_paused = true)]
async fn a_replica_taking_over_an_abandoned_lease_leaves_the_previous_holder_in_the_handover() {
    let leases = FakeLeases::default();
    leases.put(held_by("pod-a", chrono::Duration::zero()));
    let config = lease_config("pod-b");
    let handover = config.handover.clone();
    let (tx, mut leading) = watch::channel(false);
    let stop = CancellationToken::new();
    tokio::spawn(campaign(leases.client(), config, tx, stop.clone()));
    tokio::time::timeout(Duration::from_secs(30), leading.wait_for(|l| *l))
        .await
        .expect("taken once abandoned")
        .unwrap();
    assert_eq!(handover.take().as_deref(), Some("pod-a"));
    assert_eq!(handover.take(), None, "taken once");
    // Renewing its own Lease names no previous holder.
    tokio::time::sleep(RENEW_INTERVAL * 2).await;
    assert_eq!(handover.take(), None);
}
