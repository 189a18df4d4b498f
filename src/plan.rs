//! `watch-cluster plan` (docs/settings.md#commands): what the controller would do now, changing nothing.
//!
//! Input: the cluster (same settings as `run`). Output: one line per watched workload with its schedule,
//! next check and pending decision, computed by the same [`decide`] the controller uses, so "why was my
//! workload not updated?" has the controller's own answer.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::{Api, Client, api::ListParams};
use prometheus_client::registry::Registry;

use crate::{
    annotations::{self, Settings},
    config::Config,
    controller::{ManagedKind, registry_config},
    decide::{Findings, Undecidable, decide},
    quarantine_store::QuarantineStore,
    registry::RegistryClient,
    verify::SignaturePolicy,
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
    let signatures = SignaturePolicy::new(&config.verify, registry, &mut Registry::default());
    // One set of shared reads for the whole plan: a ServiceAccount or pull secret is read once per run.
    let reads = crate::decide::ClusterReads::new(client.clone());
    let scope = Scope {
        client,
        reads: &reads,
        registry,
        config,
        signatures: &signatures,
    };
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
        rows.extend(plan_kind::<Deployment>(&scope, namespace).await?);
        rows.extend(plan_kind::<StatefulSet>(&scope, namespace).await?);
        rows.extend(plan_kind::<DaemonSet>(&scope, namespace).await?);
    }
    Ok(rows)
}

/// What every row is computed with.
struct Scope<'a> {
    client: &'a Client,
    reads: &'a crate::decide::ClusterReads,
    registry: &'a RegistryClient,
    config: &'a Config,
    signatures: &'a SignaturePolicy,
}

async fn plan_kind<K: ManagedKind>(
    scope: &Scope<'_>,
    namespace: Option<&str>,
) -> anyhow::Result<Vec<Row>> {
    let client = scope.client;
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
        rows.push(row(scope, &workload).await);
    }
    Ok(rows)
}

async fn row(scope: &Scope<'_>, workload: &Workload) -> Row {
    let name = format!("{} {}/{}", workload.kind, workload.namespace, workload.name);
    let settings = match Settings::from_annotations(&workload.annotations, scope.config.time_zone) {
        Ok(settings) => settings.with_keys(scope.signatures.has_keys()),
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
        decision: pending(scope, workload, &settings).await,
    }
}

async fn pending(scope: &Scope<'_>, workload: &Workload, settings: &Settings) -> String {
    let Scope {
        client,
        reads,
        registry,
        config,
        signatures,
    } = *scope;
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
    match decide(
        reads, registry, workload, settings, None, &cluster, signatures,
    )
    .await
    {
        Err(invalid) => format!("not checked: {invalid}"),
        Ok(findings) => describe(&findings, settings, Utc::now()),
    }
}

/// One workload's decision in words: the updates (and the gate holding each), what is kept and why,
/// candidates waiting for `min-age`, errors, and invalid gate annotations.
fn describe(findings: &Findings, settings: &Settings, now: DateTime<Utc>) -> String {
    let holds: Vec<String> = settings
        .gates
        .holds_at(now, settings.force)
        .iter()
        .map(ToString::to_string)
        .collect();
    let held_by = (!holds.is_empty()).then(|| holds.join("; "));
    let mut parts: Vec<String> = findings
        .changes
        .iter()
        .map(|c| {
            let update = format!(
                "update {}: {} -> {}",
                c.container.name, c.from_image, c.to_image
            );
            match &held_by {
                Some(why) => format!("{update} ({why})"),
                None => update,
            }
        })
        .collect();
    parts.extend(findings.kept.iter().map(ToString::to_string));
    parts.extend(findings.held.iter().map(ToString::to_string));
    parts.extend(
        findings
            .signature_rejections
            .iter()
            .map(ToString::to_string),
    );
    parts.extend(
        findings
            .registry_errors
            .iter()
            .map(|e| format!("error: {e}")),
    );
    parts.extend(findings.pending_error.iter().map(|e| format!("error: {e}")));
    parts.extend(
        settings
            .gate_errors
            .iter()
            .map(|e| format!("no update starts: {e}")),
    );
    parts.extend(findings.skipped.iter().map(|s| format!("skipped {s}")));
    if parts.is_empty() {
        "nothing to manage".into()
    } else {
        parts.join("; ")
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

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let map = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_annotations(&map, chrono_tz::UTC).unwrap_or_else(|e| panic!("{e}"))
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timezone(&Utc)
    }

    fn change() -> crate::update::ContainerChange {
        crate::update::ContainerChange {
            container: crate::workload::Container {
                name: "app".into(),
                image: "app:1.0.0".into(),
                init: false,
                index: 0,
            },
            from_image: "app:1.0.0".into(),
            to_image: "app:1.1.0@sha256:aa".into(),
            from_digest: None,
            to_digest: "sha256:aa".into(),
        }
    }

    #[test]
    fn min_age_holds_are_shown_with_their_time() {
        let findings = Findings {
            held: vec![crate::decide::HeldByAge {
                container: "app".into(),
                image: "app:1.2.0@sha256:bb".into(),
                first_seen: at("2026-01-01T00:00:00Z"),
                ripens_at: at("2026-01-02T00:00:00Z"),
                recheck_at: at("2026-01-02T00:00:00Z"),
            }],
            ..Findings::default()
        };
        let text = describe(&findings, &settings(&[]), at("2026-01-01T06:00:00Z"));
        assert_eq!(
            text,
            "app: app:1.2.0@sha256:bb held by min-age until 2026-01-02T00:00:00Z"
        );
    }

    #[test]
    fn a_candidate_whose_signature_was_rejected_is_shown_with_the_reason() {
        let findings = Findings {
            changes: vec![change()],
            signature_rejections: vec![crate::decide::SignatureRejection {
                container: "app".into(),
                image: "app:1.2.0@sha256:bb".into(),
                rejection: crate::verify::Rejection {
                    kind: crate::verify::RejectionKind::BadSignature,
                    message: "1 signature(s) of sha256:bb found, none verifies".into(),
                },
            }],
            ..Findings::default()
        };
        let text = describe(&findings, &settings(&[]), at("2026-01-01T06:00:00Z"));
        assert_eq!(
            text,
            "update app: app:1.0.0 -> app:1.1.0@sha256:aa; container app: app:1.2.0@sha256:bb not taken, \
             signature rejected (BadSignature): 1 signature(s) of sha256:bb found, none verifies"
        );
    }

    #[test]
    fn an_update_outside_its_window_or_on_hold_says_which_gate_holds_it() {
        let findings = Findings {
            changes: vec![change()],
            ..Findings::default()
        };
        // 2026-01-01 is a Thursday: the Saturday window opens on the 3rd.
        let window = settings(&[(annotations::UPDATE_WINDOW, "0 0 2 * * SAT for 4h")]);
        assert_eq!(
            describe(&findings, &window, at("2026-01-01T06:00:00Z")),
            "update app: app:1.0.0 -> app:1.1.0@sha256:aa (outside watch-cluster.io/update-window; the next window opens at 2026-01-03T02:00:00Z)"
        );
        assert_eq!(
            describe(&findings, &window, at("2026-01-03T03:00:00Z")),
            "update app: app:1.0.0 -> app:1.1.0@sha256:aa"
        );
        let hold = settings(&[(annotations::HOLD, "true")]);
        assert!(
            describe(&findings, &hold, at("2026-01-03T03:00:00Z"))
                .contains("(held by watch-cluster.io/hold: \"true\"")
        );
    }

    #[test]
    fn invalid_gates_and_an_unreadable_pending_are_shown() {
        let findings = Findings {
            pending_error: Some("failed to read the pending annotation".into()),
            ..Findings::default()
        };
        let text = describe(
            &findings,
            &settings(&[(annotations::MIN_AGE, "soon")]),
            at("2026-01-01T00:00:00Z"),
        );
        assert!(
            text.starts_with("error: failed to read the pending annotation; no update starts: annotation watch-cluster.io/min-age=\"soon\" is invalid"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_plan_says_how_to_opt_in() {
        assert!(render(&[]).contains("watch-cluster.io/enabled"));
    }
}
