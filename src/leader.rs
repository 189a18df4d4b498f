//! Leader election on a `coordination.k8s.io/v1` Lease (SPEC §8): only the holder checks, patches and notifies.
//!
//! Input: the Lease name and namespace, this replica's identity. Output: a `watch` channel that is `true`
//! while this replica holds the Lease. The scheme is safe on any API server: GET the Lease; take it if it is
//! ours, free, or expired; write it with PUT carrying the `resourceVersion` read, so of two replicas racing
//! for it exactly one write succeeds (the other gets 409 Conflict). Server-side-apply conflicts, which some
//! lease crates rely on, need managedFields that not every server keeps (TESTBED §3).

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a Lease is valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews (well inside the duration) and a follower retries.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(5);

/// Where the Lease lives and who we are.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease (the controller's own).
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// Validity without renewal.
    pub duration: Duration,
    /// Renew/retry period.
    pub renew_interval: Duration,
}

/// A failure to talk to the API server about the Lease.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} Lease {namespace}/{name}")]
pub struct LeaseError {
    action: &'static str,
    namespace: String,
    name: String,
    #[source]
    source: kube::Error,
}

/// Runs the election until `shutdown`, then releases the Lease if held. `tx` reflects leadership.
pub async fn run(
    client: Client,
    config: LeaseConfig,
    tx: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    loop {
        let leading = match try_acquire_or_renew(&api, &config, Utc::now()).await {
            Ok(leading) => leading,
            Err(error) => {
                tracing::warn!(%error, "leader election failed this round");
                // Without a successful renewal we must assume the Lease may be lost once it would expire.
                false
            }
        };
        if *tx.borrow() != leading {
            tracing::info!(identity = %config.identity, leading, "leadership changed");
        }
        tx.send_replace(leading);
        tokio::select! {
            () = tokio::time::sleep(config.renew_interval) => {}
            () = shutdown.cancelled() => break,
        }
    }
    if *tx.borrow() {
        tx.send_replace(false);
        match release(&api, &config).await {
            Ok(()) => tracing::info!("released the leader Lease"),
            Err(error) => {
                tracing::warn!(%error, "failed to release the leader Lease; it expires on its own")
            }
        }
    }
}

/// One election round: returns whether we hold the Lease afterwards.
pub async fn try_acquire_or_renew(
    api: &Api<Lease>,
    config: &LeaseConfig,
    now: DateTime<Utc>,
) -> Result<bool, LeaseError> {
    let error = |action, source| LeaseError {
        action,
        namespace: config.namespace.clone(),
        name: config.name.clone(),
        source,
    };
    let current = api
        .get_opt(&config.name)
        .await
        .map_err(|e| error("read", e))?;
    let Some(mut lease) = current else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..Default::default()
            },
            spec: Some(held_spec(None, config, now)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(error("create", e)),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    if !may_take(&spec, &config.identity, now) {
        return Ok(false);
    }
    lease.spec = Some(held_spec(Some(&spec), config, now));
    // The resourceVersion read above makes this PUT a compare-and-swap.
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(error("update", e)),
    }
}

/// Whether `identity` may write the Lease now: it holds it, nobody does, or the holder let it expire.
pub fn may_take(spec: &LeaseSpec, identity: &str, now: DateTime<Utc>) -> bool {
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(holder) if holder == identity => true,
        Some(_) => {
            let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref());
            let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(15));
            match renewed {
                None => true,
                Some(MicroTime(at)) => {
                    let at =
                        DateTime::<Utc>::from_timestamp_micros(at.as_microsecond()).unwrap_or(now);
                    at + chrono::Duration::seconds(seconds) < now
                }
            }
        }
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

/// Gives the Lease up so a follower takes over at once (a rolling upgrade hands over without waiting).
async fn release(api: &Api<Lease>, config: &LeaseConfig) -> Result<(), LeaseError> {
    let error = |action, source| LeaseError {
        action,
        namespace: config.namespace.clone(),
        name: config.name.clone(),
        source,
    };
    let Some(mut lease) = api
        .get_opt(&config.name)
        .await
        .map_err(|e| error("read", e))?
    else {
        return Ok(());
    };
    let mut spec = lease.spec.clone().unwrap_or_default();
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    spec.acquire_time = None;
    lease.spec = Some(spec);
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(error("release", e)),
    }
}

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
