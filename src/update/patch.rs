//! Building the one guarded JSON Patch per workload and check (docs/guarantees.md#updates), and the rollback patch (docs/guarantees.md#rollouts-rollback-and-quarantine).
//!
//! Pure: input is the workload projection and the decided changes, output a `json_patch::Patch`. Every
//! patch carries a `test` of each image the decision was made from, and the update patch also one of the
//! resourceVersion it was decided from, so a concurrent edit makes the API server refuse the patch (422)
//! instead of letting us overwrite someone else's change.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use json_patch::{
    AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation, TestOperation, jsonptr,
};
use serde_json::Value;

use crate::{
    annotations,
    record::Sealed,
    workload::{Container, Workload},
};

/// One container's image change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerChange {
    /// The container, as seen when deciding.
    pub container: Container,
    /// The image in the spec when deciding.
    pub from_image: String,
    /// The image to write (pinned `repo:tag@sha256:…`).
    pub to_image: String,
    /// The digest the workload ran before, where known.
    pub from_digest: Option<String>,
    /// The digest written.
    pub to_digest: String,
}

/// An update as people read it: `from -> to`, per container when there are several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The images before.
    pub from: String,
    /// The images written.
    pub to: String,
}

impl Change {
    /// The change `changes` make.
    pub fn of(changes: &[ContainerChange]) -> Change {
        let side = |pick: fn(&ContainerChange) -> &str| {
            per_container(changes.iter().map(|c| (c.container.name.as_str(), pick(c))))
        };
        Change {
            from: side(|c| c.from_image.as_str()),
            to: side(|c| c.to_image.as_str()),
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.from, self.to)
    }
}

/// Formats per-container values as docs/annotations.md#written-by-the-controller describes: the value alone for one container, else `name=value,…`.
pub fn per_container<'a>(values: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let values: Vec<(&str, &str)> = values.into_iter().collect();
    match values.as_slice() {
        [(_, only)] => (*only).to_owned(),
        many => many
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// The patch that applies `changes`, records them, and starts the `rollout` record.
///
/// Guarded by the resourceVersion of the copy the decision was made from (the watch's copy, which may lag
/// the API server): any change since, to the images, our annotations, the pause or the status, makes the
/// server refuse the patch (a failed `test`, 422), and the check reads the workload and decides again.
pub fn update_patch(
    workload: &Workload,
    changes: &[ContainerChange],
    sealed_record: &str,
    now: DateTime<Utc>,
) -> Patch {
    let mut ops = Vec::new();
    if !workload.resource_version.is_empty() {
        ops.push(test(
            "/metadata/resourceVersion",
            &workload.resource_version,
        ));
    }
    for change in changes {
        ops.push(test(&change.container.image_path(), &change.from_image));
    }
    for change in changes {
        ops.push(replace(&change.container.image_path(), &change.to_image));
    }
    let Change { from, to } = Change::of(changes);
    let mut written = BTreeMap::new();
    written.insert(annotations::LAST_UPDATE, now.timestamp_millis().to_string());
    written.insert(annotations::LAST_UPDATE_IMAGE, to.clone());
    written.insert(annotations::CHANGE, format!("{from} -> {to}"));
    let from_digests: Vec<(&str, &str)> = changes
        .iter()
        .filter_map(|c| Some((c.container.name.as_str(), c.from_digest.as_deref()?)))
        .collect();
    let all_from_digests_known = from_digests.len() == changes.len();
    if all_from_digests_known {
        written.insert(
            annotations::LAST_UPDATE_FROM_DIGEST,
            per_container(from_digests),
        );
    }
    written.insert(
        annotations::LAST_UPDATE_TO_DIGEST,
        per_container(
            changes
                .iter()
                .map(|c| (c.container.name.as_str(), c.to_digest.as_str())),
        ),
    );
    written.insert(annotations::ROLLOUT, sealed_record.to_owned());
    ops.extend(annotation_ops(written));
    // A from-digest left by an earlier update would describe the wrong change.
    if !all_from_digests_known
        && workload
            .annotations
            .contains_key(annotations::LAST_UPDATE_FROM_DIGEST)
    {
        ops.push(remove_annotation(annotations::LAST_UPDATE_FROM_DIGEST));
    }
    if workload.annotations.contains_key(annotations::CHECK_NOW) {
        ops.push(remove_annotation(annotations::CHECK_NOW));
    }
    Patch(ops)
}

/// Writes (or replaces) annotations.
///
/// `add` on an existing key replaces it (RFC 6902 §4.1), so one op per key suffices. The annotation map
/// always exists: patches are only built for enabled workloads, which carry `watch-cluster.io/enabled`.
/// (Adding the map itself would replace every other annotation of the object.)
pub fn annotation_ops(values: BTreeMap<&'static str, String>) -> Vec<PatchOperation> {
    values
        .into_iter()
        .map(|(key, value)| {
            PatchOperation::Add(AddOperation {
                path: pointer(&annotation_path(key)),
                value: Value::String(value),
            })
        })
        .collect()
}

/// After the API server refused `changes`: records the FAILED outcome alone, so its delivery survives a
/// restart like any other outcome. Guarded by the images the decision was made from.
pub fn refused_patch(changes: &[ContainerChange], sealed_failed: &str) -> Patch {
    let mut ops: Vec<PatchOperation> = changes
        .iter()
        .map(|c| test(&c.container.image_path(), &c.from_image))
        .collect();
    let mut written = BTreeMap::new();
    written.insert(annotations::ROLLOUT, sealed_failed.to_owned());
    ops.extend(annotation_ops(written));
    Patch(ops)
}

/// The patch that restores the previous images, quarantines the failed ones and records the outcome.
/// Guarded by the images written and by the record exactly as stored.
pub fn rollback_patch(
    current: &Sealed,
    workload: &Workload,
    quarantine_value: String,
    sealed_outcome: &str,
) -> Patch {
    let record = &current.record;
    let mut ops = Vec::new();
    let mut restores = Vec::new();
    for (name, written) in &record.to {
        if let (Some(container), Some(previous)) = (workload.container(name), record.from.get(name))
        {
            ops.push(test(&container.image_path(), written));
            restores.push(replace(&container.image_path(), previous));
        }
    }
    ops.push(test(&annotation_path(annotations::ROLLOUT), &current.raw));
    ops.extend(restores);
    let mut written = BTreeMap::new();
    written.insert(annotations::QUARANTINE, quarantine_value);
    written.insert(annotations::ROLLOUT, sealed_outcome.to_owned());
    ops.extend(annotation_ops(written));
    Patch(ops)
}

/// Replaces the `rollout` record, guarded by its value exactly as stored (only the holder of that record
/// may move it; a re-spaced copy still matches, because the stored text is tested, not a re-serialisation).
pub fn record_patch(current_raw: &str, next: Option<&str>) -> Patch {
    let path = annotation_path(annotations::ROLLOUT);
    let mut ops = vec![test(&path, current_raw)];
    match next {
        Some(next) => ops.push(replace(&path, next)),
        None => ops.push(PatchOperation::Remove(RemoveOperation {
            path: pointer(&path),
        })),
    }
    Patch(ops)
}

/// Removes one annotation.
pub fn remove_annotation(key: &str) -> PatchOperation {
    PatchOperation::Remove(RemoveOperation {
        path: pointer(&annotation_path(key)),
    })
}

/// `/metadata/annotations/<key>` with `/` escaped as `~1` (RFC 6901).
pub fn annotation_path(key: &str) -> String {
    format!(
        "/metadata/annotations/{}",
        key.replace('~', "~0").replace('/', "~1")
    )
}

fn test(path: &str, value: &str) -> PatchOperation {
    PatchOperation::Test(TestOperation {
        path: pointer(path),
        value: Value::String(value.to_owned()),
    })
}

fn replace(path: &str, value: &str) -> PatchOperation {
    PatchOperation::Replace(ReplaceOperation {
        path: pointer(path),
        value: Value::String(value.to_owned()),
    })
}

fn pointer(path: &str) -> jsonptr::PointerBuf {
    // Every path built here is a valid pointer (starts with '/', escapes applied); a failure would be a bug
    // in this module, caught by its tests, and degrades to the root which the API server rejects.
    jsonptr::PointerBuf::parse(path).unwrap_or_default()
}
