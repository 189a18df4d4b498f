//! The end-to-end environment: a real registry, the simulated cluster with RBAC enforced for the identity
//! of `k8s/`, a webhook receiver, and the controller as a separate process of the built binary.
//!
//! Each test gets its own environment; when a test fails, the controller's log, the webhook requests and
//! the forbidden API calls are printed.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    process::Stdio,
    time::Duration,
};

use serde_json::{Value, json};
use tokio::{process::Child, sync::broadcast};
use watch_cluster_sim::{
    ApiConfig, Kind, SimCluster, SimOptions, UserInfo,
    controllers::{
        ControllerConfig, HttpResolver, Outcome, RolloutControl, images::RegistryEndpoint,
    },
};
use watch_cluster_testkit::{
    ImageKind, Pushed, RealRegistry, ReceivedRequest, RegistryAuth, WebhookReceiver,
};

pub const NS: &str = "apps";
pub const WAIT: Duration = Duration::from_secs(30);
const CONTROLLER_TOKEN: &str = "controller-token";
const ADMIN_TOKEN: &str = "admin-token";

/// One isolated environment.
pub struct Env {
    pub registry: RealRegistry,
    pub webhook: WebhookReceiver,
    pub sim: SimCluster,
    pub control: RolloutControl,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    controllers: Vec<(Child, PathBuf)>,
}

/// Settings of one controller process.
#[derive(Debug, Clone, Default)]
pub struct ControllerSettings {
    pub env: Vec<(String, String)>,
}

impl ControllerSettings {
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

impl Env {
    pub async fn start() -> Env {
        Self::start_with(RegistryAuth::None).await
    }

    /// An environment whose registry requires `auth` (the simulated kubelet is given the credentials).
    pub async fn start_with(auth: RegistryAuth) -> Env {
        watch_cluster::install_crypto_provider();
        let registry = RealRegistry::start(auth).await.expect("registry starts");
        let webhook = WebhookReceiver::start()
            .await
            .expect("webhook receiver starts");
        let control = RolloutControl::new();
        let mut endpoints = HashMap::new();
        endpoints.insert(
            registry.host(),
            RegistryEndpoint {
                base_url: registry.base_url().parse().expect("url"),
                basic_auth: registry.credentials(),
            },
        );
        let resolver = HttpResolver::new(endpoints, None).expect("resolver");
        let mut tokens = HashMap::new();
        tokens.insert(
            CONTROLLER_TOKEN.to_owned(),
            UserInfo::new(
                "system:serviceaccount:watch-cluster:watch-cluster",
                &["system:serviceaccounts"],
            ),
        );
        tokens.insert(
            ADMIN_TOKEN.to_owned(),
            UserInfo::new("admin", &["system:masters"]),
        );
        let sim = SimCluster::start(SimOptions {
            api: ApiConfig {
                tokens,
                rbac: true,
                bookmark_interval: Duration::from_secs(1),
                ..ApiConfig::default()
            },
            controllers: Some(ControllerConfig {
                pod_start_delay: Duration::from_millis(50),
                pod_ready_delay: Duration::from_millis(50),
                image_pull_backoff: Duration::from_millis(500),
                time_scale: 0.01,
                resolver: std::sync::Arc::new(resolver),
                control: control.clone(),
            }),
            ..SimOptions::default()
        })
        .await
        .expect("simulated cluster starts");
        for file in [
            "namespace.yaml",
            "serviceaccount.yaml",
            "clusterrole.yaml",
            "clusterrolebinding.yaml",
            "leader-election-role.yaml",
            "quarantine-role.yaml",
            "quarantine-configmap.yaml",
        ] {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("k8s/base")
                .join(file);
            let text = std::fs::read_to_string(&path).expect("manifest readable");
            sim.load_yaml(&text, "watch-cluster")
                .expect("manifest loads");
        }
        // The push-events component's Role (the leader label), as an install with push events has it.
        let label_role = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("k8s/components/events/leader-label-role.yaml");
        let text = std::fs::read_to_string(&label_role).expect("manifest readable");
        sim.load_yaml(&text, "watch-cluster")
            .expect("manifest loads");
        sim.load_yaml(
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n"),
            NS,
        )
        .expect("namespace");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig, CONTROLLER_TOKEN)
            .expect("kubeconfig");
        Env {
            registry,
            webhook,
            sim,
            control,
            dir,
            kubeconfig,
            controllers: Vec::new(),
        }
    }

    /// The settings every controller of these tests shares.
    pub fn base_settings(&self) -> ControllerSettings {
        let mut settings = ControllerSettings::default()
            .with("KUBECONFIG", self.kubeconfig.to_str().unwrap_or_default())
            .with("INSECURE_REGISTRIES", &self.registry.host())
            .with("WEBHOOK_URL", &self.webhook.url())
            .with("WEBHOOK_RETRY_COUNT", "3")
            .with("WEBHOOK_TIMEOUT", "2000")
            .with("ADMIN_ADDR", "127.0.0.1:0")
            .with("LEADER_ELECTION", "false")
            .with("REGISTRY_CACHE_TTL", "1s")
            .with("RUST_LOG", "info,watch_cluster=debug,kube=warn");
        for event in [
            "DEPLOYMENT_DETECTED",
            "IMAGE_ROLLOUT_STARTED",
            "IMAGE_ROLLOUT_COMPLETED",
            "IMAGE_ROLLOUT_FAILED",
        ] {
            settings = settings.with(&format!("WEBHOOK_ENABLE_{event}"), "true");
        }
        settings
    }

    /// Starts a controller process; returns its index.
    pub fn spawn_controller(&mut self, settings: ControllerSettings) -> usize {
        let index = self.controllers.len();
        let log = self.dir.path().join(format!("controller-{index}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-cluster"));
        command
            .arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(settings.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true);
        let child = command.spawn().expect("controller starts");
        self.controllers.push((child, log));
        index
    }

    /// The controller's output, for the dump of a failed test. Tests wait for and assert on what the
    /// controller did (metrics, Events, annotations, the API request log, webhooks), never on its log text.
    fn controller_log(&self, index: usize) -> String {
        std::fs::read_to_string(&self.controllers[index].1).unwrap_or_default()
    }

    /// Whether `secret` appears in the controller's output: the one property of the log itself under test.
    pub fn log_reveals(&self, index: usize, secret: &str) -> bool {
        self.controller_log(index).contains(secret)
    }

    /// How many checks of the workload `name` of `kind` in [`NS`] the controllers have finished. A check that
    /// finds nothing new makes no API request (it decides from the watch's copy: docs/design.md#api-requests-per-check),
    /// so the one per-workload trace of it is its `check finished` line (DEBUG, which these tests enable),
    /// whose span names the workload.
    pub fn reads_of(&self, kind: Kind, name: &str) -> usize {
        let span = format!("kind={kind:?} namespace={NS} name={name} ");
        (0..self.controllers.len())
            .map(|i| {
                self.controller_log(i)
                    .lines()
                    .filter(|l| l.contains("check finished") && l.contains(&span))
                    .count()
            })
            .sum()
    }

    /// Waits until the controller has finished `n` more checks of `name` than now.
    pub async fn more_checks(&self, kind: Kind, name: &str, n: usize) {
        let target = self.reads_of(kind, name) + n;
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.reads_of(kind, name) < target {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {n} more checks of {kind:?} {name}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no cleanup at all.
    pub async fn kill_controller(&mut self, index: usize) {
        watch_cluster_testkit::admin::kill(&mut self.controllers[index].0).await;
    }

    /// SIGTERM, then waits for the exit status.
    pub async fn terminate_controller(
        &mut self,
        index: usize,
        within: Duration,
    ) -> std::process::ExitStatus {
        watch_cluster_testkit::admin::terminate(&mut self.controllers[index].0, within).await
    }

    /// Pushes `repo:tag` (an OCI index) and returns what was pushed.
    pub async fn push(&self, repo: &str, tag: &str, salt: &str) -> Pushed {
        self.registry
            .push(repo, tag, ImageKind::OciIndex, salt)
            .await
            .expect("push")
    }

    /// `127.0.0.1:PORT/repo:tag`.
    pub fn image(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.registry.host())
    }

    /// Creates a workload of `kind` in [`NS`] with the containers `(name, image)` and the annotations.
    pub fn create(
        &self,
        kind: Kind,
        name: &str,
        containers: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) {
        self.create_in(NS, kind, name, containers, annotations);
    }

    /// Creates a namespace.
    pub fn namespace(&self, name: &str) {
        self.sim
            .load_yaml(
                &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"),
                name,
            )
            .expect("namespace");
    }

    /// Creates a workload in `namespace`.
    pub fn create_in(
        &self,
        namespace: &str,
        kind: Kind,
        name: &str,
        containers: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) {
        self.create_with(namespace, kind, name, containers, annotations, json!({}));
    }

    /// Creates a workload in `namespace` with `spec` merged into the generated spec.
    pub fn create_with(
        &self,
        namespace: &str,
        kind: Kind,
        name: &str,
        containers: &[(&str, &str)],
        annotations: &[(&str, &str)],
        spec_extra: Value,
    ) {
        let containers: Vec<Value> = containers
            .iter()
            .map(|(n, i)| json!({"name": n, "image": i}))
            .collect();
        let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
        let (api_kind, extra) = match kind {
            Kind::Deployment => (
                "Deployment",
                json!({"replicas": 2, "progressDeadlineSeconds": 600}),
            ),
            Kind::StatefulSet => ("StatefulSet", json!({"replicas": 2, "serviceName": name})),
            Kind::DaemonSet => ("DaemonSet", json!({})),
            other => panic!("not a workload kind: {other:?}"),
        };
        let mut spec = json!({
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}},
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
            spec.extend(extra.clone());
        }
        let object = json!({
            "apiVersion": "apps/v1", "kind": api_kind,
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": spec,
        });
        self.sim
            .store()
            .create(kind, object)
            .expect("workload created");
    }

    pub fn get(&self, kind: Kind, name: &str) -> Value {
        self.sim
            .store()
            .get(kind, Some(NS), name)
            .unwrap_or(Value::Null)
    }

    /// The image of `container` in the workload's pod template.
    pub fn image_of(&self, kind: Kind, name: &str, container: &str) -> String {
        self.get(kind, name)["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == container)
            .and_then(|c| c["image"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    pub fn annotation(&self, kind: Kind, name: &str, key: &str) -> Option<String> {
        self.get(kind, name)["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_owned)
    }

    /// Changes the object with `edit` (as a user or another writer would).
    pub fn edit(&self, kind: Kind, name: &str, edit: impl FnOnce(&mut Value)) {
        let mut obj = self.get(kind, name);
        edit(&mut obj);
        if let Some(meta) = obj["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
        }
        self.sim.store().update(kind, obj).expect("edit applied");
    }

    pub fn set_annotation(&self, kind: Kind, name: &str, key: &str, value: Option<&str>) {
        self.edit(kind, name, |obj| {
            let annotations = &mut obj["metadata"]["annotations"];
            match value {
                Some(v) => annotations[key] = json!(v),
                None => {
                    if let Some(map) = annotations.as_object_mut() {
                        map.remove(key);
                    }
                }
            }
        });
    }

    /// Waits until `check` holds for the object, re-checking on every change of the cluster.
    pub async fn wait_for(
        &self,
        kind: Kind,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut rx = self.sim.store().subscribe();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let obj = self.get(kind, name);
            if check(&obj) {
                return obj;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                _ => panic!("timed out waiting for {kind:?} {name}: {what}\nlast: {obj:#}"),
            }
        }
    }

    /// The Events recorded for a workload, as (type, reason, note), in creation order.
    pub fn events(&self, name: &str) -> Vec<(String, String, String)> {
        let mut events: Vec<Value> = self
            .sim
            .store()
            .list(Kind::Event, Some(NS))
            .into_iter()
            .filter(|e| e["regarding"]["name"] == name || e["involvedObject"]["name"] == name)
            .collect();
        events.sort_by_key(|e| {
            e["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
        });
        events
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or_default().to_owned(),
                    e["reason"].as_str().unwrap_or_default().to_owned(),
                    e["note"]
                        .as_str()
                        .or(e["message"].as_str())
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    pub fn reasons(&self, name: &str) -> Vec<String> {
        self.events(name).into_iter().map(|(_, r, _)| r).collect()
    }

    /// Waits until an Event with `reason` exists for the workload.
    pub async fn wait_for_event(&self, name: &str, reason: &str) -> (String, String, String) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut rx = self.sim.store().subscribe();
        loop {
            if let Some(e) = self.events(name).into_iter().find(|(_, r, _)| r == reason) {
                return e;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                _ => panic!(
                    "timed out waiting for Event {reason} of {name}; events: {:#?}",
                    self.events(name)
                ),
            }
        }
    }

    /// The webhook requests about one workload, as parsed JSON.
    pub fn webhooks(&self, name: &str) -> Vec<Value> {
        self.webhook_requests(name)
            .iter()
            .map(ReceivedRequest::json)
            .collect()
    }

    pub fn webhook_requests(&self, name: &str) -> Vec<ReceivedRequest> {
        self.webhook
            .requests()
            .into_iter()
            .filter(|r| r.json()["deployment"]["name"] == name)
            .collect()
    }

    /// Waits until the webhook of `event_type` about `name` arrived `count` times.
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
            let seen = self.webhook.requests().len();
            let more = self
                .webhook
                .wait_for_requests(seen + 1, Duration::from_millis(250));
            let _ = more.await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {count} {event_type} about {name}; got {:#?}",
                self.webhooks(name)
            );
        }
    }

    /// Event types of the webhooks about `name`, in arrival order.
    pub fn webhook_types(&self, name: &str) -> Vec<String> {
        self.webhooks(name)
            .iter()
            .map(|w| w["eventType"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// API calls the RBAC of `k8s/` refused to the controller.
    pub fn forbidden_calls(&self) -> Vec<String> {
        self.sim
            .request_log()
            .entries()
            .into_iter()
            .filter(|r| r.status == 403)
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    pub fn set_outcome_for_image(&self, image: &str, outcome: Outcome) {
        self.control.set_outcome_for_image(image, outcome);
    }
}

/// The API path of a workload.
pub fn workload_path(kind: Kind, namespace: &str, name: &str) -> String {
    let plural = match kind {
        Kind::Deployment => "deployments",
        Kind::StatefulSet => "statefulsets",
        Kind::DaemonSet => "daemonsets",
        other => panic!("not a workload kind: {other:?}"),
    };
    format!("/apis/apps/v1/namespaces/{namespace}/{plural}/{name}")
}

pub use watch_cluster_testkit::admin::{free_port, http_get, metric, sample, wait_for_http};

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for index in 0..self.controllers.len() {
                eprintln!(
                    "----- controller {index} log -----\n{}",
                    self.controller_log(index)
                );
            }
            for r in self.webhook.requests() {
                eprintln!("webhook: {}", r.body_text());
            }
            eprintln!("forbidden: {:?}", self.forbidden_calls());
            self.sim.shutdown();
            return;
        }
        self.sim.shutdown();
        // Every test proves the controller needs no more than `k8s/` grants: a refused call fails it.
        let forbidden = self.forbidden_calls();
        assert!(
            forbidden.is_empty(),
            "calls the RBAC of k8s/ refused: {forbidden:?}"
        );
    }
}
