//! kubectl (the machine's dispatcher, which picks its 1.33 client from `/version`) against the
//! standalone `watch-cluster-sim` binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::deployment_json;

/// The simulator process; killed on drop, also when a test panics.
struct SimProcess {
    child: Child,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl SimProcess {
    fn start() -> SimProcess {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let child = Command::new(env!("CARGO_BIN_EXE_watch-cluster-sim"))
            .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .args(["--pod-start-delay-ms", "10", "--pod-ready-delay-ms", "10"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let process = SimProcess {
            child,
            cache: dir.path().join("cache"),
            _dir: dir,
            kubeconfig,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !process.kubeconfig.exists() {
            assert!(
                Instant::now() < deadline,
                "the simulator wrote no kubeconfig"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        process
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let output = Command::new("/usr/bin/kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn get_json(&self, what: &str) -> Value {
        serde_json::from_str(&self.kubectl(&["get", what, "-o", "json"])).unwrap()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_manifest(dir: &Path) -> PathBuf {
    let path = dir.join("web.yaml");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&deployment_json("web")).unwrap(),
    )
    .unwrap();
    path
}

#[test]
fn kubectl_creates_reads_sets_an_image_and_annotates() {
    let sim = SimProcess::start();
    let manifests = tempfile::tempdir().unwrap();
    let manifest = write_manifest(manifests.path());
    sim.kubectl(&[
        "create",
        "--validate=false",
        "-f",
        manifest.to_str().unwrap(),
    ]);

    let created = sim.get_json("deployment/web");
    assert_eq!(created["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(created["metadata"]["generation"], 1);

    sim.kubectl(&[
        "set",
        "image",
        "deployment/web",
        "app=registry.test/app:2.0",
    ]);
    let updated = sim.get_json("deployment/web");
    let containers = updated["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2, "the sidecar is kept");
    assert_eq!(containers[0]["image"], "registry.test/app:2.0");
    assert_eq!(containers[1]["image"], "registry.test/sidecar:latest");
    assert_eq!(updated["metadata"]["generation"], 2);

    sim.kubectl(&["annotate", "deployment", "web", "owner=team-a"]);
    let annotated = sim.get_json("deployment/web");
    assert_eq!(annotated["metadata"]["annotations"]["owner"], "team-a");
    assert_eq!(
        annotated["metadata"]["generation"], 3,
        "kube-apiserver bumps a Deployment's generation on annotation changes"
    );

    let table = sim.kubectl(&["get", "deployments"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(table.lines().nth(1).unwrap().starts_with("web "));

    let names = sim.kubectl(&["get", "deploy", "-o", "name"]);
    assert_eq!(names.trim(), "deployment.apps/web");
}
