//! Pod template hashing: the `pod-template-hash` of ReplicaSets and the
//! `controller-revision-hash` of StatefulSets and DaemonSets.
//!
//! Input: a pod template as JSON. Output: a short label-safe string that is equal for equal
//! templates whatever the key order (templates are hashed in canonical form) and ignores the
//! hash labels themselves, so a rollback to an old template finds the old ReplicaSet again.
//! Like Kubernetes: 32-bit FNV-1a, printed in decimal, each digit mapped to a consonant-or-digit
//! alphabet that cannot spell words.

use serde_json::Value;

const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Labels that controllers add to templates and that must not change the hash.
const HASH_LABELS: [&str; 2] = ["pod-template-hash", "controller-revision-hash"];

/// The hash of a pod template.
pub(crate) fn template_hash(template: &Value) -> String {
    let text = canonical(&without_hash_labels(template));
    safe_encode(&fnv1a32(text.as_bytes()).to_string())
}

/// Whether two templates are equal once the hash labels are ignored.
pub(crate) fn templates_equal(a: &Value, b: &Value) -> bool {
    canonical(&without_hash_labels(a)) == canonical(&without_hash_labels(b))
}

/// A label-safe random-looking suffix for generated names, derived from `seed`.
pub(crate) fn name_suffix(seed: &str) -> String {
    let mut h = fnv1a32(seed.as_bytes());
    (0..5)
        .map(|_| {
            let c = ALPHANUMS[(h % ALPHANUMS.len() as u32) as usize] as char;
            h = (h / ALPHANUMS.len() as u32) ^ fnv1a32(&h.to_le_bytes()).rotate_left(7);
            c
        })
        .collect()
}

fn without_hash_labels(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        for l in HASH_LABELS {
            labels.remove(l);
        }
    }
    t
}

/// JSON with object keys sorted at every level.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_ignores_key_order_and_hash_labels() {
        let a =
            json!({"metadata": {"labels": {"app": "w", "tier": "x"}}, "spec": {"c": 1, "d": 2}});
        let b = json!({"spec": {"d": 2, "c": 1},
            "metadata": {"labels": {"tier": "x", "pod-template-hash": "zz", "app": "w"}}});
        assert_eq!(template_hash(&a), template_hash(&b));
        assert!(templates_equal(&a, &b));
    }

    #[test]
    fn hash_changes_with_the_image_and_is_label_safe() {
        let a = json!({"spec": {"containers": [{"image": "app:1"}]}});
        let b = json!({"spec": {"containers": [{"image": "app:2"}]}});
        assert_ne!(template_hash(&a), template_hash(&b));
        let h = template_hash(&a);
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h.bytes().all(|c| ALPHANUMS.contains(&c)));
    }

    #[test]
    fn name_suffixes_differ_by_seed() {
        assert_ne!(name_suffix("a-1"), name_suffix("a-2"));
        assert_eq!(name_suffix("a-1").len(), 5);
    }
}
