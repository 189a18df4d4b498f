//! Layout 1: cosign's `sha256-<hex>.sig` tag holding simple-signing payloads (docs/signatures.md#layouts).
//!
//! Input: the candidate digest, the `.sig` manifest body, and each payload blob. Output: the signature
//! layers to check ([`SignatureLayer`]) and, per payload, whether it names the candidate ([`check_payload`]).
//! Pure: the registry calls are in `mod.rs`.
//!
//! The signed bytes are the payload blob exactly as stored (cosign signs the blob, not a re-encoding),
//! so the blob is hashed against its layer digest and the signature checked over those bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// The layer media type of a simple-signing payload.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `critical.type` cosign writes.
const COSIGN_TYPE: &str = "cosign container image signature";
/// Layers looked at per `.sig` manifest: each `cosign sign` of one digest appends one.
pub(crate) const MAX_LAYERS: usize = 32;

/// `sha256-<hex>.sig` for `sha256:<hex>`; `None` for another algorithm.
pub fn signature_tag(digest: &str) -> Option<String> {
    digest
        .strip_prefix("sha256:")
        .map(|hex| format!("sha256-{hex}.sig"))
}

/// One simple-signing layer: where its payload is and the signature over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignatureLayer {
    pub(crate) digest: String,
    pub(crate) size: u64,
    pub(crate) signature: Vec<u8>,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
struct Layer {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::HashMap<String, String>,
}

/// The simple-signing layers of a `.sig` manifest (at most [`MAX_LAYERS`]); other layers are ignored.
pub(crate) fn signature_layers(manifest: &[u8]) -> Result<Vec<SignatureLayer>, String> {
    let manifest: Manifest = serde_json::from_slice(manifest)
        .map_err(|e| format!("the .sig manifest is not an OCI manifest: {e}"))?;
    let mut layers = Vec::new();
    for layer in manifest
        .layers
        .into_iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
        .take(MAX_LAYERS)
    {
        let Some(encoded) = layer.annotations.get(SIGNATURE_ANNOTATION) else {
            return Err(format!(
                "layer {} has no {SIGNATURE_ANNOTATION} annotation",
                layer.digest
            ));
        };
        let signature = STANDARD
            .decode(encoded.trim())
            .map_err(|e| format!("the signature of layer {} is not base64: {e}", layer.digest))?;
        layers.push(SignatureLayer {
            digest: layer.digest,
            size: layer.size,
            signature,
        });
    }
    Ok(layers)
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// What a payload says about the candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PayloadCheck {
    /// It names the candidate digest.
    Names,
    /// It names another digest (a signature copied from another image).
    NamesOther(String),
    /// It is not a cosign simple-signing payload.
    Malformed(String),
}

/// Whether the payload's `critical.image.docker-manifest-digest` is `digest`.
pub(crate) fn check_payload(payload: &[u8], digest: &str) -> PayloadCheck {
    let payload: Payload = match serde_json::from_slice(payload) {
        Ok(p) => p,
        Err(e) => return PayloadCheck::Malformed(format!("not a simple-signing payload: {e}")),
    };
    if payload.critical.kind != COSIGN_TYPE {
        return PayloadCheck::Malformed(format!(
            "critical.type is {:?}, not {COSIGN_TYPE:?}",
            payload.critical.kind
        ));
    }
    let named = payload.critical.image.docker_manifest_digest;
    if named == digest {
        PayloadCheck::Names
    } else {
        PayloadCheck::NamesOther(named)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::verify::testing::simple_signing_payload;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn the_signature_tag_is_the_digest_with_a_dash_and_sig_suffix() {
        assert_eq!(
            signature_tag(DIGEST).unwrap(),
            format!("sha256-{}.sig", "1".repeat(64))
        );
        assert_eq!(signature_tag("sha512:abc"), None);
    }

    #[test]
    fn simple_signing_layers_are_read_with_their_signatures_and_other_layers_ignored() {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": DIGEST},
            "layers": [
                {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "size": 10, "digest": "sha256:aa",
                 "annotations": {SIGNATURE_ANNOTATION: STANDARD.encode(b"sig-1")}},
                {"mediaType": "application/octet-stream", "size": 1, "digest": "sha256:bb"}
            ]
        });
        let layers = signature_layers(manifest.to_string().as_bytes()).unwrap();
        assert_eq!(
            layers,
            vec![SignatureLayer {
                digest: "sha256:aa".into(),
                size: 10,
                signature: b"sig-1".to_vec()
            }]
        );
    }

    #[test]
    fn a_layer_without_a_signature_or_with_bad_base64_is_malformed() {
        let without = serde_json::json!({"layers": [
            {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "size": 1, "digest": "sha256:aa"}]});
        assert!(
            signature_layers(without.to_string().as_bytes())
                .unwrap_err()
                .contains(SIGNATURE_ANNOTATION)
        );
        let bad = serde_json::json!({"layers": [
            {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "size": 1, "digest": "sha256:aa",
             "annotations": {SIGNATURE_ANNOTATION: "not base64!"}}]});
        assert!(signature_layers(bad.to_string().as_bytes()).is_err());
        assert!(signature_layers(b"\"a string\"").is_err());
    }

    #[test]
    fn a_payload_names_the_candidate_another_digest_or_is_malformed() {
        let payload = simple_signing_payload("registry/app", DIGEST);
        assert_eq!(check_payload(&payload, DIGEST), PayloadCheck::Names);
        let other = format!("sha256:{}", "2".repeat(64));
        assert_eq!(
            check_payload(&payload, &other),
            PayloadCheck::NamesOther(DIGEST.into())
        );
        assert!(matches!(
            check_payload(b"{\"critical\":{}}", DIGEST),
            PayloadCheck::Malformed(_)
        ));
        let wrong_type = serde_json::json!({"critical": {"image": {"docker-manifest-digest": DIGEST}, "type": "x"}});
        assert!(matches!(
            check_payload(wrong_type.to_string().as_bytes(), DIGEST),
            PayloadCheck::Malformed(_)
        ));
    }
}
