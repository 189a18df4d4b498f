//! What each registry's notification says, read into [`Push`]es: pure, no I/O.
//!
//! Input: the provider, the request body and what the listener knows besides it ([`Received`]: GitHub's
//! delivery id and event name, the arrival time). Output: the pushes of a manifest or an index under a
//! tag, normalised as image references are (SPEC §3: lowercase, Docker Hub is `docker.io` with
//! `library/` for single names), each with a deduplication id. Everything else a registry reports
//! (blob pushes, pulls — distribution reports HEAD and GET as pulls —, deletes, scans, pushes by digest
//! only, other GitHub events) yields no push: the listener answers 2xx and ignores it, because senders
//! such as distribution retry any other answer forever.
//!
//! A body that is not the provider's JSON shape is a [`PayloadError`] (400). Fields a provider leaves
//! out in some versions are optional here; a push that lacks what matching needs (host, repository,
//! tag) is skipped rather than failing the whole envelope, so one odd event does not make a sender
//! retry the others forever.

use sha2::{Digest as _, Sha256};

/// Who sent an event: one route and one token each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// CNCF distribution (Docker Registry) `notifications.endpoints`, also GitLab's registry.
    Distribution,
    /// Docker Hub repository webhooks.
    DockerHub,
    /// GitHub `registry_package` / `package` events (GHCR).
    GitHub,
    /// Harbor webhook policies.
    Harbor,
    /// Quay repository notifications.
    Quay,
}

impl Provider {
    /// Every provider, in the order of the docs.
    pub const ALL: [Provider; 5] = [
        Provider::Distribution,
        Provider::DockerHub,
        Provider::GitHub,
        Provider::Harbor,
        Provider::Quay,
    ];

    /// Lowercase name, as in routes, ids and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Distribution => "distribution",
            Provider::DockerHub => "dockerhub",
            Provider::GitHub => "github",
            Provider::Harbor => "harbor",
            Provider::Quay => "quay",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One push of a manifest or index under a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// Registry host, lowercase; Docker Hub is `docker.io`.
    pub host: String,
    /// Repository path, lowercase; `library/` added for single Docker Hub names.
    pub repository: String,
    /// The tag pushed.
    pub tag: String,
    /// The digest the event reports, if any. Informational only: checks resolve the digest themselves.
    pub digest: Option<String>,
    /// The tag is a signature (`sha256-<hex>.sig`, or the referrers tag fallback `sha256-<hex>`): the
    /// push may complete a signature (§13) and is never a candidate.
    pub signature: bool,
    /// Deduplication id: distribution `events[].id`, GitHub `X-GitHub-Delivery`, else a hash of
    /// (host, repository, tag, digest or time).
    pub id: String,
}

/// What the listener knows of a request besides its body.
#[derive(Debug, Clone, Default)]
pub struct Received<'a> {
    /// GitHub `X-GitHub-Event` (`registry_package`, `package`, `ping`…).
    pub github_event: Option<&'a str>,
    /// GitHub `X-GitHub-Delivery`.
    pub github_delivery: Option<&'a str>,
    /// Arrival time, Unix seconds: the "time" of the id of payloads that carry neither digest nor time.
    pub at_secs: i64,
}

/// A body that is not the provider's payload.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON, or not the provider's JSON shape.
    #[error("failed to read the {provider} payload")]
    Json {
        /// The provider whose shape was expected.
        provider: Provider,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
}

/// The pushes in `body`, sent by `provider`. An empty list: nothing that counts (see the module docs).
pub fn parse(
    provider: Provider,
    body: &[u8],
    received: &Received<'_>,
) -> Result<Vec<Push>, PayloadError> {
    let json = |source| PayloadError::Json { provider, source };
    match provider {
        Provider::Distribution => serde_json::from_slice(body)
            .map(distribution::distribution)
            .map_err(json),
        Provider::DockerHub => serde_json::from_slice(body)
            .map(|p| dockerhub::dockerhub(p, received))
            .map_err(json),
        Provider::GitHub => github::github(body, received).map_err(json),
        Provider::Harbor => serde_json::from_slice(body)
            .map(harbor::harbor)
            .map_err(json),
        Provider::Quay => serde_json::from_slice(body)
            .map(|p| quay::quay(p, received))
            .map_err(json),
    }
}

/// A normalised push, or `None` without a repository or tag.
fn push(
    provider: Provider,
    host: &str,
    repository: &str,
    tag: String,
    digest: Option<String>,
    id: Option<String>,
    at_secs: i64,
) -> Option<Push> {
    let tag = tag.trim().to_owned();
    if tag.is_empty() || repository.trim_matches('/').is_empty() || host.is_empty() {
        return None;
    }
    let (host, repository) = normalise(host, repository);
    let digest = digest.filter(|d| !d.is_empty());
    let id = id.unwrap_or_else(|| {
        // Without an id from the sender, the same (repository, tag, digest) is the same push; without a
        // digest, the sender's time (or the arrival second) tells a re-push of the tag from a replay.
        let when = digest.clone().unwrap_or_else(|| at_secs.to_string());
        let hash = Sha256::digest(format!("{host}/{repository}:{tag}@{when}").as_bytes());
        format!("{provider}:{}", hex::encode(hash))
    });
    Some(Push {
        signature: is_signature_tag(&tag),
        host,
        repository,
        tag,
        digest,
        id,
    })
}

/// `(host, repository)` normalised as image references are (SPEC §3): lowercase; Docker Hub's hosts
/// are `docker.io`, where a single name gets `library/`.
pub fn normalise(host: &str, repository: &str) -> (String, String) {
    let host = host.trim().to_ascii_lowercase();
    let host = match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            crate::image::DOCKER_HUB.to_owned()
        }
        _ => host,
    };
    let repository = repository.trim().trim_matches('/').to_ascii_lowercase();
    let repository = if host == crate::image::DOCKER_HUB && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    (host, repository)
}

/// `sha256-<64 hex>.sig` (cosign) or `sha256-<64 hex>` (the referrers tag fallback).
pub fn is_signature_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let hex = rest.strip_suffix(".sig").unwrap_or(rest);
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `(host, repository, tag)` of a full reference a registry reports, e.g. `ghcr.io/o/app:1.0`,
/// `harbor.example.com/lib/app@sha256:…`, `quay.io/ns/repo`. The first component is the host: these
/// come from the registry itself and always name it. The tag is after the last `:` not followed by `/`
/// (a port is followed by one).
fn reference(reference: &str) -> Option<(String, String, Option<String>)> {
    let reference = reference
        .strip_prefix("https://")
        .or_else(|| reference.strip_prefix("http://"))
        .unwrap_or(reference);
    let name = reference.split_once('@').map_or(reference, |(n, _)| n);
    let (name, tag) = match name.rfind(':') {
        Some(at) if !name[at + 1..].contains('/') => (&name[..at], Some(&name[at + 1..])),
        _ => (name, None),
    };
    let (host, path) = name.split_once('/')?;
    let path = path.trim_matches('/');
    if host.is_empty() || path.is_empty() {
        return None;
    }
    let tag = tag.filter(|t| !t.is_empty()).map(str::to_owned);
    Some((host.to_owned(), path.to_owned(), tag))
}

mod distribution;
mod dockerhub;
mod github;
mod harbor;
mod quay;

#[cfg(test)]
mod tests;
