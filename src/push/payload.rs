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

use serde::Deserialize;
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
        Provider::Distribution => serde_json::from_slice(body).map(distribution).map_err(json),
        Provider::DockerHub => serde_json::from_slice(body)
            .map(|p| dockerhub(p, received))
            .map_err(json),
        Provider::GitHub => github(body, received).map_err(json),
        Provider::Harbor => serde_json::from_slice(body).map(harbor).map_err(json),
        Provider::Quay => serde_json::from_slice(body)
            .map(|p| quay(p, received))
            .map_err(json),
    }
}

// --- CNCF distribution: {"events":[{"id","action","target":{"mediaType","repository","tag","digest","url"},"request":{"host"}}]}

#[derive(Deserialize)]
struct Envelope {
    events: Vec<DistributionEvent>,
}

#[derive(Deserialize)]
struct DistributionEvent {
    #[serde(default)]
    id: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: Target,
    #[serde(default)]
    request: RequestInfo,
}

#[derive(Deserialize, Default)]
struct Target {
    #[serde(default, rename = "mediaType")]
    media_type: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize, Default)]
struct RequestInfo {
    #[serde(default)]
    host: Option<String>,
}

fn distribution(envelope: Envelope) -> Vec<Push> {
    envelope
        .events
        .into_iter()
        .filter(|e| e.action == "push" && is_manifest(&e.target.media_type))
        .filter_map(|e| {
            let host = e
                .request
                .host
                .filter(|h| !h.is_empty())
                .or_else(|| e.target.url.as_deref().and_then(url_host))?;
            let tag = e.target.tag.filter(|t| !t.is_empty())?;
            let id = (!e.id.is_empty()).then(|| format!("distribution:{}", e.id));
            push(
                Provider::Distribution,
                &host,
                &e.target.repository,
                tag,
                e.target.digest,
                id,
                0,
            )
        })
        .collect()
}

/// Manifests and indexes (Docker and OCI media types) are what tags point to; blobs are
/// `application/octet-stream` or layer types.
fn is_manifest(media_type: &str) -> bool {
    let media_type = media_type.to_ascii_lowercase();
    media_type.contains("manifest") || media_type.contains("image.index")
}

/// `host[:port]` of a URL such as `https://registry.example.com:5000/v2/app/manifests/sha256:…`.
fn url_host(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

// --- Docker Hub: {"push_data":{"tag","pushed_at"},"repository":{"repo_name"}}

#[derive(Deserialize)]
struct DockerHubPayload {
    push_data: PushData,
    repository: DockerHubRepository,
}

#[derive(Deserialize)]
struct PushData {
    #[serde(default)]
    tag: String,
    #[serde(default)]
    pushed_at: Option<serde_json::Number>,
}

#[derive(Deserialize)]
struct DockerHubRepository {
    repo_name: String,
}

fn dockerhub(payload: DockerHubPayload, received: &Received<'_>) -> Vec<Push> {
    let at = payload
        .push_data
        .pushed_at
        .and_then(|n| n.as_f64())
        // Whole seconds are what Docker Hub sends; the cast only drops a fraction.
        .map_or(received.at_secs, |secs| secs as i64);
    push(
        Provider::DockerHub,
        crate::image::DOCKER_HUB,
        &payload.repository.repo_name,
        payload.push_data.tag,
        None,
        None,
        at,
    )
    .into_iter()
    .collect()
}

// --- GitHub: X-GitHub-Event registry_package | package; {"action","registry_package"|"package":{"package_type","package_version":{"package_url","version","container_metadata":{"tag":{"name","digest"}}}}}

#[derive(Deserialize)]
struct GitHubPayload {
    #[serde(default)]
    action: String,
    #[serde(default)]
    registry_package: Option<GitHubPackage>,
    #[serde(default)]
    package: Option<GitHubPackage>,
}

#[derive(Deserialize)]
struct GitHubPackage {
    #[serde(default)]
    package_type: Option<String>,
    #[serde(default)]
    package_version: Option<GitHubVersion>,
}

#[derive(Deserialize)]
struct GitHubVersion {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    package_url: Option<String>,
    #[serde(default)]
    container_metadata: Option<ContainerMetadata>,
}

#[derive(Deserialize)]
struct ContainerMetadata {
    #[serde(default)]
    tag: Option<ContainerTag>,
}

#[derive(Deserialize)]
struct ContainerTag {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

fn github(body: &[u8], received: &Received<'_>) -> Result<Vec<Push>, serde_json::Error> {
    let event = received.github_event.unwrap_or_default();
    if !matches!(event, "registry_package" | "package") {
        // `ping` and every other event: authenticated, nothing to do. Still JSON, or the sender is wrong.
        serde_json::from_slice::<serde_json::Value>(body)?;
        return Ok(Vec::new());
    }
    let payload: GitHubPayload = serde_json::from_slice(body)?;
    if !matches!(payload.action.as_str(), "published" | "updated") {
        return Ok(Vec::new());
    }
    let Some(package) = payload.registry_package.or(payload.package) else {
        return Ok(Vec::new());
    };
    let container = package
        .package_type
        .as_deref()
        .is_none_or(|t| t.eq_ignore_ascii_case("container") || t.eq_ignore_ascii_case("docker"));
    let Some(version) = package.package_version.filter(|_| container) else {
        return Ok(Vec::new());
    };
    let Some((host, repository, url_tag)) = version.package_url.as_deref().and_then(reference)
    else {
        return Ok(Vec::new());
    };
    let tag_meta = version.container_metadata.and_then(|m| m.tag);
    let (meta_name, meta_digest) = tag_meta.map_or((None, None), |t| (t.name, t.digest));
    // GitHub reports each child manifest of a multi-arch push as an untagged version: no tag, no push.
    let Some(tag) = meta_name.filter(|t| !t.is_empty()).or(url_tag) else {
        return Ok(Vec::new());
    };
    let digest = meta_digest
        .filter(|d| !d.is_empty())
        .or(version.version.filter(|v| v.starts_with("sha256:")));
    let id = received.github_delivery.map(|d| format!("github:{d}"));
    Ok(push(
        Provider::GitHub,
        &host,
        &repository,
        tag,
        digest,
        id,
        received.at_secs,
    )
    .into_iter()
    .collect())
}

// --- Harbor: {"type":"PUSH_ARTIFACT","occur_at","event_data":{"resources":[{"tag","digest","resource_url"}],"repository":{…}}}

#[derive(Deserialize)]
struct HarborPayload {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    occur_at: Option<i64>,
    #[serde(default)]
    event_data: Option<HarborData>,
}

#[derive(Deserialize)]
struct HarborData {
    #[serde(default)]
    resources: Vec<HarborResource>,
}

#[derive(Deserialize)]
struct HarborResource {
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    resource_url: Option<String>,
}

fn harbor(payload: HarborPayload) -> Vec<Push> {
    if !payload.kind.eq_ignore_ascii_case("PUSH_ARTIFACT") {
        return Vec::new();
    }
    let at = payload.occur_at.unwrap_or_default();
    let resources = payload.event_data.map(|d| d.resources).unwrap_or_default();
    resources
        .into_iter()
        .filter_map(|r| {
            let (host, repository, _) = reference(r.resource_url.as_deref()?)?;
            // Harbor writes the digest into `tag` for a push by digest: not a push under a tag.
            let tag = r
                .tag
                .filter(|t| !t.is_empty() && !t.starts_with("sha256:"))?;
            push(
                Provider::Harbor,
                &host,
                &repository,
                tag,
                r.digest,
                None,
                at,
            )
        })
        .collect()
}

// --- Quay: {"docker_url":"quay.io/ns/repo","updated_tags":["latest"]}

#[derive(Deserialize)]
struct QuayPayload {
    docker_url: String,
    #[serde(default)]
    updated_tags: Vec<String>,
}

fn quay(payload: QuayPayload, received: &Received<'_>) -> Vec<Push> {
    let Some((host, repository, _)) = reference(&payload.docker_url) else {
        return Vec::new();
    };
    payload
        .updated_tags
        .into_iter()
        .filter_map(|tag| {
            push(
                Provider::Quay,
                &host,
                &repository,
                tag,
                None,
                None,
                received.at_secs,
            )
        })
        .collect()
}

// --- shared

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

#[cfg(test)]
mod tests;
