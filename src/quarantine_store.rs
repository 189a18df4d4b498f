//! Where the cluster quarantine lives (`QUARANTINE_SCOPE=cluster`): the ConfigMap
//! `watch-cluster-quarantine` in the controller's own namespace, which `k8s/` ships empty.
//!
//! Input: the Kubernetes client and the controller's namespace. Output: the [`ClusterQuarantine`] read
//! before each check (see [`QuarantineStore::read`] for why there is no cached copy), and entries added
//! after a rollout whose pods blamed the image, written with an update guarded by the ConfigMap's
//! `resourceVersion` and retried on a conflict. What the data means is [`crate::strategy::cluster_quarantine`].
//!
//! A ConfigMap that is absent reads as empty (with a log line): an install without it has quarantined
//! nothing yet. One that cannot be read (data that does not parse, a refusal) is an error the caller turns
//! into a Warning Event `QuarantineUnreadable` on the ConfigMap and a failed check: treating it as empty
//! could apply the very digest it holds.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::{Api, Client, api::PostParams};

use crate::{
    config::QuarantineScope,
    notify::events::{EventRecorder, Reason},
    observe::cause::Failed,
    strategy::{ClusterEntry, ClusterQuarantine, ClusterQuarantineError},
};

/// The ConfigMap's name.
pub const CONFIGMAP_NAME: &str = "watch-cluster-quarantine";

/// What to do about a missing ConfigMap (or namespace).
const ABSENT_HINT: &str =
    "; apply k8s/ (it ships the ConfigMap empty) or create it in POD_NAMESPACE";

/// How many times a write is tried when the ConfigMap changes under it (two workloads failing at once).
const WRITE_ATTEMPTS: usize = 5;

/// The cluster quarantine cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The API server refused or failed.
    #[error(
        "failed to {action} ConfigMap {namespace}/{CONFIGMAP_NAME} (the cluster quarantine): {answer}{hint}"
    )]
    Api {
        /// get or update.
        action: &'static str,
        /// The controller's namespace.
        namespace: String,
        /// What the API server said, in one line.
        answer: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The ConfigMap holds data that does not parse.
    #[error(
        "ConfigMap {namespace}/{CONFIGMAP_NAME} (the cluster quarantine) cannot be read: {source}; fix or remove \
         the entry with `kubectl edit configmap {CONFIGMAP_NAME} -n {namespace}`"
    )]
    Unparseable {
        /// The controller's namespace.
        namespace: String,
        /// The parse error.
        #[source]
        source: ClusterQuarantineError,
    },
    /// Every attempt met a newer version.
    #[error(
        "failed to update ConfigMap {namespace}/{CONFIGMAP_NAME} (the cluster quarantine): it changed under \
         each of {WRITE_ATTEMPTS} attempts"
    )]
    Contended {
        /// The controller's namespace.
        namespace: String,
    },
}

/// Reads and writes the ConfigMap.
#[derive(Debug, Clone)]
pub struct QuarantineStore {
    api: Api<ConfigMap>,
    namespace: String,
    /// Whether the absence was logged, so an install without the ConfigMap logs it once, not every check.
    absence_logged: Arc<AtomicBool>,
}

impl QuarantineStore {
    /// The store when `scope` is `cluster`; `None` for `workload`, which never reads it.
    pub fn for_scope(client: Client, scope: QuarantineScope, namespace: &str) -> Option<Self> {
        (scope == QuarantineScope::Cluster).then(|| Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            absence_logged: Arc::default(),
        })
    }

    /// The ConfigMap, for Events about it.
    pub fn reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some(CONFIGMAP_NAME.into()),
            namespace: Some(self.namespace.clone()),
            ..ObjectReference::default()
        }
    }

    /// Reads the quarantine now. Read per check rather than cached from a watch: the Role grants `get` on
    /// this one name only (a watch would need `list`/`watch`), a check already waits on the registry, and a
    /// fresh read means an entry added by a failure a moment ago, or removed by hand, counts at once.
    pub async fn read(&self) -> Result<Arc<ClusterQuarantine>, StoreError> {
        Ok(Arc::new(self.load().await?.0))
    }

    /// [`read`](Self::read), with a Warning Event `QuarantineUnreadable` on the ConfigMap once per distinct
    /// error (not once per check of every workload), forgotten once it reads again.
    pub async fn read_reported(
        &self,
        events: &EventRecorder,
    ) -> Result<Arc<ClusterQuarantine>, StoreError> {
        match self.read().await {
            Ok(quarantine) => {
                events.clear(&self.reference(), Reason::QuarantineUnreadable);
                Ok(quarantine)
            }
            Err(error) => {
                let note = format!("{error}; no workload is updated until it can be read");
                let reported = events
                    .publish_once_keyed(
                        &self.reference(),
                        Reason::QuarantineUnreadable,
                        &error.to_string(),
                        note,
                    )
                    .await;
                if reported {
                    tracing::error!(%error, "the cluster quarantine cannot be read; no workload is updated");
                }
                Err(error)
            }
        }
    }

    /// [`add`](Self::add) for a failed rollout of `failed`, never failing the caller (the rollback must not
    /// wait): a write that does not go through is a Warning Event `QuarantineUnreadable` on the ConfigMap,
    /// and the image stays quarantined on its workload only.
    pub async fn add_reported(
        &self,
        events: &EventRecorder,
        failed: &Failed<'_>,
        entries: &[ClusterEntry],
    ) {
        match self.add(entries).await {
            Ok(added) => {
                for entry in entries {
                    tracing::warn!(image = %entry.image, reason = %entry.reason, workload = %failed, added,
                        "quarantined for every workload: the new pods could not pull or run the image");
                }
            }
            Err(error) => {
                tracing::error!(%error, workload = %failed, "failed to add a failed image to the cluster quarantine");
                let images: Vec<&str> = entries.iter().map(|e| e.image.as_str()).collect();
                let note = format!(
                    "{error}; {} failed on {failed} and is quarantined on that workload only",
                    images.join(", ")
                );
                events
                    .publish_once_keyed(
                        &self.reference(),
                        Reason::QuarantineUnreadable,
                        &error.to_string(),
                        note,
                    )
                    .await;
            }
        }
    }

    /// Adds `entries` (a failed rollout's blamed digests). Returns how many were new.
    pub async fn add(&self, entries: &[ClusterEntry]) -> Result<usize, StoreError> {
        for _ in 0..WRITE_ATTEMPTS {
            let (mut quarantine, object) = self.load().await?;
            let added = entries
                .iter()
                .filter(|e| quarantine.add((*e).clone()))
                .count();
            if added == 0 {
                return Ok(0);
            }
            let Some(mut object) = object else {
                return Err(StoreError::Api {
                    action: "update",
                    namespace: self.namespace.clone(),
                    answer: "it does not exist".into(),
                    hint: ABSENT_HINT,
                });
            };
            // The object as read carries its resourceVersion: the update is refused (409) if anyone wrote
            // in between, and the entries are added again to what they wrote.
            object
                .data
                .get_or_insert_with(BTreeMap::new)
                .insert(ClusterQuarantine::DATA_KEY.into(), quarantine.to_data());
            match self
                .api
                .replace(CONFIGMAP_NAME, &PostParams::default(), &object)
                .await
            {
                Ok(_) => return Ok(added),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(error) => return Err(self.api_error("update", error)),
            }
        }
        Err(StoreError::Contended {
            namespace: self.namespace.clone(),
        })
    }

    /// The parsed quarantine and the object it came from (`None`: absent).
    async fn load(&self) -> Result<(ClusterQuarantine, Option<ConfigMap>), StoreError> {
        let object = match self.api.get_opt(CONFIGMAP_NAME).await {
            Ok(object) => object,
            Err(error) => return Err(self.api_error("get", error)),
        };
        let Some(object) = object else {
            if !self.absence_logged.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    namespace = %self.namespace,
                    "ConfigMap {CONFIGMAP_NAME} does not exist: the cluster quarantine is empty, and a failure \
                     cannot be recorded in it until it is created (kubectl apply -k k8s/ ships it)"
                );
            }
            return Ok((ClusterQuarantine::default(), None));
        };
        self.absence_logged.store(false, Ordering::Relaxed);
        let data = object
            .data
            .as_ref()
            .and_then(|d| d.get(ClusterQuarantine::DATA_KEY));
        let quarantine =
            ClusterQuarantine::from_data(data.map(String::as_str)).map_err(|source| {
                StoreError::Unparseable {
                    namespace: self.namespace.clone(),
                    source,
                }
            })?;
        Ok((quarantine, Some(object)))
    }

    fn api_error(&self, action: &'static str, error: kube::Error) -> StoreError {
        let (answer, hint) = match &error {
            kube::Error::Api(s) if s.code == 401 || s.code == 403 => (
                format!("{} {}", s.code, s.message),
                "; the controller's Role in its namespace must allow `get` and `update` on it \
                 (k8s/base/quarantine-role.yaml)",
            ),
            kube::Error::Api(s) if s.code == 404 => {
                (format!("{} {}", s.code, s.message), ABSENT_HINT)
            }
            kube::Error::Api(s) => (format!("{} {}", s.code, s.message), ""),
            other => (other.to_string(), ""),
        };
        StoreError::Api {
            action,
            namespace: self.namespace.clone(),
            answer,
            hint,
        }
    }
}
