//! Maps a request path to what it addresses: discovery documents or a resource (kind, view,
//! namespace, name, subresource). Pure; no I/O.

use crate::store::Kind;

/// How a stored kind is presented: natively, or as `events.k8s.io/v1` Events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Native,
    EventsV1,
}

/// A request for objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath {
    pub kind: Kind,
    pub view: View,
    /// API group as addressed (e.g. `events.k8s.io` for the Events view).
    pub group: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl ResourcePath {
    /// The plural resource name as addressed.
    pub fn plural(&self) -> &'static str {
        self.kind.info().plural
    }
}

/// What a path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    GroupVersion { group: String },
    Resource(ResourcePath),
    Unknown,
}

pub const EVENTS_GROUP: &str = "events.k8s.io";

/// Every (group, version) served, in discovery order.
pub fn served_groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for kind in Kind::ALL {
        let g = kind.info().group;
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups.push(EVENTS_GROUP);
    groups
}

/// The kind and view served under `group` with this plural.
pub fn resolve(group: &str, plural: &str) -> Option<(Kind, View)> {
    if group == EVENTS_GROUP {
        return (plural == "events").then_some((Kind::Event, View::EventsV1));
    }
    Kind::from_group_plural(group, plural).map(|k| (k, View::Native))
}

/// Parses a request path.
pub fn parse(path: &str) -> Route {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["api", "v1"] => Route::GroupVersion {
            group: String::new(),
        },
        ["apis", group, "v1"] if served_groups().contains(group) => Route::GroupVersion {
            group: (*group).to_string(),
        },
        ["api", "v1", rest @ ..] => resource("", rest),
        ["apis", group, "v1", rest @ ..] => resource(group, rest),
        _ => Route::Unknown,
    }
}

fn resource(group: &str, rest: &[&str]) -> Route {
    let build = |plural: &str, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        match resolve(group, plural) {
            Some((kind, view)) if kind.info().namespaced || namespace.is_none() => {
                Route::Resource(ResourcePath {
                    kind,
                    view,
                    group: group.to_string(),
                    namespace: namespace.map(str::to_string),
                    name: name.map(str::to_string),
                    subresource: sub.map(str::to_string),
                })
            }
            _ => Route::Unknown,
        }
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..] if resolve(group, plural).is_some() => match tail {
            [] => build(plural, Some(ns), None, None),
            [name] => build(plural, Some(ns), Some(name), None),
            [name, sub] => build(plural, Some(ns), Some(name), Some(sub)),
            _ => Route::Unknown,
        },
        [plural, tail @ ..] => match tail {
            [] => build(plural, None, None, None),
            [name] => build(plural, None, Some(name), None),
            [name, sub] => build(plural, None, Some(name), Some(sub)),
            _ => Route::Unknown,
        },
        [] => Route::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse(path) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn namespaced_paths_resolve_kind_namespace_name_and_subresource() {
        let r = res("/apis/apps/v1/namespaces/ns1/deployments/web/status");
        assert_eq!(r.kind, Kind::Deployment);
        assert_eq!(r.namespace.as_deref(), Some("ns1"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
    }

    #[test]
    fn namespace_objects_and_all_namespace_lists_are_told_apart() {
        let ns = res("/api/v1/namespaces/ns1");
        assert_eq!(
            (ns.kind, ns.name.as_deref()),
            (Kind::Namespace, Some("ns1"))
        );
        let status = res("/api/v1/namespaces/ns1/status");
        assert_eq!(status.subresource.as_deref(), Some("status"));
        let all = res("/api/v1/pods");
        assert_eq!((all.kind, all.namespace), (Kind::Pod, None));
        assert_eq!(parse("/api/v1/namespaces/ns1/nodes"), Route::Unknown);
    }

    #[test]
    fn events_are_served_two_ways() {
        assert_eq!(
            res("/apis/events.k8s.io/v1/namespaces/a/events").view,
            View::EventsV1
        );
        assert_eq!(res("/api/v1/namespaces/a/events").view, View::Native);
    }
}
