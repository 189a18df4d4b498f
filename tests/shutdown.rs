#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Shutdown and readiness of the controller binary when the API server misbehaves: it never answers, it
//! becomes unreachable mid-run, or in-flight work outlives the SIGTERM. Each test runs the built binary
//! as its own process against the simulated cluster, reached through a proxy the test can cut, and
//! asserts on the process exit, the admin server's answers and the Lease object, never on log text.

use std::{net::SocketAddr, path::Path, process::Stdio, time::Duration};

use k8s_openapi::api::coordination::v1::Lease;
use tokio::{
    net::{TcpListener, TcpStream},
    process::Child,
};
use tokio_util::sync::CancellationToken;
use watch_cluster_sim::{SimCluster, SimOptions};
use watch_cluster_testkit::admin::{free_port, http_get, terminate, wait_for_http};

/// The Deployment's `terminationGracePeriodSeconds` (k8s/base/deployment.yaml).
const GRACE_PERIOD: Duration = Duration::from_secs(30);

/// A TCP proxy to `upstream` that the test can cut: from then on every connection, open or new, is
/// held open and never answered — a partitioned network, not a refused connection. Without an
/// upstream, it never answers from the start.
struct Proxy {
    addr: SocketAddr,
    cut: CancellationToken,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    async fn start(upstream: Option<SocketAddr>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = CancellationToken::new();
        if upstream.is_none() {
            cut.cancel();
        }
        let stop = cut.clone();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(forward(client, upstream, stop.clone()));
            }
        });
        Proxy {
            addr,
            cut,
            accepted,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn forward(mut client: TcpStream, upstream: Option<SocketAddr>, cut: CancellationToken) {
    if let (false, Some(upstream)) = (cut.is_cancelled(), upstream)
        && let Ok(mut server) = TcpStream::connect(upstream).await
    {
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
            () = cut.cancelled() => {}
        }
        // Keep both ends open, silent.
        let _held = server;
    }
    let _held = client;
    std::future::pending::<()>().await;
}

/// The simulated cluster (no RBAC) with the controller's namespace.
async fn cluster() -> SimCluster {
    watch_cluster::install_crypto_provider();
    let sim = SimCluster::start(SimOptions::default()).await.unwrap();
    for ns in ["watch-cluster", "apps"] {
        sim.load_yaml(
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
            ns,
        )
        .unwrap();
    }
    sim
}

/// A kubeconfig naming `server` as the API server.
fn kubeconfig(dir: &Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: test\n  cluster:\n    \
         server: {server}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n\
         users:\n- name: test\n  user:\n    token: controller-token\n"
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Starts the controller binary as replica `replica-1`, with leader election, its admin server on `port`.
fn controller(kubeconfig: &Path, port: u16, extra: &[(&str, &str)]) -> Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-cluster"))
        .arg("run")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUBECONFIG", kubeconfig)
        .env("ADMIN_ADDR", format!("127.0.0.1:{port}"))
        .env("LEADER_ELECTION", "true")
        .env("POD_NAME", "replica-1")
        .env("POD_NAMESPACE", "watch-cluster")
        .env("RUST_LOG", "info,watch_cluster=debug,kube=warn")
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn lease_holder(sim: &SimCluster) -> Option<String> {
    let api: kube::Api<Lease> = kube::Api::namespaced(sim.client().unwrap(), "watch-cluster");
    api.get_opt("watch-cluster")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

async fn wait_for_holder(sim: &SimCluster, holder: Option<&str>) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while lease_holder(sim).await.as_deref() != holder {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the Lease holder never became {holder:?}"));
}

#[tokio::test]
async fn sigterm_while_the_api_server_never_answers_exits_within_the_grace_period() {
    watch_cluster::install_crypto_provider();
    let silent = Proxy::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = controller(&kubeconfig(dir.path(), &silent.url()), port, &[]);
    // The controller is waiting on the API server (its first request hangs): that is the moment.
    tokio::time::timeout(Duration::from_secs(30), async {
        while silent.accepted.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the controller never called the API server");
    let status = terminate(&mut child, GRACE_PERIOD).await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn readiness_drops_when_the_api_server_becomes_unreachable_and_sigterm_still_exits_in_time() {
    let sim = cluster().await;
    let proxy = Proxy::start(Some(sim.addr())).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = controller(&kubeconfig(dir.path(), &proxy.url()), port, &[]);
    wait_for_http(port, "/readyz", 200).await;
    wait_for_holder(&sim, Some("replica-1")).await;

    proxy.cut.cancel();
    let unready = tokio::time::timeout(Duration::from_secs(30), async {
        while http_get(port, "/readyz").await.map(|(s, _)| s) != Some(503) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        unready.is_ok(),
        "/readyz still ready 30 s into the partition"
    );
    let status = terminate(&mut child, GRACE_PERIOD).await;
    assert_eq!(status.code(), Some(0));
}
