//! `helm install` on the test bed's kube-apiserver, then the controller run on the host as the real-cluster
//! tests run it (docs/testbed.md): its settings are read back from the objects the chart installed (the
//! Deployment's `envFrom` ConfigMap and Secret and its `env`, the downward API answered as the kubelet
//! would), it authenticates with a TokenRequest token of the chart's ServiceAccount, and every request it
//! makes is judged by the chart's RBAC (the audit log). It updates an annotated Deployment to a newer tag
//! of a real registry, pinned by digest, and the rollout completes. `helm uninstall` then removes every
//! object of the release, the cluster-scoped ones included.

use std::{collections::BTreeMap, path::Path, process::Stdio, time::Duration};

use serde_json::{Value, json};
use watch_cluster_testkit::{
    ControllerCredentials, ImageKind, RealRegistry, RegistryAuth, TestNamespace, Testbed,
    annotations::EVERY_SECOND,
};

use crate::chart::{chart_dir, helm_in, text};

/// Real controllers take seconds where the simulator takes milliseconds.
const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_then_an_annotated_deployment_is_updated_and_uninstall_leaves_nothing() {
    watch_cluster::install_crypto_provider();
    let testbed = Testbed::get();
    let admin = testbed.admin().await.expect("admin client");
    // The release's namespace and the workloads' one, both fresh; the release name differs from `k8s/`'s
    // install on the same test bed, so its cluster-scoped objects have names of their own.
    let home = TestNamespace::create(&testbed, &admin, "helm-release")
        .await
        .unwrap();
    let apps = TestNamespace::create(&testbed, &admin, "helm-apps")
        .await
        .unwrap();
    let release = format!("wc-{}", home.name().rsplit('-').next().unwrap());
    let fullname = format!("{release}-watch-cluster");
    let registry = RealRegistry::start(RegistryAuth::None)
        .await
        .expect("registry");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = testbed.admin_kubeconfig();
    let helm = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", kubeconfig.to_str().unwrap()];
        all.extend_from_slice(args);
        helm_in(dir.path(), &all)
    };

    let chart = chart_dir();
    let mut guard = Uninstall {
        release: Some(release.clone()),
        namespace: home.name().to_owned(),
        kubeconfig: kubeconfig.clone(),
        home: dir.path().to_owned(),
    };
    let installed = helm(&[
        "install",
        &release,
        chart.to_str().unwrap(),
        "--namespace",
        home.name(),
        "--wait",
        "--timeout",
        "2m",
        // The user's choices: the namespace to watch, the registry reached over plain HTTP. No node here
        // can run the controller's image: the Deployment stays at 0 and the controller runs on the host.
        "--set",
        &format!("config.watchNamespaces={}", apps.name()),
        "--set",
        &format!("config.insecureRegistries={}", registry.host()),
        "--set",
        "replicaCount=0",
    ]);
    assert!(
        installed.status.success(),
        "helm install: {}",
        text(&installed)
    );
    let said = text(&installed);
    assert!(said.contains("STATUS: deployed"), "{said}");
    assert!(
        said.contains("watch-cluster.io/enabled=true"),
        "NOTES.txt shows how to annotate: {said}"
    );

    let credentials =
        ControllerCredentials::issue_for(&testbed, &admin, dir.path(), home.name(), &fullname)
            .await
            .expect("a token of the chart's ServiceAccount");
    let mut settings = installed_settings(&testbed, home.name(), &fullname);
    assert_eq!(settings["WATCH_NAMESPACES"], apps.name());
    assert_eq!(settings["POD_NAMESPACE"], home.name());
    assert_eq!(settings["INSECURE_REGISTRIES"], registry.host());
    // What a process on the host differs in from a Pod: the API server's address and credentials, and
    // an admin port of its own (the Pod's 0.0.0.0:8080 is its own network namespace's).
    settings.insert(
        "KUBECONFIG".into(),
        credentials.kubeconfig.display().to_string(),
    );
    settings.insert("ADMIN_ADDR".into(), "127.0.0.1:0".into());
    settings.insert("LOG_FORMAT".into(), "text".into());

    registry
        .push("team/app", "1.0.0", ImageKind::OciIndex, apps.name())
        .await
        .unwrap();
    let newer = registry
        .push("team/app", "1.1.0", ImageKind::OciIndex, apps.name())
        .await
        .unwrap();
    let old_image = format!("{}/team/app:1.0.0", registry.host());
    testbed
        .apply(
            &json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "app", "namespace": apps.name(), "annotations": {
                    "watch-cluster.io/enabled": "true",
                    "watch-cluster.io/strategy": "version",
                    "watch-cluster.io/cron": EVERY_SECOND,
                }},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "app"}},
                    "template": {"metadata": {"labels": {"app": "app"}},
                        "spec": {"terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "app", "image": old_image}]}},
                },
            })
            .to_string(),
        )
        .expect("workload created");

    let log = dir.path().join("controller.log");
    let mut controller = spawn_controller(&settings, &log);
    let expected = format!("{}/team/app:1.1.0@{}", registry.host(), newer.digest);
    let deployment = wait_for(
        &testbed,
        apps.name(),
        &log,
        "the image pinned by digest and the rollout record gone",
        |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] == expected.as_str()
                && d["metadata"]["annotations"]
                    .get("watch-cluster.io/rollout")
                    .is_none()
        },
    )
    .await;
    let status = &deployment["status"];
    assert_eq!(status["updatedReplicas"], 2, "{status:#}");
    assert_eq!(status["readyReplicas"], 2, "{status:#}");
    assert!(status["observedGeneration"].as_i64() >= deployment["metadata"]["generation"].as_i64());
    let rollout = testbed
        .kubectl(&[
            "-n",
            apps.name(),
            "rollout",
            "status",
            "deployment/app",
            "--timeout=30s",
        ])
        .unwrap();
    assert!(rollout.status.success(), "{}", text(&rollout));
    let reasons = testbed
        .kubectl(&[
            "-n",
            apps.name(),
            "get",
            "events.events.k8s.io",
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .unwrap();
    let reasons = String::from_utf8_lossy(&reasons.stdout).into_owned();
    assert!(reasons.contains("RolloutCompleted"), "{reasons}");

    let _ = controller.start_kill();
    let _ = controller.wait().await;
    assert_rbac_sufficed(&testbed, &credentials, &log);

    let uninstalled = helm(&[
        "uninstall",
        &release,
        "--namespace",
        home.name(),
        "--wait",
        "--timeout",
        "2m",
    ]);
    assert!(
        uninstalled.status.success(),
        "helm uninstall: {}",
        text(&uninstalled)
    );
    guard.release = None;
    for cluster_scoped in ["clusterrole", "clusterrolebinding"] {
        let left = testbed
            .kubectl(&[
                "get",
                cluster_scoped,
                &fullname,
                "--ignore-not-found",
                "-o",
                "name",
            ])
            .unwrap();
        assert!(left.status.success(), "{}", text(&left));
        assert_eq!(
            text(&left).trim(),
            "",
            "{cluster_scoped} {fullname} outlived helm uninstall"
        );
    }
    let left = testbed
        .kubectl(&[
            "-n", home.name(), "get",
            "deployment,replicaset,service,serviceaccount,configmap,secret,role,rolebinding,poddisruptionbudget",
            "-l", &format!("app.kubernetes.io/instance={release}"), "-o", "name",
        ])
        .unwrap();
    assert!(left.status.success(), "{}", text(&left));
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "objects of the release outlived helm uninstall"
    );
    // The quarantine ConfigMap carries the release's labels, but check it by name: the controller needs it.
    let quarantine = testbed
        .kubectl(&[
            "-n",
            home.name(),
            "get",
            "configmap",
            "watch-cluster-quarantine",
            "--ignore-not-found",
            "-o",
            "name",
        ])
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&quarantine.stdout).trim(), "");
}

/// Uninstalls the release when the test ends before its own `helm uninstall` (a failed assertion): its
/// ClusterRole and ClusterRoleBinding would otherwise outlive the test on the shared test bed.
struct Uninstall {
    release: Option<String>,
    namespace: String,
    kubeconfig: std::path::PathBuf,
    home: std::path::PathBuf,
}

impl Drop for Uninstall {
    fn drop(&mut self) {
        if let Some(release) = &self.release {
            let kubeconfig = self.kubeconfig.to_string_lossy();
            let _ = helm_in(
                &self.home,
                &[
                    "--kubeconfig",
                    &kubeconfig,
                    "uninstall",
                    release,
                    "--namespace",
                    &self.namespace,
                ],
            );
        }
    }
}

/// The controller's environment as the kubelet would build it from the installed objects.
fn installed_settings(
    testbed: &Testbed,
    namespace: &str,
    fullname: &str,
) -> BTreeMap<String, String> {
    let get = |kind: &str, name: &str| -> Value {
        let output = testbed
            .kubectl(&["-n", namespace, "get", kind, name, "-o", "json"])
            .unwrap();
        assert!(output.status.success(), "{kind} {name}: {}", text(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let decoded = |secret: &Value, key: &str| -> Option<String> {
        use base64::Engine as _;
        let value = secret["data"][key].as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value)
            .unwrap();
        Some(String::from_utf8(bytes).unwrap())
    };
    let deployment = get("deployment", fullname);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut env = BTreeMap::new();
    for source in container["envFrom"].as_array().unwrap() {
        if let Some(name) = source["configMapRef"]["name"].as_str() {
            for (k, v) in get("configmap", name)["data"].as_object().unwrap() {
                env.insert(k.clone(), v.as_str().unwrap().to_owned());
            }
        } else {
            let secret = get("secret", source["secretRef"]["name"].as_str().unwrap());
            for key in secret["data"].as_object().unwrap().keys() {
                env.insert(key.clone(), decoded(&secret, key).unwrap());
            }
        }
    }
    for var in container["env"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap().to_owned();
        let value = if let Some(value) = var["value"].as_str() {
            value.to_owned()
        } else {
            match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.namespace") => namespace.to_owned(),
                Some("metadata.name") => format!("{fullname}-host-0"),
                other => panic!("{name}: a reference the test does not answer: {other:?} in {var}"),
            }
        };
        env.insert(name, value);
    }
    // Empty values stay, as the Pod gets them: the controller must read an empty variable as unset.
    env
}

fn spawn_controller(settings: &BTreeMap<String, String>, log: &Path) -> tokio::process::Child {
    let file = std::fs::File::create(log).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-cluster"))
        .arg("run")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(settings)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .expect("the controller starts")
}

async fn wait_for(
    testbed: &Testbed,
    namespace: &str,
    log: &Path,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let output = testbed
            .kubectl(&["-n", namespace, "get", "deployment", "app", "-o", "json"])
            .unwrap();
        let object: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        if check(&object) {
            return object;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}\nlast: {object:#}\ncontroller log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every request of the chart's ServiceAccount token was allowed by the chart's RBAC.
fn assert_rbac_sufficed(testbed: &Testbed, credentials: &ControllerCredentials, log: &Path) {
    let requests = testbed
        .audited_requests(&credentials.credential_ids())
        .expect("audit log");
    assert!(
        !requests.is_empty(),
        "no request of the chart's ServiceAccount in the audit log"
    );
    let refused: Vec<String> = requests
        .iter()
        .filter(|r| r.decision != "allow")
        .map(|r| format!("{} {} ({})", r.verb, r.uri, r.decision))
        .collect();
    assert!(
        refused.is_empty(),
        "requests the chart's RBAC refused: {refused:#?}\ncontroller log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}
