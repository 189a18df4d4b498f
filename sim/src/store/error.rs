//! Store errors, carrying what the HTTP layer needs to answer with a Kubernetes `Status`.

use super::Kind;

/// A failed store operation, carrying what the HTTP layer needs for a Kubernetes `Status`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        kind: Kind,
        resource: String,
        name: String,
    },
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        kind: Kind,
        resource: String,
        name: String,
    },
    #[error(
        "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
    )]
    Conflict {
        kind: Kind,
        resource: String,
        name: String,
    },
    #[error("{qualified_kind} \"{name}\" is invalid: {reason}")]
    Invalid {
        kind: Kind,
        qualified_kind: String,
        name: String,
        reason: String,
    },
}

impl StoreError {
    /// HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            StoreError::NotFound { .. } => 404,
            StoreError::AlreadyExists { .. } | StoreError::Conflict { .. } => 409,
            StoreError::Invalid { .. } => 422,
        }
    }

    /// Kubernetes `Status.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "NotFound",
            StoreError::AlreadyExists { .. } => "AlreadyExists",
            StoreError::Conflict { .. } => "Conflict",
            StoreError::Invalid { .. } => "Invalid",
        }
    }

    /// The kind and object name the error is about.
    pub fn subject(&self) -> (Kind, &str) {
        match self {
            StoreError::NotFound { kind, name, .. }
            | StoreError::AlreadyExists { kind, name, .. }
            | StoreError::Conflict { kind, name, .. }
            | StoreError::Invalid { kind, name, .. } => (*kind, name),
        }
    }

    pub(crate) fn not_found(kind: Kind, name: &str) -> StoreError {
        StoreError::NotFound {
            kind,
            resource: kind.qualified_plural(),
            name: name.to_string(),
        }
    }

    pub(crate) fn invalid(kind: Kind, name: &str, reason: impl Into<String>) -> StoreError {
        StoreError::Invalid {
            kind,
            qualified_kind: kind.qualified_kind(),
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}

/// A watch could not start because the requested resourceVersion is older than the history.
#[derive(Debug, thiserror::Error)]
#[error("too old resource version: {requested} ({oldest})")]
pub struct Expired {
    pub requested: u64,
    /// The oldest resourceVersion a watch may still start from.
    pub oldest: u64,
}
