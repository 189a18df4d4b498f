//! The real-registry harness: Debian's `docker-registry` (CNCF distribution 2.8.2) as a child process.
//!
//! Input: a [`RegistryAuth`] variant. Output: a [`RealRegistry`] listening on `127.0.0.1:<free port>` with its own
//! config, storage in a tempdir, and — depending on the variant — htpasswd Basic auth, TLS from a test CA, or
//! Bearer tokens from an in-process token server. Helpers push synthetic images ([`RealRegistry::push`]) and read
//! manifests raw ([`RealRegistry::head_manifest`]), so tests can show how the real registry answers.
//!
//! The process is killed and reaped when the harness is dropped, which also happens while a failing test unwinds.
//! (A test process killed by SIGKILL cannot run destructors; nextest's timeouts are the only such case.)

pub(crate) mod certs;
mod config;
pub use config::Notify;
mod push;
mod read;
mod token;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

pub(crate) use push::digest_of;
pub use push::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, ImageKind, OCI_INDEX, OCI_MANIFEST, Pushed, Staged,
};
pub use read::ManifestAnswer;

/// The registry binary (Debian package `docker-registry`).
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// How long a fresh registry may take to answer `GET /v2/` (it usually takes 40–60 ms).
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts at starting on a free port (another process may take the port between probe and bind).
const START_ATTEMPTS: usize = 3;

/// How the harness registry authenticates and whether it serves TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    /// Plain HTTP, anonymous pull and push.
    None,
    /// Plain HTTP with htpasswd Basic auth.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// HTTPS with a certificate from a fresh test CA ([`RealRegistry::ca_pem`]); anonymous.
    Tls,
    /// HTTPS (test CA) with htpasswd Basic auth.
    BasicOverTls {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// Plain HTTP with Bearer tokens from the harness token server. These credentials may pull and push;
    /// anonymous token requests are granted pull only; wrong credentials get `401` from the token server.
    Token {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
}

impl RegistryAuth {
    /// `Basic` with the given credentials.
    pub fn basic(user: &str, password: &str) -> Self {
        Self::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    /// `Token` with the given credentials.
    pub fn token(user: &str, password: &str) -> Self {
        Self::Token {
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    fn credentials(&self) -> Option<(String, String)> {
        match self {
            Self::Basic { user, password }
            | Self::BasicOverTls { user, password }
            | Self::Token { user, password } => Some((user.clone(), password.clone())),
            Self::None | Self::Tls => None,
        }
    }

    /// Credentials for the registry's own htpasswd (Basic variants only).
    fn basic_credentials(&self) -> Option<(&str, &str)> {
        match self {
            Self::Basic { user, password } | Self::BasicOverTls { user, password } => {
                Some((user.as_str(), password.as_str()))
            }
            _ => None,
        }
    }

    fn uses_tls(&self) -> bool {
        matches!(self, Self::Tls | Self::BasicOverTls { .. })
    }
}

/// A running `docker-registry`; killed on drop.
pub struct RealRegistry {
    child: Child,
    port: u16,
    auth: RegistryAuth,
    tls: Option<certs::TlsMaterial>,
    token: Option<token::TokenServer>,
    http: reqwest::Client,
    log: PathBuf,
    // Dropped last: the registry's storage and config.
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for RealRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealRegistry")
            .field("pid", &self.child.id())
            .field("port", &self.port)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl RealRegistry {
    /// Starts a registry with `auth` and waits until `GET /v2/` answers (200, or 401 when auth is on).
    pub async fn start(auth: RegistryAuth) -> anyhow::Result<Self> {
        Self::start_with(auth, None).await
    }

    /// Starts a registry that sends its notifications (pushes, pulls, deletes) to `notify`, as a user's
    /// `notifications.endpoints` would.
    pub async fn start_notifying(
        auth: RegistryAuth,
        notify: config::Notify,
    ) -> anyhow::Result<Self> {
        Self::start_with(auth, Some(notify)).await
    }

    async fn start_with(
        auth: RegistryAuth,
        notify: Option<config::Notify>,
    ) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::Builder::new()
            .prefix("testkit-registry-")
            .tempdir()
            .context("failed to create the registry tempdir")?;
        let tls = auth.uses_tls().then(certs::tls_material).transpose()?;
        let token = match &auth {
            RegistryAuth::Token { .. } => {
                let key = certs::token_key()?;
                let server = token::TokenServer::start(key.clone(), auth.credentials()).await?;
                Some((server, key))
            }
            _ => None,
        };
        let http = http_client(tls.as_ref().map(|t| t.ca_pem.as_str()))?;
        let inputs = config::ConfigInputs {
            dir: dir.path(),
            basic: auth.basic_credentials(),
            tls: tls.as_ref(),
            token: token.as_ref().map(|(server, key)| (server.realm(), key)),
            notify: notify.as_ref(),
        };
        let (child, port, log) = launch(&inputs, auth.uses_tls(), &http).await?;
        Ok(Self {
            child,
            port,
            auth,
            tls,
            token: token.map(|(server, _)| server),
            http,
            log,
            _dir: dir,
        })
    }

    /// `127.0.0.1:PORT`, the registry host as it appears in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        let scheme = if self.auth.uses_tls() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.host())
    }

    /// The process id of the registry (to check in tests that nothing outlives the harness).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The auth variant this registry was started with.
    pub fn auth(&self) -> &RegistryAuth {
        &self.auth
    }

    /// `(user, password)` for the Basic and Token variants.
    pub fn credentials(&self) -> Option<(String, String)> {
        self.auth.credentials()
    }

    /// PEM of the test CA that signed the registry's certificate (TLS variants only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// The token realm URL (Token variant only).
    pub fn token_realm(&self) -> Option<String> {
        self.token.as_ref().map(token::TokenServer::realm)
    }

    /// How many requests the token server has answered (0 unless Token). The harness's own push and read helpers
    /// fetch tokens too: compare counts before and after the code under test.
    pub fn token_requests(&self) -> usize {
        self.token.as_ref().map_or(0, token::TokenServer::requests)
    }

    /// The registry's own output (errors only), for failure messages.
    pub fn log_output(&self) -> String {
        read_log(&self.log)
    }
}

impl Drop for RealRegistry {
    fn drop(&mut self) {
        // SIGKILL then reap, synchronously: no runtime is needed, and no zombie or orphan survives the test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the registry on a free port and waits until it is ready; retries when the port was taken meanwhile.
async fn launch(
    inputs: &config::ConfigInputs<'_>,
    tls: bool,
    http: &reqwest::Client,
) -> anyhow::Result<(Child, u16, PathBuf)> {
    let scheme = if tls { "https" } else { "http" };
    let mut last_error = anyhow::anyhow!("failed to start docker-registry");
    for _ in 0..START_ATTEMPTS {
        let port = free_port()?;
        let config = config::write_config(inputs, port)?;
        let log = inputs.dir.join(format!("registry-{port}.log"));
        let mut child = Reaped(Some(spawn(&config, &log)?));
        let url = format!("{scheme}://127.0.0.1:{port}/v2/");
        match wait_ready(child.child()?, &url, http, &log).await {
            Ok(()) => return Ok((child.into_inner()?, port, log)),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// Kills and reaps a child that has not been handed to a [`RealRegistry`] yet (start failed or was cancelled).
struct Reaped(Option<Child>);

impl Reaped {
    fn child(&mut self) -> anyhow::Result<&mut Child> {
        self.0
            .as_mut()
            .context("registry child already handed over")
    }

    fn into_inner(mut self) -> anyhow::Result<Child> {
        self.0.take().context("registry child already handed over")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `GET /v2/` until it answers 200 or 401; fails early when the process exits (e.g. the port was taken).
async fn wait_ready(
    child: &mut Child,
    url: &str,
    http: &reqwest::Client,
    log: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("failed to poll docker-registry")? {
            anyhow::bail!(
                "docker-registry exited with {status} before it was ready: {}",
                read_log(log)
            );
        }
        if let Ok(resp) = http.get(url).send().await
            && matches!(resp.status().as_u16(), 200 | 401)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "docker-registry not ready after {READY_TIMEOUT:?}: {}",
                read_log(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

fn spawn(config: &Path, log: &Path) -> anyhow::Result<Child> {
    let out = std::fs::File::create(log).context("failed to create the registry log")?;
    let err = out
        .try_clone()
        .context("failed to clone the registry log handle")?;
    Command::new(REGISTRY_BIN)
        .arg("serve")
        .arg(config)
        // distribution maps REGISTRY_* variables onto its config; the controller's own REGISTRY_* settings
        // must not leak into it.
        .env_clear()
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("failed to run {REGISTRY_BIN}"))
}

fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("failed to probe for a free port")?;
    Ok(listener
        .local_addr()
        .context("failed to read the probed port")?
        .port())
}

/// A reqwest client that trusts only the test CA when there is one.
fn http_client(ca_pem: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy();
    if let Some(pem) = ca_pem {
        let cert = reqwest::Certificate::from_pem(pem.as_bytes())
            .context("failed to parse the test CA")?;
        builder = builder.tls_certs_only([cert]);
    }
    builder
        .build()
        .context("failed to build the harness HTTP client")
}
