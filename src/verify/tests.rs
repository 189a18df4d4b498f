//! The verifier against the fake registry, with signatures made by the independent signers of `testing`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::Method;
use serde_json::json;
use watch_cluster_testkit::{FakeRegistry, Fault};

use super::testing::{self, Signer};
use super::*;
use crate::registry::RegistryConfig;

const REPO: &str = "team/app";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

struct Bed {
    fake: FakeRegistry,
    registry: RegistryClient,
    repo: Repository,
    metrics: prometheus_client::registry::Registry,
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
    let repo = Repository::new(fake.host(), REPO);
    Bed {
        fake,
        registry,
        repo,
        metrics,
    }
}

impl Bed {
    fn verifier(&mut self, signers: &[(&str, &Signer)]) -> Verifier {
        let keys = signers.iter().map(|(f, s)| s.public_key(f)).collect();
        let keys = Arc::new(KeySet::from_keys(keys).unwrap());
        Verifier::new(keys, self.registry.clone(), &mut self.metrics)
    }

    /// An image manifest under `tag`; returns its digest.
    fn image(&self, tag: &str, seed: &str) -> String {
        let body = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                       "digest": format!("sha256:{}", seed.repeat(64))},
            "layers": []});
        self.fake
            .set_manifest(REPO, Some(tag), OCI_MANIFEST, body.to_string().as_bytes())
    }

    /// cosign's `.sig` manifest for `digest`: one layer per (payload, signature).
    fn sig_tag(&self, digest: &str, layers: &[(Vec<u8>, Vec<u8>)]) {
        testing::publish_sig_tag(&self.fake, REPO, digest, layers);
    }

    /// A Sigstore bundle referrer of `subject` (the unsigned manifest subject) holding `bundle`.
    fn bundle_referrer(&self, subject: &str, bundle: &[u8]) -> String {
        let layer = self.fake.set_blob(REPO, bundle);
        let body = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_MEDIA_TYPE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                       "digest": self.fake.set_blob(REPO, b"{}")},
            "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "size": bundle.len(), "digest": layer}],
            "subject": {"mediaType": OCI_MANIFEST, "size": 1, "digest": subject}});
        self.fake
            .set_manifest(REPO, None, OCI_MANIFEST, body.to_string().as_bytes())
    }

    /// The referrers tag schema: an index under `sha256-<hex>` listing `referrers`.
    fn referrers_tag(&self, subject: &str, referrers: &[String]) {
        let manifests: Vec<_> = referrers
            .iter()
            .map(|d| json!({"mediaType": OCI_MANIFEST, "digest": d, "size": 1, "artifactType": BUNDLE_MEDIA_TYPE}))
            .collect();
        let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        let tag = subject.replacen(':', "-", 1);
        self.fake
            .set_manifest(REPO, Some(&tag), OCI_INDEX, body.to_string().as_bytes());
    }

    async fn verify(&self, verifier: &Verifier, digest: &str) -> Verdict {
        verifier.verify(&self.repo, digest, None).await.unwrap()
    }

    fn metric_text(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.metrics).unwrap();
        text
    }
}

fn payload(bed: &Bed, digest: &str) -> Vec<u8> {
    testing::simple_signing_payload(&format!("{}/{REPO}", bed.fake.host()), digest)
}

fn rejected(verdict: Verdict) -> Rejection {
    match verdict {
        Verdict::Rejected(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_cosign_sig_tag_signed_with_a_configured_ecdsa_key_verifies_and_names_the_key() {
    let mut bed = bed().await;
    let signer = Signer::p256(1);
    let verifier = bed.verifier(&[("other.pub", &Signer::p256(9)), ("release.pub", &signer)]);
    let digest = bed.image("1.1.0", "a");
    let payload = payload(&bed, &digest);
    bed.sig_tag(&digest, &[(payload.clone(), signer.sign(&payload))]);
    let verdict = bed.verify(&verifier, &digest).await;
    let key = signer.public_key("release.pub").name;
    assert_eq!(
        verdict,
        Verdict::Verified(Verified {
            key: key.clone(),
            layout: Layout::SignatureTag
        })
    );
    assert!(verdict.to_string().contains(&key.to_string()));
    assert!(
        bed.metric_text()
            .contains("signature_verifications_total{result=\"verified\"} 1")
    );
}

#[tokio::test]
async fn an_ed25519ph_bundle_found_through_the_referrers_api_verifies() {
    let mut bed = bed().await;
    bed.fake.set_referrers_api(true);
    let signer = Signer::ed25519(4);
    let verifier = bed.verifier(&[("ed.pub", &signer)]);
    let digest = bed.image("1.1.0", "b");
    let hex = digest.strip_prefix("sha256:").unwrap();
    bed.bundle_referrer(
        &digest,
        &testing::bundle(&signer, &testing::statement("app", hex)),
    );
    let verdict = bed.verify(&verifier, &digest).await;
    assert!(
        matches!(&verdict, Verdict::Verified(v) if v.layout == Layout::Bundle),
        "{verdict:?}"
    );
    let referrers = format!("/v2/{REPO}/referrers/{digest}");
    assert_eq!(bed.fake.count(Method::GET, &referrers), 1);
}

#[tokio::test]
async fn without_a_referrers_api_the_bundle_is_found_through_the_sha256_tag() {
    let mut bed = bed().await;
    let signer = Signer::p256(5);
    let verifier = bed.verifier(&[("ec.pub", &signer)]);
    let digest = bed.image("1.1.0", "c");
    let hex = digest.strip_prefix("sha256:").unwrap();
    let referrer = bed.bundle_referrer(
        &digest,
        &testing::bundle(&signer, &testing::statement("app", hex)),
    );
    bed.referrers_tag(&digest, &[referrer]);
    let verdict = bed.verify(&verifier, &digest).await;
    assert!(
        matches!(&verdict, Verdict::Verified(v) if v.layout == Layout::Bundle),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn an_unsigned_digest_is_rejected_as_unsigned() {
    let mut bed = bed().await;
    let verifier = bed.verifier(&[("ec.pub", &Signer::p256(1))]);
    let digest = bed.image("1.1.0", "d");
    let rejection = rejected(bed.verify(&verifier, &digest).await);
    assert_eq!(rejection.kind, RejectionKind::Unsigned);
    assert!(rejection.message.contains(&digest), "{rejection}");
    assert!(
        bed.metric_text()
            .contains("signature_verifications_total{result=\"rejected\"} 1")
    );
}

#[tokio::test]
async fn a_signature_by_a_key_not_configured_is_rejected_naming_the_configured_keys() {
    let mut bed = bed().await;
    let verifier = bed.verifier(&[("release.pub", &Signer::p256(1))]);
    let digest = bed.image("1.1.0", "e");
    let payload = payload(&bed, &digest);
    let stranger = Signer::p256(2);
    bed.sig_tag(&digest, &[(payload.clone(), stranger.sign(&payload))]);
    let rejection = rejected(bed.verify(&verifier, &digest).await);
    assert_eq!(rejection.kind, RejectionKind::BadSignature);
    assert!(
        rejection.message.contains("release.pub (SHA256:"),
        "{rejection}"
    );
}

#[tokio::test]
async fn a_valid_signature_copied_from_another_digest_is_rejected_as_wrong_digest() {
    let mut bed = bed().await;
    let signer = Signer::p256(1);
    let verifier = bed.verifier(&[("release.pub", &signer)]);
    let signed = bed.image("1.0.0", "f");
    let candidate = bed.image("1.1.0", "0");
    let payload = payload(&bed, &signed);
    bed.sig_tag(&candidate, &[(payload.clone(), signer.sign(&payload))]);
    let rejection = rejected(bed.verify(&verifier, &candidate).await);
    assert_eq!(rejection.kind, RejectionKind::WrongDigest);
    assert!(rejection.message.contains(&signed), "{rejection}");
}

#[tokio::test]
async fn a_payload_edited_after_signing_is_rejected() {
    let mut bed = bed().await;
    let signer = Signer::p256(1);
    let verifier = bed.verifier(&[("release.pub", &signer)]);
    let digest = bed.image("1.1.0", "1");
    let original = payload(&bed, &digest);
    let signature = signer.sign(&original);
    // Same meaning, other bytes: the signature is over the exact blob.
    let mut edited = original.clone();
    edited.push(b' ');
    bed.sig_tag(&digest, &[(edited, signature)]);
    let rejection = rejected(bed.verify(&verifier, &digest).await);
    assert_eq!(rejection.kind, RejectionKind::BadSignature);
}

#[tokio::test]
async fn a_bundle_whose_statement_names_another_digest_is_rejected_though_its_manifest_subject_is_the_candidate()
 {
    let mut bed = bed().await;
    bed.fake.set_referrers_api(true);
    let signer = Signer::p256(1);
    let verifier = bed.verifier(&[("release.pub", &signer)]);
    let candidate = bed.image("1.1.0", "2");
    let statement = testing::statement("app", &"3".repeat(64));
    bed.bundle_referrer(&candidate, &testing::bundle(&signer, &statement));
    let rejection = rejected(bed.verify(&verifier, &candidate).await);
    assert_eq!(rejection.kind, RejectionKind::WrongDigest, "{rejection}");
}

#[tokio::test]
async fn a_verified_digest_is_not_read_again() {
    let mut bed = bed().await;
    let signer = Signer::p256(1);
    let verifier = bed.verifier(&[("release.pub", &signer)]);
    let digest = bed.image("1.1.0", "4");
    let payload = payload(&bed, &digest);
    bed.sig_tag(&digest, &[(payload.clone(), signer.sign(&payload))]);
    bed.verify(&verifier, &digest).await;
    let before = bed.fake.requests().len();
    assert!(matches!(
        bed.verify(&verifier, &digest).await,
        Verdict::Verified(_)
    ));
    assert_eq!(bed.fake.requests().len(), before);
}

#[tokio::test]
async fn a_rejection_is_kept_while_the_signatures_are_unchanged_and_dropped_when_one_is_added() {
    let mut bed = bed().await;
    let signer = Signer::p256(1);
    let verifier = bed.verifier(&[("release.pub", &signer)]);
    let digest = bed.image("1.1.0", "5");
    let payload = payload(&bed, &digest);
    bed.sig_tag(
        &digest,
        &[(payload.clone(), Signer::p256(2).sign(&payload))],
    );
    assert_eq!(
        rejected(bed.verify(&verifier, &digest).await).kind,
        RejectionKind::BadSignature
    );
    let blobs = format!("/v2/{REPO}/blobs/");
    assert_eq!(bed.fake.count(Method::GET, &blobs), 1);
    assert_eq!(
        rejected(bed.verify(&verifier, &digest).await).kind,
        RejectionKind::BadSignature
    );
    assert_eq!(
        bed.fake.count(Method::GET, &blobs),
        1,
        "an unchanged rejection reads no blob"
    );
    let sig = format!("/v2/{REPO}/manifests/{}", signature_tag(&digest).unwrap());
    assert_eq!(
        bed.fake.count(Method::HEAD, &sig),
        1,
        "the .sig tag is HEADed to see a change"
    );
    // cosign sign appends a layer: the .sig manifest, and so its digest, changes.
    bed.sig_tag(
        &digest,
        &[
            (payload.clone(), Signer::p256(2).sign(&payload)),
            (payload.clone(), signer.sign(&payload)),
        ],
    );
    assert!(matches!(
        bed.verify(&verifier, &digest).await,
        Verdict::Verified(_)
    ));
}

#[tokio::test]
async fn a_push_event_for_the_repository_drops_its_cached_rejections() {
    let mut bed = bed().await;
    let verifier = bed.verifier(&[("release.pub", &Signer::p256(1))]);
    let digest = bed.image("1.1.0", "6");
    rejected(bed.verify(&verifier, &digest).await);
    bed.registry.forget_repository(&bed.repo);
    rejected(bed.verify(&verifier, &digest).await);
    let sig = format!("/v2/{REPO}/manifests/{}", signature_tag(&digest).unwrap());
    assert_eq!(
        bed.fake.count(Method::HEAD, &sig),
        0,
        "examined afresh, not compared"
    );
    assert_eq!(bed.fake.count(Method::GET, &sig), 2);
}

#[tokio::test]
async fn a_registry_failure_while_reading_signatures_is_an_error_not_a_rejection() {
    let mut bed = bed().await;
    let verifier = bed.verifier(&[("release.pub", &Signer::p256(1))]);
    let digest = bed.image("1.1.0", "7");
    let sig = format!("/v2/{REPO}/manifests/{}", signature_tag(&digest).unwrap());
    bed.fake.fault_always(&sig, Fault::status(500));
    let error = verifier.verify(&bed.repo, &digest, None).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(
        bed.metric_text()
            .contains("signature_verifications_total{result=\"error\"} 1")
    );
}

#[tokio::test]
async fn a_payload_blob_that_does_not_match_its_digest_is_malformed() {
    let mut bed = bed().await;
    let signer = Signer::p256(1);
    let verifier = bed.verifier(&[("release.pub", &signer)]);
    let digest = bed.image("1.1.0", "8");
    let payload = payload(&bed, &digest);
    bed.sig_tag(&digest, &[(payload.clone(), signer.sign(&payload))]);
    let blob = bed.fake.set_blob(REPO, &payload);
    bed.fake.fault_always(
        &format!("/v2/{REPO}/blobs/{blob}"),
        Fault::ok().malformed_body(),
    );
    let rejection = rejected(bed.verify(&verifier, &digest).await);
    assert_eq!(rejection.kind, RejectionKind::Malformed, "{rejection}");
}

/// The exact requests: what verifying an unsigned digest costs, then what keeping its rejection costs.
#[tokio::test]
async fn an_unsigned_digest_costs_three_requests_and_its_kept_rejection_three_more_without_a_blob()
{
    let mut bed = bed().await;
    let verifier = bed.verifier(&[("release.pub", &Signer::p256(1))]);
    let digest = bed.image("1.1.0", "9");
    let sig = format!("/v2/{REPO}/manifests/{}", signature_tag(&digest).unwrap());
    let referrers = format!("/v2/{REPO}/referrers/{digest}");
    let tag = format!("/v2/{REPO}/manifests/{}", digest.replacen(':', "-", 1));
    let since = |from: usize| -> Vec<String> {
        bed.fake.requests()[from..]
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    };
    let start = bed.fake.requests().len();
    rejected(bed.verify(&verifier, &digest).await);
    assert_eq!(
        since(start),
        [
            format!("GET {sig}"),
            format!("GET {referrers}"),
            format!("GET {tag}")
        ]
    );
    let again = bed.fake.requests().len();
    rejected(bed.verify(&verifier, &digest).await);
    assert_eq!(
        since(again),
        [
            format!("HEAD {sig}"),
            format!("GET {referrers}"),
            format!("GET {tag}")
        ]
    );
}
