//! Harbor webhook policies, default payload format: `PUSH_ARTIFACT` resources pushed under a tag.

use serde::Deserialize;

use super::{Provider, Push, push, reference};

// Shape: Harbor: {"type":"PUSH_ARTIFACT","occur_at","event_data":{"resources":[{"tag","digest","resource_url"}],"repository":{…}}}

#[derive(Deserialize)]
pub(super) struct HarborPayload {
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

pub(super) fn harbor(payload: HarborPayload) -> Vec<Push> {
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
