//! The real control plane of the test bed (`testbed/up`), as tests use it: one per test run, shared.
//!
//! The test wrapper (`.ci/test`) starts the control plane before nextest and exports
//! [`STATE_ENV`]; every test that needs Kubernetes calls [`Testbed::get`], which fails with a message
//! naming the wrapper when it was not started that way (never a silent skip). Tests are isolated by
//! namespace: each gets its own [`TestNamespace`], its own TokenRequest token for the controller's
//! ServiceAccount, and runs its controller for that namespace alone with a Lease of its own.
//!
//! The product is installed as a user installs it: `kubectl apply -k k8s/` with the test bed's kubectl
//! (v1.36.3, within kubectl's version skew), once per run, then the in-cluster Deployment is scaled to 0
//! because nothing here can run its container; the controller runs on the host instead with the settings
//! read back from the applied ConfigMap and Secret (see docs/testbed.md for what this leaves uncovered).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use anyhow::{Context as _, bail};
use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::{ConfigMap, Namespace, Secret, ServiceAccount},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::json;

/// The environment variable the wrapper sets to the test bed's state dir.
pub const STATE_ENV: &str = "WATCH_CLUSTER_TESTBED";
/// Where the product's manifests install the controller.
pub const CONTROLLER_NAMESPACE: &str = "watch-cluster";
/// The controller's ServiceAccount (k8s/base/serviceaccount.yaml).
pub const SERVICE_ACCOUNT: &str = "watch-cluster";
/// The node agent's faults ConfigMap: `sha256-<hex>` → `pull` | `crash` | `ready`.
pub const FAULTS: (&str, &str) = ("kube-system", "testbed-broken-images");
/// How long a controller token lives; the refresher renews it at half that.
const TOKEN_SECONDS: i64 = 3600;

/// A running test bed.
#[derive(Debug, Clone)]
pub struct Testbed {
    state: PathBuf,
    workspace: PathBuf,
    /// Set for a control plane of one test's own: stopped when the last clone is dropped.
    _private: Option<std::sync::Arc<PrivateControlPlane>>,
}

/// Stops a private control plane (`testbed/down`) when dropped; its state and logs stay for failures.
#[derive(Debug)]
struct PrivateControlPlane {
    state: PathBuf,
    down: PathBuf,
}

impl Drop for PrivateControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(&self.down)
            .env("TESTBED_STATE", &self.state)
            .output();
    }
}

/// How an image misbehaves on the test bed's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFault {
    /// `ErrImagePull`, then `ImagePullBackOff`.
    Pull,
    /// Running, then `CrashLoopBackOff` with a rising `restartCount`.
    Crash,
    /// Running, never Ready.
    NeverReady,
}

impl ImageFault {
    fn word(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Crash => "crash",
            Self::NeverReady => "ready",
        }
    }
}

impl Testbed {
    /// The test bed the wrapper started. Panics, naming the way to start one, when there is none: a test of
    /// the real tier never passes by skipping.
    pub fn get() -> Testbed {
        match Self::from_env() {
            Ok(testbed) => testbed,
            Err(error) => panic!(
                "{error:#}\nThe real-Kubernetes tests run through the test wrapper, which starts the test bed: \
                 .ci/test -E 'binary(real)' (or testbed/up, then {STATE_ENV}=<its state dir> cargo nextest run)"
            ),
        }
    }

    fn from_env() -> anyhow::Result<Testbed> {
        let state = std::env::var_os(STATE_ENV)
            .filter(|v| !v.is_empty())
            .with_context(|| format!("{STATE_ENV} is not set"))?;
        let state = PathBuf::from(state);
        let kubeconfig = state.join("admin.kubeconfig");
        if !kubeconfig.is_file() {
            bail!(
                "{} is missing: the test bed is not up",
                kubeconfig.display()
            );
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("testkit has a parent")?
            .to_owned();
        Ok(Testbed {
            state,
            workspace,
            _private: None,
        })
    }

    /// A control plane of the caller's own (`testbed/up` with its own state dir under the shared one's
    /// `private/`), for tests that need cluster-wide state nobody else sees: the default all-namespaces
    /// mode, or an install without the cluster-wide objects. Stopped when the last clone is dropped.
    pub fn start_private(name: &str) -> anyhow::Result<Testbed> {
        let shared = Self::get();
        let state = shared
            .state
            .join("private")
            .join(format!("{name}-{:06x}", rand::random::<u32>() & 0xff_ffff));
        std::fs::create_dir_all(&state)?;
        let guard = PrivateControlPlane {
            state: state.clone(),
            down: shared.workspace.join("testbed/down"),
        };
        let output = Command::new(shared.workspace.join("testbed/up"))
            .env("TESTBED_STATE", &state)
            .output()
            .context("run testbed/up")?;
        if !output.status.success() {
            bail!(
                "testbed/up failed for a private control plane: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(Testbed {
            state,
            workspace: shared.workspace,
            _private: Some(std::sync::Arc::new(guard)),
        })
    }

    /// A control plane started here and now with `testbed/up` in `state` (which must not be inside another
    /// test bed's), with `profile` as `TESTBED_PROFILE` (`None`: the tests' default), for a program outside
    /// the test wrapper (the benchmark). Stopped with `testbed/down` when the last clone is dropped, also
    /// when the caller fails; the state dir and its logs stay.
    pub fn start_at(state: &Path, profile: Option<&str>) -> anyhow::Result<Testbed> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("testkit has a parent")?
            .to_owned();
        std::fs::create_dir_all(state)
            .with_context(|| format!("create the test bed's state dir {}", state.display()))?;
        let guard = PrivateControlPlane {
            state: state.to_owned(),
            down: workspace.join("testbed/down"),
        };
        let mut up = Command::new(workspace.join("testbed/up"));
        up.env("TESTBED_STATE", state);
        if let Some(profile) = profile {
            up.env("TESTBED_PROFILE", profile);
        }
        let output = up.output().context("run testbed/up")?;
        if !output.status.success() {
            bail!(
                "testbed/up failed (state {}): {}",
                state.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(Testbed {
            state: state.to_owned(),
            workspace,
            _private: Some(std::sync::Arc::new(guard)),
        })
    }

    /// The admin kubeconfig (`system:masters`).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.state.join("admin.kubeconfig")
    }

    /// The state dir: component logs under `logs/`, the audit log at `logs/audit.log`.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// Kills a component of a private control plane at once (SIGKILL, as a crash) and starts it again with
    /// the same command line, appending to its log. Returns once the new process runs; readiness is the
    /// caller's to wait for.
    pub fn restart_component(&self, component: &str) -> anyhow::Result<()> {
        if self._private.is_none() {
            bail!("only a control plane of the test's own is restarted: others share the run's");
        }
        let pid_file = self.state.join(format!("{component}.pid"));
        let pid = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("read {}", pid_file.display()))?
            .trim()
            .to_owned();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .with_context(|| format!("{component} (pid {pid}) is not running"))?;
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let (program, args) = argv.split_first().context("empty command line")?;
        let status = Command::new("kill").args(["-KILL", &pid]).status()?;
        if !status.success() {
            bail!("kill -KILL {pid} failed");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            // It may stay a zombie until init reaps it (`up` detached it). A zombie leader whose other
            // threads still exit holds the listening socket: done only when no other thread is left.
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
                .map(|d| d.count())
                .unwrap_or(0);
            if state.split_whitespace().nth(2) == Some("Z") && threads <= 1 {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("{component} (pid {pid}) did not die");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.state.join("logs").join(format!("{component}.log")))?;
        let child = Command::new("setsid")
            .arg(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {program}"))?;
        std::fs::write(&pid_file, child.id().to_string())?;
        Ok(())
    }

    /// Compacts etcd's history up to its current revision (etcd's HTTP gateway), as kube-apiserver does
    /// every few minutes: watches from an older resourceVersion then end in 410 Expired.
    pub async fn compact_etcd(&self) -> anyhow::Result<i64> {
        let ports = std::fs::read_to_string(self.state.join("ports"))?;
        let port = ports
            .lines()
            .find_map(|l| l.strip_prefix("etcd="))
            .context("no etcd port in the test bed's ports file")?;
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}/v3");
        // `key: "\0"` is the empty range's start: enough to get the header's current revision.
        let range: serde_json::Value = http
            .post(format!("{base}/kv/range"))
            .json(&json!({"key": "AA==", "limit": 1}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let revision: i64 = range["header"]["revision"]
            .as_str()
            .context("no revision in etcd's answer")?
            .parse()?;
        http.post(format!("{base}/kv/compaction"))
            .json(&json!({"revision": revision.to_string(), "physical": true}))
            .send()
            .await?
            .error_for_status()?;
        Ok(revision)
    }

    /// The test bed's kubectl (v1.36.3).
    pub fn kubectl_path(&self) -> PathBuf {
        self.workspace.join("testbed/bin/kubectl")
    }

    /// A client with the admin's credentials.
    pub async fn admin(&self) -> anyhow::Result<Client> {
        client_from(&self.admin_kubeconfig()).await
    }

    /// Runs the test bed's kubectl as the admin.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<Output> {
        Command::new(self.kubectl_path())
            .arg("--kubeconfig")
            .arg(self.admin_kubeconfig())
            .args(args)
            .output()
            .with_context(|| format!("run {}", self.kubectl_path().display()))
    }

    /// Runs the test bed's kubectl as the admin with `input` on its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> anyhow::Result<Output> {
        use std::io::Write as _;
        let mut child = Command::new(self.kubectl_path())
            .arg("--kubeconfig")
            .arg(self.admin_kubeconfig())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("run kubectl")?;
        child
            .stdin
            .take()
            .context("kubectl stdin")?
            .write_all(input.as_bytes())?;
        Ok(child.wait_with_output()?)
    }

    /// `kubectl apply -f -` of `yaml` as the admin; fails with kubectl's output.
    pub fn apply(&self, yaml: &str) -> anyhow::Result<()> {
        let output = self.kubectl_stdin(&["apply", "-f", "-"], yaml)?;
        if !output.status.success() {
            bail!(
                "kubectl apply failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Applies the product's `k8s/` once per test bed (whichever test comes first, under a lock), then
    /// scales the in-cluster Deployment to 0: no node here can run its container.
    pub fn install(&self) -> anyhow::Result<()> {
        // Keyed by the manifests' content: a changed k8s/ is applied again on the same test bed.
        let marker = self.state.join(format!(
            "k8s-installed-{}",
            tree_digest(&self.workspace.join("k8s"))?
        ));
        if marker.is_file() {
            return Ok(());
        }
        let kubectl = self.kubectl_path();
        let kubeconfig = self.admin_kubeconfig();
        let script = format!(
            "test -f '{marker}' || {{ '{kubectl}' --kubeconfig '{kubeconfig}' apply -k '{k8s}' && \
             '{kubectl}' --kubeconfig '{kubeconfig}' apply -f '{label_role}' && \
             '{kubectl}' --kubeconfig '{kubeconfig}' -n {CONTROLLER_NAMESPACE} scale deployment/watch-cluster --replicas=0 && \
             touch '{marker}'; }}",
            marker = marker.display(),
            kubectl = kubectl.display(),
            kubeconfig = kubeconfig.display(),
            k8s = self.workspace.join("k8s").display(),
            // The push-events component's Role (the leader label), as an install with push events has it;
            // the rest of the component (the Service, the Deployment's EVENTS_* settings) is for a Pod.
            label_role = self
                .workspace
                .join("k8s/components/events/leader-label-role.yaml")
                .display(),
        );
        let output = Command::new("flock")
            .arg(self.state.join("install.lock"))
            .args(["sh", "-c", &script])
            .output()
            .context("run flock (util-linux)")?;
        if !output.status.success() {
            bail!(
                "kubectl apply -k k8s/ failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Applies a kustomization of `k8s/` other than the default (e.g. `k8s/namespaced`), then scales the
    /// in-cluster Deployment to 0. For a control plane of the caller's own.
    pub fn install_overlay(&self, path: &str) -> anyhow::Result<()> {
        let dir = self.workspace.join(path);
        let dir = dir.to_string_lossy();
        for args in [
            vec!["apply", "-k", dir.as_ref()],
            vec![
                "-n",
                CONTROLLER_NAMESPACE,
                "scale",
                "deployment/watch-cluster",
                "--replicas=0",
            ],
        ] {
            let output = self.kubectl(&args)?;
            if !output.status.success() {
                bail!(
                    "kubectl {}: {}{}",
                    args.join(" "),
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
        Ok(())
    }

    /// The controller's settings as the applied ConfigMap and Secret give them to the in-cluster Pod
    /// (`envFrom`), as `(variable, value)` pairs.
    pub async fn installed_settings(
        &self,
        admin: &Client,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let config: ConfigMap = Api::namespaced(admin.clone(), CONTROLLER_NAMESPACE)
            .get("watch-cluster")
            .await
            .context("read ConfigMap watch-cluster/watch-cluster")?;
        let secret: Secret = Api::namespaced(admin.clone(), CONTROLLER_NAMESPACE)
            .get("watch-cluster-webhook")
            .await
            .context("read Secret watch-cluster/watch-cluster-webhook")?;
        let mut settings: Vec<(String, String)> =
            config.data.unwrap_or_default().into_iter().collect();
        for (key, value) in secret.data.unwrap_or_default() {
            settings.push((key, String::from_utf8_lossy(&value.0).into_owned()));
        }
        for (key, value) in secret.string_data.unwrap_or_default() {
            settings.push((key, value));
        }
        Ok(settings)
    }

    /// Marks the image with `digest` broken on every node (see [`ImageFault`]); `None` heals it.
    pub async fn set_image_fault(
        &self,
        admin: &Client,
        digest: &str,
        fault: Option<ImageFault>,
    ) -> anyhow::Result<()> {
        let api: Api<ConfigMap> = Api::namespaced(admin.clone(), FAULTS.0);
        let key = digest.replace(':', "-");
        let data = json!({"data": {key.clone(): fault.map(ImageFault::word)}});
        match api
            .patch(FAULTS.1, &PatchParams::default(), &Patch::Merge(&data))
            .await
        {
            Err(kube::Error::Api(status)) if status.code == 404 && fault.is_some() => {
                let map: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": FAULTS.1, "namespace": FAULTS.0},
                    "data": {key: fault.map(ImageFault::word)},
                }))?;
                match api.create(&PostParams::default(), &map).await {
                    // Another test created it meanwhile: patch that one.
                    Err(kube::Error::Api(status)) if status.code == 409 => api
                        .patch(FAULTS.1, &PatchParams::default(), &Patch::Merge(&data))
                        .await
                        .map(|_| ()),
                    other => other.map(|_| ()),
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            other => other.map(|_| ()),
        }
        .context("mark the image in the faults ConfigMap")?;
        Ok(())
    }
}

/// A client from a kubeconfig file.
pub async fn client_from(path: &Path) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("read kubeconfig {}", path.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// A namespace of one test, deleted (in the background) when dropped.
pub struct TestNamespace {
    name: String,
    testbed: Testbed,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>` (at most 63 characters).
    pub async fn create(testbed: &Testbed, admin: &Client, prefix: &str) -> anyhow::Result<Self> {
        let mut prefix: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        prefix.truncate(50);
        let name = format!(
            "{}-{:06x}",
            prefix.trim_matches('-'),
            rand::random::<u32>() & 0xff_ffff
        );
        Self::create_named(testbed, admin, &name).await
    }

    /// Creates the namespace `name` exactly (on a control plane of the test's own).
    pub async fn create_named(
        testbed: &Testbed,
        admin: &Client,
        name: &str,
    ) -> anyhow::Result<Self> {
        let name = name.to_owned();
        let ns: Namespace = serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"watch-cluster.io/test": "true"}}}),
        )?;
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("create namespace {name}"))?;
        Ok(Self {
            name,
            testbed: testbed.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // kubectl, not the client: a test's runtime is shutting down when this runs.
        let _ = self
            .testbed
            .kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

/// A kubeconfig whose `tokenFile` holds a TokenRequest token of the controller's ServiceAccount, renewed in
/// the background at half its life (kube-rs re-reads the file at least once a minute), as the kubelet
/// renews a projected token.
pub struct ControllerCredentials {
    pub kubeconfig: PathBuf,
    pub token_file: PathBuf,
    /// `JTI=<id>` of every token issued, as audit events name the credential.
    ids: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    refresher: tokio::task::JoinHandle<()>,
}

impl ControllerCredentials {
    /// Writes the kubeconfig and token into `dir`, for the ServiceAccount `k8s/` installs.
    pub async fn issue(testbed: &Testbed, admin: &Client, dir: &Path) -> anyhow::Result<Self> {
        Self::issue_for(testbed, admin, dir, CONTROLLER_NAMESPACE, SERVICE_ACCOUNT).await
    }

    /// As [`Self::issue`], for the ServiceAccount `service_account` of `namespace`: an install other than
    /// `k8s/`'s, such as a Helm release (tests/helm.rs).
    pub async fn issue_for(
        testbed: &Testbed,
        admin: &Client,
        dir: &Path,
        namespace: &str,
        service_account: &str,
    ) -> anyhow::Result<Self> {
        let account = (namespace.to_owned(), service_account.to_owned());
        let token_file = dir.join("token");
        let token = request_token(admin, &account).await?;
        write_atomically(&token_file, &token)?;
        let ids = std::sync::Arc::new(std::sync::Mutex::new(vec![credential_id(&token)?]));
        let admin_config = Kubeconfig::read_from(testbed.admin_kubeconfig())?;
        let cluster = admin_config
            .clusters
            .first()
            .and_then(|c| c.cluster.clone())
            .context("the admin kubeconfig names a cluster")?;
        let kubeconfig = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: testbed\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: watch-cluster\n  user:\n    tokenFile: {token}\n\
             contexts:\n- name: watch-cluster\n  context:\n    cluster: testbed\n    user: watch-cluster\n    \
             namespace: {namespace}\ncurrent-context: watch-cluster\n",
            server = cluster.server.unwrap_or_default(),
            ca = cluster.certificate_authority_data.unwrap_or_default(),
            token = token_file.display(),
        );
        write_atomically(&kubeconfig, &text)?;
        let admin = admin.clone();
        let path = token_file.clone();
        let issued = ids.clone();
        let refresher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(TOKEN_SECONDS as u64 / 2)).await;
                let renewed = async {
                    let token = request_token(&admin, &account).await?;
                    let id = credential_id(&token)?;
                    issued.lock().unwrap_or_else(|e| e.into_inner()).push(id);
                    write_atomically(&path, &token)
                };
                if let Err(error) = renewed.await {
                    eprintln!("controller token refresh failed: {error:#}");
                }
            }
        });
        Ok(Self {
            kubeconfig,
            token_file,
            ids,
            refresher,
        })
    }

    /// The audit log's names for the tokens issued so far (`JTI=<id>`).
    pub fn credential_ids(&self) -> Vec<String> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How kube-apiserver's audit events name a ServiceAccount token: `JTI=<its jti claim>`.
fn credential_id(token: &str) -> anyhow::Result<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).context("the token is not a JWT")?;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))?,
    )?;
    let jti = claims["jti"].as_str().context("the token has no jti")?;
    Ok(format!("JTI={jti}"))
}

/// One request in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditedRequest {
    pub verb: String,
    /// API group, `""` for the core group.
    pub group: String,
    /// `pods`, `deployments`, `serviceaccounts/token`…
    pub resource: String,
    /// `None` for a cluster-scope request.
    pub namespace: Option<String>,
    /// The authorizer's decision: `allow` or `forbid`.
    pub decision: String,
    /// The response's status code (0 while a watch is still open).
    pub code: u16,
    /// When the request was received, RFC 3339 with microseconds (`…Z`): comparable as text.
    pub time: String,
    pub uri: String,
}

impl Testbed {
    /// Every request the audit log holds for the credentials `ids`, once each (by audit id).
    pub fn audited_requests(&self, ids: &[String]) -> anyhow::Result<Vec<AuditedRequest>> {
        let mut found = std::collections::BTreeMap::new();
        let logs = self.state.join("logs");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&logs)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("audit"))
            })
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("read {}", file.display()))?;
            for line in text.lines() {
                if !ids.iter().any(|id| line.contains(id.as_str())) {
                    continue;
                }
                let event: serde_json::Value = serde_json::from_str(line)?;
                // The id also appears in the TokenRequest that issued the token: only requests made with it.
                let made_with =
                    event["user"]["extra"]["authentication.kubernetes.io/credential-id"]
                        .as_array()
                        .is_some_and(|v| v.iter().any(|c| ids.iter().any(|id| c == id.as_str())));
                if !made_with {
                    continue;
                }
                // A watch is logged when it starts and when it ends: the last entry of an id wins.
                let id = event["auditID"].as_str().unwrap_or_default().to_owned();
                let object = &event["objectRef"];
                let mut resource = object["resource"].as_str().unwrap_or_default().to_owned();
                if let Some(sub) = object["subresource"].as_str() {
                    resource = format!("{resource}/{sub}");
                }
                found.insert(
                    id,
                    AuditedRequest {
                        verb: event["verb"].as_str().unwrap_or_default().to_owned(),
                        group: object["apiGroup"].as_str().unwrap_or_default().to_owned(),
                        resource,
                        namespace: object["namespace"].as_str().map(str::to_owned),
                        decision: event["annotations"]["authorization.k8s.io/decision"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        code: event["responseStatus"]["code"]
                            .as_u64()
                            .and_then(|c| u16::try_from(c).ok())
                            .unwrap_or(0),
                        time: event["requestReceivedTimestamp"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        uri: event["requestURI"].as_str().unwrap_or_default().to_owned(),
                    },
                );
            }
        }
        Ok(found.into_values().collect())
    }
}

impl Drop for ControllerCredentials {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

async fn request_token(admin: &Client, account: &(String, String)) -> anyhow::Result<String> {
    let (namespace, service_account) = account;
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(TOKEN_SECONDS),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answer = api
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .with_context(|| {
            format!("TokenRequest for the ServiceAccount {namespace}/{service_account}")
        })?;
    answer
        .status
        .map(|s| s.token)
        .context("the TokenRequest came back without a token")
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A digest of every file under `dir` (paths and contents, in sorted order).
fn tree_digest(dir: &Path) -> anyhow::Result<String> {
    use sha2::{Digest as _, Sha256};
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, files)?;
            } else {
                files.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files).with_context(|| format!("read {}", dir.display()))?;
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&file)?);
    }
    Ok(hex::encode(&hasher.finalize()[..8]))
}
