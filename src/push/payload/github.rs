//! GitHub `registry_package` and `package` events (GHCR): `published` or `updated` container versions
//! with a tag; `ping` and every other event yield nothing.

use serde::Deserialize;

use super::{Provider, Push, Received, push, reference};

// Shape: GitHub: X-GitHub-Event registry_package | package; {"action","registry_package"|"package":{"package_type","package_version":{"package_url","version","container_metadata":{"tag":{"name","digest"}}}}}

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

pub(super) fn github(body: &[u8], received: &Received<'_>) -> Result<Vec<Push>, serde_json::Error> {
    let form = form_payload(body);
    let body = form.as_deref().unwrap_or(body);
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

/// The JSON of a webhook set to GitHub's default content type, `application/x-www-form-urlencoded`:
/// `payload=<url-encoded JSON>`. The signature covers the form body, which the listener checked first.
fn form_payload(body: &[u8]) -> Option<Vec<u8>> {
    if !body.starts_with(b"payload=") {
        return None;
    }
    url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "payload")
        .map(|(_, json)| json.into_owned().into_bytes())
}
