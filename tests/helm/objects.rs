//! `helm template` against `kubectl kustomize`: the same objects (kind, namespace, name) and, once the
//! differences below are taken out and asserted, the same content, RBAC rules included. The differences,
//! as docs/helm.md lists them:
//!
//! 1. no Namespace: Helm installs into an existing namespace (`--create-namespace`);
//! 2. Helm's standard labels on every object (`app.kubernetes.io/instance`, `version`, `managed-by`,
//!    `helm.sh/chart`), and the instance label in every selector, so two releases never select each
//!    other's Pods;
//! 3. `checksum/config` and `checksum/secret` on the Pod template, so a changed setting restarts the Pods;
//! 4. every other setting in the ConfigMap, empty (the controller's default) or `ADMIN_ADDR` at its
//!    default;
//! 5. with push events, the per-registry tokens `EVENTS_TOKEN_<REGISTRY>` as optional keys of the same
//!    Secret.
//!
//! The container's `env` and `ports` are compared as sets by name: kustomize's patches of the components
//! put their entries first, the chart after the base's, and neither list's order means anything here (no
//! `$(VAR)` references).

use std::{collections::BTreeMap, path::Path};

use serde_json::{Value, json};

use crate::chart::{RELEASE, by_key, find, key_of, kustomize, template, workspace};

const HELM_LABELS: [&str; 4] = [
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
];

/// Settings the chart's ConfigMap has beyond `k8s/`'s, with the value each renders by default.
const EXTRA_SETTINGS: [(&str, &str); 11] = [
    ("ADMIN_ADDR", "0.0.0.0:8080"),
    ("LEASE_NAME", ""),
    ("MAX_CONCURRENT_CHECKS", ""),
    ("MAX_CONCURRENT_ROLLOUTS", ""),
    ("QUARANTINE_SCOPE", ""),
    ("REGISTRY_CA_FILE", ""),
    ("CLOUD_REGISTRY_AUTH", ""),
    ("CLOUD_REGISTRY_NAMESPACES", ""),
    ("VERIFY_REQUIRED_FOR", ""),
    ("EVENTS_HOST_ALIASES", ""),
    ("RUST_LOG", ""),
];

#[test]
fn default_values_render_the_objects_of_k8s() {
    compare(&[], &kustomize(&workspace().join("k8s")));
}

#[test]
fn the_namespaced_mode_renders_the_objects_of_k8s_namespaced() {
    let expected = kustomize(&workspace().join("k8s/namespaced"));
    assert!(expected.iter().all(|o| o["kind"] != "ClusterRole"));
    compare(
        &["rbac.namespaced=true", "config.watchNamespaces=team-a"],
        &expected,
    );
}

#[test]
fn the_events_component_renders_as_k8s_components_events() {
    let expected = kustomize_with_component("events");
    compare(
        &[
            "events.enabled=true",
            "events.existingSecret=watch-cluster-events",
        ],
        &expected,
    );
}

#[test]
fn the_verify_component_renders_as_k8s_components_verify() {
    let expected = kustomize_with_component("verify");
    compare(
        &[
            "verify.enabled=true",
            "verify.existingConfigMap=watch-cluster-verify-keys",
        ],
        &expected,
    );
}

#[test]
fn the_prometheus_rule_has_the_rules_of_k8s_monitoring() {
    let file = workspace().join("k8s/monitoring/prometheusrule.yaml");
    let expected = crate::chart::parse(&std::fs::read_to_string(file).unwrap());
    let expected = find(&expected, "PrometheusRule", "watch-cluster");
    let rendered = template(&["metrics.prometheusRule.enabled=true"]);
    let rule = find(&rendered, "PrometheusRule", "watch-cluster");
    assert_eq!(rule["spec"], expected["spec"]);
    assert_eq!(key_of(rule), key_of(expected));
    // Off by default, as the Prometheus Operator's CRDs may not exist.
    let default = template(&[]);
    assert!(
        default
            .iter()
            .all(|o| o["kind"] != "PrometheusRule" && o["kind"] != "ServiceMonitor")
    );
}

#[test]
fn the_service_monitor_scrapes_the_admin_port_of_the_metrics_service() {
    let rendered = template(&[
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.labels.release=prometheus",
    ]);
    let monitor = find(&rendered, "ServiceMonitor", "watch-cluster");
    let service = find(&rendered, "Service", "watch-cluster-metrics");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
            .as_object()
            .map(|labels| {
                let keep = ["app.kubernetes.io/name", "app.kubernetes.io/instance"];
                Value::Object(
                    labels
                        .iter()
                        .filter(|(k, _)| keep.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )
            })
            .unwrap()
    );
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{"port": "admin", "path": "/metrics", "interval": "30s"}])
    );
    assert_eq!(service["spec"]["ports"][0]["name"], "admin");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
}

/// The dashboard ConfigMap carries the chart's copy of the JSON, and that copy is the dashboard of
/// `k8s/monitoring/` (Helm reads only files inside the chart, so the JSON lives twice; this keeps them one).
#[test]
fn the_grafana_dashboard_is_the_one_of_k8s_monitoring() {
    let file = crate::chart::chart_dir().join("dashboards/watch-cluster.json");
    let output = crate::chart::template_output(&["grafana.dashboard.enabled=true"]);
    let said = crate::chart::text(&output);
    assert!(output.status.success(), "{said}");
    let rendered = crate::chart::parse(&String::from_utf8_lossy(&output.stdout));
    let map = find(&rendered, "ConfigMap", "watch-cluster-dashboard");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: Value = serde_json::from_str(map["data"]["watch-cluster.json"].as_str().unwrap())
        .expect("the dashboard is JSON");
    let shipped: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert_eq!(json, shipped);
    let manifests = crate::chart::parse(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("k8s/monitoring/grafana-dashboard.yaml"),
        )
        .unwrap(),
    );
    let upstream: Value = serde_json::from_str(
        find(&manifests, "ConfigMap", "watch-cluster-dashboard")["data"]["watch-cluster.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        shipped, upstream,
        "charts/watch-cluster/dashboards/watch-cluster.json differs from k8s/monitoring/grafana-dashboard.yaml: \
         copy the ConfigMap's watch-cluster.json into the chart"
    );
}

/// `k8s/` with one of its components, through a kustomization of our own in a temporary directory.
fn kustomize_with_component(component: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    // kustomize refuses absolute paths: climb from the temporary directory to the root instead.
    let up = "../".repeat(dir.path().components().count() - 1);
    let k8s = Path::new(&up).join(workspace().join("k8s").strip_prefix("/").unwrap());
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\n\
             components:\n  - {}\n",
            k8s.display(),
            k8s.join("components").join(component).display()
        ),
    )
    .unwrap();
    kustomize(Path::new(dir.path()))
}

/// Renders the chart with `sets`, takes out the differences the module docs list (asserting each), then
/// requires every object to equal its kustomize twin exactly.
fn compare(sets: &[&str], kustomized: &[Value]) {
    let mut expected = by_key(kustomized.to_vec());
    let namespaces: Vec<_> = expected
        .keys()
        .filter(|(kind, _, _)| kind == "Namespace")
        .cloned()
        .collect();
    assert_eq!(namespaces.len(), 1, "k8s/ ships its Namespace");
    for key in namespaces {
        expected.remove(&key);
    }
    let mut actual = by_key(template(sets));
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the same objects (kind, namespace, name)"
    );
    for object in expected.values_mut() {
        sort_container_lists(object);
    }
    for (key, object) in actual.iter_mut() {
        take_out_helm_differences(key, object);
        sort_container_lists(object);
        assert_eq!(
            *object, expected[key],
            "{key:?} differs from kustomize beyond the documented differences"
        );
    }
}

fn take_out_helm_differences(key: &(String, String, String), object: &mut Value) {
    let labels = object["metadata"]["labels"].as_object_mut().unwrap();
    for label in HELM_LABELS {
        assert!(
            labels.remove(label).is_some(),
            "{key:?} lacks the label {label}"
        );
    }
    let without_instance = |selector: &mut Value| {
        let selector = selector.as_object_mut().unwrap();
        assert_eq!(
            selector.remove("app.kubernetes.io/instance"),
            Some(json!(RELEASE)),
            "{key:?}: its selector names the release"
        );
    };
    match key.0.as_str() {
        "Deployment" => {
            without_instance(&mut object["spec"]["selector"]["matchLabels"]);
            without_instance(&mut object["spec"]["template"]["metadata"]["labels"]);
            let annotations = object["spec"]["template"]["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("annotations")
                .unwrap();
            let annotations = annotations.as_object().unwrap();
            assert_eq!(
                annotations.keys().collect::<Vec<_>>(),
                ["checksum/config", "checksum/secret"],
                "only the checksums on the Pod template"
            );
            let container = &mut object["spec"]["template"]["spec"]["containers"][0];
            if let Some(env) = container["env"].as_array_mut() {
                env.retain(|var| {
                    let name = var["name"].as_str().unwrap();
                    let per_registry = name.starts_with("EVENTS_TOKEN_");
                    if per_registry {
                        let reference = &var["valueFrom"]["secretKeyRef"];
                        assert_eq!(reference["name"], "watch-cluster-events", "{name}");
                        assert_eq!(reference["key"], name);
                        assert_eq!(reference["optional"], true, "{name} is optional");
                    }
                    !per_registry
                });
            }
        }
        "Service" => {
            without_instance(&mut object["spec"]["selector"]);
        }
        "PodDisruptionBudget" => {
            without_instance(&mut object["spec"]["selector"]["matchLabels"]);
        }
        "ConfigMap" if key.2 == "watch-cluster" => {
            let data = object["data"].as_object_mut().unwrap();
            let extra: BTreeMap<&str, &str> = EXTRA_SETTINGS.into_iter().collect();
            for (name, value) in &extra {
                assert_eq!(data.remove(*name), Some(json!(value)), "{name}");
            }
        }
        _ => {}
    }
}

/// Orders each container's `env` and `ports` by name.
fn sort_container_lists(object: &mut Value) {
    let Some(containers) = object["spec"]["template"]["spec"]["containers"].as_array_mut() else {
        return;
    };
    for container in containers {
        for list in ["env", "ports"] {
            if let Some(items) = container[list].as_array_mut() {
                items.sort_by_key(|item| item["name"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
}
