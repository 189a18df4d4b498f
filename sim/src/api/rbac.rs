//! Optional RBAC enforcement: decides from the Roles, ClusterRoles and bindings stored in the
//! simulated cluster whether a user may perform a verb on a resource, like the real RBAC
//! authorizer (union of allow rules; no deny rules). Input: request attributes and the store;
//! output: allowed, or the Forbidden message the real server would send.

use serde_json::Value;

use crate::store::{Kind, Store};

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user with the given groups plus `system:authenticated`.
    pub fn new(name: &str, groups: &[&str]) -> UserInfo {
        let mut groups: Vec<String> = groups.iter().map(|g| (*g).to_string()).collect();
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        UserInfo {
            name: name.to_string(),
            groups,
        }
    }

    /// The identity of a service account token: `system:serviceaccount:<ns>:<name>`.
    pub fn service_account(namespace: &str, name: &str) -> UserInfo {
        UserInfo::new(
            &format!("system:serviceaccount:{namespace}:{name}"),
            &[
                "system:serviceaccounts",
                &format!("system:serviceaccounts:{namespace}"),
            ],
        )
    }

    /// A cluster administrator (member of `system:masters`, which bypasses RBAC).
    pub fn admin(name: &str) -> UserInfo {
        UserInfo::new(name, &["system:masters"])
    }
}

/// What a request wants to do.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    /// Plural, with `/subresource` when addressed.
    pub resource: String,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// `Ok` when allowed, else the message of the 403 Forbidden `Status`.
pub fn authorize(store: &Store, user: &UserInfo, attrs: &Attributes<'_>) -> Result<(), String> {
    if user.groups.iter().any(|g| g == "system:masters") || allowed(store, user, attrs) {
        return Ok(());
    }
    Err(forbidden_message(user, attrs))
}

fn forbidden_message(user: &UserInfo, a: &Attributes<'_>) -> String {
    let qualified = match (a.group, a.resource.split('/').next().unwrap_or_default()) {
        ("", plural) => plural.to_string(),
        (group, plural) => format!("{plural}.{group}"),
    };
    let subject = match a.name {
        Some(name) => format!("{qualified} \"{name}\""),
        None => qualified,
    };
    let scope = match a.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    format!(
        "{subject} is forbidden: User \"{}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        user.name, a.verb, a.resource, a.group
    )
}

fn allowed(store: &Store, user: &UserInfo, attrs: &Attributes<'_>) -> bool {
    let cluster_wide = store
        .list(Kind::ClusterRoleBinding, None)
        .into_iter()
        .filter(|b| binds(b, user))
        .any(|b| role_allows(store, &b, None, attrs));
    if cluster_wide {
        return true;
    }
    let Some(namespace) = attrs.namespace else {
        return false;
    };
    store
        .list(Kind::RoleBinding, Some(namespace))
        .into_iter()
        .filter(|b| binds(b, user))
        .any(|b| role_allows(store, &b, Some(namespace), attrs))
}

/// Whether a binding's subjects include the user.
fn binds(binding: &Value, user: &UserInfo) -> bool {
    let binding_ns = binding
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    let subjects = binding.get("subjects").and_then(Value::as_array);
    subjects.into_iter().flatten().any(|s| {
        let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
        match s.get("kind").and_then(Value::as_str) {
            Some("User") => name == user.name,
            Some("Group") => user.groups.iter().any(|g| g == name),
            Some("ServiceAccount") => {
                let ns = s
                    .get("namespace")
                    .and_then(Value::as_str)
                    .or(binding_ns)
                    .unwrap_or_default();
                user.name == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        }
    })
}

fn role_allows(
    store: &Store,
    binding: &Value,
    namespace: Option<&str>,
    attrs: &Attributes<'_>,
) -> bool {
    let role_kind = binding.pointer("/roleRef/kind").and_then(Value::as_str);
    let role_name = binding
        .pointer("/roleRef/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let role = match (role_kind, namespace) {
        (Some("ClusterRole"), _) => store.get_arc(Kind::ClusterRole, None, role_name),
        (Some("Role"), Some(ns)) => store.get_arc(Kind::Role, Some(ns), role_name),
        _ => None,
    };
    let rules = role
        .as_ref()
        .and_then(|r| r.get("rules"))
        .and_then(Value::as_array);
    rules
        .into_iter()
        .flatten()
        .any(|rule| rule_allows(rule, attrs))
}

fn rule_allows(rule: &Value, a: &Attributes<'_>) -> bool {
    let list = |key: &str| -> Vec<&str> {
        rule.get(key)
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let has = |key: &str, want: &str| list(key).iter().any(|v| *v == "*" || *v == want);
    let resource_ok = list("resources").iter().any(|r| {
        *r == "*"
            || *r == a.resource
            || r.strip_prefix("*/")
                .is_some_and(|sub| a.resource.split_once('/').is_some_and(|(_, s)| s == sub))
    });
    let names = list("resourceNames");
    let name_ok = names.is_empty() || a.name.is_some_and(|n| names.contains(&n));
    has("verbs", a.verb) && has("apiGroups", a.group) && resource_ok && name_ok
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn setup() -> Store {
        let store = Store::new();
        store
            .create(
                Kind::ClusterRole,
                json!({"metadata": {"name": "deploy-patcher"}, "rules": [
                    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
                    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["s1"]}
                ]}),
            )
            .unwrap();
        store
            .create(
                Kind::RoleBinding,
                json!({"metadata": {"name": "b", "namespace": "team"},
                    "roleRef": {"kind": "ClusterRole", "name": "deploy-patcher", "apiGroup": "rbac.authorization.k8s.io"},
                    "subjects": [{"kind": "ServiceAccount", "name": "wc", "namespace": "ops"}]}),
            )
            .unwrap();
        store
    }

    fn attrs<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &str,
        ns: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Attributes<'a> {
        Attributes {
            verb,
            group,
            resource: resource.into(),
            namespace: ns,
            name,
        }
    }

    #[test]
    fn a_role_binding_grants_its_rules_only_in_its_namespace() {
        let store = setup();
        let sa = UserInfo::service_account("ops", "wc");
        assert!(
            authorize(
                &store,
                &sa,
                &attrs("patch", "apps", "deployments", Some("team"), Some("d"))
            )
            .is_ok()
        );
        let other_ns = authorize(
            &store,
            &sa,
            &attrs("patch", "apps", "deployments", Some("x"), Some("d")),
        );
        assert_eq!(
            other_ns.unwrap_err(),
            "deployments.apps \"d\" is forbidden: User \"system:serviceaccount:ops:wc\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"x\""
        );
    }

    #[test]
    fn subresources_verbs_and_resource_names_are_checked() {
        let store = setup();
        let sa = UserInfo::service_account("ops", "wc");
        assert!(
            authorize(
                &store,
                &sa,
                &attrs(
                    "patch",
                    "apps",
                    "deployments/status",
                    Some("team"),
                    Some("d")
                )
            )
            .is_err()
        );
        assert!(
            authorize(
                &store,
                &sa,
                &attrs("delete", "apps", "deployments", Some("team"), Some("d"))
            )
            .is_err()
        );
        assert!(
            authorize(
                &store,
                &sa,
                &attrs("get", "", "secrets", Some("team"), Some("s1"))
            )
            .is_ok()
        );
        assert!(
            authorize(
                &store,
                &sa,
                &attrs("get", "", "secrets", Some("team"), Some("s2"))
            )
            .is_err()
        );
        assert!(
            authorize(
                &store,
                &UserInfo::admin("root"),
                &attrs("delete", "", "nodes", None, Some("n"))
            )
            .is_ok()
        );
    }
}
