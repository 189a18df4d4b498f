//! One test's environment on the real control plane: its own namespace, a real registry, a webhook
//! receiver, a TokenRequest token for the controller's ServiceAccount, and the controller binary run on the
//! host with the settings of the applied `k8s/` (docs/testbed.md).

use std::{path::PathBuf, process::Stdio, time::Duration};

use k8s_openapi::api::{core::v1::Pod, events::v1::Event};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams},
};
use serde_json::{Value, json};
use tokio::process::Child;
use watch_cluster_testkit::{
    ControllerCredentials, ImageFault, ImageKind, Pushed, RealRegistry, RegistryAuth,
    TestNamespace, Testbed, WebhookReceiver, cluster::CONTROLLER_NAMESPACE,
};

/// Real controllers take seconds where the simulator takes milliseconds.
pub const WAIT: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
        }
    }

    /// `kubectl rollout status` takes `deployment/NAME` and the like.
    pub fn kubectl_name(self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
            Kind::StatefulSet => "statefulset",
            Kind::DaemonSet => "daemonset",
        }
    }

    fn resource(self) -> ApiResource {
        ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", self.name()))
    }
}

pub struct RealEnv {
    pub testbed: Testbed,
    pub admin: Client,
    pub registry: RealRegistry,
    pub webhook: WebhookReceiver,
    ns: TestNamespace,
    dir: tempfile::TempDir,
    credentials: ControllerCredentials,
    controllers: Vec<(Child, PathBuf)>,
    /// Cluster-scoped objects this test made, as `kubectl delete` arguments.
    cluster_objects: Vec<String>,
    /// Spans (RFC 3339, as the audit log writes them) in which a freshly started kube-apiserver's authorizer
    /// was still loading RBAC: its refusals then are not the manifests' fault.
    authorizer_warmups: std::sync::Mutex<Vec<(String, String)>>,
    /// Keys this test added to the node agent's faults ConfigMap (shared by every test).
    faults: std::sync::Mutex<Vec<String>>,
    mode: Mode,
}

/// How the controller is installed and what it watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `k8s/` on the run's shared control plane; the controller watches the test's namespace alone, with a
    /// Lease of its own (tests run side by side).
    OwnNamespace,
    /// `k8s/` on a control plane of the test's own; the controller watches every namespace (the default).
    ClusterWide,
    /// `k8s/namespaced/` on a control plane of the test's own where `k8s/` was never applied: Roles only,
    /// the controller watches `team-a` as the overlay's ConfigMap says.
    NamespacedOverlay,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::OwnNamespace => "own-namespace",
            Mode::ClusterWide => "cluster-wide",
            Mode::NamespacedOverlay => "namespaced-overlay",
        }
    }
}

impl RealEnv {
    pub async fn start(test: &str) -> RealEnv {
        Self::start_in(test, Mode::OwnNamespace).await
    }

    pub async fn start_in(test: &str, mode: Mode) -> RealEnv {
        watch_cluster::install_crypto_provider();
        let testbed = match mode {
            Mode::OwnNamespace => Testbed::get(),
            Mode::ClusterWide | Mode::NamespacedOverlay => {
                Testbed::start_private(test).expect("a control plane of the test's own")
            }
        };
        let admin = testbed.admin().await.expect("admin client");
        let ns = match mode {
            Mode::OwnNamespace | Mode::ClusterWide => {
                testbed.install().expect("kubectl apply -k k8s/");
                TestNamespace::create(&testbed, &admin, test).await
            }
            Mode::NamespacedOverlay => {
                // The overlay's Role lives in the namespace it grants: that namespace comes first.
                let ns = TestNamespace::create_named(&testbed, &admin, "team-a").await;
                testbed
                    .install_overlay("k8s/namespaced")
                    .expect("kubectl apply -k k8s/namespaced/");
                ns
            }
        }
        .expect("test namespace");
        let dir = tempfile::tempdir().expect("tempdir");
        let credentials = ControllerCredentials::issue(&testbed, &admin, dir.path())
            .await
            .expect("controller token");
        let registry = RealRegistry::start(RegistryAuth::None)
            .await
            .expect("registry starts");
        let webhook = WebhookReceiver::start()
            .await
            .expect("webhook receiver starts");
        RealEnv {
            testbed,
            admin,
            registry,
            webhook,
            ns,
            dir,
            credentials,
            controllers: Vec::new(),
            cluster_objects: Vec::new(),
            faults: std::sync::Mutex::new(Vec::new()),
            authorizer_warmups: std::sync::Mutex::new(Vec::new()),
            mode,
        }
    }

    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    /// The settings the applied ConfigMap and Secret give the in-cluster Pod, plus what a Pod of this test
    /// would differ in: its namespace alone, a Lease of its own, the test's registry and webhook receiver.
    pub async fn settings(&self) -> Vec<(String, String)> {
        let mut settings = self
            .testbed
            .installed_settings(&self.admin)
            .await
            .expect("settings of the applied k8s/");
        let ns = self.ns().to_owned();
        match self.mode {
            Mode::OwnNamespace => {
                settings.retain(|(k, _)| k != "WATCH_NAMESPACES" && k != "LEASE_NAME");
                settings.push(("WATCH_NAMESPACES".into(), ns.clone()));
                settings.push(("LEASE_NAME".into(), ns.clone()));
            }
            // What the applied ConfigMap says (every namespace, or the overlay's `team-a`).
            Mode::ClusterWide | Mode::NamespacedOverlay => {}
        }
        let overrides = [
            (
                "KUBECONFIG",
                self.credentials.kubeconfig.display().to_string(),
            ),
            ("POD_NAMESPACE", CONTROLLER_NAMESPACE.to_owned()),
            ("INSECURE_REGISTRIES", self.registry.host()),
            ("WEBHOOK_URL", self.webhook.url()),
            ("WEBHOOK_TIMEOUT", "2000".to_owned()),
            ("ADMIN_ADDR", "127.0.0.1:0".to_owned()),
            ("REGISTRY_CACHE_TTL", "1s".to_owned()),
            ("LOG_FORMAT", "text".to_owned()),
            ("RUST_LOG", "info,watch_cluster=debug,kube=warn".to_owned()),
        ];
        for (key, value) in overrides {
            settings.retain(|(k, _)| k != key);
            settings.push((key.to_owned(), value));
        }
        settings
    }

    pub fn spawn_controller(&mut self, settings: &[(String, String)]) -> usize {
        let index = self.controllers.len();
        let log = self.dir.path().join(format!("controller-{index}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-cluster"))
            .arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("POD_NAME", format!("{}-{index}", self.ns()))
            .envs(settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("controller starts");
        self.controllers.push((child, log));
        index
    }

    /// Whether the controller process is still running (it has not exited or crashed).
    pub fn is_running(&mut self, index: usize) -> bool {
        matches!(self.controllers[index].0.try_wait(), Ok(None))
    }

    pub fn controller_log(&self, index: usize) -> String {
        std::fs::read_to_string(&self.controllers[index].1).unwrap_or_default()
    }

    /// Pushes `repo:tag` (an OCI index); the test's namespace salts the content, so no two tests share a
    /// digest (faults are marked by digest, cluster-wide).
    pub async fn push(&self, repo: &str, tag: &str) -> Pushed {
        self.registry
            .push(repo, tag, ImageKind::OciIndex, self.ns())
            .await
            .expect("push")
    }

    pub fn image(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.registry.host())
    }

    /// Marks `from`..now as a span in which kube-apiserver was (re)starting: its authorizer may refuse what
    /// RBAC allows until its caches are loaded.
    pub fn authorizer_warmed_up_since(&self, from: &str) {
        let now = now_rfc3339();
        let mut spans = self
            .authorizer_warmups
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        spans.push((from.to_owned(), now));
    }

    /// Marks an image broken on every node until the test ends (its key is removed then).
    pub async fn set_fault(&self, digest: &str, fault: ImageFault) {
        self.testbed
            .set_image_fault(&self.admin, digest, Some(fault))
            .await
            .expect("fault marked");
        let mut marked = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        marked.push(digest.replace(':', "-"));
    }

    /// A ValidatingAdmissionPolicy, bound to this test's namespace only, that refuses any update of a
    /// Deployment, StatefulSet or DaemonSet to an image containing `needle`, with `reason` (`Invalid` gives
    /// 422, `Forbidden` 403). Returns once the policy is in force (policies load asynchronously): a dry-run
    /// update of a probe Deployment to such an image is refused.
    pub async fn deny_images(&mut self, needle: &str, reason: &str) {
        let name = format!("deny-{}", self.ns());
        let yaml = format!(
            r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: {name}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["UPDATE"]
      resources: ["deployments", "statefulsets", "daemonsets"]
  validations:
  - expression: "!object.spec.template.spec.containers.exists(c, c.image.contains('{needle}'))"
    message: "images containing {needle} are not allowed here"
    reason: {reason}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {name}
spec:
  policyName: {name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: {ns}
"#,
            ns = self.ns()
        );
        self.testbed.apply(&yaml).expect("policy applied");
        self.cluster_objects
            .push(format!("validatingadmissionpolicybinding/{name}"));
        self.cluster_objects
            .push(format!("validatingadmissionpolicy/{name}"));
        self.create(
            Kind::Deployment,
            "policy-probe",
            &[("probe", "probe:1")],
            &[],
            json!({"replicas": 0, "paused": true}),
        )
        .await;
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "probe", "image": format!("probe{needle}")}
        ]}}}});
        let params = kube::api::PatchParams {
            dry_run: true,
            ..kube::api::PatchParams::default()
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        while self
            .api(Kind::Deployment)
            .patch(
                "policy-probe",
                &params,
                &kube::api::Patch::Strategic(&patch),
            )
            .await
            .is_ok()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the admission policy never came into force"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Sets (or with `None` removes) an annotation, as a user's `kubectl annotate` would.
    pub async fn set_annotation(&self, kind: Kind, name: &str, key: &str, value: Option<&str>) {
        let patch = json!({"metadata": {"annotations": {key: value}}});
        self.api(kind)
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .expect("annotation set");
    }

    /// Changes the object with `edit` and writes it back whole (PUT, guarded by its resourceVersion), as
    /// another writer would; retried when someone else wrote in between.
    pub async fn edit(&self, kind: Kind, name: &str, edit: impl Fn(&mut Value)) {
        for _ in 0..10 {
            let mut object = self.get(kind, name).await;
            edit(&mut object);
            let object: DynamicObject = serde_json::from_value(object).expect("object");
            match self
                .api(kind)
                .replace(name, &PostParams::default(), &object)
                .await
            {
                Ok(_) => return,
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(error) => panic!("edit of {name} refused: {error}"),
            }
        }
        panic!("edit of {name} kept conflicting");
    }

    /// Names `secret` in the pod template's `imagePullSecrets`.
    pub async fn set_pull_secret(&self, kind: Kind, name: &str, secret: &str) {
        let patch =
            json!({"spec": {"template": {"spec": {"imagePullSecrets": [{"name": secret}]}}}});
        self.api(kind)
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .expect("pull secret named");
    }

    /// Heals an image marked broken.
    pub async fn clear_fault(&self, digest: &str) {
        self.testbed
            .set_image_fault(&self.admin, digest, None)
            .await
            .expect("fault cleared");
    }

    /// Who holds this test's leader-election Lease.
    pub async fn lease_holder(&self) -> Option<String> {
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(self.admin.clone(), CONTROLLER_NAMESPACE);
        leases
            .get_opt(self.ns())
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty())
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

    /// Pushes `repo:tag` as `kind` (salted by the namespace, see [`RealEnv::push`]).
    pub async fn push_kind(&self, repo: &str, tag: &str, kind: ImageKind, salt: &str) -> Pushed {
        self.registry
            .push(repo, tag, kind, &format!("{}-{salt}", self.ns()))
            .await
            .expect("push")
    }

    /// How many `verb` requests of this test's controller on `resource` the audit log holds, at cluster
    /// scope (`cluster`) or in a namespace.
    pub fn requests(&self, verb: &str, resource: &str, cluster: bool) -> usize {
        self.testbed
            .audited_requests(&self.credentials.credential_ids())
            .expect("audit log readable")
            .iter()
            .filter(|r| {
                r.verb == verb && r.resource == resource && r.namespace.is_none() == cluster
            })
            .count()
    }

    /// How many patches of this test's controller the API server answered with `code` (the audit log).
    pub fn refused_patches(&self, code: u16) -> usize {
        self.testbed
            .audited_requests(&self.credentials.credential_ids())
            .expect("audit log readable")
            .iter()
            .filter(|r| r.verb == "patch" && r.code == code)
            .count()
    }

    fn api(&self, kind: Kind) -> Api<DynamicObject> {
        Api::namespaced_with(self.admin.clone(), self.ns(), &kind.resource())
    }

    /// Creates a workload with 2 replicas (a DaemonSet: one pod on each of the two nodes); `spec` is merged
    /// into the generated spec.
    pub async fn create(
        &self,
        kind: Kind,
        name: &str,
        containers: &[(&str, &str)],
        annotations: &[(&str, &str)],
        spec: Value,
    ) {
        let containers: Vec<Value> = containers
            .iter()
            .map(|(n, i)| json!({"name": n, "image": i}))
            .collect();
        let annotations: serde_json::Map<String, Value> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        let mut full = json!({
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers, "terminationGracePeriodSeconds": 1},
            },
        });
        match kind {
            Kind::Deployment => full["replicas"] = json!(2),
            Kind::StatefulSet => {
                full["replicas"] = json!(2);
                full["serviceName"] = json!(name);
            }
            Kind::DaemonSet => {}
        }
        if let (Some(full), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
            full.extend(extra.clone());
        }
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": kind.name(),
            "metadata": {"name": name, "namespace": self.ns(), "annotations": annotations},
            "spec": full,
        }))
        .expect("workload object");
        self.api(kind)
            .create(&PostParams::default(), &object)
            .await
            .expect("workload created");
    }

    /// Every workload of `kind` in the namespace, as JSON.
    pub async fn list(&self, kind: Kind) -> Vec<Value> {
        self.api(kind)
            .list(&kube::api::ListParams::default())
            .await
            .expect("list workloads")
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).expect("json"))
            .collect()
    }

    pub async fn get(&self, kind: Kind, name: &str) -> Value {
        match self.api(kind).get_opt(name).await.expect("get workload") {
            Some(object) => serde_json::to_value(object).expect("json"),
            None => Value::Null,
        }
    }

    pub async fn image_of(&self, kind: Kind, name: &str) -> String {
        self.get(kind, name).await["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn annotation(&self, kind: Kind, name: &str, key: &str) -> Option<String> {
        self.get(kind, name).await["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_owned)
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
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The pods of workload `name` (label `app=name`).
    pub async fn pods(&self, name: &str) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.admin.clone(), self.ns())
            .list(&ListParams::default().labels(&format!("app={name}")))
            .await
            .expect("list pods")
            .items
    }

    /// The reasons of the Events recorded about `name`, oldest first.
    pub async fn reasons(&self, name: &str) -> Vec<String> {
        self.events(name).await.into_iter().map(|(r, _)| r).collect()
    }

    /// watch-cluster's Events about `name`, oldest first: (reason, note).
    pub async fn events(&self, name: &str) -> Vec<(String, String)> {
        let mut events: Vec<Event> = Api::<Event>::namespaced(self.admin.clone(), self.ns())
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            // Kubernetes' own controllers report about the same objects (ScalingReplicaSet…).
            .filter(|e| e.reporting_controller.as_deref() == Some("watch-cluster"))
            .collect();
        events.sort_by_key(|e| e.metadata.creation_timestamp.clone());
        events
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// `kubectl rollout status KIND/NAME` with the test bed's kubectl: (exit success, stdout + stderr).
    pub async fn rollout_status(&self, kind: Kind, name: &str, extra: &[&str]) -> (bool, String) {
        let target = format!("{}/{name}", kind.kubectl_name());
        let mut args = vec!["-n", self.ns(), "rollout", "status", target.as_str()];
        args.extend_from_slice(extra);
        let mut command = tokio::process::Command::new(self.testbed.kubectl_path());
        command
            .arg("--kubeconfig")
            .arg(self.testbed.admin_kubeconfig())
            .args(&args)
            .kill_on_drop(true);
        let output = command.output().await.expect("kubectl runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// The webhook bodies about workload `name`, in arrival order.
    pub fn webhooks(&self, name: &str) -> Vec<Value> {
        self.webhook
            .requests()
            .iter()
            .map(|r| r.json())
            .filter(|w| w["deployment"]["name"] == name)
            .collect()
    }

    pub fn webhook_types(&self, name: &str) -> Vec<String> {
        self.webhooks(name)
            .iter()
            .map(|w| w["eventType"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Waits until a webhook of `event_type` about `name` arrived; returns it.
    pub async fn wait_for_webhook(&self, name: &str, event_type: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(found) = self
                .webhooks(name)
                .into_iter()
                .find(|w| w["eventType"] == event_type)
            {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {event_type} about {name}; got {:#?}",
                self.webhooks(name)
            );
            let seen = self.webhook.requests().len();
            let _ = self
                .webhook
                .wait_for_requests(seen + 1, Duration::from_millis(500))
                .await;
        }
    }
}

impl RealEnv {
    /// Every request of this test's controller token, as the real authorizer judged it (the audit log):
    /// a forbidden one fails the test. The (verb, group, resource, scope) used are added to
    /// `rbac-used.tsv` in the state dir, for the run's comparison with the grants of `k8s/`.
    fn check_authorization(&self) {
        let requests = self
            .testbed
            .audited_requests(&self.credentials.credential_ids())
            .expect("audit log readable");
        assert!(
            !requests.is_empty(),
            "the audit log has no request of this test's controller token {:?}",
            self.credentials.credential_ids()
        );
        let warmups = self
            .authorizer_warmups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let forbidden: Vec<String> = requests
            .iter()
            .filter(|r| r.decision != "allow")
            .filter(|r| !warmups.iter().any(|(a, b)| *a <= r.time && r.time <= *b))
            .map(|r| format!("{} {} ({})", r.verb, r.uri, r.decision))
            .collect();
        assert!(
            forbidden.is_empty(),
            "requests the RBAC of k8s/ refused to the controller: {forbidden:#?}"
        );
        let mut used = String::new();
        for r in &requests {
            let scope = if r.namespace.is_some() {
                "namespace"
            } else {
                "cluster"
            };
            used.push_str(&format!(
                "{}\t{}\t{}\t{scope}\t{}\t{}\n",
                r.verb,
                r.group,
                r.resource,
                self.mode.name(),
                self.ns()
            ));
        }
        use std::io::Write as _;
        // One file for the run, on the shared test bed, whichever control plane this test had.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Testbed::get().state_dir().join("rbac-used.tsv"));
        if let Ok(mut file) = file {
            let _ = file.write_all(used.as_bytes());
        }
    }
}

impl Drop for RealEnv {
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
            eprintln!(
                "control plane logs: {}/logs (namespace {})",
                self.testbed.state_dir().display(),
                self.ns()
            );
        }
        for (child, _) in &mut self.controllers {
            let _ = child.start_kill();
        }
        if !std::thread::panicking() && !self.controllers.is_empty() {
            self.check_authorization();
        }
        // Leave the shared faults ConfigMap as this test found it.
        let keys = self
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !keys.is_empty() {
            let nulls: serde_json::Map<String, Value> =
                keys.into_iter().map(|k| (k, Value::Null)).collect();
            let patch = json!({"data": nulls}).to_string();
            let (ns, name) = watch_cluster_testkit::cluster::FAULTS;
            let _ = self.testbed.kubectl(&[
                "-n",
                ns,
                "patch",
                "configmap",
                name,
                "--type=merge",
                "-p",
                &patch,
            ]);
        }
        for object in &self.cluster_objects {
            let _ = self
                .testbed
                .kubectl(&["delete", object, "--ignore-not-found", "--wait=false"]);
        }
        // The controllers die with their handles; their Lease would outlive them in the shared namespace.
        let _ = self.testbed.kubectl(&[
            "-n",
            CONTROLLER_NAMESPACE,
            "delete",
            "lease",
            self.ns(),
            "--ignore-not-found",
        ]);
    }
}

/// Now, as the audit log writes times (RFC 3339, microseconds, `Z`).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
