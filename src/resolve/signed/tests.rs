//! Resolving with verification against the fake registry; signatures made by `verify::testing`'s signers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::Utc;
use http::Method;
use watch_cluster_testkit::FakeRegistry;

use super::*;
use crate::image::ImageRef;
use crate::registry::{RegistryClient, RegistryConfig};
use crate::verify::testing::{Signer, sign_image};
use crate::verify::{KeySet, RejectionKind};

const REPO: &str = "team/app";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

struct Bed {
    fake: FakeRegistry,
    registry: RegistryClient,
    verifier: Verifier,
    signer: Signer,
}

async fn bed() -> Bed {
    crate::install_crypto_provider();
    let fake = FakeRegistry::start().await.unwrap();
    let mut metrics = prometheus_client::registry::Registry::default();
    let registry = RegistryClient::new(
        RegistryConfig {
            insecure_registries: vec![fake.host()],
            ..RegistryConfig::default()
        },
        &mut metrics,
    )
    .unwrap();
    let signer = Signer::p256(1);
    let keys = KeySet::from_keys(vec![signer.public_key("release.pub")]).unwrap();
    let verifier = Verifier::new(Arc::new(keys), registry.clone(), &mut metrics);
    Bed {
        fake,
        registry,
        verifier,
        signer,
    }
}

impl Bed {
    fn publish(&self, versions: &[(&str, char)]) {
        for (tag, d) in versions {
            self.fake.set_digest(REPO, tag, &digest(*d));
        }
    }

    fn sign(&self, d: char) {
        sign_image(&self.fake, REPO, &digest(d), &self.signer);
    }

    fn image(&self, tag: &str) -> ImageRef {
        ImageRef::parse(&format!("{}/{REPO}:{tag}", self.fake.host())).unwrap()
    }

    async fn run(&self, strategy: Strategy, image: &ImageRef, current: Option<&str>) -> Resolution {
        self.run_with(&self.registry, strategy, image, current)
            .await
    }

    async fn run_with(
        &self,
        registry: &RegistryClient,
        strategy: Strategy,
        image: &ImageRef,
        current: Option<&str>,
    ) -> Resolution {
        let target = Target {
            container: "app",
            image,
            credential: None,
            current_digest: current,
        };
        let gates = CandidateGates::open(Utc::now());
        resolve_signed(
            registry,
            strategy,
            target,
            &Quarantine::default(),
            gates,
            Some(&self.verifier),
        )
        .await
        .unwrap()
    }

    fn signature_reads(&self) -> usize {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.method == Method::GET && r.path.ends_with(".sig"))
            .count()
    }
}

#[tokio::test]
async fn an_unsigned_best_candidate_is_passed_over_for_the_next_lower_signed_one() {
    let bed = bed().await;
    bed.publish(&[("1.1.0", 'a'), ("1.2.0", 'b'), ("1.3.0", 'c')]);
    bed.sign('b');
    let image = bed.image("1.0.0");
    let r = bed.run(Strategy::Version, &image, None).await;
    assert_eq!(
        r.decision.image_to_write(&image),
        Some(image.with_tag_and_digest("1.2.0", &digest('b')))
    );
    let verified = r.signatures.verified.unwrap();
    assert_eq!(verified.key.file, "release.pub");
    assert_eq!(r.signatures.rejected.len(), 1);
    let rejected = &r.signatures.rejected[0];
    assert_eq!(rejected.tag, "1.3.0");
    assert_eq!(
        rejected.image,
        image.with_tag_and_digest("1.3.0", &digest('c'))
    );
    assert_eq!(rejected.rejection.kind, RejectionKind::Unsigned);
}

/// A push-woken or `check-now` check asks for answers no older than now; passing over a rejected
/// candidate must not list the tags again.
#[tokio::test]
async fn a_fresh_check_lists_the_tags_once_however_many_candidates_it_passes_over() {
    let bed = bed().await;
    bed.publish(&[("1.1.0", 'a'), ("1.2.0", 'b'), ("1.3.0", 'c')]);
    bed.sign('a');
    let image = bed.image("1.0.0");
    let fresh = bed.registry.with_max_age(std::time::Duration::ZERO);
    let r = bed.run_with(&fresh, Strategy::Version, &image, None).await;
    assert_eq!(r.signatures.rejected.len(), 2);
    assert!(r.signatures.verified.is_some());
    let listings = bed
        .fake
        .requests()
        .iter()
        .filter(|req| req.path.ends_with("/tags/list"))
        .count();
    assert_eq!(listings, 1);
}

#[tokio::test]
async fn at_most_three_candidates_are_verified_per_check() {
    let bed = bed().await;
    bed.publish(&[
        ("1.1.0", 'a'),
        ("1.2.0", 'b'),
        ("1.3.0", 'c'),
        ("1.4.0", 'd'),
        ("1.5.0", 'e'),
    ]);
    bed.sign('a');
    let image = bed.image("1.0.0");
    let r = bed.run(Strategy::Version, &image, None).await;
    assert!(
        matches!(&r.decision, Decision::Keep(KeepReason::SignatureRejected { image: best, .. })
            if *best == image.with_tag_and_digest("1.5.0", &digest('e'))),
        "{:?}",
        r.decision
    );
    let tags: Vec<&str> = r
        .signatures
        .rejected
        .iter()
        .map(|c| c.tag.as_str())
        .collect();
    assert_eq!(tags, ["1.5.0", "1.4.0", "1.3.0"]);
    assert_eq!(
        bed.signature_reads(),
        MAX_VERIFIED,
        "1.2.0 and the signed 1.1.0 were not looked at"
    );
    assert!(
        r.decision.to_string().contains("Unsigned"),
        "{}",
        r.decision
    );
}

#[tokio::test]
async fn latest_holds_an_unsigned_new_digest_and_takes_it_once_signed() {
    let bed = bed().await;
    bed.publish(&[("latest", 'e')]);
    let image = bed.image("latest");
    let current = digest('0');
    let r = bed.run(Strategy::Latest, &image, Some(&current)).await;
    assert!(
        matches!(
            &r.decision,
            Decision::Keep(KeepReason::SignatureRejected { .. })
        ),
        "{:?}",
        r.decision
    );
    assert_eq!(
        r.signatures.rejected[0].image,
        image.with_tag_and_digest("latest", &digest('e'))
    );
    bed.sign('e');
    // The cached rejection is compared with the registry: the new .sig tag changes it.
    let r = bed.run(Strategy::Latest, &image, Some(&current)).await;
    assert_eq!(
        r.decision.image_to_write(&image),
        Some(image.with_tag_and_digest("latest", &digest('e')))
    );
}

#[tokio::test]
async fn a_multi_arch_candidate_is_verified_at_its_index_digest() {
    let bed = bed().await;
    let child = |d: char| {
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 1, "digest": digest(d), "platform": {"architecture": "amd64", "os": "linux"}})
    };
    let index = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [child('a'), child('b')]});
    let index_digest = bed.fake.set_manifest(
        REPO,
        Some("2.0.0"),
        "application/vnd.oci.image.index.v1+json",
        index.to_string().as_bytes(),
    );
    // A signature of a platform manifest does not sign the multi-arch candidate.
    sign_image(&bed.fake, REPO, &digest('a'), &bed.signer);
    let image = bed.image("1.0.0");
    let r = bed.run(Strategy::Version, &image, None).await;
    assert_eq!(r.signatures.rejected.len(), 1, "{:?}", r.decision);
    sign_image(&bed.fake, REPO, &index_digest, &bed.signer);
    let r = bed.run(Strategy::Version, &image, None).await;
    assert_eq!(
        r.decision.image_to_write(&image),
        Some(image.with_tag_and_digest("2.0.0", &index_digest))
    );
    assert!(r.signatures.verified.is_some());
}

#[tokio::test]
async fn without_a_verifier_nothing_is_read_but_the_candidates() {
    let bed = bed().await;
    bed.publish(&[("1.1.0", 'a')]);
    let image = bed.image("1.0.0");
    let target = Target {
        container: "app",
        image: &image,
        credential: None,
        current_digest: None,
    };
    let r = resolve_signed(
        &bed.registry,
        Strategy::Version,
        target,
        &Quarantine::default(),
        CandidateGates::open(Utc::now()),
        None,
    )
    .await
    .unwrap();
    assert!(matches!(r.decision, Decision::Update { .. }));
    assert_eq!(r.signatures, Signatures::default());
    assert_eq!(bed.signature_reads(), 0);
}
