//! `VERIFY_REQUIRED_FOR`: images that must be verified whatever their annotations say (docs/settings.md#signatures).
//!
//! Input: comma-separated globs over the normalised `host/repository` of SPEC §3 (`docker.io/library/nginx`),
//! `*` matching within one path component and `**` across components. Output: [`RequiredFor::matches`].

use crate::image::ImageRef;

/// The parsed globs; empty requires nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequiredFor {
    globs: Vec<Vec<String>>,
    written: Vec<String>,
}

/// A glob that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to read the glob {glob:?}: {problem}")]
pub struct GlobError {
    /// The glob as written.
    pub glob: String,
    /// What is wrong.
    pub problem: &'static str,
}

impl RequiredFor {
    /// Parses `ghcr.io/acme/**,registry.example.com/*/api`; blanks between commas are ignored.
    pub fn parse(value: &str) -> Result<Self, GlobError> {
        let mut required = RequiredFor::default();
        for glob in value.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let error = |problem| GlobError {
                glob: glob.to_owned(),
                problem,
            };
            let lower = glob.to_ascii_lowercase();
            let parts: Vec<String> = lower.split('/').map(str::to_owned).collect();
            if parts.len() < 2 {
                return Err(error(
                    "expected host/repository, such as docker.io/library/nginx or ghcr.io/acme/**",
                ));
            }
            if parts.iter().any(String::is_empty) {
                return Err(error(
                    "has an empty path component (`//` or a trailing `/`)",
                ));
            }
            if parts.iter().any(|p| p.contains("**") && p != "**") {
                return Err(error(
                    "`**` must be a whole path component, as in ghcr.io/acme/**",
                ));
            }
            required.globs.push(parts);
            required.written.push(glob.to_owned());
        }
        Ok(required)
    }

    /// Whether nothing is required.
    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    /// The globs as written, for logs.
    pub fn globs(&self) -> &[String] {
        &self.written
    }

    /// Whether `image` must be verified.
    pub fn requires(&self, image: &ImageRef) -> bool {
        self.matches(&format!("{}/{}", image.registry(), image.repository()))
    }

    /// Whether the normalised `host/repository` matches one of the globs.
    pub fn matches(&self, host_repository: &str) -> bool {
        let lower = host_repository.to_ascii_lowercase();
        let path: Vec<&str> = lower.split('/').collect();
        self.globs.iter().any(|glob| match_components(glob, &path))
    }
}

fn match_components(glob: &[String], path: &[&str]) -> bool {
    match glob.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_components(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((component, tail)) => {
                match_component(first.as_bytes(), component.as_bytes())
                    && match_components(rest, tail)
            }
            None => false,
        },
    }
}

/// `*` within one component.
fn match_component(glob: &[u8], text: &[u8]) -> bool {
    match glob.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| match_component(rest, &text[skip..])),
        Some((c, rest)) => text
            .split_first()
            .is_some_and(|(t, tail)| t == c && match_component(rest, tail)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn required(globs: &str) -> RequiredFor {
        RequiredFor::parse(globs).unwrap()
    }

    #[test]
    fn a_star_stays_within_one_component() {
        let r = required("registry.example.com/*/api");
        assert!(r.matches("registry.example.com/shop/api"));
        assert!(!r.matches("registry.example.com/shop/team/api"));
        assert!(!r.matches("registry.example.com/api"));
        assert!(required("ghcr.io/acme/app-*").matches("ghcr.io/acme/app-web"));
        assert!(!required("ghcr.io/acme/app-*").matches("ghcr.io/acme/app/web"));
    }

    #[test]
    fn a_double_star_crosses_components_including_none() {
        let r = required("ghcr.io/acme/**");
        assert!(r.matches("ghcr.io/acme/web"));
        assert!(r.matches("ghcr.io/acme/team/web"));
        assert!(!r.matches("ghcr.io/other/web"));
        assert!(required("**/nginx").matches("docker.io/library/nginx"));
        assert!(required("ghcr.io/**/api").matches("ghcr.io/api"));
    }

    #[test]
    fn images_match_by_their_normalised_name() {
        let r = required("docker.io/library/*, Registry:5000/team/**");
        assert!(r.requires(&ImageRef::parse("nginx:1.25").unwrap()));
        assert!(r.requires(&ImageRef::parse("registry:5000/team/app:1.0").unwrap()));
        assert!(!r.requires(&ImageRef::parse("quay.io/team/app:1.0").unwrap()));
        assert!(RequiredFor::default().is_empty());
        assert!(!RequiredFor::default().matches("docker.io/library/nginx"));
    }

    #[test]
    fn globs_that_cannot_match_an_image_name_are_refused() {
        for bad in ["nginx", "ghcr.io//app", "ghcr.io/acme/", "ghcr.io/a**"] {
            assert!(RequiredFor::parse(bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(required(" , ").globs().len(), 0);
    }
}
