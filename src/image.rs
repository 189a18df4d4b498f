//! Image references: parse what a user wrote in a pod spec, and write it back in the same spelling.
//!
//! Input: a string such as `nginx:1.20.0` or `registry.example.com:5000/team/app:2.0.0@sha256:…`.
//! Output: an [`ImageRef`] with the registry host, the repository, the tag and the digest, following the
//! Docker/OCI reference grammar (distribution/reference, docs/annotations.md#image-references):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ host [ ":" port ] "/" ] component ( "/" component )*
//! component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest     := ( "sha256:" 64 hex | "sha512:" 128 hex )   (lowercase hex)
//! ```
//!
//! The first path component is a registry host only if it contains `.` or `:` or is `localhost`;
//! otherwise the name is a Docker Hub repository (`myregistry/myapp` is on Docker Hub) and a single
//! component gets the `library/` prefix. The tag is found from the *last* `:` that is not followed by a
//! `/`, so `registry:5000/app` has a port and no tag: parsing never splits on the first `:`.
//!
//! Digests: `sha256` and `sha512` are accepted (the two algorithms the OCI image spec registers); any
//! other algorithm is rejected with [`ImageRefProblem::UnsupportedDigestAlgorithm`].
//!
//! WHY the original spelling is kept: the controller writes images back into workloads. Writing
//! `docker.io/library/nginx:…` where the user wrote `nginx:…` would make every diff, GitOps tool and
//! human reader see a change of name, so [`ImageRef::with_tag_and_digest`] reuses the name as written.

use std::{fmt, str::FromStr};

mod grammar;
#[cfg(test)]
mod tests;

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// Longest name (host and repository) the grammar allows.
const NAME_MAX_LEN: usize = 255;
/// Longest tag the grammar allows.
const TAG_MAX_LEN: usize = 128;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// The name as the user wrote it (no tag, no digest), e.g. `nginx` or `docker.io/nginx`.
    name: String,
    /// Normalised registry, e.g. `docker.io`, `registry:5000`, `localhost`.
    registry: String,
    /// Normalised repository, e.g. `library/nginx`.
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// The reference could not be parsed. Display quotes the input, the problem and an example.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "failed to parse image reference '{}': {problem} \
     (expected e.g. 'nginx:1.25.0' or 'registry.example.com:5000/team/app:2.0.0')",
    crate::untrusted::echo(.input)
)]
pub struct ImageRefError {
    /// The text that was given.
    pub input: String,
    /// What is wrong with it.
    pub problem: ImageRefProblem,
}

/// What is wrong with an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefProblem {
    #[error("the reference is empty")]
    Empty,
    #[error("the reference contains whitespace")]
    Whitespace,
    #[error("the repository name is missing")]
    MissingName,
    #[error("the name is longer than 255 characters")]
    NameTooLong,
    #[error("the repository name must be lowercase, found '{}'", crate::untrusted::echo(.0))]
    NotLowercase(String),
    #[error("path component '{}' is not lowercase letters and digits joined by '.', '_', '__' or '-'", crate::untrusted::echo(.0))]
    InvalidPathComponent(String),
    #[error("registry host '{}' is not a valid host name", crate::untrusted::echo(.0))]
    InvalidHost(String),
    #[error("registry port '{}' is not a number from 1 to 65535", crate::untrusted::echo(.0))]
    InvalidPort(String),
    #[error("tag '{}' is not 1-128 letters, digits, '_', '.', '-' starting with a letter, digit or '_'", crate::untrusted::echo(.0))]
    InvalidTag(String),
    #[error("digest '{}' is not '<algorithm>:<lowercase hex>' of the right length", crate::untrusted::echo(.0))]
    InvalidDigest(String),
    #[error("digest algorithm '{}' is not supported (use sha256 or sha512)", crate::untrusted::echo(.0))]
    UnsupportedDigestAlgorithm(String),
}

impl ImageRefError {
    /// A short, bounded category for Event reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        match self.problem {
            ImageRefProblem::Empty | ImageRefProblem::MissingName => "ImageNameMissing",
            ImageRefProblem::Whitespace
            | ImageRefProblem::NameTooLong
            | ImageRefProblem::NotLowercase(_)
            | ImageRefProblem::InvalidPathComponent(_) => "ImageNameInvalid",
            ImageRefProblem::InvalidHost(_) | ImageRefProblem::InvalidPort(_) => {
                "ImageRegistryInvalid"
            }
            ImageRefProblem::InvalidTag(_) => "ImageTagInvalid",
            ImageRefProblem::InvalidDigest(_) | ImageRefProblem::UnsupportedDigestAlgorithm(_) => {
                "ImageDigestInvalid"
            }
        }
    }
}

impl ImageRef {
    /// Parses a reference such as `nginx:1.20.0` or `localhost:5000/app:v1@sha256:…`.
    pub fn parse(input: &str) -> Result<ImageRef, ImageRefError> {
        grammar::parse_parts(input).map_err(|problem| ImageRefError {
            input: input.to_owned(),
            problem,
        })
    }

    /// The normalised registry: `docker.io`, `registry:5000`, `localhost`, `ghcr.io`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The normalised repository inside the registry: `library/nginx`, `team/app`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag as written, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The tag that is meant: the written tag, or `latest` when neither tag nor digest is written.
    /// A digest-only reference (`app@sha256:…`) has no tag and yields `None`.
    pub fn effective_tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => Some(tag),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }

    /// The digest (`sha256:…`), if pinned.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The name as written, without tag or digest (`nginx`, `docker.io/nginx`, `registry:5000/app`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host that serves the registry API: `registry-1.docker.io` for Docker Hub, else the registry.
    pub fn registry_api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// The image string to write: the name as the user spelled it, then `:tag@digest`.
    ///
    /// `nginx:1.20.0` with (`1.21.0`, `sha256:…`) gives `nginx:1.21.0@sha256:…`.
    pub fn with_tag_and_digest(&self, tag: &str, digest: &str) -> String {
        format!("{}:{tag}@{digest}", self.name)
    }

    /// The fully qualified form, e.g. `docker.io/library/nginx:1.20.0`, for logs and cache keys.
    pub fn canonical(&self) -> String {
        let mut out = format!("{}/{}", self.registry, self.repository);
        push_tag_and_digest(&mut out, self.tag(), self.digest());
        out
    }
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

/// The original form: the name as written plus the tag and digest.
impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name.clone();
        push_tag_and_digest(&mut out, self.tag(), self.digest());
        f.write_str(&out)
    }
}

fn push_tag_and_digest(out: &mut String, tag: Option<&str>, digest: Option<&str>) {
    if let Some(tag) = tag {
        out.push(':');
        out.push_str(tag);
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest);
    }
}
