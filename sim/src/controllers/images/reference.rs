//! Parsing of container image references the way container runtimes read them
//! (`[host[:port]/]path[:tag][@digest]`, Docker Hub names normalized to `docker.io/library/…`).

use super::PullError;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host (with port), `docker.io` when the reference names none.
    pub registry: String,
    /// Repository path within the registry.
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest is given.
    pub tag: Option<String>,
    /// Pinned digest (`sha256:…`), if any.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses an image reference.
    pub fn parse(image: &str) -> Result<Self, PullError> {
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) if d.contains(':') => (r, Some(d.to_string())),
            Some(_) => return Err(PullError::InvalidReference),
            None => (image, None),
        };
        let (name, tag) = split_tag(rest);
        let (registry, repository) = split_registry(name);
        if repository.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(PullError::InvalidReference);
        }
        let tag = tag.or_else(|| digest.is_none().then(|| "latest".to_string()));
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, the prefix of `imageID`.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository:tag` (tag `latest` when only a digest was given).
    pub fn tagged_name(&self) -> String {
        format!(
            "{}:{}",
            self.repository_name(),
            self.tag.as_deref().unwrap_or("latest")
        )
    }

    /// What the kubelet reports as `imageID` once `digest` was pulled.
    pub fn image_id(&self, digest: &str) -> String {
        format!("{}@{digest}", self.repository_name())
    }

    /// The manifest reference to ask the registry for: the pinned digest, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

fn split_tag(name: &str) -> (&str, Option<String>) {
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => (
            &name[..last_slash + i],
            Some(name[last_slash + i + 1..].to_string()),
        ),
        None => (name, None),
    }
}

fn split_registry(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((host, path)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            (host.to_string(), path.to_string())
        }
        Some(_) => ("docker.io".to_string(), name.to_string()),
        None => ("docker.io".to_string(), format!("library/{name}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_names_are_normalized_like_containerd_does() {
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(r.tagged_name(), "docker.io/library/nginx:latest");
        let r = ImageRef::parse("bitnami/redis:7").unwrap();
        assert_eq!(r.image_id("sha256:ab"), "docker.io/bitnami/redis@sha256:ab");
    }

    #[test]
    fn registry_ports_are_not_mistaken_for_tags() {
        let r = ImageRef::parse("127.0.0.1:5000/team/app").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = ImageRef::parse("localhost/app:1.2").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("localhost", Some("1.2"))
        );
    }

    #[test]
    fn pinned_references_ask_for_the_digest() {
        let r = ImageRef::parse("reg.io/app:1.0@sha256:abc").unwrap();
        assert_eq!(r.manifest_reference(), "sha256:abc");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert!(ImageRef::parse("app@nodigest").is_err());
        assert!(ImageRef::parse("reg.io/").is_err());
    }
}
