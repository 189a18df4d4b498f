//! Image resolution by the simulated kubelet: missing images, digests from the real registry
//! (Basic, Bearer token, TLS).

use std::collections::HashMap;

use watch_cluster_sim::Kind;
use watch_cluster_sim::controllers::images::RegistryEndpoint;
use watch_cluster_sim::controllers::{ControllerConfig, HttpResolver, StaticResolver};

use super::*;

#[tokio::test]
async fn an_image_the_registry_lacks_stays_in_image_pull_back_off() {
    let resolver = StaticResolver::new().with("app:1", "sha256:1111");
    let sim = Sim::start(ControllerConfig::fast().with_resolver(resolver));
    sim.store
        .create(Kind::Deployment, deployment("web", 1, "app:1"))
        .unwrap();
    let d = sim
        .wait_for(
            Kind::Deployment,
            "web",
            "rev 1 complete",
            deployment_complete,
        )
        .await;
    assert_eq!(count(&d, "availableReplicas"), 1);
    let pod = &sim.pods(("app", "web"))[0];
    assert_eq!(
        pod["status"]["containerStatuses"][0]["imageID"],
        "docker.io/library/app@sha256:1111"
    );
    sim.set_image(Kind::Deployment, "web", "app:404");
    let mut rx = sim.store.subscribe();
    sim.wait_for(Kind::Deployment, "web", "new pod created", |d| {
        count(d, "updatedReplicas") == 1
    })
    .await;
    let pod = loop {
        let pods = sim.pods(("app", "web"));
        let p = pods.into_iter().find(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
        });
        if let Some(p) = p {
            break p;
        }
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
    };
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(pod["status"]["containerStatuses"][0]["imageID"], "");
    let d = sim.get(Kind::Deployment, "web");
    assert_eq!(count(&d, "availableReplicas"), 1, "the old pod stays");
    assert_eq!(count(&d, "replicas"), 2);
}

#[tokio::test]
async fn image_ids_carry_the_digest_the_real_registry_serves_for_the_tag() {
    use watch_cluster_testkit::{ImageKind, RealRegistry, RegistryAuth};
    let registry = RealRegistry::start(RegistryAuth::basic("ci", "secret"))
        .await
        .unwrap();
    let pushed = registry
        .push("team/app", "1.0", ImageKind::OciIndex, "a")
        .await
        .unwrap();
    let single = registry
        .push("team/app", "1.1", ImageKind::DockerManifest, "b")
        .await
        .unwrap();
    let endpoint = RegistryEndpoint {
        base_url: registry.base_url().parse().unwrap(),
        basic_auth: registry.credentials(),
    };
    let resolver = HttpResolver::new(
        HashMap::from([("registry.test".to_string(), endpoint)]),
        None,
    )
    .unwrap();
    let sim = Sim::start(ControllerConfig::fast().with_resolver(resolver));
    sim.store
        .create(
            Kind::Deployment,
            deployment("web", 1, "registry.test/team/app:1.0"),
        )
        .unwrap();
    sim.wait_for(
        Kind::Deployment,
        "web",
        "rev 1 complete",
        deployment_complete,
    )
    .await;
    let pod = &sim.pods(("app", "web"))[0];
    assert_eq!(
        pod["status"]["containerStatuses"][0]["imageID"],
        format!("registry.test/team/app@{}", pushed.digest),
        "the index digest, as containerd reports for a multi-arch tag"
    );
    let pinned = format!("registry.test/team/app:ignored@{}", single.digest);
    sim.set_image(Kind::Deployment, "web", &pinned);
    sim.wait_for(Kind::Deployment, "web", "rev 2 complete", |d| {
        deployment_complete(d) && revision(d) == "2"
    })
    .await;
    let pod = &sim.pods(("app", "web"))[0];
    assert_eq!(
        pod["status"]["containerStatuses"][0]["imageID"],
        format!("registry.test/team/app@{}", single.digest)
    );
    sim.set_image(Kind::Deployment, "web", "registry.test/team/app:9.9");
    let d = sim
        .wait_for(Kind::Deployment, "web", "missing tag pulled", |d| {
            count(d, "updatedReplicas") == 1 && count(d, "replicas") == 2
        })
        .await;
    assert_eq!(count(&d, "availableReplicas"), 1);
}

/// Pushes `team/app:1.0` as an OCI index and checks the pod's `imageID` after a rollout.
async fn assert_pod_pulls_the_index_digest(registry: &watch_cluster_testkit::RealRegistry) {
    use watch_cluster_testkit::ImageKind;
    let pushed = registry
        .push("team/app", "1.0", ImageKind::OciIndex, "t")
        .await
        .unwrap();
    let endpoint = RegistryEndpoint {
        base_url: registry.base_url().parse().unwrap(),
        basic_auth: registry.credentials(),
    };
    let routes = HashMap::from([("registry.test".to_string(), endpoint)]);
    let ca = registry.ca_pem().map(str::as_bytes);
    let resolver = HttpResolver::new(routes, ca).unwrap();
    let sim = Sim::start(ControllerConfig::fast().with_resolver(resolver));
    let d = deployment("web", 1, "registry.test/team/app:1.0");
    sim.store.create(Kind::Deployment, d).unwrap();
    sim.wait_for(Kind::Deployment, "web", "complete", deployment_complete)
        .await;
    let pod = &sim.pods(("app", "web"))[0];
    let want = format!("registry.test/team/app@{}", pushed.digest);
    assert_eq!(pod["status"]["containerStatuses"][0]["imageID"], want);
}

#[tokio::test]
async fn image_ids_resolve_through_registry_bearer_tokens() {
    use watch_cluster_testkit::{RealRegistry, RegistryAuth};
    let registry = RealRegistry::start(RegistryAuth::token("ci", "secret"))
        .await
        .unwrap();
    assert_pod_pulls_the_index_digest(&registry).await;
}

#[tokio::test]
async fn image_ids_resolve_over_tls_with_a_private_ca() {
    use watch_cluster_testkit::{RealRegistry, RegistryAuth};
    let registry = RealRegistry::start(RegistryAuth::Tls).await.unwrap();
    assert_pod_pulls_the_index_digest(&registry).await;
}
