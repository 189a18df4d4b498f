//! Manifests: the Accept header, digest validation, and the children of an index (pure; docs/dependencies.md#oci-registries).
//!
//! Input: `Docker-Content-Digest` values and manifest bodies. Output: validated digests, or the child
//! manifest digests of an OCI index / Docker manifest list. Media types come from `oci-spec`.

use oci_spec::image::{ImageIndex, MediaType, ToDockerV2S2};
use sha2::{Digest as _, Sha256, Sha512};

/// Accept for every manifest request: OCI index, OCI manifest, Docker manifest list, Docker manifest v2.
///
/// Always all four: distribution answers 404 for OCI content asked for without the OCI types, converts a
/// Docker schema2 manifest to schema1 (another digest), and narrows a manifest list to one child (docs/dependencies.md#oci-registries).
pub(crate) fn accept_header() -> String {
    let oci = [MediaType::ImageIndex, MediaType::ImageManifest];
    let mut types: Vec<String> = oci.iter().map(ToString::to_string).collect();
    types.extend(
        oci.iter()
            .filter_map(|t| t.to_docker_v2s2().ok().map(str::to_owned)),
    );
    types.join(", ")
}

/// Whether `digest` is `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`.
pub(crate) fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks that `body` hashes to `digest`.
pub(crate) fn verify_body(digest: &str, body: &[u8]) -> Result<(), String> {
    let actual = match digest.split_once(':') {
        Some(("sha256", _)) => format!("sha256:{}", hex::encode(Sha256::digest(body))),
        Some(("sha512", _)) => format!("sha512:{}", hex::encode(Sha512::digest(body))),
        _ => return Err(format!("unsupported digest `{digest}`")),
    };
    if actual == digest {
        Ok(())
    } else {
        Err(format!("manifest content hashes to {actual}, not {digest}"))
    }
}

/// The child manifest digests of an index or manifest list; a single-image manifest has none.
pub(crate) fn child_digests(body: &[u8]) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
    }
    let probe: Probe =
        serde_json::from_slice(body).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
    let docker_list = MediaType::ImageIndex.to_docker_v2s2().unwrap_or_default();
    let is_index = probe.manifests.is_some()
        || probe
            .media_type
            .as_deref()
            .is_some_and(|m| m == MediaType::ImageIndex.to_string() || m == docker_list);
    if !is_index {
        return Ok(Vec::new());
    }
    let index =
        ImageIndex::from_reader(body).map_err(|e| format!("index cannot be parsed: {e}"))?;
    Ok(index
        .manifests()
        .iter()
        .map(|d| d.digest().to_string())
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn accept_names_all_four_manifest_types() {
        let accept = accept_header();
        for t in [
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ] {
            assert!(accept.contains(t), "{accept} lacks {t}");
        }
    }

    #[test]
    fn digests_must_be_well_formed() {
        assert!(is_valid_digest(D1));
        assert!(!is_valid_digest("sha256:ABC"));
        assert!(!is_valid_digest(&D1.to_uppercase()));
        assert!(!is_valid_digest("md5:1111"));
        assert!(!is_valid_digest(""));
    }

    #[test]
    fn bodies_are_checked_against_their_digest() {
        let body = b"{}";
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(body)));
        assert!(verify_body(&digest, body).is_ok());
        assert!(verify_body(D1, body).is_err());
        assert!(verify_body("foo", body).is_err());
    }

    #[test]
    fn index_and_manifest_list_children_are_listed() {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests":[{{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":1,"digest":"{D1}",
            "platform":{{"architecture":"amd64","os":"linux"}}}},
            {{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":1,"digest":"{D2}"}}]}}"#
        );
        assert_eq!(child_digests(index.as_bytes()).unwrap(), vec![D1, D2]);
        let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
        assert!(child_digests(manifest).unwrap().is_empty());
        assert!(child_digests(br#"{"manifests":"nope"}"#).is_err());
    }
}
