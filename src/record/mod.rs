//! Rollout records only the controller can write: sealed with a key it alone holds, bound to one workload
//! (docs/threat-model.md, "Rollout records are sealed").
//!
//! The `watch-cluster.io/rollout` annotation drives actions with the controller's privileges: the images
//! in `from` are patched back in on a failure, those in `to` are quarantined, its outcome is delivered as
//! a signed webhook. Anyone who may edit a workload may edit its annotations, so a record is acted on only
//! when it carries a valid HMAC-SHA256 over its canonical form and the workload's kind, namespace, name
//! and uid. A record copied to another workload, or to a re-created one, no longer matches.
//!
//! Why a key and not a cross-check against ReplicaSet or ControllerRevision history: the history differs
//! per kind, is garbage-collected (`revisionHistoryLimit`), and cannot vouch for an outcome or an error
//! text. A key kept in a Secret works the same for every kind and every field.
//!
//! Input: the raw annotation value and the workload's identity. Output: a [`Sealed`] record, or why it
//! was [`Rejected`]. Pure; the key is loaded at the edge ([`secret`]).

pub mod secret;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{annotations::RolloutRecord, workload::Kind};

/// Bytes of a generated key.
pub const KEY_LEN: usize = 32;

/// Bytes a key must have at least: shorter keys make the MAC guessable.
pub const MIN_KEY_LEN: usize = 16;

/// The key the controller seals its records with; shared by replicas, kept across restarts.
#[derive(Clone)]
pub struct RecordKey(Hmac<Sha256>);

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordKey(…)")
    }
}

/// A key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "the record key has {len} bytes; it needs at least {MIN_KEY_LEN} (delete the Secret to have a new one made)"
)]
pub struct KeyError {
    len: usize,
}

impl RecordKey {
    /// A key from stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError { len: bytes.len() });
        }
        Hmac::<Sha256>::new_from_slice(bytes)
            .map(Self)
            .map_err(|_| KeyError { len: bytes.len() })
    }

    /// Fresh random bytes for a new key, from the operating system.
    pub fn generate() -> Result<[u8; KEY_LEN], getrandom::Error> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes)?;
        Ok(bytes)
    }

    fn mac(&self, binding: &Binding<'_>, canonical: &str) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        for part in [
            "watch-cluster.io/rollout v1",
            binding.kind.as_str(),
            binding.namespace,
            binding.name,
            binding.uid,
            canonical,
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }
}

/// The workload a record belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// Its kind.
    pub kind: Kind,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its uid: a re-created workload of the same name is another workload.
    pub uid: &'a str,
}

/// A record the controller wrote, with the exact value it was read from (guarded patches test that value,
/// so a re-spaced but valid record is still matched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The record.
    pub record: RolloutRecord,
    /// The annotation value as stored.
    pub raw: String,
}

/// Why a `rollout` annotation is not acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Not a rollout record at all.
    #[error("the rollout annotation is not a rollout record ({problem})")]
    Unreadable {
        /// What the parser found.
        problem: String,
    },
    /// A record without a seal: written by someone else, or by a version before seals.
    #[error("the rollout annotation carries no seal, so watch-cluster did not write it")]
    Unsealed,
    /// A seal that does not match: edited, copied from another workload, or sealed with another key.
    #[error(
        "the rollout annotation's seal does not match: it was edited, copied from another workload, or \
         written with another key"
    )]
    Forged,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    #[serde(flatten)]
    record: RolloutRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seal: Option<String>,
}

/// The annotation value for `record` on the workload `binding` names.
pub fn seal(key: &RecordKey, binding: &Binding<'_>, record: &RolloutRecord) -> String {
    let canonical = record.to_value();
    let tag = hex::encode(key.mac(binding, &canonical).finalize().into_bytes());
    serde_json::to_string(&Stored {
        record: record.clone(),
        seal: Some(tag),
    })
    .unwrap_or_default()
}

/// Reads and verifies an annotation value; only a record this controller sealed for this workload passes.
pub fn open(key: &RecordKey, binding: &Binding<'_>, raw: &str) -> Result<Sealed, Rejected> {
    let stored: Stored = serde_json::from_str(raw).map_err(|e| Rejected::Unreadable {
        problem: e.to_string(),
    })?;
    let tag = stored.seal.as_deref().ok_or(Rejected::Unsealed)?;
    let tag = hex::decode(tag).map_err(|_| Rejected::Forged)?;
    key.mac(binding, &stored.record.to_value())
        .verify_slice(&tag)
        .map_err(|_| Rejected::Forged)?;
    Ok(Sealed {
        record: stored.record,
        raw: raw.to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;
    use crate::annotations::RolloutOutcome;

    fn key(byte: u8) -> RecordKey {
        RecordKey::from_bytes(&[byte; KEY_LEN]).unwrap()
    }

    fn binding(uid: &str) -> Binding<'_> {
        Binding {
            kind: Kind::Deployment,
            namespace: "team",
            name: "web",
            uid,
        }
    }

    fn record() -> RolloutRecord {
        RolloutRecord {
            id: "abc".into(),
            from: BTreeMap::from([("app".into(), "app:1.0.0".into())]),
            to: BTreeMap::from([("app".into(), "app:1.1.0@sha256:aa".into())]),
            started_at: Utc.timestamp_opt(1_800_000_000, 123_456_789).unwrap(),
            outcome: None,
        }
    }

    use chrono::Utc;

    #[test]
    fn a_sealed_record_opens_on_its_own_workload() {
        let raw = seal(&key(1), &binding("u1"), &record());
        let sealed = open(&key(1), &binding("u1"), &raw).unwrap();
        assert_eq!(sealed.record, record());
        assert_eq!(sealed.raw, raw);
    }

    #[test]
    fn a_record_with_a_forged_from_is_rejected() {
        let raw = seal(&key(1), &binding("u1"), &record());
        let forged = raw.replace("app:1.0.0", "evil/backdoor:6.6.6");
        assert_eq!(
            open(&key(1), &binding("u1"), &forged),
            Err(Rejected::Forged)
        );
    }

    #[test]
    fn a_forged_outcome_is_rejected() {
        let mut failed = record();
        failed.outcome = Some(RolloutOutcome::Failed {
            delivered: Default::default(),
            at: failed.started_at,
            error: "forger's text".into(),
            rolled_back_to: None,
        });
        let unsealed = serde_json::to_string(&failed).unwrap();
        assert_eq!(
            open(&key(1), &binding("u1"), &unsealed),
            Err(Rejected::Unsealed)
        );
        let with_bad_seal = unsealed.replacen('{', "{\"seal\":\"00ff\",", 1);
        assert_eq!(
            open(&key(1), &binding("u1"), &with_bad_seal),
            Err(Rejected::Forged)
        );
    }

    fn completed(delivered: &[&str]) -> RolloutRecord {
        let mut done = record();
        done.outcome = Some(RolloutOutcome::Completed {
            delivered: delivered.iter().copied().collect(),
            at: done.started_at,
            duration_ms: 45_000,
        });
        done
    }

    #[test]
    fn the_delivered_list_round_trips_sorted_and_without_duplicates() {
        let raw = seal(
            &key(1),
            &binding("u1"),
            &completed(&["webhook", "slack:0badc0de", "webhook"]),
        );
        assert!(
            raw.contains(r#""delivered":["slack:0badc0de","webhook"]"#),
            "{raw}"
        );
        let sealed = open(&key(1), &binding("u1"), &raw).unwrap();
        let listed: Vec<&str> = sealed
            .record
            .outcome
            .as_ref()
            .unwrap()
            .delivered()
            .iter()
            .collect();
        assert_eq!(listed, ["slack:0badc0de", "webhook"]);
    }

    #[test]
    fn an_empty_delivered_list_is_absent_so_older_records_seal_the_same() {
        let raw = seal(&key(1), &binding("u1"), &completed(&[]));
        assert!(!raw.contains("delivered"), "{raw}");
        // A record written before the field existed opens and means "no receiver has it yet".
        let sealed = open(&key(1), &binding("u1"), &raw).unwrap();
        assert!(sealed.record.outcome.unwrap().delivered().is_empty());
    }

    #[test]
    fn a_forged_delivered_list_is_rejected() {
        // Listing a receiver would silence it: that must take the key, like any other field.
        let raw = seal(&key(1), &binding("u1"), &completed(&["webhook"]));
        let added = raw.replace(r#"["webhook"]"#, r#"["slack:0badc0de","webhook"]"#);
        assert_eq!(open(&key(1), &binding("u1"), &added), Err(Rejected::Forged));
        let inserted = seal(&key(1), &binding("u1"), &completed(&[])).replace(
            r#""durationMs":45000"#,
            r#""durationMs":45000,"delivered":["webhook"]"#,
        );
        assert_eq!(
            open(&key(1), &binding("u1"), &inserted),
            Err(Rejected::Forged)
        );
    }

    #[test]
    fn a_record_copied_to_another_workload_or_sealed_with_another_key_is_rejected() {
        let raw = seal(&key(1), &binding("u1"), &record());
        assert_eq!(open(&key(1), &binding("u2"), &raw), Err(Rejected::Forged));
        assert_eq!(open(&key(2), &binding("u1"), &raw), Err(Rejected::Forged));
        let other_name = Binding {
            name: "api",
            ..binding("u1")
        };
        assert_eq!(open(&key(1), &other_name, &raw), Err(Rejected::Forged));
    }

    #[test]
    fn a_re_spaced_record_still_opens_and_keeps_its_stored_text() {
        let raw = seal(&key(1), &binding("u1"), &record());
        let value: serde_json::Value = serde_json::from_str(&raw).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let sealed = open(&key(1), &binding("u1"), &pretty).unwrap();
        assert_eq!(sealed.raw, pretty);
        assert_eq!(sealed.record, record());
    }

    #[test]
    fn garbage_is_unreadable_and_says_why() {
        let Err(Rejected::Unreadable { problem }) = open(&key(1), &binding("u1"), "not json")
        else {
            panic!("garbage must be unreadable");
        };
        assert!(!problem.is_empty());
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(RecordKey::from_bytes(&[0; MIN_KEY_LEN - 1]).is_err());
        assert!(RecordKey::generate().is_ok());
    }
}
