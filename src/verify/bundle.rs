//! Layout 2: a Sigstore bundle attached as an OCI 1.1 referrer (docs/signatures.md#layouts).
//!
//! Input: the referrer manifest, the bundle blob, the candidate digest. Output: the bundle layers to fetch,
//! and for a bundle its DSSE pre-authentication encoding, signatures and whether its in-toto statement
//! names the candidate ([`read_bundle`]). Pure: the registry calls are in `mod.rs`.
//!
//! The referrer manifest's own `subject` is not signed, so it is never what makes a bundle count: only a
//! `subject[].digest.sha256` inside the signed statement does.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// The media type of a Sigstore bundle v0.3 (the referrer's `artifactType` and its layer's `mediaType`).
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Earlier bundle versions cosign may attach; same JSON shape for DSSE.
const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The DSSE payload type of an in-toto statement.
const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Referrers and bundle layers looked at per candidate.
pub(crate) const MAX_BUNDLES: usize = 16;

/// OCI's empty descriptor type. A referrer whose manifest has no `artifactType` is listed with its config's
/// media type, and cosign v2.6 writes bundle referrers with the empty config and no `artifactType`: the
/// listing says only "empty", and the manifest's layers tell whether it holds a bundle.
pub(crate) const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// Whether a referrer listed with `artifact_type` may hold a bundle (and so is worth a manifest read).
pub(crate) fn may_hold_bundle(artifact_type: Option<&str>) -> bool {
    artifact_type.is_none_or(|t| t.is_empty() || t == EMPTY_MEDIA_TYPE || is_bundle_type(t))
}

/// Whether a media type or artifact type names a Sigstore bundle.
pub(crate) fn is_bundle_type(media_type: &str) -> bool {
    media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) && media_type.ends_with("+json")
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default, rename = "artifactType")]
    artifact_type: Option<String>,
    #[serde(default)]
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
struct Layer {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
}

/// The bundle layers (digest, size) of a referrer manifest; empty when it is not a bundle.
pub(crate) fn bundle_layers(manifest: &[u8]) -> Result<Vec<(String, u64)>, String> {
    let manifest: Manifest = serde_json::from_slice(manifest)
        .map_err(|e| format!("the referrer manifest is not an OCI manifest: {e}"))?;
    let typed_bundle = manifest
        .artifact_type
        .as_deref()
        .is_some_and(is_bundle_type);
    Ok(manifest
        .layers
        .into_iter()
        .filter(|l| is_bundle_type(&l.media_type) || (typed_bundle && l.layers_json()))
        .take(MAX_BUNDLES)
        .map(|l| (l.digest, l.size))
        .collect())
}

impl Layer {
    fn layers_json(&self) -> bool {
        self.media_type == "application/json"
    }
}

/// DSSE's pre-authentication encoding: `"DSSEv1" SP len(type) SP type SP len(body) SP body`.
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

#[derive(Deserialize)]
struct Bundle {
    #[serde(rename = "dsseEnvelope")]
    dsse_envelope: Option<Envelope>,
}

#[derive(Deserialize)]
struct Envelope {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Deserialize)]
struct Statement {
    #[serde(default)]
    subject: Vec<Subject>,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::HashMap<String, String>,
}

/// A bundle read far enough to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadBundle {
    /// The bytes the signatures are over.
    pub(crate) signed: Vec<u8>,
    /// The DSSE signatures.
    pub(crate) signatures: Vec<Vec<u8>>,
    /// Whether a statement subject names the candidate; else the first sha256 it names, if any.
    pub(crate) names_candidate: Result<(), Option<String>>,
}

/// Reads a bundle's DSSE envelope and the statement inside it, against `digest` (`sha256:<hex>`).
pub(crate) fn read_bundle(bundle: &[u8], digest: &str) -> Result<ReadBundle, String> {
    let bundle: Bundle =
        serde_json::from_slice(bundle).map_err(|e| format!("not a Sigstore bundle: {e}"))?;
    let envelope = bundle.dsse_envelope.ok_or_else(|| {
        "the bundle has no dsseEnvelope (a message-signature bundle signs a blob, not an image)"
            .to_owned()
    })?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "the DSSE payloadType is {:?}, not {IN_TOTO_PAYLOAD_TYPE:?}",
            envelope.payload_type
        ));
    }
    let payload = STANDARD
        .decode(envelope.payload.trim())
        .map_err(|e| format!("the DSSE payload is not base64: {e}"))?;
    let mut signatures = Vec::with_capacity(envelope.signatures.len());
    for s in envelope.signatures.iter().take(MAX_BUNDLES) {
        signatures.push(
            STANDARD
                .decode(s.sig.trim())
                .map_err(|e| format!("a DSSE signature is not base64: {e}"))?,
        );
    }
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|e| format!("the DSSE payload is not an in-toto statement: {e}"))?;
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let named: Vec<&String> = statement
        .subject
        .iter()
        .filter_map(|s| s.digest.get("sha256"))
        .collect();
    let names_candidate = if named.iter().any(|n| n.eq_ignore_ascii_case(hex)) {
        Ok(())
    } else {
        Err(named.first().map(|n| format!("sha256:{n}")))
    };
    Ok(ReadBundle {
        signed: pae(&envelope.payload_type, &payload),
        signatures,
        names_candidate,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::verify::testing::{self, Signer};

    const HEX: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    /// What the referrers listing says of a referrer decides whether its manifest is read: cosign v2.6.5
    /// lists its bundles with the empty type (tests/signatures shows it with the real binary).
    #[test]
    fn referrers_listed_as_bundles_untyped_or_empty_are_read_and_others_not() {
        assert!(may_hold_bundle(Some(BUNDLE_MEDIA_TYPE)));
        assert!(may_hold_bundle(Some(EMPTY_MEDIA_TYPE)));
        assert!(may_hold_bundle(Some("")));
        assert!(may_hold_bundle(None));
        assert!(!may_hold_bundle(Some(
            "application/vnd.cncf.helm.config.v1+json"
        )));
        assert!(!may_hold_bundle(Some("application/spdx+json")));
    }

    #[test]
    fn pae_follows_the_dsse_specification() {
        // The example of the DSSE specification (protocol.md).
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("t", b""), b"DSSEv1 1 t 0 ".to_vec());
        assert_eq!(pae("a b", b"xyz"), testing::pae("a b", b"xyz"));
    }

    #[test]
    fn a_bundle_yields_its_pae_signatures_and_whether_the_statement_names_the_candidate() {
        let signer = Signer::p256(1);
        let statement = testing::statement("registry/app", HEX);
        let bundle = testing::bundle(&signer, &statement);
        let read = read_bundle(&bundle, &format!("sha256:{HEX}")).unwrap();
        assert_eq!(
            read.signed,
            testing::pae("application/vnd.in-toto+json", &statement)
        );
        assert_eq!(read.signatures.len(), 1);
        assert_eq!(read.names_candidate, Ok(()));
        let other = format!("sha256:{}", "2".repeat(64));
        let read = read_bundle(&bundle, &other).unwrap();
        assert_eq!(read.names_candidate, Err(Some(format!("sha256:{HEX}"))));
    }

    #[test]
    fn bundles_without_dsse_or_with_another_payload_type_are_refused() {
        assert!(read_bundle(br#"{"messageSignature":{}}"#, HEX).is_err());
        let other_type = serde_json::json!({"dsseEnvelope": {
            "payload": STANDARD.encode(b"{}"), "payloadType": "text/plain", "signatures": []}});
        assert!(read_bundle(other_type.to_string().as_bytes(), HEX).is_err());
        assert!(read_bundle(b"not json", HEX).is_err());
    }

    #[test]
    fn only_bundle_layers_of_a_referrer_are_fetched() {
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": BUNDLE_MEDIA_TYPE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": "sha256:44"},
            "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "size": 5, "digest": "sha256:aa"},
                       {"mediaType": "application/octet-stream", "size": 1, "digest": "sha256:bb"}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1, "digest": format!("sha256:{HEX}")}
        });
        assert_eq!(
            bundle_layers(manifest.to_string().as_bytes()).unwrap(),
            vec![("sha256:aa".to_owned(), 5)]
        );
        let sbom = serde_json::json!({"artifactType": "application/spdx+json",
            "layers": [{"mediaType": "application/spdx+json", "size": 5, "digest": "sha256:cc"}]});
        assert!(
            bundle_layers(sbom.to_string().as_bytes())
                .unwrap()
                .is_empty()
        );
    }
}
