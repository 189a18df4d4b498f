//! Signature verification by the controller (docs/signatures.md), end to end on both backends, with
//! signatures made by the real cosign (`testbed/cosign/`) in both layouts, with a P-256 and an Ed25519 key.
//! Every wait is on the cluster's state or the controller's Events.

use serde_json::json;
use watch_cluster_testkit::{KeyKind, Layout, Pushed};

use crate::env::{Backend, Env, Kind, as_pairs, enabled};
use crate::fixture::{Forgery, Signer};

const VERIFY: (&str, &str) = ("watch-cluster.io/verify", "cosign");

fn pinned(env: &Env, repo: &str, tag: &str, pushed: &Pushed) -> String {
    format!("{}@{}", env.image(repo, tag), pushed.digest)
}

/// A verified Deployment of `repo:1.0.0` and a controller trusting `signer`'s key.
async fn watch(env: &mut Env, signer: &Signer, name: &str, repo: &str) {
    let mut annotations = enabled("version");
    annotations.push((VERIFY.0, VERIFY.1.to_owned()));
    env.create(
        Kind::Deployment,
        name,
        &[("app", &env.image(repo, "1.0.0"))],
        &as_pairs(&annotations),
        json!({}),
    )
    .await;
    let settings = env
        .settings()
        .await
        .with("VERIFY_KEYS", &signer.keys_dir.display().to_string());
    env.spawn_controller(&settings);
}

/// Waits until the `SignatureRejected` Events about `name` say, for each `(image, kind)`, that container
/// `app`'s candidate `image` (pinned) was rejected as `kind`; returns the notes.
async fn wait_rejected(env: &Env, name: &str, expected: &[(String, &str)]) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + crate::env::WAIT;
    loop {
        let notes = env.event_notes(name, "SignatureRejected").await;
        let found = |image: &str, kind: &str| {
            let prefix = format!("container app: {image} not taken, signature rejected ({kind}): ");
            notes.iter().any(|n| n.starts_with(&prefix))
        };
        if expected.iter().all(|(image, kind)| found(image, kind)) {
            return notes;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no SignatureRejected for each of {expected:?} about {name}; notes: {notes:#?}; \
             all reasons: {:?}",
            env.reasons(name).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A signed newer tag is taken; an unsigned newest one is refused with `SignatureRejected` and the signed
/// one below it is taken instead; once the newest is signed too, it is taken (a rejection is kept only while
/// its signature tag does not change).
pub async fn signed_taken_unsigned_refused(backend: Backend, kind: KeyKind, layout: Layout) {
    let test = format!("verify-signed-{}-{}", kind.name(), layout.name());
    let mut env = Env::start(backend, &test).await;
    let signer = Signer::new(kind).await;
    let repo = "team/signed";
    env.push(repo, "1.0.0").await;
    let signed = env.push(repo, "1.1.0").await;
    let unsigned = env.push(repo, "1.2.0").await;
    signer
        .sign(env.registry(), repo, &signed.digest, layout)
        .await;
    watch(&mut env, &signer, "signed", repo).await;

    env.wait_image("signed", &pinned(&env, repo, "1.1.0", &signed))
        .await;
    let notes = wait_rejected(
        &env,
        "signed",
        &[(pinned(&env, repo, "1.2.0", &unsigned), "Unsigned")],
    )
    .await;
    assert!(
        notes.iter().all(|n| !n.contains(&signed.digest)),
        "the signed tag is never rejected: {notes:#?}"
    );
    assert_eq!(
        env.image_of(Kind::Deployment, "signed", "app").await,
        pinned(&env, repo, "1.1.0", &signed),
        "the unsigned newest tag is never applied"
    );

    signer
        .sign(env.registry(), repo, &unsigned.digest, layout)
        .await;
    env.wait_image("signed", &pinned(&env, repo, "1.2.0", &unsigned))
        .await;
}

/// A signature by another key, a valid signature naming another digest, and a tampered signature are each
/// refused with `SignatureRejected` and its kind, and the current image is kept; the tampered candidate,
/// once signed properly as well, is taken.
pub async fn wrongly_signed_refused(backend: Backend, kind: KeyKind, layout: Layout) {
    let test = format!("verify-wrong-{}-{}", kind.name(), layout.name());
    let mut env = Env::start(backend, &test).await;
    let signer = Signer::new(kind).await;
    let repo = "team/wrong";
    let current = env.push(repo, "1.0.0").await;
    let tampered = env.push(repo, "1.1.0").await;
    let other_digest = env.push(repo, "1.2.0").await;
    let other_key = env.push(repo, "1.3.0").await;
    let (tamper, wrong_digest) = match layout {
        Layout::Sig => (Forgery::TamperedSignature, Forgery::OtherDigest),
        Layout::Bundle => (Forgery::TamperedPayload, Forgery::ClaimedSubject),
    };
    let registry = env.registry();
    // The current image's signature is the one borrowed: valid, by the trusted key, for another digest.
    for (pushed, forgery) in [
        (&tampered, tamper),
        (&other_digest, wrong_digest),
        (&other_key, Forgery::OtherKey),
    ] {
        signer
            .apply(
                registry,
                repo,
                &pushed.digest,
                &current.digest,
                layout,
                forgery,
            )
            .await;
    }
    watch(&mut env, &signer, "wrong", repo).await;

    // The newest is verified first: once it is refused, the current image must still be in place.
    wait_rejected(
        &env,
        "wrong",
        &[(pinned(&env, repo, "1.3.0", &other_key), "BadSignature")],
    )
    .await;
    assert_eq!(
        env.image_of(Kind::Deployment, "wrong", "app").await,
        env.image(repo, "1.0.0"),
        "a candidate signed by another key is not applied"
    );
    // Each rejected candidate has its own Event with its own reason, not one merged into the first.
    wait_rejected(
        &env,
        "wrong",
        &[
            (pinned(&env, repo, "1.3.0", &other_key), "BadSignature"),
            (pinned(&env, repo, "1.2.0", &other_digest), "WrongDigest"),
            (pinned(&env, repo, "1.1.0", &tampered), "BadSignature"),
        ],
    )
    .await;
    assert_eq!(
        env.image_of(Kind::Deployment, "wrong", "app").await,
        env.image(repo, "1.0.0"),
        "no wrongly signed candidate is applied"
    );

    signer
        .sign(env.registry(), repo, &tampered.digest, layout)
        .await;
    env.wait_image("wrong", &pinned(&env, repo, "1.1.0", &tampered))
        .await;
}
