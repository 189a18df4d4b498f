//! One environment, two backends: a scenario is written once against [`Env`] and runs on the simulated API
//! server and on real kube-apiserver (docs/testbed.md). Each method does on each backend what a user's
//! cluster would show; where the backends differ in how a fault is made (the simulator's rollout control,
//! the node agent's broken images), the method says so.

use std::time::Duration;

use serde_json::{Value, json};
use watch_cluster_sim::controllers::Outcome;
use watch_cluster_testkit::{ImageFault, ImageKind, Pushed};

pub use crate::real_env::Kind;
use crate::{real_env::RealEnv, sim_env};

/// Which API server a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sim,
    Real,
}

/// How long a scenario waits for anything.
pub const WAIT: Duration = Duration::from_secs(90);

enum Inner {
    Sim(Box<sim_env::Env>),
    Real(Box<RealEnv>),
}

pub struct Env {
    inner: Inner,
}

fn sim_kind(kind: Kind) -> watch_cluster_sim::Kind {
    match kind {
        Kind::Deployment => watch_cluster_sim::Kind::Deployment,
        Kind::StatefulSet => watch_cluster_sim::Kind::StatefulSet,
        Kind::DaemonSet => watch_cluster_sim::Kind::DaemonSet,
    }
}

impl Env {
    pub async fn start(backend: Backend, test: &str) -> Env {
        let inner = match backend {
            Backend::Sim => Inner::Sim(Box::new(sim_env::Env::start().await)),
            Backend::Real => Inner::Real(Box::new(RealEnv::start(test).await)),
        };
        Env { inner }
    }

    pub fn backend(&self) -> Backend {
        match &self.inner {
            Inner::Sim(_) => Backend::Sim,
            Inner::Real(_) => Backend::Real,
        }
    }

    /// The namespace of the scenario's workloads.
    pub fn ns(&self) -> String {
        match &self.inner {
            Inner::Sim(_) => sim_env::NS.to_owned(),
            Inner::Real(env) => env.ns().to_owned(),
        }
    }

    /// Pushes `repo:tag` as an OCI index.
    pub async fn push(&self, repo: &str, tag: &str) -> Pushed {
        self.push_kind(repo, tag, ImageKind::OciIndex, "a").await
    }

    /// Pushes `repo:tag` as `kind`; another `salt` moves the tag to new content.
    pub async fn push_kind(&self, repo: &str, tag: &str, kind: ImageKind, salt: &str) -> Pushed {
        match &self.inner {
            Inner::Sim(env) => env
                .registry
                .push(repo, tag, kind, salt)
                .await
                .expect("push"),
            Inner::Real(env) => env.push_kind(repo, tag, kind, salt).await,
        }
    }

    /// `127.0.0.1:PORT/repo:tag`.
    pub fn image(&self, repo: &str, tag: &str) -> String {
        match &self.inner {
            Inner::Sim(env) => env.image(repo, tag),
            Inner::Real(env) => env.image(repo, tag),
        }
    }

    /// The scenario's registry (anonymous, plain HTTP), e.g. for cosign to sign in.
    pub fn registry(&self) -> &watch_cluster_testkit::RealRegistry {
        match &self.inner {
            Inner::Sim(env) => &env.registry,
            Inner::Real(env) => &env.registry,
        }
    }

    /// The registry's `host:port`.
    pub fn registry_host(&self) -> String {
        match &self.inner {
            Inner::Sim(env) => env.registry.host(),
            Inner::Real(env) => env.registry.host(),
        }
    }

    /// Creates a workload (2 replicas; a DaemonSet one pod per node) with `spec` merged into its spec.
    pub async fn create(
        &self,
        kind: Kind,
        name: &str,
        containers: &[(&str, &str)],
        annotations: &[(&str, &str)],
        spec: Value,
    ) {
        match &self.inner {
            Inner::Sim(env) => env.create_with(
                sim_env::NS,
                sim_kind(kind),
                name,
                containers,
                annotations,
                spec,
            ),
            Inner::Real(env) => env.create(kind, name, containers, annotations, spec).await,
        }
    }

    /// Waits until the Deployment's first container is `image` in its pod template.
    pub async fn wait_image(&self, name: &str, image: &str) {
        let wanted = image.to_owned();
        self.wait_for(
            Kind::Deployment,
            name,
            &format!("image {image}"),
            move |d| d["spec"]["template"]["spec"]["containers"][0]["image"] == wanted.as_str(),
        )
        .await;
    }

    /// Every workload of `kind` in the scenario's namespace.
    pub async fn list(&self, kind: Kind) -> Vec<Value> {
        match &self.inner {
            Inner::Sim(env) => env.sim.store().list(sim_kind(kind), Some(sim_env::NS)),
            Inner::Real(env) => env.list(kind).await,
        }
    }

    pub async fn get(&self, kind: Kind, name: &str) -> Value {
        match &self.inner {
            Inner::Sim(env) => env.get(sim_kind(kind), name),
            Inner::Real(env) => env.get(kind, name).await,
        }
    }

    /// The image of `container` in the pod template.
    pub async fn image_of(&self, kind: Kind, name: &str, container: &str) -> String {
        self.get(kind, name).await["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == container)
            .and_then(|c| c["image"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn annotation(&self, kind: Kind, name: &str, key: &str) -> Option<String> {
        self.get(kind, name).await["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_owned)
    }

    pub async fn set_annotation(&self, kind: Kind, name: &str, key: &str, value: Option<&str>) {
        match &self.inner {
            Inner::Sim(env) => env.set_annotation(sim_kind(kind), name, key, value),
            Inner::Real(env) => env.set_annotation(kind, name, key, value).await,
        }
    }

    /// Changes the object as another writer would (a whole-object update).
    pub async fn edit(&self, kind: Kind, name: &str, edit: impl Fn(&mut Value)) {
        match &self.inner {
            Inner::Sim(env) => env.edit(sim_kind(kind), name, edit),
            Inner::Real(env) => env.edit(kind, name, edit).await,
        }
    }

    /// Polls the object until `check` holds.
    pub async fn wait_for(
        &self,
        kind: Kind,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let object = self.get(kind, name).await;
            if check(&object) {
                return object;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {} {name}: {what}\nlast: {object:#}",
                kind.name()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the workload's own controller has rolled out its current spec (kubectl's rules).
    pub async fn wait_rolled_out(&self, kind: Kind, name: &str) {
        self.wait_for(kind, name, "rolled out", |o| {
            let status = &o["status"];
            let int = |v: &Value| v.as_i64().unwrap_or(0);
            let observed = int(&status["observedGeneration"]) >= int(&o["metadata"]["generation"]);
            observed
                && match kind {
                    Kind::Deployment => {
                        let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
                        int(&status["updatedReplicas"]) == want
                            && int(&status["availableReplicas"]) == want
                            && int(&status["replicas"]) == want
                    }
                    Kind::StatefulSet => {
                        let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
                        int(&status["readyReplicas"]) == want
                            && status["currentRevision"] == status["updateRevision"]
                    }
                    Kind::DaemonSet => {
                        let want = int(&status["desiredNumberScheduled"]);
                        want > 0
                            && int(&status["updatedNumberScheduled"]) == want
                            && int(&status["numberAvailable"]) == want
                    }
                }
        })
        .await;
    }

    /// The reasons of the Events about `name`, oldest first.
    pub async fn reasons(&self, name: &str) -> Vec<String> {
        match &self.inner {
            Inner::Sim(env) => env.reasons(name),
            Inner::Real(env) => env.reasons(name).await,
        }
    }

    /// The notes of watch-cluster's Events with `reason` about `name`, oldest first.
    pub async fn event_notes(&self, name: &str, reason: &str) -> Vec<String> {
        let events: Vec<(String, String)> = match &self.inner {
            Inner::Sim(env) => env
                .events(name)
                .into_iter()
                .map(|(_, r, n)| (r, n))
                .collect(),
            Inner::Real(env) => env.events(name).await,
        };
        events
            .into_iter()
            .filter(|(r, _)| r == reason)
            .map(|(_, n)| n)
            .collect()
    }

    /// Waits until an Event with `reason` about `name` exists.
    pub async fn wait_for_event(&self, name: &str, reason: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.reasons(name).await.iter().any(|r| r == reason) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no Event {reason} about {name}; got {:?}",
                self.reasons(name).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn webhook(&self) -> &watch_cluster_testkit::WebhookReceiver {
        match &self.inner {
            Inner::Sim(env) => &env.webhook,
            Inner::Real(env) => &env.webhook,
        }
    }

    pub fn webhook_url(&self) -> String {
        self.webhook().url()
    }

    /// The webhook requests about `name`, in arrival order.
    pub fn webhook_requests(&self, name: &str) -> Vec<watch_cluster_testkit::ReceivedRequest> {
        self.webhook()
            .requests()
            .into_iter()
            .filter(|r| r.json()["deployment"]["name"] == name)
            .collect()
    }

    pub fn webhooks(&self, name: &str) -> Vec<Value> {
        self.webhook_requests(name)
            .iter()
            .map(|r| r.json())
            .collect()
    }

    pub fn webhook_types(&self, name: &str) -> Vec<String> {
        self.webhooks(name)
            .iter()
            .map(|w| w["eventType"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Waits until `count` webhooks of `event_type` about `name` arrived; returns them.
    pub async fn wait_for_webhooks(
        &self,
        name: &str,
        event_type: &str,
        count: usize,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let found: Vec<Value> = self
                .webhooks(name)
                .into_iter()
                .filter(|w| w["eventType"] == event_type)
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {count} {event_type} about {name}; got {:#?}",
                self.webhooks(name)
            );
            let seen = self.webhook().requests().len();
            let _ = self
                .webhook()
                .wait_for_requests(seen + 1, Duration::from_millis(250))
                .await;
        }
    }

    /// Pods of the image never become Ready (the simulator: they stay Pending; the node agent: they crash).
    pub async fn break_image(&self, repo: &str, tag: &str, pushed: &Pushed) {
        match &self.inner {
            Inner::Sim(env) => env.set_outcome_for_image(&format!("{repo}:{tag}"), Outcome::Stuck),
            Inner::Real(env) => env.set_fault(&pushed.digest, ImageFault::Crash).await,
        }
    }

    /// Pods of the image fail as `fault` says: the simulator's kubelet and the node agent show the same
    /// container states (`ImagePullBackOff`, `CrashLoopBackOff`, or running but never Ready).
    pub async fn fail_image(&self, repo: &str, tag: &str, pushed: &Pushed, fault: ImageFault) {
        match &self.inner {
            Inner::Sim(env) => {
                let outcome = match fault {
                    ImageFault::Pull => Outcome::PullFails,
                    ImageFault::Crash => Outcome::Crash,
                    ImageFault::NeverReady => Outcome::NeverReady,
                };
                env.set_outcome_for_image(&format!("{repo}:{tag}"), outcome)
            }
            Inner::Real(env) => env.set_fault(&pushed.digest, fault).await,
        }
    }

    /// `entries.json` of the cluster quarantine ConfigMap in the controller's namespace.
    pub async fn cluster_quarantine(&self) -> Vec<Value> {
        const NAME: &str = "watch-cluster-quarantine";
        let data: Option<String> = match &self.inner {
            Inner::Sim(env) => env
                .sim
                .store()
                .get(
                    watch_cluster_sim::Kind::ConfigMap,
                    Some("watch-cluster"),
                    NAME,
                )
                .and_then(|c| c["data"]["entries.json"].as_str().map(str::to_owned)),
            Inner::Real(env) => env.cluster_quarantine().await,
        };
        data.map(|d| serde_json::from_str(&d).expect("entries.json is a JSON array"))
            .unwrap_or_default()
    }

    /// Pods of the image take their time to become Ready: on the simulator every delay is stretched, on the
    /// node agent they wait until [`Env::finish_slow_image`].
    pub async fn slow_image(&self, repo: &str, tag: &str, pushed: &Pushed) {
        match &self.inner {
            Inner::Sim(env) => {
                env.set_outcome_for_image(&format!("{repo}:{tag}"), Outcome::Slow(40.0))
            }
            Inner::Real(env) => env.set_fault(&pushed.digest, ImageFault::NeverReady).await,
        }
    }

    pub async fn finish_slow_image(&self, pushed: &Pushed) {
        if let Inner::Real(env) = &self.inner {
            env.clear_fault(&pushed.digest).await;
        }
    }

    /// The settings every controller of a scenario starts from: what the backend's install gives, all four
    /// webhook events on, registry answers shared for 1 s.
    pub async fn settings(&self) -> Settings {
        let mut settings: Vec<(String, String)> = match &self.inner {
            Inner::Sim(env) => env.base_settings().env,
            Inner::Real(env) => env.settings().await,
        };
        for event in [
            "DEPLOYMENT_DETECTED",
            "IMAGE_ROLLOUT_STARTED",
            "IMAGE_ROLLOUT_COMPLETED",
            "IMAGE_ROLLOUT_FAILED",
        ] {
            settings.push((format!("WEBHOOK_ENABLE_{event}"), "true".into()));
        }
        Settings(settings)
    }

    /// The spec a stuck rollout needs to be detected soon: a Deployment's own progress deadline (10 s on
    /// real Kubernetes; on the simulator, whose workload controllers run 100 times faster, 600 s is 6 s);
    /// StatefulSets and DaemonSets have none, `ROLLOUT_TIMEOUT` decides.
    pub fn short_deadline(&self, kind: Kind) -> Value {
        match (kind, self.backend()) {
            (Kind::Deployment, Backend::Real) => json!({"progressDeadlineSeconds": 10}),
            (Kind::Deployment, Backend::Sim) => json!({"progressDeadlineSeconds": 600}),
            _ => json!({}),
        }
    }

    /// Settings of one of several replicas that elect a leader.
    pub async fn replica(&self, name: &str) -> Settings {
        let settings = self
            .settings()
            .await
            .with("LEADER_ELECTION", "true")
            .with("POD_NAME", name);
        match self.backend() {
            Backend::Sim => settings.with("POD_NAMESPACE", "watch-cluster"),
            Backend::Real => settings,
        }
    }

    pub fn spawn_controller(&mut self, settings: &Settings) -> usize {
        match &mut self.inner {
            Inner::Sim(env) => {
                let mut sim = sim_env::ControllerSettings::default();
                for (k, v) in &settings.0 {
                    sim = sim.with(k, v);
                }
                env.spawn_controller(sim)
            }
            Inner::Real(env) => env.spawn_controller(&settings.0),
        }
    }

    pub async fn kill_controller(&mut self, index: usize) {
        match &mut self.inner {
            Inner::Sim(env) => env.kill_controller(index).await,
            Inner::Real(env) => env.kill_controller(index).await,
        }
    }

    pub async fn terminate_controller(
        &mut self,
        index: usize,
        within: Duration,
    ) -> std::process::ExitStatus {
        match &mut self.inner {
            Inner::Sim(env) => env.terminate_controller(index, within).await,
            Inner::Real(env) => env.terminate_controller(index, within).await,
        }
    }

    /// Who holds the controllers' leader-election Lease.
    pub async fn lease_holder(&self) -> Option<String> {
        match &self.inner {
            Inner::Sim(env) => env
                .sim
                .store()
                .get(
                    watch_cluster_sim::Kind::Lease,
                    Some("watch-cluster"),
                    "watch-cluster",
                )
                .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
                .filter(|h| !h.is_empty()),
            Inner::Real(env) => env.lease_holder().await,
        }
    }

    /// Waits until the Lease holder satisfies `wanted`.
    pub async fn wait_for_holder(&self, wanted: impl Fn(Option<&str>) -> bool) -> Option<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let current = self.lease_holder().await;
            if wanted(current.as_deref()) {
                return current;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Lease holder stayed {current:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The images the workload's pods run, with the `imageID` each reports (ready pods only).
    pub async fn ready_pod_images(&self, name: &str) -> Vec<(String, String)> {
        let pods: Vec<Value> = match &self.inner {
            Inner::Sim(env) => env
                .sim
                .store()
                .list(watch_cluster_sim::Kind::Pod, Some(sim_env::NS)),
            Inner::Real(env) => env
                .pods(name)
                .await
                .into_iter()
                .map(|p| serde_json::to_value(p).unwrap_or_default())
                .collect(),
        };
        pods.iter()
            .filter(|p| p["metadata"]["labels"]["app"] == name)
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .flat_map(|p| {
                p["status"]["containerStatuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|c| {
                (
                    c["image"].as_str().unwrap_or_default().to_owned(),
                    c["imageID"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

/// Controller settings, as `(variable, value)`; later entries win.
#[derive(Debug, Clone, Default)]
pub struct Settings(pub Vec<(String, String)>);

impl Settings {
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.into(), value.into()));
        self
    }
}

pub use watch_cluster_testkit::annotations::{as_pairs, enabled};
