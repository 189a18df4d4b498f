//! Test-only signers, independent of the verification code: they sign with the `p256` and `ed25519-dalek`
//! signing halves and build the layouts cosign writes, so a test fails if verification misreads them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Digest as _, Sha512};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{EncodePublicKey as _, LineEnding};

use super::keys::PublicKey;

/// A signing key of either algorithm, made from a fixed seed.
pub(crate) enum Signer {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl Signer {
    pub(crate) fn p256(seed: u8) -> Self {
        let mut bytes = [0u8; 32];
        bytes[31] = seed.max(1);
        bytes[0] = 0x42;
        Signer::P256(p256::ecdsa::SigningKey::from_slice(&bytes).unwrap())
    }

    pub(crate) fn ed25519(seed: u8) -> Self {
        Signer::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    /// The SPKI PEM of the public half, as `cosign.pub`.
    pub(crate) fn public_pem(&self) -> String {
        match self {
            Signer::P256(key) => key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
            Signer::Ed25519(key) => {
                let mut der = hex::decode("302a300506032b6570032100").unwrap();
                der.extend_from_slice(key.verifying_key().as_bytes());
                let body = STANDARD.encode(der);
                format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")
            }
        }
    }

    pub(crate) fn public_key(&self, file: &str) -> PublicKey {
        PublicKey::from_pem(file, self.public_pem().as_bytes()).unwrap()
    }

    /// What cosign signs by default: ECDSA DER over SHA-256, or Ed25519ph.
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Signer::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            Signer::Ed25519(key) => key
                .sign_prehashed(Sha512::new().chain_update(message), None)
                .unwrap()
                .to_bytes()
                .to_vec(),
        }
    }

    /// Pure Ed25519 (ECDSA as [`Signer::sign`]).
    pub(crate) fn sign_pure(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Signer::Ed25519(key) => {
                use ed25519_dalek::Signer as _;
                key.sign(message).to_bytes().to_vec()
            }
            Signer::P256(_) => self.sign(message),
        }
    }
}

/// A key from raw Ed25519 public bytes, through its SPKI PEM.
pub(crate) fn ed25519_public_key(file: &str, raw: [u8; 32]) -> PublicKey {
    let mut der = hex::decode("302a300506032b6570032100").unwrap();
    der.extend_from_slice(&raw);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    );
    PublicKey::from_pem(file, pem.as_bytes()).unwrap()
}

/// The simple-signing payload cosign writes for `docker_reference@digest`.
pub(crate) fn simple_signing_payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    })
    .to_string()
    .into_bytes()
}

/// DSSE's pre-authentication encoding, written out independently of `bundle.rs`.
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// An in-toto statement over `hex` (sha256), as cosign's new bundle format signs.
pub(crate) fn statement(name: &str, hex: &str) -> Vec<u8> {
    serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": hex}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {}
    })
    .to_string()
    .into_bytes()
}

/// A Sigstore bundle v0.3 whose DSSE envelope carries `statement`, signed by `signer`.
pub(crate) fn bundle(signer: &Signer, statement: &[u8]) -> Vec<u8> {
    let payload_type = "application/vnd.in-toto+json";
    let signature = signer.sign(&pae(payload_type, statement));
    serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": ""}},
        "dsseEnvelope": {
            "payload": STANDARD.encode(statement),
            "payloadType": payload_type,
            "signatures": [{"sig": STANDARD.encode(signature), "keyid": ""}]
        }
    })
    .to_string()
    .into_bytes()
}

/// Publishes on `fake` cosign's `.sig` manifest for `repo@digest` with one simple-signing layer per
/// (payload, signature).
pub(crate) fn publish_sig_tag(
    fake: &watch_cluster_testkit::FakeRegistry,
    repo: &str,
    digest: &str,
    layers: &[(Vec<u8>, Vec<u8>)],
) {
    use super::{SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE};
    let manifest_type = "application/vnd.oci.image.manifest.v1+json";
    let layers: Vec<_> = layers
        .iter()
        .map(|(payload, signature)| {
            let blob = fake.set_blob(repo, payload);
            serde_json::json!({"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "size": payload.len(),
                "digest": blob, "annotations": {SIGNATURE_ANNOTATION: STANDARD.encode(signature)}})
        })
        .collect();
    let body = serde_json::json!({"schemaVersion": 2, "mediaType": manifest_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                   "digest": fake.set_blob(repo, b"{}")},
        "layers": layers});
    let tag = super::signature_tag(digest).unwrap();
    fake.set_manifest(repo, Some(&tag), manifest_type, body.to_string().as_bytes());
}

/// Signs `repo@digest` as `cosign sign` does by default (a `.sig` tag), with `signer`.
pub(crate) fn sign_image(
    fake: &watch_cluster_testkit::FakeRegistry,
    repo: &str,
    digest: &str,
    signer: &Signer,
) {
    let payload = simple_signing_payload(&format!("{}/{repo}", fake.host()), digest);
    let signature = signer.sign(&payload);
    publish_sig_tag(fake, repo, digest, &[(payload, signature)]);
}
