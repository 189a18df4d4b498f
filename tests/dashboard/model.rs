//! The dashboard as shipped: reads the ConfigMap of `k8s/monitoring/grafana-dashboard.yaml` and the alerts of
//! `k8s/monitoring/prometheusrule.yaml`, and checks the JSON model itself — unique panel ids, every panel and
//! query on the `datasource` variable, Grafana's 24-column grid, the variables users expect (docs/monitoring.md).
//!
//! Input: the two files. Output: the dashboard JSON, its panels and variables, the alerts as queries, and a list
//! of problems naming the panel and the fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use crate::queries::Query;

/// The manifest that ships the dashboard, and the key of its JSON.
pub const MANIFEST: &str = "k8s/monitoring/grafana-dashboard.yaml";
pub const JSON_KEY: &str = "watch-cluster.json";
/// The alerts the panels go with.
pub const RULES: &str = "k8s/monitoring/prometheusrule.yaml";
/// The data source every panel and query variable must use: the dashboard's own `datasource` variable.
pub const DATASOURCE_UID: &str = "${datasource}";

/// The dashboard JSON from the ConfigMap.
pub fn load_dashboard() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(MANIFEST);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    let config_map: Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{MANIFEST} is not YAML: {e}"));
    assert_eq!(
        config_map["kind"], "ConfigMap",
        "{MANIFEST} ships a ConfigMap"
    );
    assert_eq!(
        config_map["metadata"]["labels"]["grafana_dashboard"], "1",
        "{MANIFEST}: Grafana's sidecar loads ConfigMaps labelled grafana_dashboard: \"1\""
    );
    let json = config_map["data"][JSON_KEY]
        .as_str()
        .unwrap_or_else(|| panic!("{MANIFEST}: no data key {JSON_KEY}"));
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{MANIFEST}: {JSON_KEY} is not JSON: {e}"))
}

/// Every panel, rows and the panels collapsed inside rows included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

pub fn describe(panel: &Value) -> String {
    format!(
        "panel {} {:?}",
        panel["id"],
        panel["title"].as_str().unwrap_or_default()
    )
}

/// Problems of the JSON model itself: unique panel ids, every panel and target on the `datasource`
/// variable, every panel inside Grafana's 24-column grid, the variables users expect.
pub fn model_problems(dashboard: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    let datasource = serde_json::json!({"type": "prometheus", "uid": DATASOURCE_UID});
    for panel in panels(dashboard) {
        let name = describe(panel);
        match panel["id"].as_u64() {
            Some(id) if !ids.insert(id) => problems.push(format!("{name}: id {id} is used twice")),
            Some(_) => {}
            None => problems.push(format!("{name}: no numeric id")),
        }
        if panel["datasource"] != datasource {
            problems.push(format!(
                "{name}: datasource is {}, expected {datasource} (the dashboard's variable)",
                panel["datasource"]
            ));
        }
        let grid = &panel["gridPos"];
        let (x, w, h) = (grid["x"].as_u64(), grid["w"].as_u64(), grid["h"].as_u64());
        match (x, w, h) {
            (Some(x), Some(w), Some(h)) if w >= 1 && h >= 1 && x + w <= 24 => {}
            _ => problems.push(format!(
                "{name}: gridPos {grid} is not within Grafana's 24 columns (x + w <= 24, w and h >= 1)"
            )),
        }
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        if targets.is_empty() {
            problems.push(format!("{name}: no query"));
        }
        for target in targets {
            if target["datasource"] != datasource {
                problems.push(format!(
                    "{name} target {}: datasource is {}, expected {datasource}",
                    target["refId"], target["datasource"]
                ));
            }
        }
    }
    let variables = variables(dashboard);
    match variables.get("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        _ => problems.push(
            "templating: no variable `datasource` of type datasource with query prometheus"
                .to_owned(),
        ),
    }
    for name in ["namespace", "pod"] {
        match variables.get(name) {
            Some(v) if v["type"] == "query" && v["datasource"] == datasource => {}
            _ => problems.push(format!(
                "templating: no query variable `{name}` on the `datasource` variable"
            )),
        }
    }
    if dashboard["schemaVersion"].as_u64().is_none_or(|v| v < 39) {
        problems.push(format!(
            "schemaVersion {} is older than Grafana 11's (39)",
            dashboard["schemaVersion"]
        ));
    }
    problems
}

/// The dashboard's template variables by name.
pub fn variables(dashboard: &Value) -> BTreeMap<String, &Value> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v)))
        .collect()
}

/// The alerts of `k8s/monitoring/prometheusrule.yaml` as queries: the dashboard's panels name them, and
/// their expressions are checked against the same live scrape.
pub fn alert_queries() -> Vec<Query> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(RULES);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    let rule: Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{RULES} is not YAML: {e}"));
    rule["spec"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_array().into_iter().flatten())
        .map(|r| Query {
            origin: format!(
                "{RULES} alert {}",
                r["alert"].as_str().unwrap_or("(unnamed)")
            ),
            text: r["expr"].as_str().unwrap_or_default().to_owned(),
            variable: false,
        })
        .collect()
}

/// The alert names panels mention in their descriptions (`WatchCluster…`), which must exist in [`RULES`].
pub fn alerts_named_by_panels(dashboard: &Value) -> BTreeSet<String> {
    let pattern = regex::Regex::new(r"\bWatchCluster[A-Za-z]+\b").unwrap_or_else(|e| panic!("{e}"));
    panels(dashboard)
        .iter()
        .filter_map(|p| p["description"].as_str())
        .flat_map(|d| pattern.find_iter(d).map(|m| m.as_str().to_owned()))
        .collect()
}
