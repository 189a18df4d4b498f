//! What real cosign writes into distribution 2.8, per layout and key kind, and what each forgery changes.
//! The verifier's tests rely on these shapes; if a cosign upgrade changes them, these fail first.

use base64::Engine as _;
use serde_json::Value;
use watch_cluster_testkit::cosign::tamper::SIG_ANNOTATION;
use watch_cluster_testkit::registry::{OCI_INDEX, OCI_MANIFEST};
use watch_cluster_testkit::{ImageKind, KeyKind, Layout, RealRegistry, RegistryAuth};

use crate::fixture::{Forgery, Signer};

const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

async fn get_json(registry: &RealRegistry, path: &str) -> (u16, Option<String>, Value) {
    let url = format!("{}/v2/{path}", registry.base_url());
    let response = reqwest::Client::new()
        .get(&url)
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.bytes().await.unwrap();
    (
        status,
        content_type,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// The simple-signing payloads and signatures under `digest`'s `.sig` tag.
async fn sig_layers(registry: &RealRegistry, repo: &str, digest: &str) -> Vec<(Value, String)> {
    let (status, content_type, manifest) = get_json(
        registry,
        &format!("{repo}/manifests/{}", Layout::Sig.tag(digest)),
    )
    .await;
    assert_eq!(status, 200, "{manifest}");
    assert_eq!(content_type.as_deref(), Some(OCI_MANIFEST));
    let mut out = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(layer["mediaType"], SIMPLE_SIGNING);
        let digest = layer["digest"].as_str().unwrap();
        let (_, _, payload) = get_json(registry, &format!("{repo}/blobs/{digest}")).await;
        let signature = layer["annotations"][SIG_ANNOTATION]
            .as_str()
            .unwrap()
            .to_owned();
        out.push((payload, signature));
    }
    out
}

/// `(referrer manifest, bundle, DSSE statement)` for each entry of `digest`'s bundle tag.
async fn bundles(registry: &RealRegistry, repo: &str, digest: &str) -> Vec<(Value, Value, Value)> {
    let (status, content_type, index) = get_json(
        registry,
        &format!("{repo}/manifests/{}", Layout::Bundle.tag(digest)),
    )
    .await;
    assert_eq!(status, 200, "{index}");
    assert_eq!(
        content_type.as_deref(),
        Some(OCI_INDEX),
        "the fallback tag holds an index"
    );
    let mut out = Vec::new();
    for entry in index["manifests"].as_array().unwrap() {
        let referrer_digest = entry["digest"].as_str().unwrap();
        let (_, _, referrer) =
            get_json(registry, &format!("{repo}/manifests/{referrer_digest}")).await;
        assert_eq!(referrer["artifactType"], BUNDLE, "{referrer}");
        let layer = &referrer["layers"][0];
        assert_eq!(layer["mediaType"], BUNDLE);
        let (_, _, bundle) = get_json(
            registry,
            &format!("{repo}/blobs/{}", layer["digest"].as_str().unwrap()),
        )
        .await;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
        let statement: Value = serde_json::from_slice(&payload).unwrap();
        out.push((referrer, bundle, statement));
    }
    out
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

async fn layouts_as_written(kind: KeyKind) {
    let signer = Signer::new(kind).await;
    assert_eq!(signer.cosign.version().await.unwrap(), "v2.6.5");
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    let image = registry
        .push("team/app", "1.0.0", ImageKind::OciIndex, "a")
        .await
        .unwrap();
    for layout in Layout::ALL {
        signer
            .sign(&registry, "team/app", &image.digest, layout)
            .await;
    }

    let sigs = sig_layers(&registry, "team/app", &image.digest).await;
    assert_eq!(sigs.len(), 1);
    let (payload, signature) = &sigs[0];
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        image.digest
    );
    assert_eq!(
        payload["critical"]["type"],
        "cosign container image signature"
    );
    let raw = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .unwrap();
    match kind {
        // ASN.1 DER: a SEQUENCE of two INTEGERs.
        KeyKind::P256 => assert_eq!(raw[0], 0x30, "a DER ECDSA signature"),
        KeyKind::Ed25519 => assert_eq!(raw.len(), 64, "a raw Ed25519 signature"),
    }

    // distribution 2.8 has no referrers API: cosign falls back to the `sha256-<hex>` tag.
    let (status, _, _) = get_json(&registry, &format!("team/app/referrers/{}", image.digest)).await;
    assert_eq!(status, 404, "distribution 2.8 has no referrers API");
    let bundles = bundles(&registry, "team/app", &image.digest).await;
    assert_eq!(bundles.len(), 1);
    let (referrer, bundle, statement) = &bundles[0];
    assert_eq!(referrer["subject"]["digest"], image.digest);
    assert_eq!(referrer["subject"]["mediaType"], OCI_INDEX);
    assert_eq!(bundle["mediaType"], BUNDLE);
    assert_eq!(
        bundle["dsseEnvelope"]["payloadType"],
        "application/vnd.in-toto+json"
    );
    assert!(
        bundle["verificationMaterial"]["publicKey"]["hint"].is_string(),
        "a key hint, no certificate: {bundle}"
    );
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        hex(&image.digest)
    );
    assert_eq!(
        statement["predicateType"],
        "https://sigstore.dev/cosign/sign/v1"
    );

    let tags = registry.list_tags("team/app").await.unwrap();
    let mut expected = vec![
        "1.0.0".to_owned(),
        Layout::Sig.tag(&image.digest),
        Layout::Bundle.tag(&image.digest),
    ];
    let mut tags = tags;
    tags.sort();
    expected.sort();
    assert_eq!(tags, expected, "cosign adds exactly the two signature tags");
}

#[tokio::test]
async fn layout_p256_both_layouts_as_cosign_writes_them() {
    layouts_as_written(KeyKind::P256).await;
}

#[tokio::test]
async fn layout_ed25519_imported_key_both_layouts_as_cosign_writes_them() {
    layouts_as_written(KeyKind::Ed25519).await;
}

/// Each forgery changes what it claims to and nothing else a verifier could use to tell.
#[tokio::test]
async fn layout_forgeries_change_what_they_claim() {
    let signer = Signer::new(KeyKind::P256).await;
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    let repo = "team/forged";
    for layout in Layout::ALL {
        for (i, forgery) in Forgery::rejected(layout).into_iter().enumerate() {
            let salt = format!("{}-{i}", layout.name());
            let donor = registry
                .push(
                    repo,
                    &format!("donor-{salt}"),
                    ImageKind::OciManifest,
                    &salt,
                )
                .await
                .unwrap();
            let target = registry
                .push(
                    repo,
                    &format!("target-{salt}"),
                    ImageKind::OciManifest,
                    &salt,
                )
                .await
                .unwrap();
            signer
                .apply(
                    &registry,
                    repo,
                    &target.digest,
                    &donor.digest,
                    layout,
                    forgery,
                )
                .await;
            let what = format!("{forgery:?} in the {} layout", layout.name());
            match (layout, forgery) {
                (_, Forgery::Unsigned) => {
                    let tag = layout.tag(&target.digest);
                    let answer = registry
                        .head_manifest(repo, &tag, &[OCI_MANIFEST, OCI_INDEX])
                        .await
                        .unwrap();
                    assert_eq!(answer.status, 404, "{what}");
                }
                (Layout::Sig, Forgery::OtherDigest) => {
                    let sigs = sig_layers(&registry, repo, &target.digest).await;
                    assert_eq!(
                        sigs[0].0["critical"]["image"]["docker-manifest-digest"], donor.digest,
                        "{what}"
                    );
                    assert_eq!(
                        sigs,
                        sig_layers(&registry, repo, &donor.digest).await,
                        "{what}"
                    );
                }
                (Layout::Bundle, Forgery::OtherDigest) => {
                    let (referrer, _, statement) =
                        bundles(&registry, repo, &target.digest).await.remove(0);
                    assert_eq!(referrer["subject"]["digest"], donor.digest, "{what}");
                    assert_eq!(
                        statement["subject"][0]["digest"]["sha256"],
                        hex(&donor.digest)
                    );
                }
                (Layout::Bundle, Forgery::ClaimedSubject) => {
                    let (referrer, bundle, statement) =
                        bundles(&registry, repo, &target.digest).await.remove(0);
                    assert_eq!(referrer["subject"]["digest"], target.digest, "{what}");
                    assert_eq!(
                        statement["subject"][0]["digest"]["sha256"],
                        hex(&donor.digest),
                        "{what}: the signed statement still names the donor"
                    );
                    let (_, donor_bundle, _) =
                        bundles(&registry, repo, &donor.digest).await.remove(0);
                    assert_eq!(bundle, donor_bundle, "{what}: the signed bundle untouched");
                }
                (Layout::Sig, Forgery::TamperedSignature) => {
                    let (payload, signature) =
                        sig_layers(&registry, repo, &target.digest).await.remove(0);
                    assert_eq!(
                        payload["critical"]["image"]["docker-manifest-digest"],
                        target.digest
                    );
                    assert_eq!(
                        payload["optional"],
                        Value::Null,
                        "{what}: payload as signed"
                    );
                    assert!(
                        base64::engine::general_purpose::STANDARD
                            .decode(signature)
                            .is_ok()
                    );
                }
                (Layout::Sig, Forgery::TamperedPayload) => {
                    let (payload, _) = sig_layers(&registry, repo, &target.digest).await.remove(0);
                    assert_eq!(
                        payload["critical"]["image"]["docker-manifest-digest"], target.digest,
                        "{what}: still names the image"
                    );
                    assert_eq!(payload["optional"]["tampered"], "yes", "{what}");
                }
                (Layout::Bundle, Forgery::TamperedSignature) => {
                    let (referrer, _, statement) =
                        bundles(&registry, repo, &target.digest).await.remove(0);
                    assert_eq!(referrer["subject"]["digest"], target.digest, "{what}");
                    assert_eq!(statement["predicate"], Value::Null, "{what}");
                }
                (Layout::Bundle, Forgery::TamperedPayload) => {
                    let (_, _, statement) =
                        bundles(&registry, repo, &target.digest).await.remove(0);
                    assert_eq!(
                        statement["subject"][0]["digest"]["sha256"],
                        hex(&target.digest),
                        "{what}: still names the image"
                    );
                    assert_eq!(statement["predicate"]["tampered"], "yes", "{what}");
                }
                (_, Forgery::OtherKey) => {
                    // Signed for the right digest: only the key is wrong.
                    match layout {
                        Layout::Sig => assert_eq!(
                            sig_layers(&registry, repo, &target.digest).await[0].0["critical"]["image"]
                                ["docker-manifest-digest"],
                            target.digest
                        ),
                        Layout::Bundle => assert_eq!(
                            bundles(&registry, repo, &target.digest).await[0].2["subject"][0]["digest"]
                                ["sha256"],
                            hex(&target.digest)
                        ),
                    }
                }
                (Layout::Sig, Forgery::ClaimedSubject) | (_, Forgery::Signed) => {
                    unreachable!("not a rejected forgery of this layout")
                }
            }
        }
    }
}

/// The tampered signatures really differ from what cosign signed, by one bit.
#[tokio::test]
async fn layout_tampered_signature_differs_by_one_bit() {
    let signer = Signer::new(KeyKind::Ed25519).await;
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    let image = registry
        .push("team/bit", "1.0.0", ImageKind::OciManifest, "a")
        .await
        .unwrap();
    for layout in Layout::ALL {
        signer
            .sign(&registry, "team/bit", &image.digest, layout)
            .await;
    }
    let before_sig = sig_layers(&registry, "team/bit", &image.digest).await[0]
        .1
        .clone();
    let before_bundle = bundles(&registry, "team/bit", &image.digest).await[0]
        .1
        .clone();
    for layout in Layout::ALL {
        watch_cluster_testkit::cosign::tamper::tamper(
            &registry,
            "team/bit",
            &image.digest,
            layout,
            watch_cluster_testkit::cosign::tamper::Tamper::Signature,
        )
        .await
        .unwrap();
    }
    let after_sig = sig_layers(&registry, "team/bit", &image.digest).await[0]
        .1
        .clone();
    let after_bundle = bundles(&registry, "team/bit", &image.digest).await[0]
        .1
        .clone();
    let decode = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
    let bits = |a: &[u8], b: &[u8]| -> u32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
    };
    assert_eq!(bits(&decode(&before_sig), &decode(&after_sig)), 1);
    let sig_of = |b: &Value| decode(b["dsseEnvelope"]["signatures"][0]["sig"].as_str().unwrap());
    assert_eq!(bits(&sig_of(&before_bundle), &sig_of(&after_bundle)), 1);
    assert_eq!(
        before_bundle["dsseEnvelope"]["payload"],
        after_bundle["dsseEnvelope"]["payload"]
    );
}
