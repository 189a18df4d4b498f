//! A simulated Kubernetes API server with workload controllers, for testing watch-cluster.
//!
//! It shares no code with the controller: two independent implementations catch each other's mistakes.
//!
//! [`SimCluster::start`] serves the API ([`api`]) over HTTP on 127.0.0.1 from an in-memory
//! [`Store`], optionally with the workload [`controllers`] running against the same store.
//! Tests hold the cluster and use its [`Faults`](api::Faults) and [`RequestLog`](api::RequestLog)
//! handles; the `watch-cluster-sim` binary runs the same thing standalone.

pub mod api;
pub mod controllers;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::task::JoinHandle;

pub use api::{
    ApiConfig, Fault, Faults, LoggedRequest, RequestCounts, RequestLog, RequestTally, UserInfo,
    tally_since,
};
pub use store::{Change, ChangeType, Kind, Store, StoreError, load_yaml};

/// What to start.
#[derive(Debug)]
pub struct SimOptions {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Authentication, RBAC and watch settings of the API server.
    pub api: ApiConfig,
    /// How many changes the store keeps for watch replay.
    pub history_limit: usize,
    /// The workload controllers' settings; `None` runs no controllers (objects stay as written).
    pub controllers: Option<controllers::ControllerConfig>,
    /// Names of the Ready nodes the cluster starts with.
    pub nodes: Vec<String>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            api: ApiConfig::default(),
            history_limit: store::DEFAULT_HISTORY_LIMIT,
            controllers: None,
            nodes: vec!["sim-node-1".to_string()],
        }
    }
}

/// A running simulated cluster; stops when dropped.
pub struct SimCluster {
    addr: SocketAddr,
    store: Store,
    faults: Faults,
    log: RequestLog,
    counts: RequestCounts,
    server: JoinHandle<()>,
    controllers: Option<JoinHandle<()>>,
}

impl SimCluster {
    /// Binds the listener, starts serving and (if configured) the controllers.
    pub async fn start(options: SimOptions) -> anyhow::Result<SimCluster> {
        let store = Store::new();
        store.set_history_limit(options.history_limit);
        bootstrap(&store, &options.nodes).context("failed to create the initial objects")?;
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("failed to bind {}", options.listen))?;
        let addr = listener
            .local_addr()
            .context("failed to read the bound address")?;
        let faults = Faults::default();
        let log = RequestLog::default();
        let counts = RequestCounts::default();
        let state = Arc::new(api::AppState {
            store: store.clone(),
            config: options.api,
            faults: faults.clone(),
            log: log.clone(),
            counts: counts.clone(),
            server_address: addr.to_string(),
        });
        let app = api::router(state);
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "simulated API server stopped");
            }
        });
        let controllers = options
            .controllers
            .map(|config| controllers::spawn(store.clone(), config));
        Ok(SimCluster {
            addr,
            store,
            faults,
            log,
            counts,
            server,
            controllers,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The object store behind the API.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn request_log(&self) -> &RequestLog {
        &self.log
    }

    /// Requests answered so far, by verb and resource.
    pub fn request_counts(&self) -> &RequestCounts {
        &self.counts
    }

    /// The kubeconfig YAML for this cluster with `token` (namespace `default`).
    pub fn kubeconfig_yaml(&self, token: &str) -> String {
        api::kubeconfig_yaml(&self.url(), token, "default")
    }

    /// A kube client configuration for this cluster (plain HTTP, no token, namespace `default`).
    pub fn kube_config(&self) -> anyhow::Result<kube::Config> {
        let url = self
            .url()
            .parse()
            .context("failed to parse the cluster URL")?;
        Ok(kube::Config::new(url))
    }

    /// A kube client for this cluster without a token (enough unless RBAC is enforced).
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        kube::Client::try_from(self.kube_config()?).context("failed to build a kube client")
    }

    /// A kube client that authenticates with `token`, configured through a kubeconfig as a
    /// deployed controller would be.
    pub async fn client_with_token(&self, token: &str) -> anyhow::Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml(token))
            .context("failed to parse the generated kubeconfig")?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .context("failed to load the generated kubeconfig")?;
        kube::Client::try_from(config).context("failed to build a kube client")
    }

    /// Writes a kubeconfig for this cluster with `token` to `path`.
    pub fn write_kubeconfig(&self, path: &Path, token: &str) -> anyhow::Result<()> {
        api::write_kubeconfig(path, &self.url(), token, "default")
            .with_context(|| format!("failed to write kubeconfig {}", path.display()))
    }

    /// Loads a multi-document YAML manifest into the store (namespaced objects without a
    /// namespace go to `default_namespace`).
    pub fn load_yaml(
        &self,
        text: &str,
        default_namespace: &str,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(store::load_yaml(&self.store, text, default_namespace)?)
    }

    /// Stops serving and the controllers.
    pub fn shutdown(&self) {
        self.server.abort();
        if let Some(c) = &self.controllers {
            c.abort();
        }
    }
}

/// The namespaces every cluster has, and Ready nodes.
fn bootstrap(store: &Store, nodes: &[String]) -> Result<(), StoreError> {
    for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        store.create(
            Kind::Namespace,
            serde_json::json!({"metadata": {"name": namespace}}),
        )?;
    }
    for name in nodes {
        let node = store.create(
            Kind::Node,
            serde_json::json!({"metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"
            }}}),
        )?;
        let mut ready = node;
        ready["status"] = serde_json::json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "lastHeartbeatTime": store::now_rfc3339(), "lastTransitionTime": store::now_rfc3339()}],
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": api::GIT_VERSION}
        });
        store.update_status(Kind::Node, ready)?;
    }
    Ok(())
}

/// The API without a socket: a kube client whose requests go straight to the router.
///
/// Nothing waits on real I/O, so tests may pause tokio's clock and let hours of deadlines pass at once,
/// as kube-rs's own controller tests do with a mocked service. No workload controllers run: objects stay as
/// the test writes them, status included.
pub struct InProcess {
    /// The object store behind the API.
    pub store: Store,
    /// Fault injection.
    pub faults: Faults,
    /// Every request served.
    pub log: RequestLog,
    /// Requests served by verb and resource.
    pub counts: RequestCounts,
    /// A client of this API (namespace `default`).
    pub client: kube::Client,
}

impl InProcess {
    /// Builds the API over a fresh store with the usual namespaces and one Ready node.
    pub fn new(api: ApiConfig) -> anyhow::Result<InProcess> {
        let store = Store::new();
        bootstrap(&store, &["sim-node-1".to_string()])
            .context("failed to create the initial objects")?;
        let faults = Faults::default();
        let log = RequestLog::default();
        let counts = RequestCounts::default();
        let state = Arc::new(api::AppState {
            store: store.clone(),
            config: api,
            faults: faults.clone(),
            log: log.clone(),
            counts: counts.clone(),
            server_address: "in-process".into(),
        });
        let client = kube::Client::new(api::router(state), "default");
        Ok(InProcess {
            store,
            faults,
            log,
            counts,
            client,
        })
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
