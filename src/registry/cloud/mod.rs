//! Registry credentials from the controller's own cloud identity (docs/cloud-registries.md).
//!
//! Input: the provider's standard environment (workload identity files and endpoint overrides) and an HTTP
//! client for the credential sources. Output: an [`Issued`] registry credential with the instant it expires,
//! or a [`CloudError`] naming the step that failed.
//!
//! Placeholder of the common part for the GCP and Azure providers; the AWS branch owns this module.

pub mod azure;
pub mod gcp;

use std::time::SystemTime;

use url::Url;

use super::Credential;

/// A registry credential issued from a cloud identity, usable until `expires_at`.
pub struct Issued {
    /// What is presented to the registry (Basic, or to its token realm).
    pub credential: Credential,
    /// When the credential stops being accepted.
    pub expires_at: SystemTime,
}

/// A failed step of obtaining a cloud credential. Never holds a secret.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct CloudError {
    /// The step, as users know it: "Entra ID token", "ACR /oauth2/exchange".
    pub step: &'static str,
    /// What went wrong and how to fix it.
    pub message: String,
}

/// The endpoint named by the override variable `var`, else `default`. An `http://` override is accepted only
/// for a loopback host.
pub fn endpoint(var: &str, default: &str) -> Result<Url, CloudError> {
    let raw = std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    let text = raw.as_deref().unwrap_or(default).trim();
    let bad = |message: String| CloudError {
        step: "endpoint override",
        message,
    };
    let url = Url::parse(text).map_err(|e| bad(format!("{var}=`{text}` is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(bad(format!(
            "{var}=`{text}` must be an https:// URL (http:// only for a loopback host)"
        ))),
    }
}
