#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Grafana dashboard of `k8s/monitoring/` (docs/monitoring.md): its JSON model is sound, every query
//! parses as PromQL once Grafana's variables are substituted, and every metric and label it names exists on
//! the live `/metrics` of a controller that has done everything the dashboard draws.

// Shared with the e2e and scenarios binaries, which use other parts of it.
#[path = "dashboard/checker.rs"]
mod checker;
#[allow(dead_code, unused_imports)]
#[path = "e2e/env.rs"]
mod env;
#[path = "dashboard/live.rs"]
mod live;
#[path = "dashboard/model.rs"]
mod model;
#[path = "dashboard/queries.rs"]
mod queries;

pub use watch_cluster_testkit::annotations::{NEVER_SOON, as_pairs, enabled};

use model::{alert_queries, alerts_named_by_panels, load_dashboard, model_problems};
use queries::{queries as all_queries, selectors};

#[test]
fn the_dashboard_model_has_unique_ids_the_datasource_variable_everywhere_and_fits_the_grid() {
    let problems = model_problems(&load_dashboard());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_query_of_the_dashboard_parses_as_promql_with_grafanas_variables_substituted() {
    let dashboard = load_dashboard();
    let queries = all_queries(&dashboard);
    assert!(queries.len() >= 20, "{queries:#?}");
    let mut failures = Vec::new();
    for query in &queries {
        if let Err(e) = selectors(query, &dashboard) {
            failures.push(format!("{}: {:?} {e}", query.origin, query.text));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_alert_a_panel_names_is_in_the_prometheus_rule() {
    let named = alerts_named_by_panels(&load_dashboard());
    assert!(named.len() >= 4, "{named:?}");
    let defined: Vec<String> = alert_queries()
        .into_iter()
        .map(|q| q.origin.rsplit(' ').next().unwrap_or_default().to_owned())
        .collect();
    let missing: Vec<&String> = named.iter().filter(|a| !defined.contains(a)).collect();
    assert!(
        missing.is_empty(),
        "panels name alerts {missing:?} that {} does not define (it has {defined:?})",
        model::RULES
    );
}
