//! `watch-cluster check IMAGE --verify cosign --verify-keys PATH` against real cosign signatures: every
//! layout and key kind, a signed candidate and each way of being unsigned or wrongly signed.

use watch_cluster_testkit::{ImageKind, KeyKind, Layout, RealRegistry, RegistryAuth};

use crate::fixture::{Forgery, Signer};

/// The rejection kind `check` names for a forgery (docs/signatures.md).
pub fn expected_kind(forgery: Forgery) -> &'static str {
    match forgery {
        Forgery::Signed => unreachable!("a signed candidate is not rejected"),
        Forgery::Unsigned => "Unsigned",
        // A changed payload no longer matches its signature: the same as a signature by another key.
        Forgery::OtherKey | Forgery::TamperedSignature | Forgery::TamperedPayload => "BadSignature",
        Forgery::OtherDigest | Forgery::ClaimedSubject => "WrongDigest",
    }
}

pub struct CheckOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `watch-cluster check` for `image` with the keys in `keys`.
pub async fn check(image: &str, host: &str, keys: &std::path::Path) -> CheckOutput {
    let args = vec![
        "check".to_owned(),
        image.to_owned(),
        "--insecure-registries".to_owned(),
        host.to_owned(),
        "--verify".to_owned(),
        "cosign".to_owned(),
        "--verify-keys".to_owned(),
        keys.display().to_string(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_watch-cluster"))
            .args(&args)
            .env_remove("INSECURE_REGISTRIES")
            .env_remove("REGISTRY_CA_FILE")
            .env_remove("VERIFY_KEYS")
            .env_remove("VERIFY_REQUIRED_FOR")
            .output()
            .expect("watch-cluster check runs")
    })
    .await
    .unwrap();
    CheckOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn every_forgery(kind: KeyKind, layout: Layout) {
    let signer = Signer::new(kind).await;
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    let host = registry.host();
    let mut cases = vec![Forgery::Signed];
    cases.extend(Forgery::rejected(layout));
    for forgery in cases {
        let repo = format!("team/{}", format!("{forgery:?}").to_lowercase());
        registry
            .push(&repo, "1.0.0", ImageKind::OciIndex, "a")
            .await
            .unwrap();
        let candidate = registry
            .push(&repo, "1.1.0", ImageKind::OciIndex, "b")
            .await
            .unwrap();
        // Not a version tag: never a candidate itself, only a source of signatures to borrow.
        let donor = registry
            .push(&repo, "donor", ImageKind::OciIndex, "c")
            .await
            .unwrap();
        signer
            .apply(
                &registry,
                &repo,
                &candidate.digest,
                &donor.digest,
                layout,
                forgery,
            )
            .await;
        let out = check(&format!("{host}/{repo}:1.0.0"), &host, &signer.keys_dir).await;
        let what = format!(
            "{forgery:?}, {} key, {} layout\nstdout:\n{}\nstderr:\n{}",
            kind.name(),
            layout.name(),
            out.stdout,
            out.stderr
        );
        assert!(out.success, "check exits 0 on a decision: {what}");
        let pinned = format!("{host}/{repo}:1.1.0@{}", candidate.digest);
        let lines: Vec<&str> = out.stdout.lines().collect();
        if forgery == Forgery::Signed {
            assert!(
                out.stdout
                    .contains(&format!("decision: update to {pinned} (")),
                "{what}"
            );
            let verified = format!(
                "signature: verified with {} ({})",
                signer.trusted_key_name(),
                match layout {
                    Layout::Sig => "cosign signature tag",
                    Layout::Bundle => "Sigstore bundle referrer",
                }
            );
            assert!(
                lines.contains(&verified.as_str()),
                "expected `{verified}`: {what}"
            );
            assert!(!out.stdout.contains("signature rejected"), "{what}");
        } else {
            assert!(out.stdout.contains("decision: no update"), "{what}");
            assert!(
                !out.stdout.contains("decision: update to"),
                "never offered: {what}"
            );
            let digest = &candidate.digest;
            let line = format!(
                "signature rejected: {host}/{repo}:1.1.0@{digest}: {}: {}",
                expected_kind(forgery),
                match forgery {
                    Forgery::Unsigned => format!(
                        "no signature of {digest} found (neither a cosign .sig tag nor a Sigstore bundle referrer)"
                    ),
                    Forgery::OtherDigest | Forgery::ClaimedSubject => format!(
                        "a signature by {} signs {}, not {digest}",
                        signer.trusted_key_name(),
                        donor.digest
                    ),
                    // The key set's description follows; the line is checked up to it.
                    _ => format!(
                        "1 signature(s) of {digest} found, none verifies with a key of VERIFY_KEYS ("
                    ),
                }
            );
            assert!(
                lines
                    .iter()
                    .any(|l| *l == line || (l.starts_with(&line) && line.ends_with('('))),
                "expected `{line}`: {what}"
            );
            let candidate = candidate_line(&out.stdout, "1.1.0").expect(&what);
            assert_eq!(
                candidate.trim(),
                format!(
                    "1.1.0  not chosen: signature rejected ({})",
                    expected_kind(forgery)
                ),
                "{what}"
            );
        }
    }
}

/// The line of `check`'s candidate list about `tag`.
pub fn candidate_line<'a>(stdout: &'a str, tag: &str) -> Option<&'a str> {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{tag} ")))
}

#[tokio::test]
async fn check_takes_the_signed_and_names_each_forgery_p256_sig_layout() {
    every_forgery(KeyKind::P256, Layout::Sig).await;
}

#[tokio::test]
async fn check_takes_the_signed_and_names_each_forgery_p256_bundle_layout() {
    every_forgery(KeyKind::P256, Layout::Bundle).await;
}

#[tokio::test]
async fn check_takes_the_signed_and_names_each_forgery_ed25519_sig_layout() {
    every_forgery(KeyKind::Ed25519, Layout::Sig).await;
}

#[tokio::test]
async fn check_takes_the_signed_and_names_each_forgery_ed25519_bundle_layout() {
    every_forgery(KeyKind::Ed25519, Layout::Bundle).await;
}

/// Signed in one layout and not the other is enough; an unsigned newer tag falls back to a signed older one.
#[tokio::test]
async fn check_takes_the_signed_older_candidate_under_an_unsigned_newest() {
    let signer = Signer::new(KeyKind::P256).await;
    let registry = RealRegistry::start(RegistryAuth::None).await.unwrap();
    let host = registry.host();
    registry
        .push("team/app", "1.0.0", ImageKind::OciIndex, "a")
        .await
        .unwrap();
    let signed = registry
        .push("team/app", "1.1.0", ImageKind::OciIndex, "b")
        .await
        .unwrap();
    registry
        .push("team/app", "1.2.0", ImageKind::OciIndex, "c")
        .await
        .unwrap();
    signer
        .sign(&registry, "team/app", &signed.digest, Layout::Bundle)
        .await;
    let out = check(&format!("{host}/team/app:1.0.0"), &host, &signer.keys_dir).await;
    let what = format!("stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.success, "{what}");
    assert!(
        out.stdout.contains(&format!(
            "decision: update to {host}/team/app:1.1.0@{}",
            signed.digest
        )),
        "{what}"
    );
    let newest = candidate_line(&out.stdout, "1.2.0").expect(&what);
    assert_eq!(
        newest.trim(),
        "1.2.0  not chosen: signature rejected (Unsigned)",
        "{what}"
    );
    assert!(
        out.stdout.lines().any(|l| l
            == format!(
                "signature: verified with {} (Sigstore bundle referrer)",
                signer.trusted_key_name()
            )),
        "{what}"
    );
}
