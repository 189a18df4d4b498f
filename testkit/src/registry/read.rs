//! Raw manifest reads (and tag lists, deletes) against the harness registry, for tests that show how the registry answers.
//!
//! Input: repository, reference (tag or digest) and the exact `Accept` types to send. Output: [`ManifestAnswer`]
//! with the status, `Docker-Content-Digest`, `Content-Type` and body as received. Auth is applied as the variant
//! needs (Basic, or a pull-scoped token fetched from the harness token server), so only Accept varies.

use anyhow::Context as _;
use bytes::Bytes;
use serde::Deserialize;

use super::{RealRegistry, RegistryAuth};

/// What the registry answered to a manifest HEAD or GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestAnswer {
    /// HTTP status code.
    pub status: u16,
    /// `Docker-Content-Digest`, if sent.
    pub digest: Option<String>,
    /// `Content-Type`, if sent.
    pub content_type: Option<String>,
    /// The body (empty for HEAD).
    pub body: Bytes,
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: String,
}

impl RealRegistry {
    /// `HEAD /v2/<repo>/manifests/<reference>` with exactly `accept` as the Accept types.
    pub async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
        accept: &[&str],
    ) -> anyhow::Result<ManifestAnswer> {
        self.manifest_request(reqwest::Method::HEAD, repo, reference, accept)
            .await
    }

    /// `GET /v2/<repo>/manifests/<reference>` with exactly `accept` as the Accept types.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        accept: &[&str],
    ) -> anyhow::Result<ManifestAnswer> {
        self.manifest_request(reqwest::Method::GET, repo, reference, accept)
            .await
    }

    /// `DELETE /v2/<repo>/manifests/<digest>`: removes the manifest and every tag pointing at it (tags cannot be deleted by
    /// name). Returns the status (`202` when deleted).
    pub async fn delete_manifest(&self, repo: &str, digest: &str) -> anyhow::Result<u16> {
        let url = format!("{}/v2/{repo}/manifests/{digest}", self.base_url());
        let request = self
            .authorize(self.http.delete(&url), repo, "delete")
            .await?;
        let response = request
            .send()
            .await
            .with_context(|| format!("failed to delete {url}"))?;
        Ok(response.status().as_u16())
    }

    /// `GET /v2/<repo>/tags/list`: the tags as the registry lists them (unsorted, unpaginated in 2.8).
    pub async fn list_tags(&self, repo: &str) -> anyhow::Result<Vec<String>> {
        #[derive(Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let url = format!("{}/v2/{repo}/tags/list", self.base_url());
        let request = self.authorize(self.http.get(&url), repo, "pull").await?;
        let list: TagList = request
            .send()
            .await
            .with_context(|| format!("failed to request {url}"))?
            .error_for_status()
            .with_context(|| format!("registry refused {url}"))?
            .json()
            .await
            .with_context(|| format!("failed to decode {url}"))?;
        Ok(list.tags.unwrap_or_default())
    }

    async fn manifest_request(
        &self,
        method: reqwest::Method,
        repo: &str,
        reference: &str,
        accept: &[&str],
    ) -> anyhow::Result<ManifestAnswer> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base_url());
        let mut request = self.http.request(method, &url);
        for media_type in accept {
            request = request.header(http::header::ACCEPT, *media_type);
        }
        request = self.authorize(request, repo, "pull").await?;
        let response = request
            .send()
            .await
            .with_context(|| format!("failed to request {url}"))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (status, digest, content_type) = (
            response.status().as_u16(),
            header("docker-content-digest"),
            header("content-type"),
        );
        let body = response
            .bytes()
            .await
            .with_context(|| format!("failed to read {url}"))?;
        Ok(ManifestAnswer {
            status,
            digest,
            content_type,
            body,
        })
    }

    /// Adds the credentials the variant needs for `actions` (e.g. `pull`) on `repo`.
    async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        repo: &str,
        actions: &str,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        match (&self.auth, self.token_realm()) {
            (RegistryAuth::Token { user, password }, Some(realm)) => {
                let scope = format!("repository:{repo}:{actions}");
                let answer: TokenAnswer = self
                    .http
                    .get(&realm)
                    .query(&[
                        ("service", super::token::SERVICE),
                        ("scope", scope.as_str()),
                    ])
                    .basic_auth(user, Some(password))
                    .send()
                    .await
                    .context("failed to request a token")?
                    .error_for_status()
                    .context("token server refused a token")?
                    .json()
                    .await
                    .context("failed to decode the token")?;
                Ok(request.bearer_auth(answer.token))
            }
            (
                RegistryAuth::Basic { user, password }
                | RegistryAuth::BasicOverTls { user, password },
                _,
            ) => Ok(request.basic_auth(user, Some(password))),
            _ => Ok(request),
        }
    }
}
