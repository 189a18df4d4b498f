//! The resource kinds the simulated cluster stores, and the static facts about each one
//! (API group/version, plural, namespaced, short names, status subresource).
//!
//! One table drives both storage and discovery, so what kubectl discovers is exactly what
//! the store accepts.

/// A kind of object kept in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    ControllerRevision,
    Pod,
    Secret,
    ServiceAccount,
    Node,
    Namespace,
    /// Core v1 Event; also served as `events.k8s.io/v1` (converted at the HTTP layer).
    Event,
    Lease,
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
    ConfigMap,
}

/// Static facts about a kind.
#[derive(Clone, Copy, Debug)]
pub struct KindInfo {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// The `kind` field value.
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Whether the kind has a `/status` subresource (the main endpoint then ignores `status`).
    pub has_status: bool,
    /// Whether `metadata.generation` is tracked (bumped on spec changes).
    pub has_generation: bool,
}

const fn info(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    has_status: bool,
) -> KindInfo {
    KindInfo {
        group,
        // Every group served here is at v1.
        version: "v1",
        kind,
        plural,
        singular,
        namespaced,
        short_names,
        has_status,
        has_generation: false,
    }
}

const fn workload(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short: &'static [&'static str],
) -> KindInfo {
    let mut i = info("apps", kind, plural, singular, true, short, true);
    i.has_generation = true;
    i
}

impl Kind {
    /// Every kind, in discovery order.
    pub const ALL: [Kind; 17] = [
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::ReplicaSet,
        Kind::ControllerRevision,
        Kind::Pod,
        Kind::Secret,
        Kind::ServiceAccount,
        Kind::Node,
        Kind::Namespace,
        Kind::Event,
        Kind::Lease,
        Kind::Role,
        Kind::ClusterRole,
        Kind::RoleBinding,
        Kind::ClusterRoleBinding,
        Kind::ConfigMap,
    ];

    /// The static facts about this kind.
    pub const fn info(self) -> KindInfo {
        const RBAC: &str = "rbac.authorization.k8s.io";
        match self {
            Kind::Deployment => workload("Deployment", "deployments", "deployment", &["deploy"]),
            Kind::StatefulSet => workload("StatefulSet", "statefulsets", "statefulset", &["sts"]),
            Kind::DaemonSet => workload("DaemonSet", "daemonsets", "daemonset", &["ds"]),
            Kind::ReplicaSet => workload("ReplicaSet", "replicasets", "replicaset", &["rs"]),
            Kind::ControllerRevision => info(
                "apps",
                "ControllerRevision",
                "controllerrevisions",
                "controllerrevision",
                true,
                &[],
                false,
            ),
            Kind::Pod => info("", "Pod", "pods", "pod", true, &["po"], true),
            Kind::Secret => info("", "Secret", "secrets", "secret", true, &[], false),
            Kind::ServiceAccount => info(
                "",
                "ServiceAccount",
                "serviceaccounts",
                "serviceaccount",
                true,
                &["sa"],
                false,
            ),
            Kind::Node => info("", "Node", "nodes", "node", false, &["no"], true),
            Kind::Namespace => info(
                "",
                "Namespace",
                "namespaces",
                "namespace",
                false,
                &["ns"],
                true,
            ),
            Kind::Event => info("", "Event", "events", "event", true, &["ev"], false),
            Kind::Lease => info(
                "coordination.k8s.io",
                "Lease",
                "leases",
                "lease",
                true,
                &[],
                false,
            ),
            Kind::Role => info(RBAC, "Role", "roles", "role", true, &[], false),
            Kind::ClusterRole => info(
                RBAC,
                "ClusterRole",
                "clusterroles",
                "clusterrole",
                false,
                &[],
                false,
            ),
            Kind::RoleBinding => info(
                RBAC,
                "RoleBinding",
                "rolebindings",
                "rolebinding",
                true,
                &[],
                false,
            ),
            Kind::ClusterRoleBinding => info(
                RBAC,
                "ClusterRoleBinding",
                "clusterrolebindings",
                "clusterrolebinding",
                false,
                &[],
                false,
            ),
            Kind::ConfigMap => info(
                "",
                "ConfigMap",
                "configmaps",
                "configmap",
                true,
                &["cm"],
                false,
            ),
        }
    }

    /// `apiVersion` as written in objects, e.g. `apps/v1` or `v1`.
    pub fn api_version(self) -> String {
        let i = self.info();
        if i.group.is_empty() {
            i.version.to_string()
        } else {
            format!("{}/{}", i.group, i.version)
        }
    }

    /// `plural.group` as used in Kubernetes error messages, e.g. `deployments.apps`, `pods`.
    pub fn qualified_plural(self) -> String {
        let i = self.info();
        if i.group.is_empty() {
            i.plural.to_string()
        } else {
            format!("{}.{}", i.plural, i.group)
        }
    }

    /// `Kind.group` as used in Invalid messages, e.g. `Deployment.apps`.
    pub fn qualified_kind(self) -> String {
        let i = self.info();
        if i.group.is_empty() {
            i.kind.to_string()
        } else {
            format!("{}.{}", i.kind, i.group)
        }
    }

    /// The kind stored under this API group and plural resource name, if any.
    pub fn from_group_plural(group: &str, plural: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.info().group == group && k.info().plural == plural)
    }
}
