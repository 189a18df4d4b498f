//! Registry credentials from image-pull Secrets (docs/threat-model.md#workload-editors-in-a-shared-cluster).
//!
//! Input: a `kubernetes.io/dockerconfigjson` Secret (`.dockerconfigjson`: `{"auths":{…}}`) or a
//! `kubernetes.io/dockercfg` Secret (`.dockercfg`: the auths map at top level). Output: a [`DockerConfig`]
//! that answers "which credential for this registry?". Keys match with or without scheme and `/v1/`-style
//! path, case-insensitively; Docker Hub's aliases all mean `docker.io`.
//!
//! WHY not the `docker_credential` crate: it runs credential-helper binaries named in the config, and a
//! Secret's author must not be able to make the controller execute programs. Errors name the Secret and
//! what is wrong with it, never a value from it.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;

use super::Credential;

const DOCKERCONFIGJSON: &str = "kubernetes.io/dockerconfigjson";
const DOCKERCFG: &str = "kubernetes.io/dockercfg";

/// Why a Secret (or a config file) yields no credentials. `secret` reads "Secret `namespace/name`".
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The Secret is of another type.
    #[error(
        "failed to read registry credentials from {secret}: its type is `{found}`, not {DOCKERCONFIGJSON} or {DOCKERCFG}"
    )]
    WrongType { secret: String, found: String },
    /// The Secret lacks the key its type requires.
    #[error("failed to read registry credentials from {secret}: it has no `{key}` key")]
    MissingKey { secret: String, key: &'static str },
    /// The config is not JSON of the expected shape.
    #[error("failed to read registry credentials from {secret}: `{key}` is not a Docker config")]
    NotDockerConfig {
        secret: String,
        key: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// An entry's `auth` is not base64 of `user:password`.
    #[error(
        "failed to read registry credentials from {secret}: the `auth` of entry `{entry}` is not base64 of user:password"
    )]
    BadAuth { secret: String, entry: String },
}

#[derive(serde::Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(serde::Deserialize, Default)]
struct Entry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The credentials of one or more pull Secrets, by registry.
#[derive(Debug, Clone, Default)]
pub struct DockerConfig {
    entries: Vec<(String, Credential)>,
}

impl DockerConfig {
    /// Reads one Secret. Entries without a usable user and password (e.g. identity tokens) are skipped.
    pub fn from_secret(secret: &Secret) -> Result<Self, CredentialsError> {
        let name = secret_name(secret);
        let found = secret.type_.clone().unwrap_or_default();
        let (key, top_level) = match found.as_str() {
            DOCKERCONFIGJSON => (".dockerconfigjson", false),
            DOCKERCFG => (".dockercfg", true),
            _ => {
                return Err(CredentialsError::WrongType {
                    secret: name,
                    found,
                });
            }
        };
        let raw = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .ok_or_else(|| CredentialsError::MissingKey {
                secret: name.clone(),
                key,
            })?;
        Self::from_json(&raw, top_level, &name, key)
    }

    /// Reads a Docker `config.json` (`{"auths":{…}}`), e.g. `~/.docker/config.json`; `source` names it in errors.
    /// Credential helpers (`credsStore`, `credHelpers`) are ignored: they would run programs.
    pub fn from_config_json(raw: &[u8], source: &str) -> Result<Self, CredentialsError> {
        Self::from_json(raw, false, source, "config.json")
    }

    fn from_json(
        raw: &[u8],
        top_level: bool,
        name: &str,
        key: &'static str,
    ) -> Result<Self, CredentialsError> {
        let not_config = |source| CredentialsError::NotDockerConfig {
            secret: name.to_owned(),
            key,
            source,
        };
        let auths: BTreeMap<String, Entry> = if top_level {
            serde_json::from_slice(raw).map_err(not_config)?
        } else {
            serde_json::from_slice::<ConfigJson>(raw)
                .map_err(not_config)?
                .auths
        };
        let mut config = Self::default();
        for (entry, value) in auths {
            if let Some(credential) = credential_of(&value, name, &entry)? {
                config.entries.push((normalize_key(&entry), credential));
            }
        }
        Ok(config)
    }

    /// Adds the entries of `other` after ours (earlier Secrets win, as kubelet orders them).
    pub fn merge(&mut self, other: DockerConfig) {
        self.entries.extend(other.entries);
    }

    /// The credential for `registry` as written in an image reference (`docker.io`, `registry:5000`).
    pub fn credential_for(&self, registry: &str) -> Option<&Credential> {
        let wanted = normalize_key(registry);
        self.entries
            .iter()
            .find(|(host, _)| *host == wanted)
            .map(|(_, c)| c)
    }

    /// Whether no usable credential was found.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn secret_name(secret: &Secret) -> String {
    let meta = &secret.metadata;
    format!(
        "Secret {}/{}",
        meta.namespace.as_deref().unwrap_or("-"),
        meta.name.as_deref().unwrap_or("-")
    )
}

fn credential_of(
    entry: &Entry,
    secret: &str,
    key: &str,
) -> Result<Option<Credential>, CredentialsError> {
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.trim().is_empty()) {
        let bad = || CredentialsError::BadAuth {
            secret: secret.to_owned(),
            entry: key.to_owned(),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, password) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credential::new(user, password)));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credential::new(u.as_str(), p.as_str()))),
        _ => Ok(None),
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://Registry:5000/v2` → `registry:5000`.
fn normalize_key(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(type_: &str, key: &str, json: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some("pull".into());
        s.metadata.namespace = Some("team-a".into());
        s.type_ = Some(type_.into());
        s.data = Some([(key.to_owned(), ByteString(json.as_bytes().to_vec()))].into());
        s
    }

    #[test]
    fn dockerconfigjson_with_auth_and_docker_hub_alias_is_matched() {
        // "alice:pa:ss" — the password itself contains a colon.
        let json = r#"{"auths":{"https://index.docker.io/v1/":{"auth":"YWxpY2U6cGE6c3M="},
            "http://Registry:5000/v2/":{"username":"bob","password":"pw"}}}"#;
        let config =
            DockerConfig::from_secret(&secret(DOCKERCONFIGJSON, ".dockerconfigjson", json))
                .unwrap();
        assert_eq!(
            config.credential_for("docker.io"),
            Some(&Credential::new("alice", "pa:ss"))
        );
        assert_eq!(
            config.credential_for("index.docker.io"),
            Some(&Credential::new("alice", "pa:ss"))
        );
        assert_eq!(
            config.credential_for("registry:5000"),
            Some(&Credential::new("bob", "pw"))
        );
        assert_eq!(config.credential_for("registry:5001"), None);
    }

    #[test]
    fn dockercfg_has_the_auths_map_at_top_level() {
        let json = r#"{"ghcr.io":{"username":"u","password":"p"},"quay.io":{"identitytoken":"x"}}"#;
        let config = DockerConfig::from_secret(&secret(DOCKERCFG, ".dockercfg", json)).unwrap();
        assert_eq!(
            config.credential_for("ghcr.io"),
            Some(&Credential::new("u", "p"))
        );
        assert_eq!(config.credential_for("quay.io"), None);
    }

    #[test]
    fn errors_name_the_secret_and_never_its_values() {
        let err = DockerConfig::from_secret(&secret("Opaque", "x", "{}")).unwrap_err();
        assert!(err.to_string().contains("team-a/pull"));
        let err =
            DockerConfig::from_secret(&secret(DOCKERCFG, ".dockerconfigjson", "{}")).unwrap_err();
        assert!(matches!(
            err,
            CredentialsError::MissingKey {
                key: ".dockercfg",
                ..
            }
        ));
        let err =
            DockerConfig::from_secret(&secret(DOCKERCONFIGJSON, ".dockerconfigjson", "hunter2"))
                .unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        let json = r#"{"auths":{"r":{"auth":"!!!c2VjcmV0"}}}"#;
        let err = DockerConfig::from_secret(&secret(DOCKERCONFIGJSON, ".dockerconfigjson", json))
            .unwrap_err();
        assert!(err.to_string().contains("entry `r`"));
        assert!(!err.to_string().contains("c2VjcmV0"));
    }
}
