//! Pods on the agent's Nodes: started as a kubelet would start them, and removed when deleted.
//!
//! A pod is started once: each container's image is resolved to the digest the registry serves now, and the
//! pod becomes Running/Ready with those `imageID`s, unless an image fails to pull or is marked broken
//! ([`Fault`]). Pods that failed to pull are retried and crashing pods restart, on a resync every few
//! seconds, so a rising `restartCount` and a later successful pull look as they do on a real node.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use chrono::Utc;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{
    Api, Client, ResourceExt as _,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
    runtime::{WatchStreamExt as _, reflector, watcher},
};
use serde_json::{Value, json};

use crate::registry::{Reference, Resolver};

/// Where tests mark images broken, and its namespace.
const FAULTS: (&str, &str) = ("kube-system", "testbed-broken-images");
/// How often failed pulls are retried and crashing containers restart.
const RESYNC: Duration = Duration::from_secs(3);

/// How an image marked in the faults ConfigMap misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The pull fails: `ErrImagePull`, then `ImagePullBackOff`.
    Pull,
    /// The container starts and exits: Running, then `CrashLoopBackOff` with a rising `restartCount`.
    Crash,
    /// The container runs but its readiness probe never passes.
    NeverReady,
}

impl Fault {
    fn parse(value: &str) -> Option<Fault> {
        match value {
            "pull" => Some(Fault::Pull),
            "crash" => Some(Fault::Crash),
            "ready" => Some(Fault::NeverReady),
            _ => None,
        }
    }
}

/// What starting one container came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Started {
    Running { image_id: String },
    PullFailed { message: String },
    Crashing { image_id: String },
    NotReady { image_id: String },
}

pub struct Kubelet {
    client: Client,
    nodes: BTreeSet<String>,
    resolver: Resolver,
}

impl Kubelet {
    pub fn new(client: Client, nodes: Vec<String>) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            client,
            nodes: nodes.into_iter().collect(),
            resolver: Resolver::new()?,
        }))
    }

    pub async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let (reader, writer) = reflector::store();
        let resync = {
            let this = self.clone();
            let reader = reader.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RESYNC).await;
                    for pod in reader.state() {
                        if this.ours(&pod) && needs_resync(&pod) {
                            this.handle(&pod, true).await;
                        }
                    }
                }
            })
        };
        let stream = reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .applied_objects();
        stream
            .for_each_concurrent(16, |event| {
                let this = self.clone();
                async move {
                    match event {
                        Ok(pod) if this.ours(&pod) => this.handle(&pod, false).await,
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "pod watch failed; retrying"),
                    }
                }
            })
            .await;
        resync.abort();
        anyhow::bail!("the pod watch ended")
    }

    fn ours(&self, pod: &Pod) -> bool {
        pod.spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some_and(|n| self.nodes.contains(n))
    }

    /// Moves `pod` on: deleted, started, or (on a `resync`) pulled again or restarted. A watch event never
    /// restarts a container: our own status patch comes back as one.
    async fn handle(&self, pod: &Pod, resync: bool) {
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let result = if pod.metadata.deletion_timestamp.is_some() {
            // The containers are gone at once: confirm the deletion as a kubelet does after they stop.
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            api.delete(&name, &params).await.map(|_| ())
        } else if needs_start(pod) || (resync && needs_resync(pod)) {
            let status = self.start(pod).await;
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await
                .map(|_| ())
        } else {
            Ok(())
        };
        match result {
            Ok(()) => {}
            // Gone or changed meanwhile: the watch brings the next state.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(error) => tracing::warn!(%namespace, %name, %error, "pod update failed"),
        }
    }

    /// The status after starting (or restarting) every container of `pod`.
    async fn start(&self, pod: &Pod) -> Value {
        let faults = self.faults().await;
        let mut started = Vec::new();
        for container in pod.spec.iter().flat_map(|s| &s.containers) {
            let image = container.image.clone().unwrap_or_default();
            let reference = Reference::parse(&image);
            let outcome = match self.resolver.resolve(&reference).await {
                Err(message) => Started::PullFailed { message },
                Ok(digest) => {
                    let image_id = format!("{}@{digest}", reference.name());
                    match faults.get(&digest.replace(':', "-")).copied() {
                        None => Started::Running { image_id },
                        Some(Fault::Pull) => Started::PullFailed {
                            message: format!("failed to pull {image}: marked broken ({digest})"),
                        },
                        Some(Fault::Crash) => Started::Crashing { image_id },
                        Some(Fault::NeverReady) => Started::NotReady { image_id },
                    }
                }
            };
            started.push((container.name.clone(), image, outcome));
        }
        status(pod, &started, &Utc::now().to_rfc3339())
    }

    async fn faults(&self) -> std::collections::BTreeMap<String, Fault> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), FAULTS.0);
        match api.get_opt(FAULTS.1).await {
            Ok(Some(map)) => map
                .data
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| {
                    let fault = Fault::parse(&v);
                    if fault.is_none() {
                        tracing::warn!(key = %k, value = %v, "unknown fault (use pull, crash or ready)");
                    }
                    Some((k, fault?))
                })
                .collect(),
            Ok(None) => Default::default(),
            Err(error) => {
                tracing::warn!(%error, "cannot read the faults ConfigMap; no image is broken");
                Default::default()
            }
        }
    }
}

/// A pod no container status was reported for yet, or whose containers' images changed since.
fn needs_start(pod: &Pod) -> bool {
    let spec_images: Vec<(&str, &str)> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| (c.name.as_str(), c.image.as_deref().unwrap_or_default()))
        .collect();
    let reported: Vec<(&str, &str)> = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|c| (c.name.as_str(), c.image.as_str()))
        .collect();
    spec_images.iter().any(|i| !reported.contains(i))
}

/// A pod that is waiting to pull again, to restart a crashed container, or to pass a readiness probe (a
/// healed fault shows then).
fn needs_resync(pod: &Pod) -> bool {
    let statuses = || {
        pod.status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
    };
    let waiting = statuses()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
        .any(|r| matches!(r, "ErrImagePull" | "ImagePullBackOff" | "CrashLoopBackOff"));
    let unready =
        statuses().any(|c| !c.ready && c.state.as_ref().is_some_and(|s| s.running.is_some()));
    pod.metadata.deletion_timestamp.is_none() && (waiting || unready)
}

/// The pod status a kubelet reports for containers started as `started` say (a merge patch of `status`).
fn status(pod: &Pod, started: &[(String, String, Started)], now: &str) -> Value {
    let previous = |name: &str| {
        pod.status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .find(|c| c.name == name)
    };
    let mut statuses = Vec::new();
    for (name, image, outcome) in started {
        let before = previous(name);
        let restarts = before.map_or(0, |c| c.restart_count);
        let was_pull_failure = before
            .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff");
        let entry = match outcome {
            Started::Running { image_id } => json!({
                "name": name, "image": image, "imageID": image_id, "ready": true, "started": true,
                "restartCount": restarts, "state": {"running": {"startedAt": now}},
            }),
            Started::NotReady { image_id } => json!({
                "name": name, "image": image, "imageID": image_id, "ready": false, "started": true,
                "restartCount": restarts, "state": {"running": {"startedAt": now}},
            }),
            Started::PullFailed { message } => {
                let reason = if was_pull_failure {
                    "ImagePullBackOff"
                } else {
                    "ErrImagePull"
                };
                json!({
                    "name": name, "image": image, "imageID": "", "ready": false, "started": false,
                    "restartCount": restarts,
                    "state": {"waiting": {"reason": reason, "message": message}},
                })
            }
            Started::Crashing { image_id } => json!({
                "name": name, "image": image, "imageID": image_id, "ready": false, "started": false,
                "restartCount": restarts + 1,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                    "message": format!("back-off restarting failed container {name}")}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "startedAt": now, "finishedAt": now}},
            }),
        };
        statuses.push(entry);
    }
    let all_ready = started
        .iter()
        .all(|(_, _, s)| matches!(s, Started::Running { .. }));
    let any_pull_failed = started
        .iter()
        .any(|(_, _, s)| matches!(s, Started::PullFailed { .. }));
    let ready = if all_ready { "True" } else { "False" };
    let condition = |type_: &str, status: &str| {
        let mut c = json!({"type": type_, "status": status, "lastTransitionTime": now});
        if status == "False" {
            c["reason"] = json!("ContainersNotReady");
        }
        c
    };
    let start_time = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map_or_else(|| now.to_owned(), |t| t.0.to_string());
    json!({
        "status": {
            "phase": if any_pull_failed { "Pending" } else { "Running" },
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": pod_ip(pod),
            "podIPs": [{"ip": pod_ip(pod)}],
            "startTime": start_time,
            "conditions": [
                condition("PodReadyToStartContainers", "True"),
                condition("Initialized", "True"),
                condition("Ready", ready),
                condition("ContainersReady", ready),
                condition("PodScheduled", "True"),
            ],
            "containerStatuses": statuses,
        }
    })
}

/// A stable address per pod in 10.244.0.0/16 (nothing routes to it; Endpoints only need one).
fn pod_ip(pod: &Pod) -> String {
    let hash = pod
        .uid()
        .unwrap_or_default()
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("10.244.{}.{}", (hash >> 8) % 256, hash % 254 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: &[(&str, &str)]) -> Pod {
        let containers: Vec<Value> = containers
            .iter()
            .map(|(n, i)| json!({"name": n, "image": i}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
            "spec": {"nodeName": "testbed-node-0", "containers": containers},
        }))
        .unwrap_or_default()
    }

    const T: &str = "2026-01-01T00:00:00Z";

    fn applied(mut p: Pod, status: &Value) -> Pod {
        p.status = serde_json::from_value(status["status"].clone()).ok();
        p
    }

    #[test]
    fn a_started_pod_is_ready_with_the_digest_it_pulled() {
        let p = pod(&[("app", "r:5000/a:1")]);
        assert!(needs_start(&p));
        let started = [(
            "app".to_owned(),
            "r:5000/a:1".to_owned(),
            Started::Running {
                image_id: "r:5000/a@sha256:1".into(),
            },
        )];
        let s = status(&p, &started, "2026-01-01T00:00:00Z");
        assert_eq!(s["status"]["phase"], "Running");
        assert_eq!(
            s["status"]["containerStatuses"][0]["imageID"],
            "r:5000/a@sha256:1"
        );
        assert_eq!(s["status"]["conditions"][2]["type"], "Ready");
        assert_eq!(s["status"]["conditions"][2]["status"], "True");
        let p = applied(p, &s);
        assert!(!needs_start(&p));
        assert!(!needs_resync(&p));
    }

    #[test]
    fn a_failed_pull_backs_off_and_a_crash_counts_restarts() {
        let p = pod(&[("app", "r:5000/a:1")]);
        let pull = [(
            "app".to_owned(),
            "r:5000/a:1".to_owned(),
            Started::PullFailed {
                message: "404".into(),
            },
        )];
        let first = status(&p, &pull, T);
        assert_eq!(
            first["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ErrImagePull"
        );
        assert_eq!(first["status"]["phase"], "Pending");
        let p = applied(p, &first);
        assert!(needs_resync(&p));
        let second = status(&p, &pull, T);
        assert_eq!(
            second["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ImagePullBackOff"
        );

        let crash = [(
            "app".to_owned(),
            "r:5000/a:1".to_owned(),
            Started::Crashing {
                image_id: "r:5000/a@sha256:1".into(),
            },
        )];
        let p = pod(&[("app", "r:5000/a:1")]);
        let once = applied(p, &status(&pod(&[("app", "r:5000/a:1")]), &crash, T));
        let twice = status(&once, &crash, T);
        assert_eq!(twice["status"]["containerStatuses"][0]["restartCount"], 2);
        assert_eq!(twice["status"]["phase"], "Running");
        assert_eq!(twice["status"]["conditions"][2]["status"], "False");
    }

    #[test]
    fn faults_are_named_by_word() {
        assert_eq!(Fault::parse("pull"), Some(Fault::Pull));
        assert_eq!(Fault::parse("crash"), Some(Fault::Crash));
        assert_eq!(Fault::parse("ready"), Some(Fault::NeverReady));
        assert_eq!(Fault::parse("boom"), None);
    }
}
