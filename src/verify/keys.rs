//! `VERIFY_KEYS`: the public keys a signature must verify with (docs/signatures.md#keys).
//!
//! Input: a path, either one PEM file or a directory of them (a mounted ConfigMap or Secret: hidden entries
//! such as `..data` are skipped). Output: a [`KeySet`] of [`PublicKey`]s, each named by its file name and the
//! SHA-256 fingerprint of its SPKI DER, or a [`KeyError`] naming the file and the fix.
//!
//! Only SPKI (`-----BEGIN PUBLIC KEY-----`, what `cosign generate-key-pair` writes to `cosign.pub`) with
//! ECDSA P-256 or Ed25519 is accepted. Any other file in the directory is an error rather than being
//! skipped: a key that silently fails to load would reject every signature made with it.

use std::fmt;
use std::path::{Path, PathBuf};

use p256::pkcs8::der::{Decode as _, pem};
use p256::pkcs8::spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use sha2::{Digest as _, Sha256};

/// id-ecPublicKey (RFC 5480).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 / P-256 (RFC 5480).
const P256_CURVE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// id-Ed25519 (RFC 8410).
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// A directory holding more files than this is surely not a key directory.
const MAX_KEYS: usize = 64;
/// A PEM public key is well under 1 KiB; anything far bigger is not one.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Why `VERIFY_KEYS` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to load the key {}: {problem}; {fix}", path.display())]
pub struct KeyError {
    /// The file (or directory) at fault.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
    /// What to do about it.
    pub fix: &'static str,
}

const FIX_FORMAT: &str = "give a PEM `PUBLIC KEY` (SPKI) with an ECDSA P-256 or Ed25519 key, such as the cosign.pub that `cosign generate-key-pair` writes, or remove the file";

/// The algorithm of a key, and the parsed key itself.
#[derive(Clone)]
pub(crate) enum KeyMaterial {
    /// ECDSA over P-256 with SHA-256.
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// Ed25519, checked both as Ed25519ph and as pure Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// How a key is named to people: its file name and SHA-256 fingerprint of its SPKI DER.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyName {
    /// The file name, without its directory.
    pub file: String,
    /// `SHA256:<64 hex>` of the SPKI DER.
    pub fingerprint: String,
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.file, self.fingerprint)
    }
}

/// One public key of `VERIFY_KEYS`.
#[derive(Clone)]
pub struct PublicKey {
    /// How it is named in Events.
    pub name: KeyName,
    pub(crate) material: KeyMaterial,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithm = match self.material {
            KeyMaterial::EcdsaP256(_) => "ecdsa-p256",
            KeyMaterial::Ed25519(_) => "ed25519",
        };
        f.debug_struct("PublicKey")
            .field("name", &self.name.to_string())
            .field("algorithm", &algorithm)
            .finish()
    }
}

impl PublicKey {
    /// Reads one PEM `PUBLIC KEY`; `file` names it.
    pub fn from_pem(file: &str, pem_text: &[u8]) -> Result<Self, String> {
        if !pem_text.trim_ascii_start().starts_with(b"-----BEGIN ") {
            return Err("not a PEM document (it does not start with a -----BEGIN line)".to_owned());
        }
        let (label, der) =
            pem::decode_vec(pem_text).map_err(|e| format!("not a PEM document ({e})"))?;
        if label != "PUBLIC KEY" {
            return Err(format!(
                "a PEM `{label}`, not a `PUBLIC KEY` (a private key or certificate is never a verification key)"
            ));
        }
        let spki = SubjectPublicKeyInfoRef::from_der(&der)
            .map_err(|e| format!("not a SubjectPublicKeyInfo ({e})"))?;
        let raw = spki.subject_public_key.raw_bytes();
        let material = match spki.algorithm.oid {
            EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters_oid()
                    .map_err(|_| "an EC key without a named curve".to_owned())?;
                if curve != P256_CURVE {
                    return Err(format!(
                        "an EC key on curve {curve}; only P-256 (1.2.840.10045.3.1.7) is supported"
                    ));
                }
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(raw)
                    .map_err(|_| "an invalid P-256 point".to_owned())?;
                KeyMaterial::EcdsaP256(key)
            }
            ED25519 => {
                let bytes: [u8; 32] = raw
                    .try_into()
                    .map_err(|_| "an Ed25519 key that is not 32 bytes".to_owned())?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map_err(|_| "an invalid Ed25519 point".to_owned())?;
                KeyMaterial::Ed25519(key)
            }
            other => {
                return Err(format!(
                    "a key of algorithm {other} (RSA is 1.2.840.113549.1.1.1); only ECDSA P-256 and Ed25519 are supported"
                ));
            }
        };
        Ok(PublicKey {
            name: KeyName {
                file: file.to_owned(),
                fingerprint: format!("SHA256:{}", hex::encode(Sha256::digest(&der))),
            },
            material,
        })
    }
}

/// Every key of `VERIFY_KEYS`, sorted by file name. Never empty.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<PublicKey>,
    id: String,
}

impl PartialEq for KeySet {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl KeySet {
    /// Loads a PEM file, or every non-hidden file of a directory.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let error = |path: &Path, problem: String, fix| KeyError {
            path: path.to_owned(),
            problem,
            fix,
        };
        let meta = std::fs::metadata(path).map_err(|e| {
            error(
                path,
                format!("cannot be read ({e})"),
                "mount the Secret or ConfigMap holding the keys at this path, or fix VERIFY_KEYS",
            )
        })?;
        let files = if meta.is_dir() {
            key_files(path)?
        } else {
            vec![path.to_owned()]
        };
        let mut keys = Vec::with_capacity(files.len());
        for file in files {
            keys.push(read_key(&file)?);
        }
        Self::from_keys(keys).ok_or_else(|| {
            error(
                path,
                "holds no key".to_owned(),
                "put at least one PEM public key (such as cosign.pub) in the directory",
            )
        })
    }

    /// A set of the given keys; `None` when there is none.
    pub fn from_keys(mut keys: Vec<PublicKey>) -> Option<Self> {
        if keys.is_empty() {
            return None;
        }
        keys.sort_by(|a, b| a.name.file.cmp(&b.name.file));
        let mut hasher = Sha256::new();
        for key in &keys {
            hasher.update(key.name.fingerprint.as_bytes());
            hasher.update(b"\n");
        }
        let id = hex::encode(hasher.finalize());
        Some(Self { keys, id })
    }

    /// The keys, by file name.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// An identity of the set (SHA-256 over the fingerprints): verdicts are cached per key set.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `a.pub (SHA256:…), b.pub (SHA256:…)`: the first three keys, then how many more (an Event note is
    /// cut at 1000 bytes).
    pub fn describe(&self) -> String {
        const SHOWN: usize = 3;
        let mut names: Vec<String> = self
            .keys
            .iter()
            .take(SHOWN)
            .map(|k| k.name.to_string())
            .collect();
        if self.keys.len() > SHOWN {
            names.push(format!("{} more", self.keys.len() - SHOWN));
        }
        names.join(", ")
    }
}

/// The regular files of a key directory, skipping hidden entries (Kubernetes' `..data` symlinks).
fn key_files(dir: &Path) -> Result<Vec<PathBuf>, KeyError> {
    let unreadable = |e: std::io::Error| KeyError {
        path: dir.to_owned(),
        problem: format!("cannot be listed ({e})"),
        fix: "make the directory readable by the controller",
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // `metadata` follows symlinks, which is how a mounted ConfigMap presents its files.
        if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        files.push(path);
        if files.len() > MAX_KEYS {
            return Err(KeyError {
                path: dir.to_owned(),
                problem: format!("holds more than {MAX_KEYS} files"),
                fix: "point VERIFY_KEYS at a directory holding only the public keys",
            });
        }
    }
    files.sort();
    Ok(files)
}

fn read_key(path: &Path) -> Result<PublicKey, KeyError> {
    let error = |problem: String, fix| KeyError {
        path: path.to_owned(),
        problem,
        fix,
    };
    let unreadable_fix =
        "make the file readable by the controller (check the volume's defaultMode)";
    let size = std::fs::metadata(path)
        .map_err(|e| error(format!("cannot be read ({e})"), unreadable_fix))?
        .len();
    if size > MAX_KEY_FILE_BYTES {
        return Err(error(
            format!("is {size} bytes, too large for a public key"),
            FIX_FORMAT,
        ));
    }
    let text =
        std::fs::read(path).map_err(|e| error(format!("cannot be read ({e})"), unreadable_fix))?;
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    PublicKey::from_pem(&file, &text).map_err(|problem| error(format!("is {problem}"), FIX_FORMAT))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
