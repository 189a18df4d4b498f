//! The subset of API validation clients can trip over: workloads need a selector that matches
//! their template labels, and pod specs need named containers with images. Output: 422 Invalid.

use serde_json::Value;

use super::{Kind, StoreError, name_of};

/// Checks `object` of `kind`; the error names the offending field like the real server does.
pub(crate) fn validate(kind: Kind, object: &Value) -> Result<(), StoreError> {
    let name = name_of(object).unwrap_or_default();
    let fail = |reason: String| Err(StoreError::invalid(kind, name, reason));
    match kind {
        Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet | Kind::ReplicaSet => {
            let Some(selector) = object
                .pointer("/spec/selector")
                .filter(|s| is_non_empty_selector(s))
            else {
                return fail("spec.selector: Required value".into());
            };
            let labels = object.pointer("/spec/template/metadata/labels");
            if let Some(Value::Object(want)) = selector.get("matchLabels") {
                let matches = want
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
                if !matches {
                    return fail(
                        "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"
                            .into(),
                    );
                }
            }
            check_pod_spec(object.pointer("/spec/template/spec"), "spec.template.spec")
                .or_else(fail)
        }
        Kind::Pod => check_pod_spec(object.get("spec"), "spec").or_else(fail),
        _ => Ok(()),
    }
}

fn is_non_empty_selector(selector: &Value) -> bool {
    let non_empty = |key: &str| match selector.get(key) {
        Some(Value::Object(m)) => !m.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => false,
    };
    non_empty("matchLabels") || non_empty("matchExpressions")
}

fn check_pod_spec(spec: Option<&Value>, path: &str) -> Result<(), String> {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        return Err(format!("{path}.containers: Required value"));
    };
    for (i, c) in containers.iter().enumerate() {
        for field in ["name", "image"] {
            if c.get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(format!("{path}.containers[{i}].{field}: Required value"));
            }
        }
    }
    Ok(())
}
