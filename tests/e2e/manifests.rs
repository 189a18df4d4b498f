//! The manifests of `k8s/`: every document parses into its k8s-openapi type, the RBAC grants exactly what
//! the controller uses, and the Deployment runs hardened.

use std::path::{Path, PathBuf};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount},
    networking::v1::Ingress,
    policy::v1::PodDisruptionBudget,
    rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
};

fn k8s() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("k8s")
}

fn documents(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    documents.into_iter().filter(|v| !v.is_null()).collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn every_manifest_parses_into_its_kubernetes_type() {
    let mut files = Vec::new();
    yaml_files(&k8s(), &mut files);
    assert!(files.len() >= 10, "{files:?}");
    let mut kinds = Vec::new();
    for file in files {
        for doc in documents(&file) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let value = serde_json::to_value(&doc).unwrap();
            let parsed = match kind.as_str() {
                "Namespace" => serde_json::from_value::<Namespace>(value).map(drop),
                "ServiceAccount" => serde_json::from_value::<ServiceAccount>(value).map(drop),
                "ClusterRole" => serde_json::from_value::<ClusterRole>(value).map(drop),
                "ClusterRoleBinding" => {
                    serde_json::from_value::<ClusterRoleBinding>(value).map(drop)
                }
                "Role" => serde_json::from_value::<Role>(value).map(drop),
                "RoleBinding" => serde_json::from_value::<RoleBinding>(value).map(drop),
                "ConfigMap" => serde_json::from_value::<ConfigMap>(value).map(drop),
                "Secret" => serde_json::from_value::<Secret>(value).map(drop),
                "Deployment" => serde_json::from_value::<Deployment>(value).map(drop),
                "Service" => serde_json::from_value::<Service>(value).map(drop),
                "PodDisruptionBudget" => {
                    serde_json::from_value::<PodDisruptionBudget>(value).map(drop)
                }
                // The example Ingress of k8s/components/events.
                "Ingress" => serde_json::from_value::<Ingress>(value).map(drop),
                // kustomize's own files
                "Kustomization" | "Component" => Ok(()),
                // A CRD type of the Prometheus Operator: check the fields it needs.
                "PrometheusRule" => {
                    let rules = doc["spec"]["groups"][0]["rules"]
                        .as_array()
                        .map_or(0, Vec::len);
                    assert!(rules >= 3, "{}: alert rules", file.display());
                    Ok(())
                }
                other => panic!("{}: unexpected kind {other}", file.display()),
            };
            parsed.unwrap_or_else(|e| panic!("{}: {kind}: {e}", file.display()));
            kinds.push(kind);
        }
    }
    for kind in [
        "Namespace",
        "ClusterRole",
        "Role",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in k8s/");
    }
}

#[test]
fn secrets_are_read_by_name_only_and_leases_only_in_the_controllers_namespace() {
    let role: ClusterRole = serde_json::from_value(
        serde_json::to_value(&documents(&k8s().join("base/clusterrole.yaml"))[0]).unwrap(),
    )
    .unwrap();
    for rule in role.rules.unwrap() {
        let resources = rule.resources.unwrap_or_default();
        if resources.iter().any(|r| r == "secrets") {
            assert_eq!(
                rule.verbs,
                ["get"],
                "Secrets: get only, never list or watch"
            );
        }
        assert!(
            !resources.iter().any(|r| r == "leases"),
            "no cluster-wide Lease access"
        );
        assert!(
            !rule.verbs.iter().any(|v| v == "*" || v == "update"),
            "{:?}",
            rule.verbs
        );
        // The one delete: pods a StatefulSet rollback left stuck on the quarantined image (src/release.rs).
        if rule.verbs.iter().any(|v| v == "delete") {
            assert_eq!(
                resources,
                ["pods"],
                "delete is for stuck StatefulSet pods only"
            );
        }
    }
    let lease = documents(&k8s().join("base/leader-election-role.yaml"));
    assert_eq!(lease[0]["kind"].as_str(), Some("Role"));
    assert_eq!(
        lease[0]["metadata"]["namespace"].as_str(),
        Some("watch-cluster")
    );
}

#[test]
fn the_controller_runs_hardened_with_probes_on_the_admin_port() {
    let doc = &documents(&k8s().join("base/deployment.yaml"))[0];
    let deployment: Deployment =
        serde_json::from_value(serde_json::to_value(doc).unwrap()).unwrap();
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    let pod_security = pod.security_context.clone().unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(
        pod_security.seccomp_profile.unwrap().type_,
        "RuntimeDefault"
    );
    let container = &pod.containers[0];
    let security = container.security_context.clone().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    assert!(container.liveness_probe.is_some() && container.readiness_probe.is_some());
    let resources = container.resources.clone().unwrap();
    assert!(resources.requests.is_some() && resources.limits.is_some());
}
