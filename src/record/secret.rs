//! Where the record key lives: a Secret in the controller's own namespace, made by the first replica that
//! starts and read by every other one, so all replicas and every restart share one key.
//!
//! The installer ships no key (a manifest in Git would publish it); the controller creates the Secret with
//! random bytes when it is missing. Creating is conditional by nature (a second replica gets 409 and reads
//! the winner's), so two replicas starting together still end with one key. Deleting the Secret rotates the
//! key at the next start; records sealed with the old one are then reported and ignored.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{Api, Client, api::PostParams};

use super::RecordKey;

/// The Secret's name.
pub const SECRET_NAME: &str = "watch-cluster-record-key";
/// The data key that holds the key bytes.
pub const DATA_KEY: &str = "key";

/// The key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    /// The API server refused or failed.
    #[error(
        "failed to {action} Secret {namespace}/{SECRET_NAME} (the key that seals rollout records): {answer}{hint}"
    )]
    Api {
        /// get or create.
        action: &'static str,
        /// The controller's namespace.
        namespace: String,
        /// What the API server said, without the Status dump.
        answer: String,
        /// What to do about it.
        hint: &'static str,
        /// The answer, kept for `is_final` and not chained into the message: `answer` says it in one line.
        error: kube::Error,
    },
    /// The Secret exists but holds no usable key.
    #[error(
        "Secret {namespace}/{SECRET_NAME} holds no usable `{DATA_KEY}`: {problem}; delete it to have a new key made"
    )]
    Unusable {
        /// The controller's namespace.
        namespace: String,
        /// What is wrong.
        problem: String,
    },
    /// The operating system gave no random bytes.
    #[error("failed to generate a record key")]
    Random(#[source] getrandom::Error),
}

impl KeyLoadError {
    /// Whether trying again cannot help: refused (RBAC), no such namespace, or a Secret without a key.
    pub fn is_final(&self) -> bool {
        match self {
            KeyLoadError::Api {
                error: kube::Error::Api(status),
                ..
            } => matches!(status.code, 401 | 403 | 404),
            KeyLoadError::Api { .. } | KeyLoadError::Random(_) => false,
            KeyLoadError::Unusable { .. } => true,
        }
    }
}

/// Reads the key from its Secret in `namespace`, creating the Secret when it does not exist.
pub async fn load_or_create(client: Client, namespace: &str) -> Result<RecordKey, KeyLoadError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let api_error = |action, source: kube::Error| {
        let (answer, hint) = match &source {
            kube::Error::Api(s) if s.code == 404 => (
                format!("{} {}", s.code, s.message),
                "; set POD_NAMESPACE to the namespace the controller runs in, or create it",
            ),
            kube::Error::Api(s) if s.code == 401 || s.code == 403 => (
                format!("{} {}", s.code, s.message),
                "; the controller's Role in its namespace must allow `get` on this Secret and `create` on \
                 secrets (k8s/base/leader-election-role.yaml)",
            ),
            kube::Error::Api(s) => (format!("{} {}", s.code, s.message), ""),
            other => (other.to_string(), ""),
        };
        KeyLoadError::Api {
            action,
            namespace: namespace.to_owned(),
            answer,
            hint,
            error: source,
        }
    };
    let secret = match api.get_opt(SECRET_NAME).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            let bytes = RecordKey::generate().map_err(KeyLoadError::Random)?;
            match api
                .create(&PostParams::default(), &new_secret(&bytes))
                .await
            {
                Ok(secret) => secret,
                // Another replica made it first: use its key.
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    api.get(SECRET_NAME)
                        .await
                        .map_err(|e| api_error("get", e))?
                }
                Err(source) => return Err(api_error("create", source)),
            }
        }
        Err(source) => return Err(api_error("get", source)),
    };
    key_of(&secret).map_err(|problem| KeyLoadError::Unusable {
        namespace: namespace.to_owned(),
        problem,
    })
}

fn new_secret(bytes: &[u8]) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(SECRET_NAME.into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_owned(),
                "watch-cluster".to_owned(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            DATA_KEY.to_owned(),
            ByteString(bytes.to_vec()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

fn key_of(secret: &Secret) -> Result<RecordKey, String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .ok_or_else(|| format!("no `{DATA_KEY}` entry"))?;
    RecordKey::from_bytes(&bytes.0).map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_made_secret_holds_a_usable_key_and_a_short_one_is_named() {
        let bytes = RecordKey::generate().unwrap();
        assert!(key_of(&new_secret(&bytes)).is_ok());
        let short = new_secret(&[1, 2, 3]);
        assert!(key_of(&short).unwrap_err().contains("3 bytes"));
        assert!(key_of(&Secret::default()).unwrap_err().contains("no `key`"));
    }
}
