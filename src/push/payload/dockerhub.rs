//! Docker Hub repository webhooks: one push per request, always on `docker.io`, no digest.

use serde::Deserialize;

use super::{Provider, Push, Received, push};

// Shape: Docker Hub: {"push_data":{"tag","pushed_at"},"repository":{"repo_name"}}

#[derive(Deserialize)]
pub(super) struct DockerHubPayload {
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

pub(super) fn dockerhub(payload: DockerHubPayload, received: &Received<'_>) -> Vec<Push> {
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
