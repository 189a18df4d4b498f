//! Loading multi-document YAML manifests (such as the project's `k8s/*.yaml`) into the store,
//! so tests run against the same RBAC and objects a real installation would have.

use serde_json::{Value, json};

use super::{Kind, Store, StoreError, name_of};

/// A manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The error names the line and column.
    #[error("failed to parse the YAML documents")]
    Parse(#[source] serde_saphyr::Error),
    #[error("failed to load document {index}: unsupported apiVersion/kind {api_version}/{kind}")]
    UnsupportedKind {
        index: usize,
        api_version: String,
        kind: String,
    },
    #[error("failed to store {kind:?} {name:?}")]
    Store {
        kind: Kind,
        name: String,
        #[source]
        source: StoreError,
    },
}

impl Kind {
    /// The kind stored for an object's `apiVersion` and `kind` (`events.k8s.io/v1` is not accepted here).
    pub fn from_api_version_kind(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.api_version() == api_version && k.info().kind == kind)
    }
}

/// Creates (or replaces, when present) every object of a multi-document YAML text; namespaced
/// objects without a namespace go to `default_namespace`. Returns the stored objects.
pub fn load_yaml(
    store: &Store,
    text: &str,
    default_namespace: &str,
) -> Result<Vec<Value>, ManifestError> {
    let mut stored = Vec::new();
    for (index, object) in documents(text)?.into_iter().enumerate() {
        stored.push(load_one(store, index, object, default_namespace)?);
    }
    Ok(stored)
}

/// Like [`load_yaml`], but skips documents of kinds the simulator does not store (Services,
/// PodDisruptionBudgets, Kustomizations...) and returns their `apiVersion/kind` alongside.
pub fn load_yaml_lenient(
    store: &Store,
    text: &str,
    default_namespace: &str,
) -> Result<(Vec<Value>, Vec<String>), ManifestError> {
    let mut stored = Vec::new();
    let mut skipped = Vec::new();
    for (index, object) in documents(text)?.into_iter().enumerate() {
        match load_one(store, index, object, default_namespace) {
            Ok(o) => stored.push(o),
            Err(ManifestError::UnsupportedKind {
                api_version, kind, ..
            }) => {
                skipped.push(format!("{api_version}/{kind}"));
            }
            Err(other) => return Err(other),
        }
    }
    Ok((stored, skipped))
}

/// The documents of a multi-document YAML text, empty ones left out.
fn documents(text: &str) -> Result<Vec<Value>, ManifestError> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text).map_err(ManifestError::Parse)?;
    Ok(documents.into_iter().filter(|d| !d.is_null()).collect())
}

fn load_one(
    store: &Store,
    index: usize,
    mut object: Value,
    default_namespace: &str,
) -> Result<Value, ManifestError> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind_name = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = Kind::from_api_version_kind(&api_version, &kind_name).ok_or(
        ManifestError::UnsupportedKind {
            index,
            api_version,
            kind: kind_name,
        },
    )?;
    if kind.info().namespaced && object.pointer("/metadata/namespace").is_none() {
        object["metadata"]["namespace"] = json!(default_namespace);
    }
    let name = name_of(&object).unwrap_or_default().to_string();
    let result = match store.create(kind, object.clone()) {
        Err(StoreError::AlreadyExists { .. }) => store.update(kind, object),
        other => other,
    };
    result.map_err(|source| ManifestError::Store { kind, name, source })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_document_is_stored_in_its_namespace() {
        let store = Store::new();
        let text = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n---\n\
            apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\nrules: []\n---\n";
        let stored = load_yaml(&store, text, "ns1").unwrap();
        assert_eq!(stored.len(), 2);
        assert!(store.get(Kind::ServiceAccount, Some("ns1"), "a").is_some());
        assert!(store.get(Kind::ClusterRole, None, "r").is_some());
        assert!(load_yaml(&store, "apiVersion: x/v1\nkind: Foo\n", "ns1").is_err());
        let (_, skipped) =
            load_yaml_lenient(&store, "apiVersion: v1\nkind: Service\n", "ns1").unwrap();
        assert_eq!(skipped, ["v1/Service"]);
    }
}
