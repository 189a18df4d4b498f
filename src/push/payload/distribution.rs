//! CNCF distribution (Docker Registry, GitLab's registry) `notifications` envelopes: pushes of a manifest
//! or index under a tag; pulls (HEAD and GET), blob pushes and deletes yield nothing.

use serde::Deserialize;

use super::{Provider, Push, push};

// Shape: CNCF distribution: {"events":[{"id","action","target":{"mediaType","repository","tag","digest","url"},"request":{"host"}}]}

#[derive(Deserialize)]
pub(super) struct Envelope {
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

pub(super) fn distribution(envelope: Envelope) -> Vec<Push> {
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
