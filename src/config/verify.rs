//! `VERIFY_KEYS` and `VERIFY_REQUIRED_FOR` (docs/settings.md#signatures).
//!
//! Input: the raw variables. Output: a [`VerifyConfig`] with the keys loaded, or a [`ConfigError`] naming the
//! variable, the file at fault and the fix.

use super::{ConfigError, set};
use crate::verify::{KeySet, RequiredFor, VerifyConfig};

/// `VERIFY_KEYS` is loaded now, so a bad key stops startup rather than rejecting every signature later.
pub(super) fn parse(
    keys: &Option<String>,
    required_for: &Option<String>,
) -> Result<VerifyConfig, ConfigError> {
    let keys = set(keys)
        .map(|path| {
            KeySet::load(std::path::Path::new(path)).map_err(|e| ConfigError {
                variable: "VERIFY_KEYS",
                value: path.to_owned(),
                problem: e.to_string(),
                example: "/etc/watch-cluster/verify-keys",
            })
        })
        .transpose()?
        .map(std::sync::Arc::new);
    let required = match set(required_for) {
        None => RequiredFor::default(),
        Some(value) => {
            let error = |problem: String| ConfigError {
                variable: "VERIFY_REQUIRED_FOR",
                value: value.to_owned(),
                problem,
                example: "ghcr.io/acme/**,registry.example.com/*/api",
            };
            let parsed = RequiredFor::parse(value).map_err(|e| error(e.to_string()))?;
            if !parsed.is_empty() && keys.is_none() {
                return Err(error(
                    "set without VERIFY_KEYS: there is no key to verify with; set VERIFY_KEYS to the public keys too"
                        .into(),
                ));
            }
            parsed
        }
    };
    Ok(VerifyConfig {
        keys,
        required_for: required,
    })
}
