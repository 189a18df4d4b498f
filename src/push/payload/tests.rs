//! Payloads written from the shapes each provider documents (distribution's notifications docs, Docker
//! Hub's webhook docs, GitHub's `registry_package` schema, Harbor's webhook payload, Quay's repository
//! notifications).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const DIGEST: &str = "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf";

fn received() -> Received<'static> {
    Received {
        at_secs: 1_700_000_000,
        ..Received::default()
    }
}

fn only(pushes: Vec<Push>) -> Push {
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    pushes.into_iter().next().unwrap()
}

/// distribution's documented envelope: a manifest pull (HEAD/GET), a blob push and a manifest push.
const DISTRIBUTION: &str = r#"{"events":[
 {"id":"320678d8-ca14-430f-8bb6-4ca139cd83f7","timestamp":"2016-03-09T14:44:26.402973972-08:00","action":"pull",
  "target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":708,
   "digest":"sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf","length":708,
   "repository":"hello-world","url":"http://192.168.100.227:5000/v2/hello-world/manifests/sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf","tag":"latest"},
  "request":{"id":"6df24a34-0959-4923-81ca-14fadba03c97","addr":"192.168.64.11:42961","host":"192.168.100.227:5000","method":"HEAD","useragent":"curl/7.38.0"},
  "actor":{},"source":{"addr":"xtal.local:5000","instanceID":"a53db899-3b4b-4a62-a067-8dd013beaca4"}},
 {"id":"asdf-asdf-asdf-asdf-0","timestamp":"2006-01-02T15:04:05Z","action":"push",
  "target":{"mediaType":"application/octet-stream","size":1,"digest":"sha256:0123456789abcdef0","length":1,
   "repository":"library/test","url":"https://registry.example.com:5000/v2/library/test/blobs/sha256:0123456789abcdef0"},
  "request":{"id":"asdfasdf","addr":"client.local","host":"registry.example.com:5000","method":"PUT","useragent":"test/0.1"},
  "actor":{"name":"test-actor"},"source":{"addr":"hostname.local:port"}},
 {"id":"asdf-asdf-asdf-asdf-1","timestamp":"2006-01-02T15:04:05Z","action":"push",
  "target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":708,
   "digest":"sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf","length":708,
   "repository":"Team/App","url":"https://registry.example.com:5000/v2/team/app/manifests/sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf","tag":"1.2.3"},
  "request":{"id":"asdfasdf","addr":"client.local","host":"Registry.Example.com:5000","method":"PUT","useragent":"test/0.1"},
  "actor":{"name":"test-actor"},"source":{"addr":"hostname.local:port"}}
]}"#;

#[test]
fn distribution_counts_a_manifest_push_under_a_tag_and_ignores_pulls_and_blobs() {
    let push = only(parse(Provider::Distribution, DISTRIBUTION.as_bytes(), &received()).unwrap());
    assert_eq!(
        push,
        Push {
            host: "registry.example.com:5000".into(),
            repository: "team/app".into(),
            tag: "1.2.3".into(),
            digest: Some(DIGEST.into()),
            signature: false,
            id: "distribution:asdf-asdf-asdf-asdf-1".into(),
        }
    );
}

#[test]
fn distribution_without_request_host_takes_the_host_of_the_target_url() {
    let body = r#"{"events":[{"id":"e1","action":"push","target":{
        "mediaType":"application/vnd.oci.image.index.v1+json","repository":"app","tag":"latest","digest":"sha256:ab",
        "url":"https://internal:5000/v2/app/manifests/sha256:ab"}}]}"#;
    let push = only(parse(Provider::Distribution, body.as_bytes(), &received()).unwrap());
    assert_eq!(
        (push.host.as_str(), push.repository.as_str()),
        ("internal:5000", "app")
    );
}

#[test]
fn distribution_deletes_and_pushes_by_digest_are_ignored() {
    let body = r#"{"events":[
        {"id":"d","action":"delete","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"app","tag":"1","digest":"sha256:ab"},"request":{"host":"r.io"}},
        {"id":"p","action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"app","digest":"sha256:ab"},"request":{"host":"r.io"}}]}"#;
    assert!(
        parse(Provider::Distribution, body.as_bytes(), &received())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_signature_tag_is_a_push_of_the_repository_marked_as_a_signature() {
    let hex = "fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf";
    for tag in [format!("sha256-{hex}.sig"), format!("sha256-{hex}")] {
        let body = format!(
            r#"{{"events":[{{"id":"s","action":"push","target":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"app","tag":"{tag}","digest":"sha256:cd"}},"request":{{"host":"r.io"}}}}]}}"#
        );
        let push = only(parse(Provider::Distribution, body.as_bytes(), &received()).unwrap());
        assert!(push.signature, "{tag}");
    }
    assert!(!is_signature_tag("sha256-short.sig"));
    assert!(!is_signature_tag(&format!("sha256-{}", hex.to_uppercase())));
    assert!(!is_signature_tag("1.2.3"));
}

#[test]
fn a_body_that_is_not_the_providers_shape_is_an_error() {
    for provider in Provider::ALL {
        assert!(
            parse(provider, b"not json", &received()).is_err(),
            "{provider}"
        );
    }
    assert!(parse(Provider::Distribution, br#"{"event":[]}"#, &received()).is_err());
    assert!(parse(Provider::DockerHub, br#"{"push_data":{}}"#, &received()).is_err());
    assert!(parse(Provider::Quay, br#"{"updated_tags":["x"]}"#, &received()).is_err());
}

/// Docker Hub's documented webhook payload.
const DOCKERHUB: &str = r#"{
  "callback_url": "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
  "push_data": {"pushed_at": 1417566161, "pusher": "trustedbuilder", "tag": "latest"},
  "repository": {"comment_count": 0, "date_created": 1417494799, "description": "", "dockerfile": "",
    "full_description": "Docker Hub based automated build from a GitHub repo", "is_official": false,
    "is_private": true, "is_trusted": true, "name": "testhook", "namespace": "svendowideit",
    "owner": "svendowideit", "repo_name": "svendowideit/testhook",
    "repo_url": "https://registry.hub.docker.com/u/svendowideit/testhook/", "star_count": 0, "status": "Active"}
}"#;

#[test]
fn docker_hub_is_always_docker_io_and_its_id_hashes_the_push_time() {
    let push = only(parse(Provider::DockerHub, DOCKERHUB.as_bytes(), &received()).unwrap());
    assert_eq!(push.host, "docker.io");
    assert_eq!(push.repository, "svendowideit/testhook");
    assert_eq!(push.tag, "latest");
    assert_eq!(push.digest, None);
    assert!(push.id.starts_with("dockerhub:"), "{}", push.id);
    let again = only(
        parse(
            Provider::DockerHub,
            DOCKERHUB.as_bytes(),
            &Received::default(),
        )
        .unwrap(),
    );
    assert_eq!(
        push.id, again.id,
        "the same push replayed later has the same id"
    );
    let later = DOCKERHUB.replace("1417566161", "1417566999");
    let later = only(parse(Provider::DockerHub, later.as_bytes(), &received()).unwrap());
    assert_ne!(push.id, later.id, "a re-push of the tag is a new push");
}

#[test]
fn a_single_docker_hub_name_gets_library() {
    let body = DOCKERHUB.replace("svendowideit/testhook\"", "nginx\"");
    let push = only(parse(Provider::DockerHub, body.as_bytes(), &received()).unwrap());
    assert_eq!(push.repository, "library/nginx");
}

/// GitHub's `registry_package` `published` event for a container (trimmed to the documented fields).
const GITHUB: &str = r#"{
  "action": "published",
  "registry_package": {
    "id": 1, "name": "App", "namespace": "Octo-Org", "ecosystem": "CONTAINER", "package_type": "CONTAINER",
    "html_url": "https://github.com/orgs/Octo-Org/packages/container/package/App",
    "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z", "description": "",
    "owner": {"login": "Octo-Org"},
    "package_version": {
      "id": 2, "name": "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
      "version": "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
      "summary": "", "description": "", "body": "", "html_url": "", "installation_command": "",
      "package_files": [], "metadata": [],
      "container_metadata": {"tag": {"name": "1.2.3", "digest": "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf"},
                             "labels": {}, "manifest": {}},
      "package_url": "ghcr.io/Octo-Org/App:1.2.3"
    },
    "registry": {"about_url": "https://docs.github.com/packages", "name": "GitHub CR", "type": "docker",
                 "url": "https://ghcr.io/Octo-Org", "vendor": "GitHub Inc"}
  },
  "sender": {"login": "octocat"}
}"#;

fn github_received<'a>(event: &'a str) -> Received<'a> {
    Received {
        github_event: Some(event),
        github_delivery: Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        at_secs: 1,
    }
}

#[test]
fn github_takes_the_package_url_lowercased_and_the_container_tag() {
    let push = only(
        parse(
            Provider::GitHub,
            GITHUB.as_bytes(),
            &github_received("registry_package"),
        )
        .unwrap(),
    );
    assert_eq!(
        push,
        Push {
            host: "ghcr.io".into(),
            repository: "octo-org/app".into(),
            tag: "1.2.3".into(),
            digest: Some(DIGEST.into()),
            signature: false,
            id: "github:72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
        }
    );
    let package = GITHUB.replace("\"registry_package\"", "\"package\"");
    let push = only(
        parse(
            Provider::GitHub,
            package.as_bytes(),
            &github_received("package"),
        )
        .unwrap(),
    );
    assert_eq!(push.repository, "octo-org/app");
}

#[test]
fn githubs_form_encoded_content_type_carries_the_same_payload() {
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", GITHUB)
        .finish();
    let push = only(
        parse(
            Provider::GitHub,
            form.as_bytes(),
            &github_received("registry_package"),
        )
        .unwrap(),
    );
    assert_eq!(push.repository, "octo-org/app");
}

#[test]
fn github_ping_untagged_versions_other_packages_and_other_actions_are_ignored() {
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    assert!(
        parse(Provider::GitHub, ping, &github_received("ping"))
            .unwrap()
            .is_empty()
    );
    let untagged = GITHUB
        .replace(r#""name": "1.2.3", "#, r#""name": "", "#)
        .replace("App:1.2.3", "App:");
    assert!(
        parse(
            Provider::GitHub,
            untagged.as_bytes(),
            &github_received("registry_package")
        )
        .unwrap()
        .is_empty()
    );
    let npm = GITHUB.replace(r#""package_type": "CONTAINER""#, r#""package_type": "npm""#);
    assert!(
        parse(
            Provider::GitHub,
            npm.as_bytes(),
            &github_received("registry_package")
        )
        .unwrap()
        .is_empty()
    );
    let deleted = GITHUB.replace("\"published\"", "\"deleted\"");
    assert!(
        parse(
            Provider::GitHub,
            deleted.as_bytes(),
            &github_received("registry_package")
        )
        .unwrap()
        .is_empty()
    );
}

/// Harbor's `PUSH_ARTIFACT` webhook payload (default format).
const HARBOR: &str = r#"{
  "type": "PUSH_ARTIFACT", "occur_at": 1680501893, "operator": "admin",
  "event_data": {
    "resources": [
      {"digest": "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf", "tag": "v1",
       "resource_url": "harbor.example.com/library/alpine:v1"},
      {"digest": "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4",
       "tag": "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4",
       "resource_url": "harbor.example.com/library/alpine@sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4"}
    ],
    "repository": {"date_created": 1680501893, "name": "alpine", "namespace": "library",
                   "repo_full_name": "library/alpine", "repo_type": "public"}
  }
}"#;

#[test]
fn harbor_takes_the_resource_url_and_ignores_pushes_by_digest() {
    let push = only(parse(Provider::Harbor, HARBOR.as_bytes(), &received()).unwrap());
    assert_eq!(push.host, "harbor.example.com");
    assert_eq!(push.repository, "library/alpine");
    assert_eq!(push.tag, "v1");
    assert_eq!(push.digest.as_deref(), Some(DIGEST));
    let pulled = HARBOR.replace("PUSH_ARTIFACT", "PULL_ARTIFACT");
    assert!(
        parse(Provider::Harbor, pulled.as_bytes(), &received())
            .unwrap()
            .is_empty()
    );
}

/// Quay's `repo_push` notification.
const QUAY: &str = r#"{
  "name": "repository", "repository": "mynamespace/repository", "namespace": "mynamespace",
  "docker_url": "quay.io/mynamespace/repository",
  "homepage": "https://quay.io/repository/mynamespace/repository",
  "updated_tags": ["latest", "1.0.0"]
}"#;

#[test]
fn quay_makes_one_push_per_updated_tag() {
    let pushes = parse(Provider::Quay, QUAY.as_bytes(), &received()).unwrap();
    let tags: Vec<_> = pushes.iter().map(|p| p.tag.as_str()).collect();
    assert_eq!(tags, ["latest", "1.0.0"]);
    assert!(
        pushes
            .iter()
            .all(|p| p.host == "quay.io" && p.repository == "mynamespace/repository")
    );
    assert_ne!(pushes[0].id, pushes[1].id);
}

#[test]
fn references_split_the_tag_at_the_last_colon_not_followed_by_a_slash() {
    assert_eq!(
        reference("registry:5000/team/app:1.0"),
        Some((
            "registry:5000".into(),
            "team/app".into(),
            Some("1.0".into())
        ))
    );
    assert_eq!(
        reference("registry:5000/team/app"),
        Some(("registry:5000".into(), "team/app".into(), None))
    );
    assert_eq!(reference("justaname"), None);
}

#[test]
fn docker_hub_hosts_normalise_to_docker_io() {
    for host in ["index.docker.io", "registry-1.docker.io", "Docker.io"] {
        assert_eq!(
            normalise(host, "nginx"),
            ("docker.io".to_owned(), "library/nginx".to_owned())
        );
    }
    assert_eq!(
        normalise("GHCR.io", "Owner/App"),
        ("ghcr.io".to_owned(), "owner/app".to_owned())
    );
}
