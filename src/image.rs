//! Image references: parse what a user wrote in a pod spec, and write it back in the same spelling.
//!
//! Input: a string such as `nginx:1.20.0` or `registry.example.com:5000/team/app:2.0.0@sha256:…`.
//! Output: an [`ImageRef`] with the registry host, the repository, the tag and the digest, following the
//! Docker/OCI reference grammar (distribution/reference, SPEC §3):
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
    "failed to parse image reference '{input}': {problem} \
     (expected e.g. 'nginx:1.25.0' or 'registry.example.com:5000/team/app:2.0.0')"
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
    #[error("the repository name must be lowercase, found '{0}'")]
    NotLowercase(String),
    #[error("path component '{0}' is not lowercase letters and digits joined by '.', '_', '__' or '-'")]
    InvalidPathComponent(String),
    #[error("registry host '{0}' is not a valid host name")]
    InvalidHost(String),
    #[error("registry port '{0}' is not a number from 1 to 65535")]
    InvalidPort(String),
    #[error("tag '{0}' is not 1-128 letters, digits, '_', '.', '-' starting with a letter, digit or '_'")]
    InvalidTag(String),
    #[error("digest '{0}' is not '<algorithm>:<lowercase hex>' of the right length")]
    InvalidDigest(String),
    #[error("digest algorithm '{0}' is not supported (use sha256 or sha512)")]
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
            ImageRefProblem::InvalidHost(_) | ImageRefProblem::InvalidPort(_) => "ImageRegistryInvalid",
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
        parse_parts(input).map_err(|problem| ImageRefError {
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

fn parse_parts(input: &str) -> Result<ImageRef, ImageRefProblem> {
    if input.is_empty() {
        return Err(ImageRefProblem::Empty);
    }
    if input.chars().any(char::is_whitespace) {
        return Err(ImageRefProblem::Whitespace);
    }
    let (rest, digest) = match input.split_once('@') {
        Some((rest, digest)) => (rest, Some(validate_digest(digest)?)),
        None => (input, None),
    };
    let (name, tag) = split_tag(rest);
    if let Some(tag) = tag {
        validate_tag(tag)?;
    }
    if name.is_empty() {
        return Err(ImageRefProblem::MissingName);
    }
    if name.len() > NAME_MAX_LEN {
        return Err(ImageRefProblem::NameTooLong);
    }
    let (registry, repository) = split_registry(name)?;
    Ok(ImageRef {
        name: name.to_owned(),
        registry,
        repository,
        tag: tag.map(str::to_owned),
        digest: digest.map(str::to_owned),
    })
}

/// Splits `name[:tag]` at the last `:` that is not followed by a `/` (a port is followed by one).
fn split_tag(rest: &str) -> (&str, Option<&str>) {
    match rest.rfind(':') {
        Some(at) if !rest[at + 1..].contains('/') => (&rest[..at], Some(&rest[at + 1..])),
        _ => (rest, None),
    }
}

/// Splits off the registry host (if the first component looks like one) and normalises Docker Hub.
fn split_registry(name: &str) -> Result<(String, String), ImageRefProblem> {
    let (registry, path) = match name.split_once('/') {
        Some((first, path)) if looks_like_host(first) => {
            validate_host_port(first)?;
            (first, path)
        }
        _ => (DOCKER_HUB, name),
    };
    validate_path(path)?;
    let registry = if registry == "index.docker.io" || registry == DOCKER_HUB_API_HOST {
        DOCKER_HUB
    } else {
        registry
    };
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_owned()
    };
    Ok((registry.to_owned(), repository))
}

fn looks_like_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

fn validate_host_port(host_port: &str) -> Result<(), ImageRefProblem> {
    let (host, port) = if let Some(inner) = host_port.strip_prefix('[') {
        // Bracketed IPv6 literal, e.g. `[::1]:5000`.
        let (addr, after) = inner
            .split_once(']')
            .ok_or_else(|| ImageRefProblem::InvalidHost(host_port.to_owned()))?;
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(ImageRefProblem::InvalidHost(host_port.to_owned()));
        }
        match after {
            "" => return Ok(()),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return Err(ImageRefProblem::InvalidHost(host_port.to_owned())),
            },
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(host_port), None),
        }
    };
    if let Some(host) = host
        && !is_valid_host(host)
    {
        return Err(ImageRefProblem::InvalidHost(host.to_owned()));
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !valid {
            return Err(ImageRefProblem::InvalidPort(port.to_owned()));
        }
    }
    Ok(())
}

/// Dot-separated labels of letters, digits and inner hyphens (uppercase is allowed in hosts).
fn is_valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn validate_path(path: &str) -> Result<(), ImageRefProblem> {
    if path.is_empty() {
        return Err(ImageRefProblem::MissingName);
    }
    for component in path.split('/') {
        if component.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ImageRefProblem::NotLowercase(path.to_owned()));
        }
        if !is_valid_component(component) {
            return Err(ImageRefProblem::InvalidPathComponent(component.to_owned()));
        }
    }
    Ok(())
}

/// `[a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*`
fn is_valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        let run = rest.iter().take_while(|b| alnum(b)).count();
        rest = &rest[run..];
        let sep = rest.iter().take_while(|b| !alnum(b)).count();
        let separator = &rest[..sep];
        let ok = separator.is_empty()
            || separator == b"."
            || separator == b"_"
            || separator == b"__"
            || separator.iter().all(|b| *b == b'-');
        if !ok {
            return false;
        }
        rest = &rest[sep..];
    }
    true
}

fn validate_tag(tag: &str) -> Result<(), ImageRefProblem> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let valid = tag.len() <= TAG_MAX_LEN
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ImageRefProblem::InvalidTag(tag.to_owned()))
    }
}

/// Checks `sha256:<64 hex>` or `sha512:<128 hex>` and returns it unchanged.
pub(crate) fn validate_digest(digest: &str) -> Result<&str, ImageRefProblem> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| ImageRefProblem::InvalidDigest(digest.to_owned()))?;
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        other
            if !other.is_empty()
                && other
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
        {
            return Err(ImageRefProblem::UnsupportedDigestAlgorithm(other.to_owned()));
        }
        _ => return Err(ImageRefProblem::InvalidDigest(digest.to_owned())),
    };
    let hex_ok = hex.len() == expected_len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex_ok {
        Ok(digest)
    } else {
        Err(ImageRefProblem::InvalidDigest(digest.to_owned()))
    }
}
