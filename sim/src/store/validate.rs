//! The subset of API validation clients can trip over: workloads need a selector that matches
//! their template labels, and pod specs need named containers with images. Output: 422 Invalid.

use serde_json::Value;

use super::{Kind, StoreError, name_of};

/// Checks `object` of `kind`; the error names the offending field like the real server does.
pub(crate) fn validate(kind: Kind, object: &Value) -> Result<(), StoreError> {
    let name = name_of(object).unwrap_or_default();
    let fail = |reason: String| Err(StoreError::invalid(kind, name, reason));
    if let Some(problem) = name_problem(kind, name) {
        return fail(format!("metadata.name: Invalid value: {name:?}: {problem}"));
    }
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

/// Why `name` is not a valid name for `kind`: RBAC objects take any path segment, Namespaces
/// a DNS label, everything else a DNS subdomain (RFC 1123, lower case).
fn name_problem(kind: Kind, name: &str) -> Option<&'static str> {
    let rbac = matches!(
        kind,
        Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding
    );
    if rbac {
        let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '%']);
        return bad.then_some("may not be '.' or '..' and may not contain '/' or '%'");
    }
    let (max, dots) = if kind == Kind::Namespace {
        (63, false)
    } else {
        (253, true)
    };
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.'));
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let valid = name.len() <= max
        && chars_ok
        && ends_ok(name.chars().next())
        && ends_ok(name.chars().last());
    (!valid).then_some(
        "a lowercase RFC 1123 name must consist of lower case alphanumeric characters, '-' or '.', \
         and must start and end with an alphanumeric character",
    )
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
