#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Signature verification (docs/signatures.md) against the real signer: cosign v2.6.5 built by
//! `testbed/cosign/build` (which `.ci/test` runs), signing offline in Debian's docker-registry
//! (distribution 2.8), in both layouts, with a P-256 and an Ed25519 key. Without the binary every test here
//! fails naming the build script; none skips.
//!
//! - `layout_*`: what cosign writes and how distribution 2.8 keeps it, and that the forgeries of
//!   `testkit::cosign::tamper` change what they claim to;
//! - `check_*`: `watch-cluster check IMAGE --verify cosign --verify-keys PATH` on signed, unsigned and
//!   forged candidates, every layout and key kind.
//!
//! The controller's side (a signed tag taken, the others refused with `SignatureRejected`) runs on both
//! backends in `tests/scenarios/verify.rs`; with the keys mounted through `k8s/components/verify/` in
//! `tests/real/verify.rs`.

#[path = "signatures/check.rs"]
mod check;
#[path = "signatures/fixture.rs"]
mod fixture;
#[path = "signatures/layout.rs"]
mod layout;
