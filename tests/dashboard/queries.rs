//! The checker behind the dashboard tests: parses every query of the dashboard (and of the alerts) with a real
//! PromQL parser (`promql-parser`) after substituting Grafana's variables, and compares each vector selector's
//! metric name and label names with an OpenMetrics scrape of the controller (docs/monitoring.md).
//!
//! Input: the dashboard JSON and the text of `/metrics`. Output: a list of problems, each naming the panel or
//! variable, the metric and the label, so a failing test says what to fix. Pure: the live scrape is taken by
//! `live.rs`; `checker.rs` feeds it made-up scrapes to prove that a wrong query is reported.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::label::{MatchOp, Matchers};
use promql_parser::parser::{self, Expr, LabelModifier, VectorMatchCardinality, VectorSelector};
use serde_json::Value;

use crate::model::{describe, panels, variables};

/// Labels Prometheus itself attaches when it scrapes the controller, never exported by it: `job` and
/// `instance` on every target, `namespace` and `pod` from the Kubernetes service discovery of a
/// ServiceMonitor or PodMonitor (docs/monitoring.md#what-prometheus-must-add). The dashboard's variables select on
/// them, so they are accepted on every metric; the live test checks the controller does not export them itself.
pub const TARGET_LABELS: [&str; 4] = ["job", "instance", "namespace", "pod"];

/// Grafana's built-in variables a query may use, with a value of the right type for parsing: durations
/// where Grafana puts a range (`[$__rate_interval]`), numbers where it puts milliseconds or seconds.
const BUILT_INS: [(&str, &str); 10] = [
    ("__interval", "1m"),
    ("__interval_ms", "60000"),
    ("__rate_interval", "5m"),
    ("__rate_interval_ms", "300000"),
    ("__range", "6h"),
    ("__range_s", "21600"),
    ("__range_ms", "21600000"),
    ("__from", "1700000000000"),
    ("__to", "1700021600000"),
    ("__auto", "1m"),
];

/// Where a query comes from and its text as written in the dashboard.
#[derive(Debug, Clone)]
pub struct Query {
    pub origin: String,
    pub text: String,
    /// A variable's `label_values(...)` rather than a panel's PromQL.
    pub variable: bool,
}

/// Every query of the dashboard: each panel target's `expr` and each query variable's query.
pub fn queries(dashboard: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(Query {
                origin: format!("{} target {}", describe(panel), target["refId"]),
                text: target["expr"].as_str().unwrap_or_default().to_owned(),
                variable: false,
            });
        }
    }
    for (name, variable) in variables(dashboard) {
        if variable["type"] != "query" {
            continue;
        }
        // Grafana writes a Prometheus variable's query either as a string or as {"query": "..."}.
        let text = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap_or_default();
        out.push(Query {
            origin: format!("variable `{name}`"),
            text: text.to_owned(),
            variable: true,
        });
    }
    out
}

/// Replaces `$name`, `${name}`, `${name:format}` and `[[name]]` by a value Grafana could put there: the
/// dashboard's own variables become a plain word (they are label values), Grafana's built-ins a duration or
/// number. Any other variable is an error naming it.
pub fn substitute(text: &str, dashboard: &Value) -> Result<String, String> {
    let own: BTreeMap<String, &Value> = variables(dashboard);
    let pattern = regex::Regex::new(
        r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]|\$([A-Za-z0-9_]+)",
    )
    .map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    let replaced = pattern.replace_all(text, |caps: &regex::Captures<'_>| {
        let name = (1..=3).find_map(|i| caps.get(i)).map_or("", |m| m.as_str());
        if let Some((_, value)) = BUILT_INS.iter().find(|(n, _)| *n == name) {
            return (*value).to_owned();
        }
        match own.get(name) {
            // An interval variable stands where a range goes.
            Some(v) if v["type"] == "interval" => "5m".to_owned(),
            Some(_) => format!("value_of_{name}"),
            None => {
                unknown.push(name.to_owned());
                String::new()
            }
        }
    });
    if unknown.is_empty() {
        Ok(replaced.into_owned())
    } else {
        Err(format!(
            "uses unknown variable(s) {unknown:?}: neither the dashboard's ({:?}) nor Grafana's built-ins",
            own.keys().collect::<Vec<_>>()
        ))
    }
}

/// One vector selector of a query and every label name the query uses on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub metric: Option<String>,
    pub labels: BTreeSet<String>,
}

/// Parses a query (after substitution) and returns its selectors with their labels.
pub fn selectors(query: &Query, dashboard: &Value) -> Result<Vec<Selector>, String> {
    let text = substitute(&query.text, dashboard)?;
    if query.variable {
        return label_values(&text);
    }
    let expr = parser::parse(&text).map_err(|e| format!("PromQL does not parse: {e}"))?;
    let mut out = Vec::new();
    walk(&expr, &BTreeSet::new(), &mut out);
    if out.is_empty() {
        return Err("selects no metric".to_owned());
    }
    Ok(out)
}

/// Grafana's `label_values(selector, label)` for Prometheus variables (not PromQL: the selector is parsed
/// as PromQL and `label` is added to the labels it uses). Other Grafana query functions are refused.
fn label_values(text: &str) -> Result<Vec<Selector>, String> {
    let inner = text
        .trim()
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| {
            format!(
                "{text:?} is not label_values(<selector>, <label>), the only variable query checked"
            )
        })?;
    let (selector, label) = inner
        .rsplit_once(',')
        .ok_or_else(|| format!("{text:?}: label_values needs a selector (a metric) and a label"))?;
    let expr = parser::parse(selector.trim())
        .map_err(|e| format!("the selector of {text:?} does not parse: {e}"))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!(
            "the first argument of {text:?} is not a vector selector"
        ));
    };
    let mut found = selector_of(&vs, &BTreeSet::new());
    found.labels.insert(label.trim().to_owned());
    Ok(vec![found])
}

fn names(matchers: &Matchers) -> impl Iterator<Item = &promql_parser::label::Matcher> {
    matchers
        .matchers
        .iter()
        .chain(matchers.or_matchers.iter().flatten())
}

fn selector_of(vs: &VectorSelector, inherited: &BTreeSet<String>) -> Selector {
    let from_matcher = names(&vs.matchers)
        .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
        .map(|m| m.value.clone());
    let mut labels: BTreeSet<String> = names(&vs.matchers)
        .map(|m| m.name.clone())
        .filter(|n| n != "__name__")
        .collect();
    labels.extend(inherited.iter().cloned());
    Selector {
        metric: vs.name.clone().or(from_matcher),
        labels,
    }
}

/// Walks the AST; `grouping` holds the `by`/`without`/`on`/`ignoring` labels of the enclosing operations,
/// which must exist on every selector beneath them.
fn walk(expr: &Expr, grouping: &BTreeSet<String>, out: &mut Vec<Selector>) {
    match expr {
        Expr::Aggregate(agg) => {
            let mut inner = grouping.clone();
            if let Some(modifier) = &agg.modifier {
                let (LabelModifier::Include(labels) | LabelModifier::Exclude(labels)) = modifier;
                inner.extend(labels.labels.iter().cloned());
            }
            walk(&agg.expr, &inner, out);
            if let Some(param) = &agg.param {
                walk(param, grouping, out);
            }
        }
        Expr::Binary(bin) => {
            let (mut left, mut right) = (grouping.clone(), grouping.clone());
            if let Some(modifier) = &bin.modifier {
                if let Some(matching) = &modifier.matching {
                    left.extend(matching.labels().labels.iter().cloned());
                    right.extend(matching.labels().labels.iter().cloned());
                }
                // group_left(extra) copies `extra` from the right-hand ("one") side, group_right from the left.
                match &modifier.card {
                    VectorMatchCardinality::ManyToOne(extra) => {
                        right.extend(extra.labels.iter().cloned());
                    }
                    VectorMatchCardinality::OneToMany(extra) => {
                        left.extend(extra.labels.iter().cloned());
                    }
                    _ => {}
                }
            }
            walk(&bin.lhs, &left, out);
            walk(&bin.rhs, &right, out);
        }
        Expr::Paren(p) => walk(&p.expr, grouping, out),
        Expr::Unary(u) => walk(&u.expr, grouping, out),
        Expr::Subquery(s) => walk(&s.expr, grouping, out),
        Expr::VectorSelector(vs) => out.push(selector_of(vs, grouping)),
        Expr::MatrixSelector(ms) => out.push(selector_of(&ms.vs, grouping)),
        Expr::Call(call) => {
            for arg in &call.args.args {
                walk(arg, grouping, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// What a scrape exposes: each series name with the union of its label names, and each family's type.
#[derive(Debug, Default)]
pub struct Exposition {
    pub series: BTreeMap<String, BTreeSet<String>>,
    pub families: BTreeMap<String, String>,
}

impl Exposition {
    /// Reads OpenMetrics text: `# TYPE` lines and samples. Each sample's name and labels are read by the
    /// PromQL parser, since `name{label="value",...}` is a valid vector selector.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut exposition = Self::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                if let Some((name, kind)) = rest.split_once(' ') {
                    exposition.families.insert(name.to_owned(), kind.to_owned());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            // An exemplar follows ` # `; the value (and an optional timestamp) follow the series.
            let sample = line.split_once(" # ").map_or(line, |(s, _)| s);
            let series = match sample.rfind('}') {
                Some(end) => &sample[..=end],
                None => sample.split(' ').next().unwrap_or_default(),
            };
            let expr = parser::parse(series)
                .map_err(|e| format!("the scrape line {line:?} does not parse: {e}"))?;
            let Expr::VectorSelector(vs) = expr else {
                return Err(format!("the scrape line {line:?} is not a sample"));
            };
            let selector = selector_of(&vs, &BTreeSet::new());
            let name = selector
                .metric
                .ok_or_else(|| format!("the scrape line {line:?} has no metric name"))?;
            exposition
                .series
                .entry(name)
                .or_default()
                .extend(selector.labels);
        }
        Ok(exposition)
    }

    /// Why `metric` has no series here, in words that say what to fix.
    fn missing(&self, metric: &str) -> String {
        if self.families.get(metric).is_some_and(|t| t == "histogram") {
            return format!(
                "metric {metric} is a histogram: select {metric}_bucket, {metric}_sum or {metric}_count"
            );
        }
        if self.families.get(metric).is_some_and(|t| t == "counter") {
            return format!("metric {metric} is a counter: its series is {metric}_total");
        }
        for suffix in ["_total", "_bucket", "_sum", "_count"] {
            if let Some(family) = metric.strip_suffix(suffix)
                && self.families.contains_key(family)
            {
                return format!(
                    "metric {metric} is registered (family {family}) but has no series in this scrape: \
                     the run did not drive it"
                );
            }
        }
        format!("metric {metric} is not exposed by the controller's /metrics")
    }

    /// The problems of one selector against this scrape.
    pub fn problems(&self, selector: &Selector) -> Vec<String> {
        let Some(metric) = &selector.metric else {
            return vec!["a selector without a metric name cannot be checked".to_owned()];
        };
        let Some(labels) = self.series.get(metric) else {
            return vec![self.missing(metric)];
        };
        selector
            .labels
            .iter()
            .filter(|l| !labels.contains(*l) && !TARGET_LABELS.contains(&l.as_str()))
            .map(|l| format!("label {l} is not on metric {metric} (it has {labels:?})"))
            .collect()
    }
}

/// Every problem of every query of `dashboard` against `scrape`, each prefixed with where the query is.
pub fn query_problems(dashboard: &Value, scrape: &Exposition) -> Vec<String> {
    problems_of(&queries(dashboard), dashboard, scrape)
}

/// The problems of `queries`, whose `$variables` are those of `dashboard` (none for `Value::Null`).
pub fn problems_of(queries: &[Query], dashboard: &Value, scrape: &Exposition) -> Vec<String> {
    let mut problems = Vec::new();
    for query in queries {
        match selectors(query, dashboard) {
            Err(e) => problems.push(format!("{}: {:?} {e}", query.origin, query.text)),
            Ok(selectors) => {
                for selector in selectors {
                    for problem in scrape.problems(&selector) {
                        problems.push(format!("{}: {problem}", query.origin));
                    }
                }
            }
        }
    }
    problems
}
