//! The API reads deciding needs besides the workload (docs/design.md#api-requests-per-check): the pull
//! secrets of the workload and of its ServiceAccount, and for `latest` the digest its ready pods run.
//!
//! Input: names from the workload projection. Output: the pull-secret credentials and the names that do
//! not exist; the running digest. ServiceAccounts and Secrets are read by name (`get` only, so the RBAC
//! stays `get` on Secrets: no list or watch of every Secret) and each answer is shared by the checks of a
//! window: a check uses an answer only if it was read no longer ago than the check allows
//! ([`ClusterReads::with_max_age`]; the controller allows the time since the check's fire time). So 1,000
//! checks over 100 namespaces read each ServiceAccount once per window instead of once per check, and a
//! changed pull secret or ServiceAccount takes effect at the next fire time at the latest. Pods are not
//! cached: their digest is what a `latest` decision compares, and it is read only for a container whose
//! image is not pinned by digest.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::{Api, Client, api::ListParams};

use crate::{
    registry::{cache::Coalescing, credentials::DockerConfig},
    workload::Workload,
};

/// How long an answer may be reused at all. Checks bound it further by their fire time; this only bounds
/// how long credentials stay in memory after the last window that read them.
const ANSWER_TTL: Duration = Duration::from_secs(300);

/// Answers kept before stale ones are pruned (two per namespace covers a ServiceAccount and a secret each).
const MAX_ENTRIES: usize = 4096;

/// `(namespace, name)`.
type Key = (String, String);

/// A failed read, shared with the checks that waited for it (never reused after).
type ReadError = Arc<kube::Error>;

/// What a pull secret read found.
#[derive(Debug, Clone)]
enum SecretAnswer {
    Usable(Arc<DockerConfig>),
    /// It exists but holds no usable Docker config: why.
    Unusable(String),
    Missing,
}

struct Shared {
    /// A ServiceAccount's `imagePullSecrets` names; `None`: it does not exist.
    accounts: Coalescing<Key, Option<Arc<[String]>>, ReadError>,
    secrets: Coalescing<Key, SecretAnswer, ReadError>,
}

/// Reads of ServiceAccounts, pull Secrets and pods, with the shared answers. Cheap to clone.
#[derive(Clone)]
pub struct ClusterReads {
    client: Client,
    shared: Arc<Shared>,
    max_age: Option<Duration>,
}

/// The pull secrets of a workload: those read (`namespace/name`, config) and the names that do not exist.
pub(super) struct PullSecrets {
    pub found: Vec<(String, DockerConfig)>,
    pub missing: Vec<String>,
}

impl ClusterReads {
    /// Reads through `client`; answers are reused for up to five minutes unless a caller asks for younger.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            shared: Arc::new(Shared {
                accounts: Coalescing::new(MAX_ENTRIES),
                secrets: Coalescing::new(MAX_ENTRIES),
            }),
            max_age: None,
        }
    }

    /// The same reads for a caller that accepts only answers read at most `max_age` ago.
    pub fn with_max_age(&self, max_age: Duration) -> Self {
        Self {
            max_age: Some(max_age),
            ..self.clone()
        }
    }

    /// The client behind the reads.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Credentials of the workload's `imagePullSecrets` and its ServiceAccount's, read by name.
    pub(super) async fn pull_secrets(&self, workload: &Workload) -> PullSecrets {
        let mut names = workload.image_pull_secrets.clone();
        match self
            .account_secrets(&workload.namespace, &workload.service_account)
            .await
        {
            Ok(Some(theirs)) => names.extend(theirs.iter().cloned()),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(service_account = %workload.service_account, %error, "failed to read the service account's imagePullSecrets")
            }
        }
        let mut found = PullSecrets {
            found: Vec::new(),
            missing: Vec::new(),
        };
        for name in names {
            match self.secret(&workload.namespace, &name).await {
                Ok(SecretAnswer::Usable(config)) => found
                    .found
                    .push((format!("{}/{name}", workload.namespace), (*config).clone())),
                Ok(SecretAnswer::Unusable(error)) => {
                    tracing::warn!(secret = %name, %error, "imagePullSecret is not usable")
                }
                Ok(SecretAnswer::Missing) => {
                    tracing::warn!(secret = %name, "imagePullSecret does not exist; skipped");
                    if !found.missing.contains(&name) {
                        found.missing.push(name);
                    }
                }
                Err(error) => {
                    tracing::warn!(secret = %name, %error, "failed to read an imagePullSecret")
                }
            }
        }
        found
    }

    async fn account_secrets(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<[String]>>, ReadError> {
        let key = (namespace.to_owned(), name.to_owned());
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        self.shared
            .accounts
            .get_or_fetch_within(&key, self.max_age, || async move {
                let read = api.get_opt(name).await.map_err(Arc::new).map(|found| {
                    found.map(|sa| {
                        sa.image_pull_secrets
                            .into_iter()
                            .flatten()
                            .map(|r| r.name)
                            .filter(|n| !n.is_empty())
                            .collect::<Arc<[String]>>()
                    })
                });
                (read, Instant::now() + ANSWER_TTL)
            })
            .await
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<SecretAnswer, ReadError> {
        let key = (namespace.to_owned(), name.to_owned());
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        self.shared
            .secrets
            .get_or_fetch_within(&key, self.max_age, || async move {
                let read = api.get_opt(name).await.map_err(Arc::new).map(|found| {
                    // Parsed once here, so the shared answer holds the credentials and not the Secret.
                    match found {
                        None => SecretAnswer::Missing,
                        Some(secret) => match DockerConfig::from_secret(&secret) {
                            Ok(config) => SecretAnswer::Usable(Arc::new(config)),
                            Err(error) => SecretAnswer::Unusable(error.to_string()),
                        },
                    }
                });
                (read, Instant::now() + ANSWER_TTL)
            })
            .await
    }

    /// The digest every ready pod reports for `container`, if they agree (docs/annotations.md#strategy).
    pub(super) async fn running_digest(
        &self,
        workload: &Workload,
        container: &str,
    ) -> Option<String> {
        let selector = workload.label_selector()?;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &workload.namespace);
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .ok()?;
        let mut digest: Option<String> = None;
        for pod in list.items {
            let status = pod.status.unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if !ready {
                continue;
            }
            let id = status
                .container_statuses
                .iter()
                .flatten()
                .find(|s| s.name == container)
                .map(|s| s.image_id.clone())?;
            let found = id.rsplit_once('@').map(|(_, d)| d.to_owned())?;
            match &digest {
                None => digest = Some(found),
                Some(d) if *d == found => {}
                Some(_) => return None,
            }
        }
        digest
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use base64::Engine as _;
    use serde_json::json;
    use watch_cluster_sim::{ApiConfig, InProcess, Kind};

    use super::*;

    fn workload(namespace: &str) -> Workload {
        let deployment: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {
                "serviceAccountName": "builder",
                "imagePullSecrets": [{"name": "own"}],
                "containers": [{"name": "app", "image": "r.example/app:1.0.0"}]}}},
        }))
        .unwrap();
        Workload::from(&deployment)
    }

    fn pull_secret(namespace: &str, name: &str, user: &str) -> serde_json::Value {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw"));
        let config = json!({"auths": {"r.example": {"auth": auth}}}).to_string();
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": name, "namespace": namespace},
            "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config)},
        })
    }

    fn bed() -> InProcess {
        let api = InProcess::new(ApiConfig::default()).unwrap();
        api.store
            .create(
                Kind::ServiceAccount,
                json!({"metadata": {"name": "builder", "namespace": "default"},
                       "imagePullSecrets": [{"name": "theirs"}]}),
            )
            .unwrap();
        api.store
            .create(Kind::Secret, pull_secret("default", "theirs", "ci"))
            .unwrap();
        api
    }

    fn gets(api: &InProcess, resource: &str) -> u64 {
        api.counts
            .snapshot()
            .get(&("get".to_owned(), resource.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn user_of(found: &PullSecrets) -> Option<String> {
        let (_, config) = found.found.first()?;
        Some(config.credential_for("r.example")?.username.clone())
    }

    #[tokio::test]
    async fn the_checks_of_a_window_share_one_read_of_each_service_account_and_pull_secret() {
        let api = bed();
        let reads = ClusterReads::new(api.client.clone()).with_max_age(Duration::from_secs(20));
        for _ in 0..5 {
            let found = reads.pull_secrets(&workload("default")).await;
            assert_eq!(found.found.len(), 1, "the ServiceAccount's secret");
            assert_eq!(found.missing, vec!["own".to_owned()], "the workload's");
        }
        assert_eq!(gets(&api, "serviceaccounts"), 1);
        assert_eq!(
            gets(&api, "secrets"),
            2,
            "one per name, the missing one too"
        );
    }

    #[tokio::test]
    async fn a_changed_pull_secret_is_read_anew_by_a_check_that_accepts_only_younger_reads() {
        let api = bed();
        let shared = ClusterReads::new(api.client.clone());
        let window = shared.with_max_age(Duration::from_secs(60));
        let before = user_of(&window.pull_secrets(&workload("default")).await).unwrap();
        let mut secret = pull_secret("default", "theirs", "rotated");
        secret["metadata"]["resourceVersion"] = json!(null);
        api.store
            .delete(Kind::Secret, Some("default"), "theirs")
            .unwrap();
        api.store.create(Kind::Secret, secret).unwrap();
        // A check of the same window still uses the window's read...
        let same = user_of(&window.pull_secrets(&workload("default")).await).unwrap();
        assert_eq!(same, before);
        // ...and the next window's checks (fire time after the change) read it again.
        let next = shared.with_max_age(Duration::ZERO);
        let after = user_of(&next.pull_secrets(&workload("default")).await).unwrap();
        assert_eq!((before.as_str(), after.as_str()), ("ci", "rotated"));
        assert_eq!(gets(&api, "serviceaccounts"), 2);
    }
}
