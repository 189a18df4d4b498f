//! Leader election on a `coordination.k8s.io/v1` Lease (docs/guarantees.md#leadership): only the holder checks, patches and notifies.
//!
//! Input: the Lease name and namespace, this replica's identity. Output: a `watch` channel that is `true`
//! while this replica holds the Lease. The scheme is safe on any API server: GET the Lease; take it if it is
//! ours, free, or expired; write it with PUT carrying the `resourceVersion` read, so of two replicas racing
//! for it exactly one write succeeds (the other gets 409 Conflict). Server-side-apply conflicts, which some
//! lease crates rely on, need managedFields that not every server keeps (docs/dependencies.md#leases).
//!
//! Time is judged on our own monotonic clock only, as client-go's leader election does, so clock skew
//! between replicas cannot make two of them lead at once:
//! - a Lease held by another replica expires when `leaseDurationSeconds` have passed since *we* last saw
//!   its record (holder, renewTime, resourceVersion) change — never by comparing its `renewTime` with our
//!   wall clock;
//! - the holder stops leading once [`RENEW_DEADLINE`] has passed since the start of its last successful
//!   renewal, well before a follower can see the Lease expire, and every round has [`CALL_TIMEOUT`], so a
//!   hung API call cannot keep it leading.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

/// How long a Lease is valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long the holder keeps leading without a successful renewal; shorter than [`LEASE_DURATION`] so it
/// stops acting before any follower may take over.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often the holder renews (well inside the deadline) and a follower looks again.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(5);
/// How soon a holder whose renewal failed tries again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// The longest one round of Lease calls (read, then write) may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

const _: () = assert!(CALL_TIMEOUT.as_secs() < RENEW_DEADLINE.as_secs());
const _: () = assert!(RENEW_DEADLINE.as_secs() < LEASE_DURATION.as_secs());

/// Where the Lease lives, who we are, and the election's timing.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease (the controller's own).
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// Validity without renewal, written into the Lease.
    pub duration: Duration,
    /// How long leadership lasts without a successful renewal.
    pub renew_deadline: Duration,
    /// Renew/look-again period.
    pub renew_interval: Duration,
    /// Retry period after a failed renewal.
    pub retry_interval: Duration,
    /// Timeout of one round of Lease calls.
    pub call_timeout: Duration,
    /// Where the election leaves the identity it took the Lease over from.
    pub handover: Handover,
}

/// The holder this replica last took the Lease over from, left by the election for whoever must tidy
/// up after it (the push-event leader label, docs/push-events.md). Cheap to clone; clones share.
#[derive(Debug, Clone, Default)]
pub struct Handover(Arc<Mutex<Option<String>>>);

impl Handover {
    /// The previous holder, once: taken by the reader.
    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Records the holder taken over from (the election; tests of readers).
    pub(crate) fn record(&self, holder: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(holder);
    }
}

impl LeaseConfig {
    /// The Lease `namespace/name` for `identity`, with the default timing.
    pub fn new(namespace: String, name: String, identity: String) -> Self {
        Self {
            namespace,
            name,
            identity,
            duration: LEASE_DURATION,
            renew_deadline: RENEW_DEADLINE,
            renew_interval: RENEW_INTERVAL,
            retry_interval: RETRY_INTERVAL,
            call_timeout: CALL_TIMEOUT,
            handover: Handover::default(),
        }
    }
}

/// A failure to talk to the API server about the Lease.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} Lease {namespace}/{name}")]
pub struct LeaseError {
    action: &'static str,
    namespace: String,
    name: String,
    #[source]
    source: CallError,
}

/// Why a Lease call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The API server answered with an error, or could not be reached.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// The API server did not answer in time.
    #[error("the API server did not answer within {0:?}")]
    TimedOut(Duration),
}

/// Runs the election until `release` is cancelled, then gives the Lease up if held. `tx` reflects
/// leadership. Cancel `release` only once this replica's in-flight work has finished: the next leader
/// starts acting as soon as the Lease is free. Dropping the task instead leaves the Lease to expire.
pub async fn campaign(
    client: Client,
    config: LeaseConfig,
    tx: watch::Sender<bool>,
    release: CancellationToken,
) {
    let mut elector = Elector::new(client, config);
    let mut next_round = Instant::now();
    loop {
        let leading = elector.is_leading(Instant::now());
        if *tx.borrow() != leading {
            tracing::info!(identity = %elector.config.identity, leading, "leadership changed");
        }
        tx.send_replace(leading);
        // Wake at the renew deadline too, so leadership ends on time even between rounds.
        let lost_at = elector.leading_until().filter(|_| leading);
        tokio::select! {
            () = tokio::time::sleep_until(next_round) => {
                next_round = Instant::now() + elector.round().await;
            }
            () = sleep_until(lost_at) => {}
            () = release.cancelled() => break,
        }
    }
    if *tx.borrow() {
        tx.send_replace(false);
        match elector.release().await {
            Ok(()) => tracing::info!("released the leader Lease"),
            Err(error) => {
                tracing::warn!(%error, "failed to release the leader Lease; it expires on its own")
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What this replica knows of the Lease between rounds, on its own clock.
struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The record last read, and when we first saw it so.
    observed: Option<Observed>,
    /// When the last successful acquisition or renewal started.
    renewed_at: Option<Instant>,
}

/// A Lease record as last read, and when (our clock) it was first seen with these values.
#[derive(Debug)]
struct Observed {
    record: Record,
    seen_at: Instant,
}

/// The parts of a Lease whose change shows its holder is alive.
#[derive(Debug, PartialEq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    resource_version: Option<String>,
    duration: Duration,
}

impl Record {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        let seconds = spec.and_then(|s| s.lease_duration_seconds).unwrap_or(15);
        Self {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            renew_time: spec.and_then(|s| s.renew_time.clone()),
            resource_version: lease.metadata.resource_version.clone(),
            duration: Duration::from_secs(u64::try_from(seconds).unwrap_or(15)),
        }
    }
}

impl Observed {
    /// Whether `identity` may write the Lease at `now`: it holds it, nobody does, or the record has not
    /// changed for a whole lease duration on our clock.
    fn may_take(&self, identity: &str, now: Instant) -> bool {
        match self.record.holder.as_deref() {
            None => true,
            Some(holder) if holder == identity => true,
            Some(_) => now.duration_since(self.seen_at) >= self.record.duration,
        }
    }
}

impl Elector {
    fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            renewed_at: None,
        }
    }

    /// Until when this replica leads, if it has held the Lease.
    fn leading_until(&self) -> Option<Instant> {
        self.renewed_at.map(|at| at + self.config.renew_deadline)
    }

    fn is_leading(&self, now: Instant) -> bool {
        self.leading_until().is_some_and(|until| now < until)
    }

    /// One round, bounded by the call timeout and, while leading, by the renew deadline. Returns the pause
    /// before the next round.
    async fn round(&mut self) -> Duration {
        let started = Instant::now();
        let mut deadline = started + self.config.call_timeout;
        if let Some(until) = self.leading_until().filter(|until| *until > started) {
            deadline = deadline.min(until);
        }
        let timeout = deadline.saturating_duration_since(started);
        let result = match tokio::time::timeout_at(deadline, self.acquire_or_renew()).await {
            Ok(result) => result.map_err(CallError::Api),
            Err(_) => Err(CallError::TimedOut(timeout)),
        };
        match result {
            Ok(true) => {
                self.renewed_at = Some(started);
                self.config.renew_interval
            }
            Ok(false) => {
                self.renewed_at = None;
                self.config.renew_interval
            }
            Err(source) => {
                let error = self.error("renew", source);
                tracing::warn!(%error, "leader election failed this round");
                // Leadership lasts until the renew deadline; retry sooner to keep it.
                if self.is_leading(Instant::now()) {
                    self.config.retry_interval
                } else {
                    self.config.renew_interval
                }
            }
        }
    }

    /// Reads the Lease and writes it if we may: whether we hold it afterwards.
    async fn acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return self.create().await;
        };
        // Seen now, after the read: a follower errs towards waiting longer.
        let now = Instant::now();
        let record = Record::of(&lease);
        if self.observed.as_ref().is_none_or(|o| o.record != record) {
            self.observed = Some(Observed {
                record,
                seen_at: now,
            });
        }
        let may_take = self
            .observed
            .as_ref()
            .is_some_and(|o| o.may_take(&self.config.identity, now));
        if !may_take {
            return Ok(false);
        }
        let spec = lease.spec.clone().unwrap_or_default();
        let previous = spec
            .holder_identity
            .clone()
            .filter(|h| !h.is_empty() && *h != self.config.identity);
        lease.spec = Some(held_spec(Some(&spec), &self.config, Utc::now()));
        // The resourceVersion read above makes this PUT a compare-and-swap.
        let put = self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await;
        let taken = conflict_is_no(put)?;
        if let Some(previous) = previous.filter(|_| taken) {
            self.config.handover.record(previous);
        }
        Ok(taken)
    }

    async fn create(&self) -> Result<bool, kube::Error> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..Default::default()
            },
            spec: Some(held_spec(None, &self.config, Utc::now())),
        };
        conflict_is_no(self.api.create(&PostParams::default(), &lease).await)
    }

    /// Gives the Lease up so a follower takes over at once (a rolling upgrade hands over without
    /// waiting), within the call timeout.
    async fn release(&self) -> Result<(), LeaseError> {
        let timeout = self.config.call_timeout;
        match tokio::time::timeout(timeout, self.clear_holder()).await {
            Ok(result) => result.map_err(|e| self.error("release", CallError::Api(e))),
            Err(_) => Err(self.error("release", CallError::TimedOut(timeout))),
        }
    }

    async fn clear_holder(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        spec.acquire_time = None;
        lease.spec = Some(spec);
        let put = self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await;
        conflict_is_no(put).map(|_| ())
    }

    fn error(&self, action: &'static str, source: CallError) -> LeaseError {
        LeaseError {
            action,
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source,
        }
    }
}

/// A write's result: `Ok(true)` written, `Ok(false)` another writer won the race (409 Conflict).
fn conflict_is_no<T>(result: Result<T, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

fn held_spec(previous: Option<&LeaseSpec>, config: &LeaseConfig, now: DateTime<Utc>) -> LeaseSpec {
    let now_micro = micro(now);
    let ours =
        previous.and_then(|p| p.holder_identity.as_deref()) == Some(config.identity.as_str());
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(config.duration.as_secs()).unwrap_or(15)),
        acquire_time: if ours {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(now_micro.clone())
        },
        renew_time: Some(now_micro),
        lease_transitions: Some(if ours || previous.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..Default::default()
    }
}

fn micro(at: DateTime<Utc>) -> MicroTime {
    MicroTime(jiff_timestamp(at))
}

fn jiff_timestamp(at: DateTime<Utc>) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_microsecond(at.timestamp_micros())
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
