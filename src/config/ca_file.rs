//! `REGISTRY_CA_FILE` checked at startup: a file of PEM certificates, each one parseable.
//!
//! Input: the path as given. Output: the path, or a [`ConfigError`] saying what the file holds instead
//! (another PEM block, binary DER, plain text, nothing) and what a certificate looks like. Checked here,
//! before the start line, because the registry client reads the file only once the controller runs, and
//! its error then reads like a registry problem.

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, pem::PemObject};

use super::ConfigError;
use crate::untrusted::echo;

/// What the error says is expected instead.
const EXPECTED: &str = "expected one or more PEM certificates, each from a line \
                        `-----BEGIN CERTIFICATE-----` to a line `-----END CERTIFICATE-----`";

/// The CA file at `path`, checked to hold certificates and nothing the TLS stack would refuse.
pub(super) fn parse(path: &str) -> Result<PathBuf, ConfigError> {
    let path = PathBuf::from(path);
    let bytes = match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => std::fs::read(&path),
        Ok(_) => return Err(error(&path, "is not a file".into())),
        Err(e) => Err(e),
    }
    .map_err(|e| error(&path, format!("cannot be read ({e})")))?;
    check(&bytes).map_err(|problem| error(&path, problem))?;
    Ok(path)
}

/// `Ok` when `pem` holds at least one certificate and every certificate block parses.
fn check(pem: &[u8]) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("holds a malformed PEM block ({e}); {EXPECTED}"))?;
        roots.add(cert).map_err(|e| {
            format!("holds a certificate block that is not an X.509 certificate ({e}); {EXPECTED}")
        })?;
        found += 1;
    }
    if found == 0 {
        return Err(format!(
            "holds no certificate: found {}; {EXPECTED}",
            describe(pem)
        ));
    }
    Ok(())
}

/// What a file without certificates holds, in a few words.
fn describe(bytes: &[u8]) -> String {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return format!(
            "binary data ({} bytes; a DER certificate can be converted with \
             `openssl x509 -inform der -in ca.der -out ca.pem`)",
            bytes.len()
        );
    };
    let labels: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .map(|l| l.trim_end_matches('-'))
        .collect();
    if !labels.is_empty() {
        return format!("PEM blocks of another kind: {}", echo(&labels.join(", ")));
    }
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        None => "an empty file".into(),
        Some(first) => format!("text starting with {:?}", echo(first)),
    }
}

fn error(path: &Path, problem: String) -> ConfigError {
    ConfigError {
        variable: "REGISTRY_CA_FILE",
        value: path.display().to_string(),
        problem,
        example: "/etc/watch-cluster/ca.pem",
    }
}
