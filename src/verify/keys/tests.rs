use super::*;
use crate::verify::testing::Signer;

/// An RSA-1024 SPKI (generated with openssl for this test): a key type cosign can use but we do not.
const RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC0NVt7iHF3Gu7jhmCsi41v2Qnw\nBTDQ0gVR82LDS3xr4hassovRMdk5Gp1QIrXd8IgvEWxArb+8eD+IxlgDhvbJIo//\nJuz4Gn46yzkIQTPKC3FAROn1Io3C0ZgDUfSZRCBfzYxdmufni7puN0cbAnl1BArr\nR0fjLbXCDDcCQLrCgQIDAQAB\n-----END PUBLIC KEY-----";
/// A P-384 SPKI: ECDSA, but not on P-256.
const P384_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEuxbeRTAnKna/qpOPd8FKlh9en9g02dvr\n2RuWhQce8QSRDuTs8wxO4nWj5NhwFqZEvZ7raVVal2cNNviFTgiCf47t8iTYLFFQ\nDpJlkqgfStImNz7a1zge36eqU2duB0LW\n-----END PUBLIC KEY-----\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_key_is_named_by_its_file_and_the_sha256_of_its_spki_der() {
    let signer = Signer::p256(1);
    let pem_text = signer.public_pem();
    let key = PublicKey::from_pem("release.pub", pem_text.as_bytes()).unwrap();
    let (_, der) = pem::decode_vec(pem_text.as_bytes()).unwrap();
    let expected = format!("SHA256:{}", hex::encode(Sha256::digest(&der)));
    assert_eq!(key.name.fingerprint, expected);
    assert_eq!(key.name.to_string(), format!("release.pub ({expected})"));
    assert!(matches!(key.material, KeyMaterial::EcdsaP256(_)));
    let ed = PublicKey::from_pem("ed.pub", Signer::ed25519(1).public_pem().as_bytes()).unwrap();
    assert!(matches!(ed.material, KeyMaterial::Ed25519(_)));
}

#[test]
fn a_directory_loads_every_visible_file_and_skips_kubernetes_hidden_entries() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b.pub", &Signer::p256(2).public_pem());
    write(dir.path(), "a.pub", &Signer::ed25519(3).public_pem());
    std::fs::create_dir(dir.path().join("..2026_12_06")).unwrap();
    write(dir.path(), "..data", "not a key");
    let set = KeySet::load(dir.path()).unwrap();
    let files: Vec<&str> = set.keys().iter().map(|k| k.name.file.as_str()).collect();
    assert_eq!(files, ["a.pub", "b.pub"]);
    let single = KeySet::load(&dir.path().join("b.pub")).unwrap();
    assert_eq!(single.keys().len(), 1);
    assert_ne!(single.id(), set.id(), "verdicts are cached per key set");
}

#[test]
fn other_key_types_private_keys_and_garbage_are_errors_naming_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("rsa.pub", RSA_PEM, "only ECDSA P-256 and Ed25519"),
        ("p384.pub", P384_PEM, "only P-256"),
        (
            "cosign.key",
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            "not a `PUBLIC KEY`",
        ),
        ("notes.txt", "hello", "not a PEM document"),
    ];
    for (name, text, problem) in cases {
        let path = write(dir.path(), name, text);
        let error = KeySet::load(&path).unwrap_err();
        assert_eq!(error.path, path);
        assert!(error.problem.contains(problem), "{name}: {}", error.problem);
        let shown = error.to_string();
        assert!(
            shown.contains(name) && shown.contains("cosign.pub"),
            "{shown}"
        );
    }
    let error = KeySet::load(dir.path()).unwrap_err();
    assert!(
        error.to_string().contains("cosign.key"),
        "the first bad file of the directory is named: {error}"
    );
}

#[test]
fn a_missing_path_or_an_empty_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = KeySet::load(dir.path()).unwrap_err();
    assert!(error.problem.contains("holds no key"), "{error}");
    let missing = dir.path().join("absent");
    let error = KeySet::load(&missing).unwrap_err();
    assert!(error.problem.contains("cannot be read"), "{error}");
    assert!(error.fix.contains("mount"), "{error}");
}

#[test]
fn a_large_key_set_is_described_by_its_first_keys_and_a_count() {
    let keys: Vec<PublicKey> = (1..=5)
        .map(|i| Signer::p256(i).public_key(&format!("k{i}.pub")))
        .collect();
    let set = KeySet::from_keys(keys).unwrap();
    let described = set.describe();
    assert!(described.starts_with("k1.pub (SHA256:"), "{described}");
    assert!(
        described.contains("k3.pub (SHA256:") && !described.contains("k4.pub"),
        "{described}"
    );
    assert!(described.ends_with(", 2 more"), "{described}");
}
