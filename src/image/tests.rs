//! Table and property tests of [`super::ImageRef`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use proptest::prelude::*;

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// (input, registry, repository, tag, has digest, api host)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    bool,
    &'static str,
);

const ACCEPTED: &[Row] = &[
    (
        "nginx",
        "docker.io",
        "library/nginx",
        None,
        false,
        "registry-1.docker.io",
    ),
    (
        "library/nginx",
        "docker.io",
        "library/nginx",
        None,
        false,
        "registry-1.docker.io",
    ),
    (
        "nginx:1.20.0",
        "docker.io",
        "library/nginx",
        Some("1.20.0"),
        false,
        "registry-1.docker.io",
    ),
    (
        "docker.io/nginx:1.20.0",
        "docker.io",
        "library/nginx",
        Some("1.20.0"),
        false,
        "registry-1.docker.io",
    ),
    (
        "index.docker.io/library/nginx",
        "docker.io",
        "library/nginx",
        None,
        false,
        "registry-1.docker.io",
    ),
    (
        "localhost/myapp",
        "localhost",
        "myapp",
        None,
        false,
        "localhost",
    ),
    (
        "registry:5000/myapp",
        "registry:5000",
        "myapp",
        None,
        false,
        "registry:5000",
    ),
    (
        "localhost:5000/app:v1",
        "localhost:5000",
        "app",
        Some("v1"),
        false,
        "localhost:5000",
    ),
    (
        "registry.example.com:5000/team/app:2.0.0",
        "registry.example.com:5000",
        "team/app",
        Some("2.0.0"),
        false,
        "registry.example.com:5000",
    ),
    (
        "quay.io/org/sub/app:tag",
        "quay.io",
        "org/sub/app",
        Some("tag"),
        false,
        "quay.io",
    ),
    (
        "myregistry/myapp:1.0.0",
        "docker.io",
        "myregistry/myapp",
        Some("1.0.0"),
        false,
        "registry-1.docker.io",
    ),
    (
        "127.0.0.1:5000/a_b__c.d---e:x",
        "127.0.0.1:5000",
        "a_b__c.d---e",
        Some("x"),
        false,
        "127.0.0.1:5000",
    ),
    (
        "[::1]:5000/app:1.0",
        "[::1]:5000",
        "app",
        Some("1.0"),
        false,
        "[::1]:5000",
    ),
];

#[test]
fn accepted_references_split_into_registry_repository_and_tag() {
    for (input, registry, repository, tag, digest, api) in ACCEPTED {
        let image = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(image.registry(), *registry, "{input}");
        assert_eq!(image.repository(), *repository, "{input}");
        assert_eq!(image.tag(), *tag, "{input}");
        assert_eq!(image.digest().is_some(), *digest, "{input}");
        assert_eq!(image.registry_api_host(), *api, "{input}");
        assert_eq!(
            image.to_string(),
            *input,
            "display keeps the original spelling"
        );
    }
}

#[test]
fn tag_and_digest_together_are_both_kept() {
    let input = format!("ghcr.io/owner/repo:latest@{D}");
    let image = ImageRef::parse(&input).unwrap();
    assert_eq!(image.registry(), "ghcr.io");
    assert_eq!(image.repository(), "owner/repo");
    assert_eq!(image.tag(), Some("latest"));
    assert_eq!(image.digest(), Some(D));
    assert_eq!(image.to_string(), input);
}

#[test]
fn digest_only_reference_has_no_effective_tag() {
    let image = ImageRef::parse(&format!("nginx@{D}")).unwrap();
    assert_eq!(image.repository(), "library/nginx");
    assert_eq!(image.tag(), None);
    assert_eq!(image.digest(), Some(D));
    assert_eq!(image.effective_tag(), None);
}

#[test]
fn reference_without_tag_means_latest() {
    assert_eq!(
        ImageRef::parse("nginx").unwrap().effective_tag(),
        Some("latest")
    );
    assert_eq!(
        ImageRef::parse("nginx:1.2").unwrap().effective_tag(),
        Some("1.2")
    );
}

#[test]
fn written_image_keeps_the_users_spelling_of_the_name() {
    let cases = [
        ("nginx:1.20.0", "nginx:1.21.0@"),
        ("docker.io/nginx:1.20.0", "docker.io/nginx:1.21.0@"),
        ("registry:5000/myapp:1.20.0", "registry:5000/myapp:1.21.0@"),
    ];
    for (input, prefix) in cases {
        let image = ImageRef::parse(input).unwrap();
        assert_eq!(
            image.with_tag_and_digest("1.21.0", D),
            format!("{prefix}{D}")
        );
    }
    let pinned = ImageRef::parse(&format!("nginx:1.20.0@{D}")).unwrap();
    assert_eq!(
        pinned.with_tag_and_digest("1.21.0", D),
        format!("nginx:1.21.0@{D}")
    );
}

#[test]
fn canonical_form_is_fully_qualified() {
    let image = ImageRef::parse("nginx:1.20.0").unwrap();
    assert_eq!(image.canonical(), "docker.io/library/nginx:1.20.0");
}

#[test]
fn sha512_digests_are_accepted() {
    let digest = format!("sha512:{}", "ab".repeat(64));
    let image = ImageRef::parse(&format!("app:1@{digest}")).unwrap();
    assert_eq!(image.digest(), Some(digest.as_str()));
}

#[test]
fn invalid_references_are_rejected_with_the_problem_named() {
    let cases: &[(&str, &str)] = &[
        ("", "ImageNameMissing"),
        (":tag", "ImageNameMissing"),
        ("UPPER/case", "ImageNameInvalid"),
        ("nginx:1.0 ", "ImageNameInvalid"),
        ("nginx@sha256:abc", "ImageDigestInvalid"),
        (
            "nginx@sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
            "ImageDigestInvalid",
        ),
        (
            "nginx@md5:d41d8cd98f00b204e9800998ecf8427e",
            "ImageDigestInvalid",
        ),
        ("nginx:", "ImageTagInvalid"),
        ("nginx:.bad", "ImageTagInvalid"),
        ("registry:99999/app", "ImageRegistryInvalid"),
        ("-bad.host/app", "ImageRegistryInvalid"),
        ("app//x", "ImageNameInvalid"),
        ("a/-b", "ImageNameInvalid"),
        ("a/b..c", "ImageNameInvalid"),
    ];
    for (input, reason) in cases {
        let err = ImageRef::parse(input).expect_err(input);
        assert_eq!(err.reason(), *reason, "{input}: {err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("'{input}'")),
            "quotes the input: {text}"
        );
        assert!(text.contains("expected e.g."), "gives an example: {text}");
    }
}

#[test]
fn uppercase_repository_error_says_lowercase() {
    let err = ImageRef::parse("UPPER/case").unwrap_err();
    assert!(err.to_string().contains("must be lowercase"), "{err}");
}

#[test]
fn unknown_digest_algorithm_is_named() {
    let err = ImageRef::parse("nginx@md5:d41d8cd98f00b204e9800998ecf8427e").unwrap_err();
    assert_eq!(
        err.problem,
        ImageRefProblem::UnsupportedDigestAlgorithm("md5".into())
    );
}

proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(input in "\\PC{0,80}") {
        let _ = ImageRef::parse(&input);
    }

    #[test]
    fn parsing_reference_shaped_text_never_panics(input in "[a-zA-Z0-9._:/@-]{0,60}") {
        let _ = ImageRef::parse(&input);
    }

    #[test]
    fn display_of_a_parsed_reference_parses_to_the_same_reference(
        host in proptest::option::of("(localhost|[a-z]{1,8}\\.[a-z]{2,3})(:[1-9][0-9]{0,3})?"),
        path in "[a-z0-9]{1,8}(([._]|__|-{1,2})[a-z0-9]{1,5})?(/[a-z0-9]{1,8}){0,2}",
        tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        digest in proptest::option::of("[0-9a-f]{64}"),
    ) {
        let mut input = host.map(|h| format!("{h}/")).unwrap_or_default();
        input.push_str(&path);
        push_tag_and_digest(&mut input, tag.as_deref(), digest.map(|d| format!("sha256:{d}")).as_deref());
        let image = ImageRef::parse(&input).unwrap();
        prop_assert_eq!(image.to_string(), input.clone());
        prop_assert_eq!(ImageRef::parse(&image.to_string()).unwrap(), image.clone());
        prop_assert_eq!(ImageRef::parse(&image.canonical()).unwrap().canonical(), image.canonical());
    }
}
