//! `helm lint --strict`, and the values schema refusing what the controller would refuse at startup,
//! before anything is installed.

use crate::chart::{chart_dir, helm, template_output, text};

#[test]
fn the_chart_passes_helm_lint_strict() {
    let chart = chart_dir();
    for sets in [
        vec![],
        vec!["rbac.namespaced=true", "config.watchNamespaces=team-a"],
        vec![
            "events.enabled=true",
            "events.existingSecret=watch-cluster-events",
            "verify.enabled=true",
            "verify.existingConfigMap=watch-cluster-verify-keys",
            "metrics.serviceMonitor.enabled=true",
            "metrics.prometheusRule.enabled=true",
        ],
    ] {
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
        for set in &sets {
            args.extend(["--set", set]);
        }
        let output = helm(&args);
        let said = text(&output);
        assert!(
            output.status.success(),
            "helm lint --strict {sets:?}: {said}"
        );
        assert!(
            said.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{said}"
        );
    }
}

#[test]
fn the_charts_app_version_is_the_crate_version() {
    let text = std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap();
    let chart: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        chart["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "Chart.yaml appVersion"
    );
    assert_eq!(chart["apiVersion"], "v2");
}

#[test]
fn a_misspelt_value_is_refused_by_the_schema_naming_it() {
    let output = template_output(&["config.watchNamespace=team-a"]);
    assert!(!output.status.success(), "a misspelt key rendered");
    let said = text(&output);
    assert!(
        said.contains("values don't meet the specifications of the schema"),
        "{said}"
    );
    assert!(said.contains("/config"), "{said}");
    assert!(said.contains("watchNamespace"), "{said}");
}

#[test]
fn a_value_the_controller_would_refuse_is_refused_at_install() {
    for (set, named) in [
        ("config.quarantineScope=global", "/config/quarantineScope"),
        (
            "config.maxConcurrentChecks=0",
            "/config/maxConcurrentChecks",
        ),
        ("config.logFormat=yaml", "/config/logFormat"),
        (
            r"config.cloudRegistryAuth=aws\,ibm",
            "/config/cloudRegistryAuth",
        ),
        ("config.watchNamespaces=Team_A", "/config/watchNamespaces"),
        ("notifications.retryCount=101", "/notifications/retryCount"),
        ("events.tokens.default=short", "/events/tokens/default"),
    ] {
        let output = template_output(&[set]);
        assert!(!output.status.success(), "{set} rendered");
        let said = text(&output);
        assert!(said.contains(named), "{set}: {said}");
    }
}

#[test]
fn an_enabled_component_without_its_secret_or_keys_fails_naming_the_value_to_set() {
    for (sets, named) in [
        (vec!["events.enabled=true"], "events.existingSecret"),
        (vec!["verify.enabled=true"], "verify.existingConfigMap"),
        (vec!["rbac.namespaced=true"], "config.watchNamespaces"),
    ] {
        let output = template_output(&sets);
        assert!(!output.status.success(), "{sets:?} rendered");
        let said = text(&output);
        assert!(said.contains(named), "{sets:?}: {said}");
    }
}
