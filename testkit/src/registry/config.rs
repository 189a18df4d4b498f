//! Writes the files a harness registry runs from: its config, and the htpasswd, TLS and token-trust files.
//!
//! Input: the chosen auth variant, the port, the tempdir and the key material. Output: the path of a config file
//! that binds `127.0.0.1:<port>` only, stores blobs in the tempdir and logs errors only. The system config
//! (`/etc/docker/registry/config.yml`) is never used: it listens on every interface.
//!
//! The config is written as JSON, which is valid YAML: distribution's YAML parser reads it as-is, and the harness
//! needs no YAML serializer.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::json;

use super::certs::{TlsMaterial, TokenKey};

/// Everything the config refers to besides the port.
pub(crate) struct ConfigInputs<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) basic: Option<(&'a str, &'a str)>,
    pub(crate) tls: Option<&'a TlsMaterial>,
    /// Token realm URL and the key that signs tokens.
    pub(crate) token: Option<(String, &'a TokenKey)>,
    /// Where the registry sends its push and pull notifications, and the header that authenticates them.
    pub(crate) notify: Option<&'a Notify>,
}

/// distribution's own `notifications.endpoints`: what a user pastes into `config.yml` (docs/push-events.md).
#[derive(Debug, Clone)]
pub struct Notify {
    /// The listener's `/events/distribution` URL.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: String,
}

/// Writes the auxiliary files and `config.yml` for a registry on `port`; returns the config path.
pub(crate) fn write_config(inputs: &ConfigInputs<'_>, port: u16) -> anyhow::Result<PathBuf> {
    let dir = inputs.dir;
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage).context("failed to create the registry storage directory")?;
    let mut http =
        json!({ "addr": format!("127.0.0.1:{port}"), "secret": "watch-cluster-testkit" });
    if let Some(tls) = inputs.tls {
        let cert = write(dir, "server.crt", &tls.cert_pem)?;
        let key = write(dir, "server.key", &tls.key_pem)?;
        http["tls"] = json!({ "certificate": cert, "key": key });
    }
    let mut config = json!({
        "version": "0.1",
        "log": { "level": "error", "accesslog": { "disabled": true } },
        "storage": {
            "filesystem": { "rootdirectory": storage },
            "delete": { "enabled": true },
            "maintenance": { "uploadpurging": { "enabled": false } },
        },
        "http": http,
    });
    if let Some((user, password)) = inputs.basic {
        let htpasswd = write(dir, "htpasswd", &htpasswd_line(user, password)?)?;
        config["auth"] = json!({ "htpasswd": { "realm": "testkit-basic", "path": htpasswd } });
    }
    if let Some((realm, key)) = &inputs.token {
        let bundle = write(dir, "token-issuer.crt", &key.cert_pem)?;
        config["auth"] = json!({ "token": {
            "realm": realm,
            "service": super::token::SERVICE,
            "issuer": super::token::ISSUER,
            "rootcertbundle": bundle,
        }});
    }
    if let Some(notify) = inputs.notify {
        // Short timeout and backoff: a test must not wait on distribution's default 1 s/10 s pacing.
        config["notifications"] = json!({ "endpoints": [{
            "name": "watch-cluster",
            "url": notify.url,
            "headers": { "Authorization": [format!("Bearer {}", notify.token)] },
            "timeout": "2s",
            "threshold": 3,
            "backoff": "500ms",
        }]});
    }
    let text =
        serde_json::to_string_pretty(&config).context("failed to encode the registry config")?;
    write(dir, "config.yml", &text)
}

/// One htpasswd entry. distribution accepts bcrypt only (apr1/MD5 is rejected); cost 4 keeps tests fast.
fn htpasswd_line(user: &str, password: &str) -> anyhow::Result<String> {
    let hash = bcrypt::hash(password, 4).context("failed to bcrypt the harness password")?;
    Ok(format!("{user}:{hash}\n"))
}

fn write(dir: &Path, name: &str, content: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, content)
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(path)
}
