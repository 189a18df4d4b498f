//! The leader label: `watch-cluster.io/leader=true` on the leader's own Pod, so the events Service
//! (which selects it) sends push events to the replica that acts.
//!
//! Input: leadership (the election's `watch` channel), this Pod's name (`POD_NAME`) and namespace, and
//! the previous Lease holder the election took over from ([`Handover`]). Output: merge patches of the
//! label on Pods. The leader labels its Pod when it starts leading and unlabels it when it stops; on
//! SIGTERM the runtime unlabels before releasing the Lease ([`LeaderLabel::remove_own`]), so the
//! Service stops routing here before another replica can lead. A new leader also unlabels the previous
//! holder's Pod (identity is the Pod name, `POD_NAME`), which may have died without tidying up.
//! Failures are logged and retried while the wanted state differs, never fatal: a missing label only
//! delays events (the senders retry a 503 or an unreachable Service) and scheduled checks remain.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::leader::Handover;

/// The label the events Service selects.
pub const LABEL: &str = "watch-cluster.io/leader";
/// The longest one label patch may take (part of the shutdown budget, run.rs).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How soon a failed patch of our own Pod is tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// Why a label patch failed.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// The API server refused or could not be reached.
    #[error("failed to patch the leader label of Pod {pod}")]
    Api {
        /// The Pod.
        pod: String,
        /// kube's error.
        #[source]
        source: kube::Error,
    },
    /// No answer in time.
    #[error("failed to patch the leader label of Pod {pod}: no answer within {timeout:?}")]
    TimedOut {
        /// The Pod.
        pod: String,
        /// The bound.
        timeout: Duration,
    },
}

/// The merge patch that sets (`true`) or removes (`null`) the label.
pub fn patch(leading: bool) -> serde_json::Value {
    let value = if leading {
        serde_json::Value::from("true")
    } else {
        serde_json::Value::Null
    };
    serde_json::json!({ "metadata": { "labels": { LABEL: value } } })
}

/// Writes the label on Pods of the controller's namespace.
#[derive(Clone)]
pub struct LeaderLabel {
    pods: Api<Pod>,
    own: String,
}

impl LeaderLabel {
    /// The label of Pod `own` in `namespace`.
    pub fn new(client: Client, namespace: &str, own: String) -> Self {
        Self {
            pods: Api::namespaced(client, namespace),
            own,
        }
    }

    /// Sets or removes the label on `pod`, under [`CALL_TIMEOUT`]. A Pod that is gone has no label.
    pub async fn set(&self, pod: &str, leading: bool) -> Result<(), LabelError> {
        let params = PatchParams {
            field_manager: Some(crate::update::FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let body = Patch::Merge(patch(leading));
        let call = self.pods.patch(pod, &params, &body);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(kube::Error::Api(status))) if status.code == 404 && !leading => Ok(()),
            Ok(Err(source)) => Err(LabelError::Api {
                pod: pod.to_owned(),
                source,
            }),
            Err(_) => Err(LabelError::TimedOut {
                pod: pod.to_owned(),
                timeout: CALL_TIMEOUT,
            }),
        }
    }

    /// Removes the label from our own Pod; logs a failure. The shutdown step before the Lease release.
    pub async fn remove_own(&self) {
        match self.set(&self.own, false).await {
            Ok(()) => tracing::info!(pod = %self.own, "removed the leader label"),
            Err(error) => tracing::warn!(error = %error_chain(&error), "leader label not removed"),
        }
    }

    /// Keeps the label of our own Pod on leadership until `stop`, and unlabels the previous holder's Pod
    /// when this replica takes over. At start, a follower removes a label left from an earlier run.
    pub async fn follow(
        self,
        mut leadership: watch::Receiver<bool>,
        handover: Handover,
        stop: CancellationToken,
    ) {
        // What the label of our Pod is known to be; `None` until a patch succeeds.
        let mut labelled: Option<bool> = None;
        loop {
            let leading = *leadership.borrow_and_update();
            if labelled != Some(leading) {
                match self.set(&self.own, leading).await {
                    Ok(()) => {
                        tracing::info!(pod = %self.own, leading, "leader label updated");
                        labelled = Some(leading);
                    }
                    Err(error) => {
                        tracing::warn!(error = %error_chain(&error), "leader label not updated; retrying")
                    }
                }
            }
            if leading {
                self.unlabel_previous(handover.take()).await;
            }
            let retry = labelled != Some(leading);
            tokio::select! {
                () = stop.cancelled() => return,
                changed = leadership.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(RETRY_INTERVAL), if retry => {}
            }
        }
    }

    async fn unlabel_previous(&self, previous: Option<String>) {
        let Some(previous) = previous.filter(|p| *p != self.own) else {
            return;
        };
        match self.set(&previous, false).await {
            Ok(()) => {
                tracing::info!(pod = %previous, "removed the leader label of the previous leader")
            }
            Err(error) => tracing::warn!(
                error = %error_chain(&error),
                "leader label of the previous leader not removed"
            ),
        }
    }
}

fn error_chain(error: &LabelError) -> String {
    let mut shown = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        shown.push_str(": ");
        shown.push_str(&cause.to_string());
        source = cause.source();
    }
    shown
}

#[cfg(test)]
mod tests;
