//! The signer of the signature tests: real cosign with the key the verifier trusts and another one, and the
//! ways a candidate can be unsigned or wrongly signed. Shared by `tests/signatures.rs`, the scenarios and
//! the real-cluster tests.

use std::path::{Path, PathBuf};

use watch_cluster_testkit::cosign::tamper::{self, Tamper};
use watch_cluster_testkit::{Cosign, KeyKind, KeyPair, Layout, RealRegistry};

/// What is wrong with a candidate's signature; `Signed` is nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Signed by the trusted key.
    Signed,
    /// No signature at all.
    Unsigned,
    /// Signed, by a key the verifier was not given.
    OtherKey,
    /// The trusted key's valid signature of another image, copied to this image's signature tag.
    OtherDigest,
    /// Signed by the trusted key, then one bit of the signature flipped.
    TamperedSignature,
    /// Signed by the trusted key, then the signed payload changed.
    TamperedPayload,
    /// Bundle layout: another image's referrer whose unsigned `subject` was pointed at this image.
    ClaimedSubject,
}

impl Forgery {
    /// Every way of being wrongly signed that applies to `layout`.
    pub fn rejected(layout: Layout) -> Vec<Forgery> {
        let mut all = vec![
            Forgery::Unsigned,
            Forgery::OtherKey,
            Forgery::OtherDigest,
            Forgery::TamperedSignature,
            Forgery::TamperedPayload,
        ];
        if layout == Layout::Bundle {
            all.push(Forgery::ClaimedSubject);
        }
        all
    }
}

/// cosign, a trusted key pair and another one of the same kind.
pub struct Signer {
    pub cosign: Cosign,
    /// The key the verifier is given.
    pub key: KeyPair,
    /// A key the verifier does not know.
    pub other: KeyPair,
    /// A directory holding only the trusted public key, as `VERIFY_KEYS` / `--verify-keys`.
    pub keys_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Signer {
    pub async fn new(kind: KeyKind) -> Signer {
        let cosign = Cosign::find().expect("the real cosign (testbed/cosign/build)");
        let dir = tempfile::tempdir().expect("tempdir");
        let private = dir.path().join("private");
        let keys_dir = dir.path().join("verify-keys");
        std::fs::create_dir_all(&private).unwrap();
        std::fs::create_dir_all(&keys_dir).unwrap();
        let key = cosign
            .key_pair(kind, &private, &format!("release-{}", kind.name()))
            .await
            .expect("trusted key pair");
        let other = cosign
            .key_pair(kind, &private, &format!("other-{}", kind.name()))
            .await
            .expect("other key pair");
        std::fs::copy(&key.public_key, keys_dir.join(pub_name(&key))).unwrap();
        Signer {
            cosign,
            key,
            other,
            keys_dir,
            _dir: dir,
        }
    }

    /// How the controller names the trusted key: its file name and the SHA-256 of its SPKI DER
    /// (docs/signatures.md), computed here from the PEM.
    pub fn trusted_key_name(&self) -> String {
        use base64::Engine as _;
        use sha2::Digest as _;
        let pem = self.key.public_pem().unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        format!(
            "{} (SHA256:{})",
            pub_name(&self.key),
            hex::encode(sha2::Sha256::digest(&der))
        )
    }

    /// Signs `repo@digest` with the trusted key.
    pub async fn sign(&self, registry: &RealRegistry, repo: &str, digest: &str, layout: Layout) {
        self.cosign
            .sign(registry, repo, digest, &self.key, layout)
            .await
            .expect("cosign sign");
    }

    /// Gives `repo@digest` the signature `forgery` describes; `donor` is another image of `repo` whose
    /// signatures a forgery may borrow (signed here first).
    pub async fn apply(
        &self,
        registry: &RealRegistry,
        repo: &str,
        digest: &str,
        donor: &str,
        layout: Layout,
        forgery: Forgery,
    ) {
        match forgery {
            Forgery::Signed => self.sign(registry, repo, digest, layout).await,
            Forgery::Unsigned => {}
            Forgery::OtherKey => self
                .cosign
                .sign(registry, repo, digest, &self.other, layout)
                .await
                .expect("cosign sign with the other key"),
            Forgery::OtherDigest => {
                self.sign(registry, repo, donor, layout).await;
                tamper::copy_signatures(registry, repo, donor, digest, layout)
                    .await
                    .expect("copy the donor's signatures");
            }
            Forgery::TamperedSignature | Forgery::TamperedPayload => {
                self.sign(registry, repo, digest, layout).await;
                let how = if forgery == Forgery::TamperedSignature {
                    Tamper::Signature
                } else {
                    Tamper::Payload
                };
                tamper::tamper(registry, repo, digest, layout, how)
                    .await
                    .expect("tamper");
            }
            Forgery::ClaimedSubject => {
                assert_eq!(layout, Layout::Bundle, "only a referrer has a subject");
                self.sign(registry, repo, donor, layout).await;
                tamper::claim_subject(registry, repo, donor, digest)
                    .await
                    .expect("claim the subject");
            }
        }
    }
}

fn pub_name(key: &KeyPair) -> String {
    Path::new(&key.public_key)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
