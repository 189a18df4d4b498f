//! Strategic merge patch (`application/strategic-merge-patch+json`) over plain JSON, with the
//! merge keys of the built-in types this simulator serves (by field name) and the directives
//! kubectl sends: `$patch: delete|replace|merge`, `$setElementOrder/<field>`, `$retainKeys`,
//! `$deleteFromPrimitiveList/<field>`. Lists without a merge key are replaced, `null` deletes.

use serde_json::{Map, Value};

/// The merge key of a list field, by field name (the built-in types' `patchMergeKey`s).
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Lists of scalars merged as sets (`patchStrategy: merge` without a key).
fn is_set_list(field: &str) -> bool {
    field == "finalizers"
}

/// What merging a map produced.
enum Merged {
    Keep,
    /// The patch said `$patch: delete` for this map.
    Delete,
}

/// Applies `patch` to `original`.
pub fn apply(original: &Value, patch: &Value) -> Result<Value, String> {
    let Value::Object(patch) = patch else {
        return Err("strategic merge patch must be a JSON object".into());
    };
    let mut result = original.clone();
    let Value::Object(target) = &mut result else {
        return Err("the patched object is not a JSON object".into());
    };
    match merge_map(target, patch)? {
        Merged::Keep => Ok(result),
        Merged::Delete => Ok(Value::Object(Map::new())),
    }
}

fn merge_map(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Merged, String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(Merged::Delete),
        Some("replace") => {
            *target = clean_map(patch);
            return Ok(Merged::Keep);
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch type: {other:?}")),
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        target.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(remove)) = (target.get_mut(field), value)
            {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        merge_field(target, key, value)?;
    }
    for (key, order) in patch {
        if let (Some(field), Value::Array(order)) = (key.strip_prefix("$setElementOrder/"), order)
            && let Some(Value::Array(list)) = target.get_mut(field)
        {
            reorder(list, order, merge_key(field));
        }
    }
    Ok(Merged::Keep)
}

fn merge_field(target: &mut Map<String, Value>, key: &str, value: &Value) -> Result<(), String> {
    match (target.get_mut(key), value) {
        (_, Value::Null) => {
            target.remove(key);
        }
        (Some(Value::Object(existing)), Value::Object(patch)) => {
            if let Merged::Delete = merge_map(existing, patch)? {
                target.remove(key);
            }
        }
        (Some(Value::Array(existing)), Value::Array(patch)) if merge_key(key).is_some() => {
            merge_list(existing, patch, merge_key(key).unwrap_or("name"))?;
        }
        (Some(Value::Array(existing)), Value::Array(patch)) if is_set_list(key) => {
            for v in patch.iter().filter(|v| !v.is_object()) {
                if !existing.contains(v) {
                    existing.push(v.clone());
                }
            }
        }
        (_, Value::Object(patch)) => {
            if patch.get("$patch").and_then(Value::as_str) != Some("delete") {
                target.insert(key.to_string(), Value::Object(clean_map(patch)));
            }
        }
        (_, value) => {
            target.insert(key.to_string(), clean(value));
        }
    }
    Ok(())
}

fn merge_list(target: &mut Vec<Value>, patch: &[Value], key: &str) -> Result<(), String> {
    let directive = |v: &Value| v.get("$patch").and_then(Value::as_str).map(str::to_string);
    if patch
        .iter()
        .any(|p| directive(p).as_deref() == Some("replace"))
    {
        *target = patch
            .iter()
            .filter(|p| directive(p).is_none())
            .map(clean)
            .collect();
        return Ok(());
    }
    for item in patch {
        let Value::Object(fields) = item else {
            if !target.contains(item) {
                target.push(item.clone());
            }
            continue;
        };
        let id = fields.get(key);
        let position = id.and_then(|id| target.iter().position(|t| t.get(key) == Some(id)));
        match (directive(item).as_deref(), position) {
            (Some("delete"), _) => target.retain(|t| id.is_none() || t.get(key) != id),
            (_, Some(i)) => {
                if let Value::Object(existing) = &mut target[i]
                    && let Merged::Delete = merge_map(existing, fields)?
                {
                    target.remove(i);
                }
            }
            (_, None) => target.push(Value::Object(clean_map(fields))),
        }
    }
    Ok(())
}

/// Puts the elements named in `order` first, in that order; the others keep their relative order after them.
fn reorder(list: &mut Vec<Value>, order: &[Value], key: Option<&str>) {
    let identity = |v: &Value| match key {
        Some(k) => v.get(k).cloned(),
        None => Some(v.clone()),
    };
    let mut rest = std::mem::take(list);
    for wanted in order {
        let wanted = identity(wanted);
        if let Some(i) = rest.iter().position(|v| identity(v) == wanted) {
            list.push(rest.remove(i));
        }
    }
    list.extend(rest);
}

/// A copy without `$` directives.
fn clean(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(clean_map(map)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .map(clean)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn clean_map(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), clean(v)))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod() -> Value {
        json!({"spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "side:1"}
        ], "tolerations": [{"key": "x"}]}})
    }

    #[test]
    fn containers_merge_by_name_keeping_the_sidecar() {
        let patched = apply(
            &pod(),
            &json!({"spec": {"containers": [{"name": "app", "image": "app:2"}]}}),
        )
        .unwrap();
        assert_eq!(patched["spec"]["containers"][0]["image"], "app:2");
        assert_eq!(patched["spec"]["containers"][0]["env"][0]["value"], "1");
        assert_eq!(patched["spec"]["containers"][1]["image"], "side:1");
    }

    #[test]
    fn lists_without_merge_keys_are_replaced_and_null_deletes() {
        let patch = json!({"spec": {"tolerations": [{"key": "y"}], "containers": [{"name": "app", "env": null}]}});
        let patched = apply(&pod(), &patch).unwrap();
        assert_eq!(patched["spec"]["tolerations"], json!([{"key": "y"}]));
        assert!(patched["spec"]["containers"][0].get("env").is_none());
    }

    #[test]
    fn patch_directives_delete_replace_and_order_elements() {
        let delete = json!({"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}});
        let patched = apply(&pod(), &delete).unwrap();
        assert_eq!(patched["spec"]["containers"].as_array().unwrap().len(), 1);

        let replace = json!({"spec": {"containers": [{"name": "only", "image": "o:1"}, {"$patch": "replace"}]}});
        let patched = apply(&pod(), &replace).unwrap();
        assert_eq!(
            patched["spec"]["containers"],
            json!([{"name": "only", "image": "o:1"}])
        );

        let order = json!({"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
            "containers": [{"name": "app", "image": "app:3"}]}});
        let patched = apply(&pod(), &order).unwrap();
        assert_eq!(patched["spec"]["containers"][0]["name"], "sidecar");
        assert_eq!(patched["spec"]["containers"][1]["image"], "app:3");
    }

    #[test]
    fn retain_keys_clears_unlisted_fields() {
        let original =
            json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}});
        let patch = json!({"strategy": {"$retainKeys": ["type"], "type": "Recreate"}});
        let patched = apply(&original, &patch).unwrap();
        assert_eq!(patched, json!({"strategy": {"type": "Recreate"}}));
    }
}
