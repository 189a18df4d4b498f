//! `kubectl rollout status` against the standalone simulator binary (started with fast timing
//! and `--outcome stuck=stuck`, killed on drop): exit 0 for a completing rollout, 1 for a
//! stuck one, for a Deployment, a StatefulSet and a DaemonSet.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const NODES: &str = "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-a\n---\napiVersion: v1\nkind: Node\nmetadata:\n  name: node-b\n";

/// The simulator process; killed on drop.
struct SimProcess {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SimProcess {
    /// Starts the binary with fast timing; new pods of images containing `stuck` never start.
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("nodes.yaml"), NODES).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_watch-cluster-sim"))
            .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(dir.path().join("kubeconfig"))
            .arg("--load")
            .arg(dir.path().join("nodes.yaml"))
            .args([
                "--pod-start-delay-ms",
                "20",
                "--pod-ready-delay-ms",
                "30",
                "--time-scale",
                "0.01",
            ])
            .args(["--outcome", "stuck=stuck"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let sim = SimProcess { child, dir };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let url = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("simulator did not start");
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        sim
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("/usr/bin/kubectl")
            .arg("--kubeconfig")
            .arg(self.path("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .args(args)
            .output()
            .unwrap()
    }

    fn create(&self, yaml: &str) {
        let file = self.path("obj.yaml");
        std::fs::write(&file, yaml).unwrap();
        let out = self.kubectl(&["create", "--validate=false", "-f", path_str(&file)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn set_image(&self, target: &str, image: &str) {
        let out = self.kubectl(&["set", "image", target, &format!("app={image}")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `kubectl rollout status`: exit code and stdout + stderr.
    fn rollout_status(&self, target: &str, timeout: &str) -> (i32, String) {
        let out = self.kubectl(&["rollout", "status", target, &format!("--timeout={timeout}")]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn manifest(kind: &str, name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n{extra_spec}  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: app\n        image: {name}:1\n"
    )
}

/// What `kubectl rollout status` prints on success and on failure of a kind.
struct Expect {
    done: &'static str,
    stuck_timeout: &'static str,
    stuck: &'static str,
}

fn assert_completes_then_gets_stuck(sim: &SimProcess, target: &str, name: &str, expect: &Expect) {
    let (code, text) = sim.rollout_status(target, "30s");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(expect.done), "{text}");
    sim.set_image(target, &format!("{name}:2"));
    let (code, text) = sim.rollout_status(target, "30s");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(expect.done), "{text}");
    sim.set_image(target, &format!("{name}:stuck"));
    let (code, text) = sim.rollout_status(target, expect.stuck_timeout);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(expect.stuck), "{text}");
}

#[test]
fn kubectl_rollout_status_succeeds_for_completing_and_fails_for_stuck_deployments() {
    let sim = SimProcess::start();
    sim.create(&manifest(
        "Deployment",
        "web",
        "  replicas: 2\n  progressDeadlineSeconds: 100\n",
    ));
    let expect = Expect {
        done: "deployment \"web\" successfully rolled out",
        stuck_timeout: "60s",
        stuck: "deployment \"web\" exceeded its progress deadline",
    };
    assert_completes_then_gets_stuck(&sim, "deployment/web", "web", &expect);
}

#[test]
fn kubectl_rollout_status_succeeds_for_completing_and_times_out_for_stuck_statefulsets() {
    let sim = SimProcess::start();
    sim.create(&manifest(
        "StatefulSet",
        "db",
        "  replicas: 2\n  serviceName: db\n",
    ));
    // The API server defaults `partition: 0`, so kubectl reports a partitioned roll out.
    let expect = Expect {
        done: "partitioned roll out complete: 2 new pods have been updated",
        stuck_timeout: "2s",
        stuck: "timed out waiting for the condition",
    };
    assert_completes_then_gets_stuck(&sim, "statefulset/db", "db", &expect);
}

#[test]
fn kubectl_rollout_status_succeeds_for_completing_and_times_out_for_stuck_daemonsets() {
    let sim = SimProcess::start();
    sim.create(&manifest("DaemonSet", "agent", ""));
    let expect = Expect {
        done: "daemon set \"agent\" successfully rolled out",
        stuck_timeout: "2s",
        stuck: "timed out waiting for the condition",
    };
    assert_completes_then_gets_stuck(&sim, "daemonset/agent", "agent", &expect);
}
