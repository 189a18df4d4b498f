//! `watch-cluster plan` (docs/settings.md#commands): what the controller would do now, changing nothing.
//!
//! Input: the cluster (same settings as `run`). Output: one line per watched workload with its schedule,
//! next check and pending decision, computed by the same [`decide`] the controller uses, so "why was my
//! workload not updated?" has the controller's own answer.

use std::fmt::Write as _;

use chrono::{SecondsFormat, Utc};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::{Api, Client, api::ListParams};
use prometheus_client::registry::Registry;

use crate::{
    annotations::{self, Settings},
    config::Config,
    controller::{ManagedKind, registry_config},
    decide::{Undecidable, decide},
    quarantine_store::QuarantineStore,
    registry::RegistryClient,
    workload::{Progress, Workload},
};

/// One row of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `Kind namespace/name`.
    pub workload: String,
    /// Effective strategy, or `-` when invalid.
    pub strategy: String,
    /// Effective cron, or `-`.
    pub cron: String,
    /// Next fire time (RFC 3339), or `-`.
    pub next_check: String,
    /// What would happen.
    pub decision: String,
}

/// Prints the plan of every watched workload.
pub async fn print(config: Config) -> anyhow::Result<()> {
    let client = crate::run::kube_client().await?;
    let registry = RegistryClient::new(registry_config(&config), &mut Registry::default())?;
    let rows = plan(&client, &registry, &config).await?;
    print!("{}", render(&rows));
    Ok(())
}

/// Computes the rows.
pub async fn plan(
    client: &Client,
    registry: &RegistryClient,
    config: &Config,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let namespaces: Vec<Option<&str>> = if config.watch_namespaces.is_empty() {
        vec![None]
    } else {
        config
            .watch_namespaces
            .iter()
            .map(|n| Some(n.as_str()))
            .collect()
    };
    for namespace in namespaces {
        rows.extend(plan_kind::<Deployment>(client, registry, config, namespace).await?);
        rows.extend(plan_kind::<StatefulSet>(client, registry, config, namespace).await?);
        rows.extend(plan_kind::<DaemonSet>(client, registry, config, namespace).await?);
    }
    Ok(rows)
}

async fn plan_kind<K: ManagedKind>(
    client: &Client,
    registry: &RegistryClient,
    config: &Config,
    namespace: Option<&str>,
) -> anyhow::Result<Vec<Row>> {
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut rows = Vec::new();
    for obj in api.list(&ListParams::default()).await? {
        let workload = obj.project();
        if !annotations::is_enabled(&workload.annotations) {
            continue;
        }
        rows.push(row(client, registry, config, &workload).await);
    }
    Ok(rows)
}

async fn row(
    client: &Client,
    registry: &RegistryClient,
    config: &Config,
    workload: &Workload,
) -> Row {
    let name = format!("{} {}/{}", workload.kind, workload.namespace, workload.name);
    let settings = match Settings::from_annotations(&workload.annotations, config.time_zone) {
        Ok(settings) => settings,
        Err(invalid) => {
            return Row {
                workload: name,
                strategy: "-".into(),
                cron: "-".into(),
                next_check: "-".into(),
                decision: format!("not checked: {invalid}"),
            };
        }
    };
    let next_check = settings.schedule.next_after(Utc::now()).map_or_else(
        || "never".into(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    Row {
        workload: name,
        strategy: settings.strategy.to_string(),
        cron: settings.cron.clone(),
        next_check,
        decision: pending(client, registry, config, workload, &settings).await,
    }
}

async fn pending(
    client: &Client,
    registry: &RegistryClient,
    config: &Config,
    workload: &Workload,
    settings: &Settings,
) -> String {
    if workload.annotations.contains_key(annotations::ROLLOUT) {
        return "waiting: an update is being rolled out".into();
    }
    if workload.paused {
        return "waiting: the workload is paused".into();
    }
    if workload.on_delete {
        return "not managed: OnDelete update strategy".into();
    }
    if let Progress::InProgress(what) | Progress::Failed(what) = &workload.progress {
        return format!("waiting: rollout in progress ({what})");
    }
    // Read per workload, as a check does, so the answer is the controller's.
    let store = QuarantineStore::for_scope(
        client.clone(),
        config.quarantine_scope,
        &crate::run::own_namespace(),
    );
    let cluster = match store {
        Some(store) => match store.read().await {
            Ok(cluster) => cluster,
            Err(error) => return format!("not checked: {}", Undecidable::from(error)),
        },
        None => std::sync::Arc::default(),
    };
    match decide(client, registry, workload, settings, None, &cluster).await {
        Err(invalid) => format!("not checked: {invalid}"),
        Ok(findings) => {
            let mut parts: Vec<String> = findings
                .changes
                .iter()
                .map(|c| {
                    format!(
                        "update {}: {} -> {}",
                        c.container.name, c.from_image, c.to_image
                    )
                })
                .collect();
            parts.extend(findings.kept.iter().map(ToString::to_string));
            parts.extend(
                findings
                    .registry_errors
                    .iter()
                    .map(|e| format!("error: {e}")),
            );
            parts.extend(findings.skipped.iter().map(|s| format!("skipped {s}")));
            if parts.is_empty() {
                "nothing to manage".into()
            } else {
                parts.join("; ")
            }
        }
    }
}

/// Renders rows as an aligned table.
pub fn render(rows: &[Row]) -> String {
    let header = Row {
        workload: "WORKLOAD".into(),
        strategy: "STRATEGY".into(),
        cron: "CRON".into(),
        next_check: "NEXT CHECK".into(),
        decision: "DECISION".into(),
    };
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let width = |f: fn(&Row) -> &str| all.iter().map(|r| f(r).chars().count()).max().unwrap_or(0);
    let (w1, w2, w3, w4) = (
        width(|r| &r.workload),
        width(|r| &r.strategy),
        width(|r| &r.cron),
        width(|r| &r.next_check),
    );
    let mut out = String::new();
    for r in all {
        let _ = writeln!(
            out,
            "{:w1$}  {:w2$}  {:w3$}  {:w4$}  {}",
            r.workload, r.strategy, r.cron, r.next_check, r.decision
        );
    }
    if rows.is_empty() {
        out.push_str("no workload has watch-cluster.io/enabled: \"true\"\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_aligned_under_their_headers() {
        let rows = vec![Row {
            workload: "Deployment shop/web".into(),
            strategy: "version".into(),
            cron: "0 */5 * * * ?".into(),
            next_check: "2026-01-01T10:05:00Z".into(),
            decision: "update app: app:1.0.0 -> app:1.1.0@sha256:aa".into(),
        }];
        let text = render(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].find("STRATEGY"), lines[1].find("version"));
        assert_eq!(lines[0].find("DECISION"), lines[1].find("update"));
    }

    #[test]
    fn an_empty_plan_says_how_to_opt_in() {
        assert!(render(&[]).contains("watch-cluster.io/enabled"));
    }
}
