//! Signature checks over bytes, for the key types of `VERIFY_KEYS` (docs/signatures.md#keys).
//!
//! Input: a [`PublicKey`], the signed message and the signature bytes. Output: whether it verifies.
//!
//! # What was chosen and why
//! - ECDSA P-256 with SHA-256: the `p256` crate, already in the workspace (the test registry's token
//!   signer). cosign writes ASN.1 DER signatures; the fixed 64-byte `r || s` form is accepted too, and a
//!   high-S signature (Go's `crypto/ecdsa` neither writes nor rejects a particular form) is normalised.
//! - Ed25519: `ed25519-dalek` 2 with its `digest` feature. `ring`, already in the tree through rustls, does
//!   pure Ed25519 only, while cosign signs with Ed25519ph (RFC 8032 §5.1, SHA-512 prehash, empty context)
//!   by default; dalek does both, on the same RustCrypto `digest` 0.10 generation as `p256`. Both forms
//!   are accepted because sigstore's verifiers accept a pure signature for an Ed25519 key as well.

use ed25519_dalek::{Digest as _, Sha512};
use p256::ecdsa::signature::Verifier as _;

use super::keys::{KeyMaterial, PublicKey};

/// Whether `signature` over `message` verifies with `key`.
pub(crate) fn verifies(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    match &key.material {
        KeyMaterial::EcdsaP256(key) => ecdsa_p256(key, message, signature),
        KeyMaterial::Ed25519(key) => {
            ed25519_prehashed(key, message, signature) || ed25519_pure(key, message, signature)
        }
    }
}

fn ecdsa_p256(key: &p256::ecdsa::VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let parsed = p256::ecdsa::Signature::from_der(signature)
        .or_else(|_| p256::ecdsa::Signature::from_slice(signature));
    let Ok(signature) = parsed else {
        return false;
    };
    let signature = signature.normalize_s().unwrap_or(signature);
    key.verify(message, &signature).is_ok()
}

fn ed25519_signature(signature: &[u8]) -> Option<ed25519_dalek::Signature> {
    ed25519_dalek::Signature::from_slice(signature).ok()
}

/// RFC 8032 Ed25519ph with an empty context, as Go's `ed25519.VerifyWithOptions` with `Hash: SHA512`.
fn ed25519_prehashed(key: &ed25519_dalek::VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let Some(signature) = ed25519_signature(signature) else {
        return false;
    };
    let prehash = Sha512::new().chain_update(message);
    key.verify_prehashed(prehash, None, &signature).is_ok()
}

fn ed25519_pure(key: &ed25519_dalek::VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let Some(signature) = ed25519_signature(signature) else {
        return false;
    };
    key.verify_strict(message, &signature).is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::verify::testing::{Signer, ed25519_public_key};

    /// RFC 8032 §7.3, test vector "abc" (Ed25519ph).
    #[test]
    fn ed25519ph_verifies_the_rfc_8032_test_vector() {
        let public =
            hex::decode("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
                .unwrap();
        let signature = hex::decode(concat!(
            "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41",
            "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
        ))
        .unwrap();
        let key = ed25519_public_key("rfc8032.pub", public.as_slice().try_into().unwrap());
        assert!(verifies(&key, b"abc", &signature));
        assert!(!verifies(&key, b"abd", &signature));
        assert!(
            !ed25519_pure(
                &ed25519_dalek::VerifyingKey::from_bytes(public.as_slice().try_into().unwrap())
                    .unwrap(),
                b"abc",
                &signature
            ),
            "the vector is a prehash signature, not a pure one"
        );
    }

    #[test]
    fn ed25519_is_accepted_prehashed_and_pure() {
        let signer = Signer::ed25519(7);
        let key = signer.public_key("ed.pub");
        assert!(verifies(&key, b"payload", &signer.sign(b"payload")));
        assert!(verifies(&key, b"payload", &signer.sign_pure(b"payload")));
        assert!(!verifies(&key, b"payload!", &signer.sign(b"payload")));
        assert!(!verifies(&key, b"payload", &[0u8; 64]));
        assert!(!verifies(&key, b"payload", b"short"));
    }

    #[test]
    fn ecdsa_p256_is_accepted_as_der_and_as_raw_r_s() {
        let signer = Signer::p256(3);
        let key = signer.public_key("ec.pub");
        let der = signer.sign(b"payload");
        assert!(verifies(&key, b"payload", &der));
        let raw = p256::ecdsa::Signature::from_der(&der).unwrap().to_bytes();
        assert!(verifies(&key, b"payload", &raw));
        assert!(!verifies(&key, b"other payload", &der));
        assert!(!verifies(
            &Signer::p256(4).public_key("other.pub"),
            b"payload",
            &der
        ));
        assert!(!verifies(&key, b"payload", b"\x30\x02\x01\x00"));
    }

    #[test]
    fn a_signature_of_one_algorithm_never_passes_for_a_key_of_the_other() {
        let ec = Signer::p256(5);
        let ed = Signer::ed25519(5);
        assert!(!verifies(&ed.public_key("ed.pub"), b"m", &ec.sign(b"m")));
        assert!(!verifies(&ec.public_key("ec.pub"), b"m", &ed.sign(b"m")));
    }
}
