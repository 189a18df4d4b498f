//! The checker of `queries.rs` on made-up dashboards and scrapes: a metric or label that does not exist, an
//! unknown variable, a syntax error and a broken JSON model are each reported, so the live test can fail.

use serde_json::{Value, json};

use crate::model::{DATASOURCE_UID, model_problems};
use crate::queries::{Exposition, query_problems};

/// A minimal dashboard with one panel per query and the three variables.
fn dashboard_with(exprs: &[&str]) -> Value {
    let ds = json!({"type": "prometheus", "uid": DATASOURCE_UID});
    let panels: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({"id": i + 1, "type": "timeseries", "title": format!("p{i}"), "datasource": ds,
                   "gridPos": {"x": 0, "y": i * 8, "w": 24, "h": 8},
                   "targets": [{"refId": "A", "datasource": ds, "expr": e}]})
        })
        .collect();
    json!({"schemaVersion": 39, "panels": panels, "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus"},
        {"name": "namespace", "type": "query", "datasource": ds,
         "query": {"query": "label_values(app_up, namespace)"}},
        {"name": "pod", "type": "query", "datasource": ds,
         "query": "label_values(app_up{namespace=~\"$namespace\"}, pod)"},
    ]}})
}

const SCRAPE: &str = "# TYPE app_checks counter\n\
    app_checks_total{outcome=\"updated\"} 1\n\
    # TYPE app_up gauge\n\
    app_up 1\n\
    # TYPE app_seconds histogram\n\
    app_seconds_bucket{le=\"5.0\"} 0\n\
    app_seconds_bucket{le=\"+Inf\"} 1\n\
    app_seconds_sum 12.0\n\
    app_seconds_count 1\n\
    # TYPE app_drops counter\n\
    # EOF\n";

fn problems_of(exprs: &[&str]) -> Vec<String> {
    let scrape = Exposition::parse(SCRAPE).unwrap();
    query_problems(&dashboard_with(exprs), &scrape)
}

#[test]
fn queries_on_exposed_metrics_and_labels_have_no_problem() {
    let problems = problems_of(&[
        "sum by (outcome) (rate(app_checks_total{namespace=~\"$namespace\", pod=~\"$pod\"}[$__rate_interval]))",
        "histogram_quantile(0.95, sum by (le) (rate(app_seconds_bucket[${__rate_interval}])))",
        "sum(rate(app_seconds_sum[5m])) / sum(rate(app_seconds_count[5m]))",
    ]);
    assert_eq!(problems, Vec::<String>::new());
}

#[test]
fn a_metric_the_controller_does_not_expose_is_reported_by_name() {
    let problems = problems_of(&["sum(rate(app_nonexistent_total[5m]))"]);
    assert_eq!(
        problems,
        [
            "panel 1 \"p0\" target \"A\": metric app_nonexistent_total is not exposed by the controller's /metrics"
        ]
    );
}

#[test]
fn a_label_the_metric_does_not_carry_is_reported_in_matchers_and_groupings() {
    let problems = problems_of(&[
        "sum by (receiver) (rate(app_checks_total[5m]))",
        "sum(rate(app_checks_total{result=\"x\"}[5m]))",
        "sum without (scheme) (app_up)",
        "app_up * on (shard) group_left (zone) app_up",
    ]);
    let expected = [
        "panel 1 \"p0\" target \"A\": label receiver is not on metric app_checks_total (it has {\"outcome\"})",
        "panel 2 \"p1\" target \"A\": label result is not on metric app_checks_total (it has {\"outcome\"})",
        "panel 3 \"p2\" target \"A\": label scheme is not on metric app_up (it has {})",
        "panel 4 \"p3\" target \"A\": label shard is not on metric app_up (it has {})",
        "panel 4 \"p3\" target \"A\": label shard is not on metric app_up (it has {})",
        "panel 4 \"p3\" target \"A\": label zone is not on metric app_up (it has {})",
    ];
    assert_eq!(problems, expected);
}

#[test]
fn histograms_counters_and_undriven_families_are_told_apart() {
    let problems = problems_of(&["app_seconds", "app_checks", "app_drops_total"]);
    assert_eq!(
        problems,
        [
            "panel 1 \"p0\" target \"A\": metric app_seconds is a histogram: select app_seconds_bucket, app_seconds_sum or app_seconds_count",
            "panel 2 \"p1\" target \"A\": metric app_checks is a counter: its series is app_checks_total",
            "panel 3 \"p2\" target \"A\": metric app_drops_total is registered (family app_drops) but has no series in this scrape: the run did not drive it",
        ]
    );
}

#[test]
fn an_unknown_variable_and_a_syntax_error_are_reported() {
    let problems = problems_of(&[
        "rate(app_checks_total[$window])",
        "sum(rate(app_checks_total[5m])",
    ]);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("unknown variable(s) [\"window\"]"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("PromQL does not parse"),
        "{problems:?}"
    );
}

#[test]
fn a_variable_query_naming_a_missing_label_is_reported() {
    let mut dashboard = dashboard_with(&["app_up"]);
    dashboard["templating"]["list"][1]["query"]["query"] = json!("label_values(app_up, cluster)");
    let scrape = Exposition::parse(SCRAPE).unwrap();
    assert_eq!(
        query_problems(&dashboard, &scrape),
        ["variable `namespace`: label cluster is not on metric app_up (it has {})"]
    );
}

#[test]
fn duplicate_ids_foreign_data_sources_and_panels_off_the_grid_are_reported() {
    let mut dashboard = dashboard_with(&["app_up", "app_up"]);
    dashboard["panels"][1]["id"] = json!(1);
    dashboard["panels"][1]["datasource"] = json!({"type": "prometheus", "uid": "prod"});
    dashboard["panels"][0]["gridPos"]["x"] = json!(12);
    let problems = model_problems(&dashboard);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("gridPos"), "{problems:?}");
    assert!(problems[1].contains("id 1 is used twice"), "{problems:?}");
    assert!(problems[2].contains("\"uid\":\"prod\""), "{problems:?}");
}
