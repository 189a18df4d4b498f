//! Tests of the test support itself: the webhook receiver, the real-registry harness and the fake registry.
//! One test binary; the parts live in `tests/harness/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "harness/accept_facts.rs"]
mod accept_facts;
#[path = "harness/fake_registry.rs"]
mod fake_registry;
#[path = "harness/real_registry.rs"]
mod real_registry;
#[path = "harness/webhook.rs"]
mod webhook;

use std::time::Duration;

use sha2::{Digest as _, Sha256};
use watch_cluster_testkit::registry::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, ImageKind, OCI_INDEX, OCI_MANIFEST,
};

/// The four Accept types a client must always send (docs/dependencies.md#oci-registries).
const ALL_TYPES: [&str; 4] = [
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];
/// Every manifest kind the harness pushes.
const KINDS: [ImageKind; 4] = [
    ImageKind::OciManifest,
    ImageKind::OciIndex,
    ImageKind::DockerManifest,
    ImageKind::DockerManifestList,
];
/// Upper bound for waiting on a condition.
const WAIT: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}
