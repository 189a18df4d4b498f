//! Signature verification end to end (docs/signatures.md): the controller binary with `VERIFY_KEYS`, the real
//! distribution registry holding signatures made here with `p256` (independently of the controller's code) in
//! both layouts, the simulated cluster. Real cosign is exercised by the tests of `tests/real/` that use it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::{Signature, SigningKey, signature::Signer as _};
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use watch_cluster_sim::Kind;

use crate::env::Env;
use crate::{as_pairs, enabled};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn signing_key() -> SigningKey {
    SigningKey::from_slice(&[7u8; 32]).expect("a P-256 scalar")
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn sign(message: &[u8]) -> String {
    let signature: Signature = signing_key().sign(message);
    STANDARD.encode(signature.to_der().as_bytes())
}

/// The keys directory the controller is given, as a mounted ConfigMap presents it.
fn keys_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let pem = signing_key()
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("pem");
    std::fs::write(dir.path().join("release.pub"), pem).expect("key file");
    dir
}

/// An empty config blob, as cosign writes for its artifacts.
fn config_blob() -> (Vec<u8>, serde_json::Value) {
    let blob = b"{}".to_vec();
    let descriptor = json!({"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": digest_of(&blob)});
    (blob, descriptor)
}

/// Layout 1: the `sha256-<hex>.sig` tag with one simple-signing payload.
async fn sign_with_sig_tag(env: &Env, repo: &str, digest: &str) {
    let payload = json!({"critical": {"identity": {"docker-reference": format!("{}/{repo}", env.registry.host())},
        "image": {"docker-manifest-digest": digest}, "type": "cosign container image signature"},
        "optional": null})
    .to_string()
    .into_bytes();
    let (config, config_descriptor) = config_blob();
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor,
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "size": payload.len(), "digest": digest_of(&payload),
            "annotations": {"dev.cosignproject.cosign/signature": sign(&payload)}}]});
    let tag = format!("{}.sig", digest.replacen(':', "-", 1));
    env.registry
        .push_artifact(
            repo,
            Some(&tag),
            OCI_MANIFEST,
            manifest.to_string().into_bytes(),
            &[config, payload],
        )
        .await
        .expect("push the .sig manifest");
}

/// Layout 2: a Sigstore bundle referrer, listed in the `sha256-<hex>` tag (distribution has no referrers API).
async fn sign_with_bundle(env: &Env, repo: &str, digest: &str) {
    let hex = digest.trim_start_matches("sha256:");
    let statement = json!({"_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": repo, "digest": {"sha256": hex}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}})
    .to_string();
    let payload_type = "application/vnd.in-toto+json";
    let pae = format!(
        "DSSEv1 {} {payload_type} {} {statement}",
        payload_type.len(),
        statement.len()
    );
    let bundle = json!({"mediaType": BUNDLE, "verificationMaterial": {"publicKey": {"hint": ""}},
        "dsseEnvelope": {"payload": STANDARD.encode(&statement), "payloadType": payload_type,
            "signatures": [{"sig": sign(pae.as_bytes()), "keyid": ""}]}})
    .to_string()
    .into_bytes();
    let (config, config_descriptor) = config_blob();
    let referrer = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE,
        "config": config_descriptor,
        "layers": [{"mediaType": BUNDLE, "size": bundle.len(), "digest": digest_of(&bundle)}],
        "subject": {"mediaType": OCI_INDEX, "size": 1, "digest": digest}})
    .to_string()
    .into_bytes();
    let referrer_size = referrer.len();
    let referrer_digest = env
        .registry
        .push_artifact(repo, None, OCI_MANIFEST, referrer, &[config, bundle])
        .await
        .expect("push the bundle referrer");
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST,
        "size": referrer_size, "digest": referrer_digest, "artifactType": BUNDLE}]});
    env.registry
        .push_artifact(
            repo,
            Some(&digest.replacen(':', "-", 1)),
            OCI_INDEX,
            index.to_string().into_bytes(),
            &[],
        )
        .await
        .expect("push the referrers tag");
}

fn verified(strategy: &str) -> Vec<(&'static str, String)> {
    let mut annotations = enabled(strategy);
    annotations.push(("watch-cluster.io/verify", "cosign".to_owned()));
    annotations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_signed_candidates_are_taken_and_an_unsigned_newer_one_is_reported_once() {
    let mut env = Env::start().await;
    env.push("team/sig", "1.0.0", "a").await;
    let signed = env.push("team/sig", "1.1.0", "a").await;
    let unsigned = env.push("team/sig", "1.2.0", "a").await;
    sign_with_sig_tag(&env, "team/sig", &signed.digest).await;
    env.push("team/bundle", "1.0.0", "b").await;
    let bundled = env.push("team/bundle", "1.1.0", "b").await;
    sign_with_bundle(&env, "team/bundle", &bundled.digest).await;
    let annotations = verified("version");
    env.create(
        Kind::Deployment,
        "sig",
        &[("app", &env.image("team/sig", "1.0.0"))],
        &as_pairs(&annotations),
    );
    env.create(
        Kind::Deployment,
        "bundle",
        &[("app", &env.image("team/bundle", "1.0.0"))],
        &as_pairs(&annotations),
    );
    let keys = keys_dir();
    env.spawn_controller(
        env.base_settings()
            .with("VERIFY_KEYS", keys.path().to_str().expect("utf-8")),
    );

    let expected = format!("{}@{}", env.image("team/sig", "1.1.0"), signed.digest);
    env.wait_for(Kind::Deployment, "sig", "moved to the signed 1.1.0", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] == expected.as_str()
    })
    .await;
    let expected = format!("{}@{}", env.image("team/bundle", "1.1.0"), bundled.digest);
    env.wait_for(
        Kind::Deployment,
        "bundle",
        "moved to the bundle-signed 1.1.0",
        |d| d["spec"]["template"]["spec"]["containers"][0]["image"] == expected.as_str(),
    )
    .await;
    let (_, _, updated) = env.wait_for_event("sig", "ImageUpdated").await;
    assert!(
        updated.contains("signature verified with release.pub (SHA256:")
            && updated.contains("(cosign signature tag)"),
        "the key is named in the update's Event: {updated}"
    );
    let (_, _, updated) = env.wait_for_event("bundle", "ImageUpdated").await;
    assert!(updated.contains("(Sigstore bundle referrer)"), "{updated}");
    let (kind, _, note) = env.wait_for_event("sig", "SignatureRejected").await;
    assert_eq!(kind, "Warning");
    assert!(
        note.contains(&unsigned.digest) && note.contains("Unsigned"),
        "{note}"
    );
    env.more_checks(Kind::Deployment, "sig", 3).await;
    let rejected = env
        .reasons("sig")
        .iter()
        .filter(|r| *r == "SignatureRejected")
        .count();
    assert_eq!(
        rejected,
        1,
        "once per candidate and reason: {:?}",
        env.events("sig")
    );
    assert!(
        !env.reasons("bundle")
            .iter()
            .any(|r| r == "SignatureRejected")
    );
    assert!(
        env.forbidden_calls().is_empty(),
        "{:?}",
        env.forbidden_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_without_keys_is_an_invalid_annotation_and_nothing_is_updated() {
    let mut env = Env::start().await;
    env.push("team/nokey", "1.0.0", "a").await;
    env.push("team/nokey", "1.1.0", "a").await;
    let current = env.image("team/nokey", "1.0.0");
    env.create(
        Kind::Deployment,
        "nokey",
        &[("app", &current)],
        &as_pairs(&verified("version")),
    );
    env.spawn_controller(env.base_settings());
    let (_, _, note) = env.wait_for_event("nokey", "InvalidAnnotation").await;
    assert!(note.contains("VERIFY_KEYS"), "{note}");
    env.more_checks(Kind::Deployment, "nokey", 2).await;
    assert_eq!(env.image_of(Kind::Deployment, "nokey", "app"), current);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_verify_prints_the_key_of_the_candidate_taken_and_each_rejection() {
    let env = Env::start().await;
    env.push("team/chk", "1.0.0", "a").await;
    let signed = env.push("team/chk", "1.1.0", "a").await;
    let unsigned = env.push("team/chk", "1.2.0", "a").await;
    sign_with_sig_tag(&env, "team/chk", &signed.digest).await;
    let keys = keys_dir();
    let check = |extra: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_watch-cluster"));
        command
            .args(["check", &env.image("team/chk", "1.0.0")])
            .args(["--insecure-registries", &env.registry.host()])
            .args(extra)
            .env_clear();
        command.output().expect("check runs")
    };
    let key = keys.path().join("release.pub");
    let output = check(&[
        "--verify",
        "cosign",
        "--verify-keys",
        key.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let taken = format!(
        "decision: update to {}@{}",
        env.image("team/chk", "1.1.0"),
        signed.digest
    );
    assert!(stdout.contains(&taken), "{stdout}");
    assert!(
        stdout.contains("signature: verified with release.pub (SHA256:"),
        "{stdout}"
    );
    let rejected = format!(
        "signature rejected: {}@{}: Unsigned",
        env.image("team/chk", "1.2.0"),
        unsigned.digest
    );
    assert!(stdout.contains(&rejected), "{stdout}");
    assert!(
        stdout.contains("1.2.0  not chosen: signature rejected (Unsigned)"),
        "{stdout}"
    );

    let unverified = check(&[]);
    let stdout = String::from_utf8_lossy(&unverified.stdout);
    assert!(
        stdout.contains("1.2.0"),
        "without --verify the newest is taken: {stdout}"
    );
    let half = check(&["--verify", "cosign"]);
    assert!(!half.status.success(), "--verify needs --verify-keys");
    let bad_key = check(&[
        "--verify",
        "cosign",
        "--verify-keys",
        "/nonexistent/key.pub",
    ]);
    let stderr = String::from_utf8_lossy(&bad_key.stderr);
    assert!(
        !bad_key.status.success() && stderr.contains("/nonexistent/key.pub"),
        "{stderr}"
    );
}
