//! The reference grammar of distribution/reference, as small checks over bytes (no regex engine needed).
//!
//! Input: the text of a reference. Output: its parts, or the [`ImageRefProblem`] found first.

use super::{
    DOCKER_HUB, DOCKER_HUB_API_HOST, ImageRef, ImageRefProblem, NAME_MAX_LEN, TAG_MAX_LEN,
};

pub(super) fn parse_parts(input: &str) -> Result<ImageRef, ImageRefProblem> {
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
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
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
            return Err(ImageRefProblem::UnsupportedDigestAlgorithm(
                other.to_owned(),
            ));
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
