//! The registry client's errors.
//!
//! Every variant names what was being done (`target`: "list tags of registry:5000/team/app") and never
//! carries credentials. Errors are `Clone` (sources are behind `Arc`) because one coalesced request
//! answers many waiting lookups. [`RegistryError::reason`] is a short, bounded word for Event reasons
//! and metric labels.

use std::sync::Arc;
use std::time::SystemTime;

/// Why a registry lookup failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused our credentials (or anonymous access).
    #[error("failed to {target}: unauthorized ({detail})")]
    Unauthorized { target: String, detail: String },
    /// The repository, tag or manifest does not exist.
    #[error("failed to {target}: not found")]
    NotFound { target: String },
    /// The registry asked us to slow down; no request is sent to it before `until`.
    #[error("failed to {target}: rate limited by the registry until {}", httpdate::fmt_http_date(*until))]
    RateLimited { target: String, until: SystemTime },
    /// The request did not complete (connection, TLS, timeout).
    #[error("failed to {target}: {detail}")]
    Transport {
        target: String,
        detail: String,
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// The registry answered with a status we cannot use.
    #[error("failed to {target}: registry answered HTTP {status}")]
    Status { target: String, status: u16 },
    /// The registry's answer does not follow the Distribution API.
    #[error("failed to {target}: malformed answer: {detail}")]
    Malformed { target: String, detail: String },
    /// Plain HTTP would be needed for a host not listed in `INSECURE_REGISTRIES`.
    #[error(
        "failed to {target}: {detail}; plain HTTP is used only for hosts listed in INSECURE_REGISTRIES"
    )]
    Insecure { target: String, detail: String },
    /// A cloud credential would go somewhere it must not: plain HTTP, or a host outside its cloud's
    /// registry patterns (docs/cloud-registries.md).
    #[error("failed to {target}: {detail}")]
    CloudRefused { target: String, detail: String },
    /// The controller's cloud identity yielded no credential; `error` names the step that failed.
    #[error(
        "failed to {target}: no registry credential from the controller's {provider} identity: {error}"
    )]
    CloudIdentity {
        target: String,
        provider: &'static str,
        error: super::cloud::CloudError,
    },
    /// The registry refused the credentials of a pull secret; no other credential is tried.
    #[error("failed to {target}: the registry refused the credentials of {secret} ({detail})")]
    SecretRefused {
        target: String,
        secret: String,
        detail: String,
    },
    /// The client could not be built from its configuration.
    #[error("failed to build the registry client: {detail}")]
    Config {
        detail: String,
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
}

impl RegistryError {
    /// A short, bounded reason for Events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "Unauthorized",
            Self::NotFound { .. } => "NotFound",
            Self::RateLimited { .. } => "RateLimited",
            Self::Transport { .. } => "Transport",
            Self::Status { .. } => "RegistryStatus",
            Self::Malformed { .. } => "Malformed",
            Self::Insecure { .. } => "Insecure",
            Self::Config { .. } => "Config",
            Self::CloudRefused { .. } => "CloudCredentialRefused",
            Self::CloudIdentity { .. } => "CloudIdentity",
            Self::SecretRefused { .. } => "PullSecretRefused",
        }
    }

    /// Whether retrying the same request soon may succeed (5xx, transport, rate limit).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::RateLimited { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 408,
            _ => false,
        }
    }

    /// A malformed answer. `detail` may quote the registry (a bad digest, a realm), so it is escaped and
    /// cut short: it ends up in logs, Events and on the terminal of `check`.
    pub(crate) fn malformed(target: &str, detail: impl Into<String>) -> Self {
        Self::Malformed {
            target: target.to_owned(),
            detail: crate::untrusted::echo(&detail.into()).into_owned(),
        }
    }

    pub(crate) fn transport(target: &str, source: reqwest::Error) -> Self {
        Self::Transport {
            target: target.to_owned(),
            detail: describe_transport(&source),
            source: Arc::new(source),
        }
    }
}

/// A one-line description of a reqwest failure: what kind, and the innermost cause.
pub(crate) fn describe_transport(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "request timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut innermost: &dyn std::error::Error = err;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    format!("{kind}: {innermost}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_target_and_reason_is_bounded() {
        let err = RegistryError::NotFound {
            target: "list tags of registry:5000/team/app".into(),
        };
        assert_eq!(
            err.to_string(),
            "failed to list tags of registry:5000/team/app: not found"
        );
        assert_eq!(err.reason(), "NotFound");
        assert!(!err.is_transient());
    }

    #[test]
    fn registry_text_quoted_in_a_malformed_answer_is_escaped_and_cut_short() {
        let quoted = format!("invalid digest `\u{1b}[2J\r\n{}`", "x".repeat(10_000));
        let shown = RegistryError::malformed("resolve r/a:1", quoted).to_string();
        assert!(!shown.contains(['\u{1b}', '\r', '\n']), "{shown:?}");
        assert!(shown.len() < 1_000, "{} bytes", shown.len());
    }
}
