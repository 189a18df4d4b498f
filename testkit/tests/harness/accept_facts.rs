//! docs/dependencies.md#oci-registries shown against the real registry: the Accept header decides the answer; re-pushes move tags;
//! and the harness leaves no process behind.

use watch_cluster_testkit::registry::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, ImageKind, OCI_INDEX, OCI_MANIFEST, RealRegistry,
    RegistryAuth,
};

use super::{ALL_TYPES, KINDS, client};

#[tokio::test]
async fn oci_manifest_head_without_oci_types_is_not_found() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    let pushed = registry
        .push("app", "1", ImageKind::OciManifest, "s")
        .await
        .unwrap();
    let docker_only = registry
        .head_manifest("app", "1", &[DOCKER_MANIFEST_LIST, DOCKER_MANIFEST])
        .await
        .unwrap();
    assert_eq!(docker_only.status, 404);
    let with_oci = registry
        .head_manifest("app", "1", &[OCI_MANIFEST])
        .await
        .unwrap();
    assert_eq!(with_oci.digest, Some(pushed.digest));
}

#[tokio::test]
async fn oci_index_asked_for_with_manifest_types_only_is_not_found() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    registry
        .push("app", "1", ImageKind::OciIndex, "s")
        .await
        .unwrap();
    let answer = registry
        .head_manifest("app", "1", &[OCI_MANIFEST, DOCKER_MANIFEST])
        .await
        .unwrap();
    assert_eq!(answer.status, 404);
}

#[tokio::test]
async fn docker_manifest_asked_for_without_its_type_is_converted_to_schema1_with_another_digest() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    let pushed = registry
        .push("app", "1", ImageKind::DockerManifest, "s")
        .await
        .unwrap();
    let answer = registry
        .get_manifest("app", "1", &[OCI_INDEX, OCI_MANIFEST])
        .await
        .unwrap();
    assert_eq!(
        answer.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(
        answer
            .content_type
            .as_deref()
            .unwrap()
            .contains("manifest.v1"),
        "{answer:?}"
    );
    assert_ne!(answer.digest.as_deref(), Some(pushed.digest.as_str()));
}

#[tokio::test]
async fn docker_manifest_list_asked_for_with_docker_v2_only_answers_the_amd64_child() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    let pushed = registry
        .push("app", "1", ImageKind::DockerManifestList, "s")
        .await
        .unwrap();
    let answer = registry
        .head_manifest("app", "1", &[DOCKER_MANIFEST])
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.digest.as_deref(), pushed.child("linux/amd64"));
    assert_ne!(pushed.child("linux/amd64"), pushed.child("linux/arm64"));
    let all = registry
        .head_manifest("app", "1", &ALL_TYPES)
        .await
        .unwrap();
    assert_eq!(all.digest, Some(pushed.digest));
}

#[tokio::test]
async fn re_pushing_a_tag_with_another_salt_moves_it_and_the_old_digest_still_resolves() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    for kind in KINDS {
        let old = registry.push("app", "latest", kind, "one").await.unwrap();
        let same = registry.push("app", "latest", kind, "one").await.unwrap();
        assert_eq!(old, same, "same content, same digest ({kind:?})");
        let new = registry.push("app", "latest", kind, "two").await.unwrap();
        assert_ne!(old.digest, new.digest, "{kind:?}");
        let now = registry
            .head_manifest("app", "latest", &ALL_TYPES)
            .await
            .unwrap();
        assert_eq!(now.digest, Some(new.digest.clone()));
        let before = registry
            .head_manifest("app", &old.digest, &ALL_TYPES)
            .await
            .unwrap();
        assert_eq!(
            (before.status, before.digest),
            (200, Some(old.digest.clone()))
        );
    }
}

#[tokio::test]
async fn tags_of_a_missing_repository_and_a_missing_tag_are_not_found() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    registry
        .push("app", "1", ImageKind::OciManifest, "s")
        .await
        .unwrap();
    let no_repo = client()
        .get(format!("{}/v2/nothing/tags/list", registry.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(no_repo.status(), 404);
    assert!(no_repo.text().await.unwrap().contains("NAME_UNKNOWN"));
    let no_tag = registry.get_manifest("app", "2", &ALL_TYPES).await.unwrap();
    assert_eq!(no_tag.status, 404);
    assert!(String::from_utf8_lossy(&no_tag.body).contains("MANIFEST_UNKNOWN"));
}

#[tokio::test]
async fn deleting_a_digest_removes_its_tag_and_keeps_the_other_tags() {
    let registry = RealRegistry::start(RegistryAuth::token("ci", "pw"))
        .await
        .unwrap();
    let pushed = registry
        .push("app", "1", ImageKind::OciManifest, "s")
        .await
        .unwrap();
    let again = registry
        .push("app", "stable", ImageKind::OciManifest, "s")
        .await
        .unwrap();
    let other = registry
        .push("app", "2", ImageKind::OciManifest, "t")
        .await
        .unwrap();
    assert_ne!(pushed.digest, again.digest, "content depends on the tag");
    let mut tags = registry.list_tags("app").await.unwrap();
    tags.sort();
    assert_eq!(tags, ["1", "2", "stable"]);
    assert_eq!(
        registry
            .delete_manifest("app", &pushed.digest)
            .await
            .unwrap(),
        202
    );
    let gone = registry
        .head_manifest("app", "1", &ALL_TYPES)
        .await
        .unwrap();
    assert_eq!(gone.status, 404);
    let kept = registry
        .head_manifest("app", "2", &ALL_TYPES)
        .await
        .unwrap();
    assert_eq!(kept.digest, Some(other.digest));
    let mut tags = registry.list_tags("app").await.unwrap();
    tags.sort();
    assert_eq!(tags, ["2", "stable"]);
}

// ---- the harness leaves no process behind ------------------------------------------------------------------------

fn process_alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie would still have one.
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn dropping_the_registry_kills_and_reaps_its_process() {
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    let pid = registry.pid();
    assert!(process_alive(pid));
    drop(registry);
    assert!(!process_alive(pid));
}

#[tokio::test]
async fn a_panicking_test_still_kills_its_registry() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let registry = RealRegistry::start(RegistryAuth::basic("u", "p"))
            .await
            .unwrap();
        tx.send(registry.pid()).unwrap();
        panic!("simulated test failure");
    });
    assert!(task.await.unwrap_err().is_panic());
    let pid = rx.await.unwrap();
    assert!(!process_alive(pid));
}
