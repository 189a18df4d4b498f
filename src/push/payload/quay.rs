//! Quay repository notifications (`repo_push`): one push per updated tag, no digest.

use serde::Deserialize;

use super::{Provider, Push, Received, push, reference};

// Shape: Quay: {"docker_url":"quay.io/ns/repo","updated_tags":["latest"]}

#[derive(Deserialize)]
pub(super) struct QuayPayload {
    docker_url: String,
    #[serde(default)]
    updated_tags: Vec<String>,
}

pub(super) fn quay(payload: QuayPayload, received: &Received<'_>) -> Vec<Push> {
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
