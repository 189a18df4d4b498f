//! The real signer: cosign v2.6.5, built from Go modules by `testbed/cosign/build` (docs/testbed.md#cosign),
//! run offline against the harness registry, and ways to break what it writes.
//!
//! Input: a [`RealRegistry`] without auth (cosign reaches it with `--allow-http-registry`), an image pinned by
//! digest, a [`KeyPair`] and a [`Layout`]. Output: the signature in the registry exactly as cosign writes it:
//! - [`Layout::Sig`]: the `sha256-<hex>.sig` tag, one simple-signing layer per signature, the signature in
//!   the layer's `dev.cosignproject.cosign/signature` annotation;
//! - [`Layout::Bundle`]: `--new-bundle-format`, a Sigstore bundle (DSSE envelope over an in-toto statement)
//!   in a manifest whose `subject` is the image. distribution 2.8 has no referrers API (`404`), so cosign
//!   keeps the referrers in an OCI index under the fallback tag `sha256-<hex>`.
//!
//! Offline: no Rekor upload (`--tlog-upload=false`), no Fulcio (a key), and nothing from the TUF
//! repository: signing with a key never fetches the trust root (strace shows connections to the registry
//! only). That is enforced, not assumed: cosign's proxy is a port where nothing listens, so a request off
//! the machine fails the command. `HOME` and `TUF_ROOT` point into a tempdir of the [`Cosign`] so cosign
//! cannot read or write the user's `~/.sigstore`, and a deadline ([`COMMAND_TIMEOUT`]) turns a hang into an
//! error naming the command.
//!
//! [`tamper`] holds the forgeries the verifier must refuse: a signature copied to another image, a
//! referrer whose unsigned `subject` claims another image, a changed signature, a changed payload.

pub mod tamper;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::RealRegistry;

/// How long one cosign command may take; signing a local registry takes under a second.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The password of every private key the harness writes (cosign encrypts its keys).
pub const KEY_PASSWORD: &str = "watch-cluster-testkit";
/// The proxy cosign is given: nothing listens on the discard port, so a request off the machine fails.
const OFFLINE_PROXY: &str = "http://127.0.0.1:9";
/// Overrides where the binary is found (default: `testbed/cosign/bin/cosign` of the workspace).
pub const COSIGN_BIN_ENV: &str = "WATCH_CLUSTER_COSIGN";

/// Where cosign puts a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `sha256-<hex>.sig`, simple-signing payloads (cosign v2's default).
    Sig,
    /// A Sigstore bundle as an OCI 1.1 referrer; on distribution 2.8 under the tag `sha256-<hex>`.
    Bundle,
}

impl Layout {
    /// Both layouts, for tests that run on each.
    pub const ALL: [Layout; 2] = [Layout::Sig, Layout::Bundle];

    /// The tag cosign writes for an image with `digest` (`sha256:<hex>`).
    pub fn tag(self, digest: &str) -> String {
        let tag = digest.replacen(':', "-", 1);
        match self {
            Self::Sig => format!("{tag}.sig"),
            Self::Bundle => tag,
        }
    }

    /// A short name for test output (`sig`, `bundle`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sig => "sig",
            Self::Bundle => "bundle",
        }
    }
}

/// The algorithm of a key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256 with SHA-256, from `cosign generate-key-pair`.
    P256,
    /// Ed25519, generated here as PKCS#8 and brought in with `cosign import-key-pair`.
    Ed25519,
}

impl KeyKind {
    /// Both kinds, for tests that run on each.
    pub const ALL: [KeyKind; 2] = [KeyKind::P256, KeyKind::Ed25519];

    /// A short name for file names and test output (`p256`, `ed25519`).
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "p256",
            Self::Ed25519 => "ed25519",
        }
    }
}

/// A cosign key pair on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// Its algorithm.
    pub kind: KeyKind,
    /// cosign's encrypted private key (`<name>.key`, password [`KEY_PASSWORD`]).
    pub private_key: PathBuf,
    /// The PEM public key (SPKI, `<name>.pub`): what a verifier is given.
    pub public_key: PathBuf,
}

impl KeyPair {
    /// The public key's PEM text.
    pub fn public_pem(&self) -> anyhow::Result<String> {
        std::fs::read_to_string(&self.public_key)
            .with_context(|| format!("failed to read {}", self.public_key.display()))
    }
}

/// The cosign binary with a private `HOME`; see the module docs.
#[derive(Debug)]
pub struct Cosign {
    bin: PathBuf,
    home: tempfile::TempDir,
}

impl Cosign {
    /// Finds the binary `testbed/cosign/build` linked (or [`COSIGN_BIN_ENV`]). Missing is an error naming the
    /// build script: signature tests must fail without the real signer, never skip.
    pub fn find() -> anyhow::Result<Self> {
        let bin = match std::env::var_os(COSIGN_BIN_ENV) {
            Some(path) => PathBuf::from(path),
            None => Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .context("testkit has no parent directory")?
                .join("testbed/cosign/bin/cosign"),
        };
        if !bin.is_file() {
            bail!(
                "cosign not found at {}: run testbed/cosign/build (the test command .ci/test does) \
                 or set {COSIGN_BIN_ENV} to a cosign v2.6 binary",
                bin.display()
            );
        }
        let home = tempfile::Builder::new()
            .prefix("testkit-cosign-")
            .tempdir()
            .context("failed to create cosign's HOME")?;
        Ok(Self { bin, home })
    }

    /// `cosign version`'s GitVersion, e.g. `v2.6.5`.
    pub async fn version(&self) -> anyhow::Result<String> {
        let out = self.run(&["version"], None).await?;
        out.lines()
            .find_map(|l| l.strip_prefix("GitVersion:"))
            .map(|v| v.trim().to_owned())
            .context("cosign version printed no GitVersion")
    }

    /// A key pair of `kind` named `name` in `dir`: P-256 from `cosign generate-key-pair`, Ed25519 generated
    /// here and imported with `cosign import-key-pair` (cosign cannot generate Ed25519 itself).
    pub async fn key_pair(&self, kind: KeyKind, dir: &Path, name: &str) -> anyhow::Result<KeyPair> {
        match kind {
            KeyKind::P256 => {
                self.run(
                    &["generate-key-pair", "--output-key-prefix", name],
                    Some(dir),
                )
                .await?;
            }
            KeyKind::Ed25519 => {
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
                    .context("failed to generate an Ed25519 key")?;
                let pem = dir.join(format!("{name}.pkcs8.pem"));
                std::fs::write(&pem, key.serialize_pem())
                    .with_context(|| format!("failed to write {}", pem.display()))?;
                let pem = pem.to_string_lossy().into_owned();
                self.run(
                    &[
                        "import-key-pair",
                        "--yes",
                        "--key",
                        &pem,
                        "--output-key-prefix",
                        name,
                    ],
                    Some(dir),
                )
                .await?;
            }
        }
        let pair = KeyPair {
            kind,
            private_key: dir.join(format!("{name}.key")),
            public_key: dir.join(format!("{name}.pub")),
        };
        for path in [&pair.private_key, &pair.public_key] {
            anyhow::ensure!(path.is_file(), "cosign wrote no {}", path.display());
        }
        Ok(pair)
    }

    /// Signs `registry`'s `repo@digest` with `key` in `layout`, as a user's pipeline would (offline flags).
    /// Signing again adds a signature: a layer of the `.sig` manifest, or a referrer in the bundle index.
    pub async fn sign(
        &self,
        registry: &RealRegistry,
        repo: &str,
        digest: &str,
        key: &KeyPair,
        layout: Layout,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            registry.credentials().is_none() && registry.ca_pem().is_none(),
            "the cosign harness signs in a registry without auth or TLS; {:?} has them",
            registry.auth()
        );
        let image = format!("{}/{repo}@{digest}", registry.host());
        let key_path = key.private_key.to_string_lossy().into_owned();
        let mut args = vec![
            "sign",
            "--key",
            &key_path,
            "--tlog-upload=false",
            "--yes",
            "--allow-http-registry",
        ];
        if layout == Layout::Bundle {
            args.push("--new-bundle-format");
        }
        args.push(&image);
        self.run(&args, None)
            .await
            .with_context(|| format!("cosign could not sign {image} ({} layout)", layout.name()))?;
        Ok(())
    }

    /// Runs cosign with the offline environment; returns stdout, or an error with both streams.
    async fn run(&self, args: &[&str], dir: Option<&Path>) -> anyhow::Result<String> {
        let home = self.home.path();
        let mut command = tokio::process::Command::new(&self.bin);
        command
            .args(args)
            // Nothing of the caller's environment: no proxy, no COSIGN_* or SIGSTORE_* settings, no docker
            // credentials of the user.
            .env_clear()
            .env("HOME", home)
            .env("DOCKER_CONFIG", home.join("docker"))
            .env("TUF_ROOT", home.join("tuf"))
            .env("SIGSTORE_NO_CACHE", "true")
            // A tripwire: every request off this machine goes to a proxy on the discard port, which refuses
            // at once, so any reach for Rekor, Fulcio or TUF fails the command (Go never proxies loopback
            // addresses: the registry is reached directly).
            .env("HTTPS_PROXY", OFFLINE_PROXY)
            .env("HTTP_PROXY", OFFLINE_PROXY)
            .env("COSIGN_PASSWORD", KEY_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let shown = format!("cosign {}", args.join(" "));
        let child = command
            .spawn()
            .with_context(|| format!("failed to run {}", self.bin.display()))?;
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| {
                format!("`{shown}` took over {COMMAND_TIMEOUT:?} (is it reaching for the network?)")
            })?
            .with_context(|| format!("failed to wait for `{shown}`"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "`{shown}` failed ({}): {stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(stdout)
    }
}
