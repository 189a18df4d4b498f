//! The controller's API requests, counted from kube-apiserver's audit log (`testbed/up` writes every request
//! at `Metadata` level to `logs/audit.log`, rotated to `audit-<time>.log`).
//!
//! Input: the audit log's JSON lines and the user to count (the controller's ServiceAccount,
//! `system:serviceaccount:watch-cluster:watch-cluster`). Output: one [`AuditEvent`] per request (an audit id
//! is logged once per stage: a watch at `ResponseStarted` and again at `ResponseComplete`, so requests are
//! deduplicated by id), and [`by_kind`] counts per `(verb, resource)` of the requests *received* in a
//! window. A watch opened before the window is not counted in it, whatever it delivers meanwhile: the count
//! is of requests the controller made, which is what costs the API server a request.

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead as _;
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context as _;
use serde_json::Value;

use crate::window::Range;

/// One request of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The audit id (one per request).
    pub id: String,
    /// `user.username`.
    pub user: String,
    /// `get`, `list`, `watch`, `patch`, `create`…
    pub verb: String,
    /// `deployments.apps`, `pods`, `deployments.apps/status`, `events.events.k8s.io`, or the path of a
    /// non-resource request (`/api`).
    pub resource: String,
    /// `requestReceivedTimestamp`.
    pub received: SystemTime,
}

/// The event of one audit-log line; `None` for a line that is not an audit event or lacks a field.
pub fn parse_line(line: &str) -> Option<AuditEvent> {
    let event: Value = serde_json::from_str(line).ok()?;
    if event["kind"] != "Event" {
        return None;
    }
    let received =
        chrono::DateTime::parse_from_rfc3339(event["requestReceivedTimestamp"].as_str()?)
            .ok()?
            .with_timezone(&chrono::Utc);
    let object = &event["objectRef"];
    let resource = match object["resource"].as_str() {
        Some(resource) => {
            let mut name = resource.to_owned();
            if let Some(group) = object["apiGroup"].as_str().filter(|g| !g.is_empty()) {
                name = format!("{name}.{group}");
            }
            if let Some(sub) = object["subresource"].as_str() {
                name = format!("{name}/{sub}");
            }
            name
        }
        None => {
            let uri = event["requestURI"].as_str()?;
            uri.split('?').next().unwrap_or(uri).to_owned()
        }
    };
    Some(AuditEvent {
        id: event["auditID"].as_str()?.to_owned(),
        user: event["user"]["username"].as_str()?.to_owned(),
        verb: event["verb"].as_str()?.to_owned(),
        resource,
        received: SystemTime::from(received),
    })
}

/// Every request of `user` in the audit logs under `logs` (`audit*.log`, rotated ones included), once each.
/// Read line by line: at 10,000 Deployments the log holds hundreds of MB.
pub fn read_user(logs: &Path, user: &str) -> anyhow::Result<Vec<AuditEvent>> {
    let mut files: Vec<_> = std::fs::read_dir(logs)
        .with_context(|| format!("read {}", logs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit") && n.ends_with(".log"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("no audit log in {}", logs.display());
    }
    let needle = format!("\"username\":\"{user}\"");
    let mut seen = HashSet::new();
    let mut events = Vec::new();
    for file in files {
        let reader = std::io::BufReader::new(
            std::fs::File::open(&file).with_context(|| format!("open {}", file.display()))?,
        );
        for line in reader.lines() {
            let line = line.with_context(|| format!("read {}", file.display()))?;
            // Most lines are other users': skip them before parsing.
            if !line.contains(&needle) {
                continue;
            }
            if let Some(event) = parse_line(&line).filter(|e| e.user == user)
                && seen.insert(event.id.clone())
            {
                events.push(event);
            }
        }
    }
    Ok(events)
}

/// Requests received in `range`, by `(verb, resource)`.
pub fn by_kind(events: &[AuditEvent], range: Range) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for event in events.iter().filter(|e| range.contains(e.received)) {
        *counts
            .entry((event.verb.clone(), event.resource.clone()))
            .or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    const CONTROLLER: &str = "system:serviceaccount:watch-cluster:watch-cluster";

    fn line(id: &str, user: &str, verb: &str, object: &str, at: &str, stage: &str) -> String {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"{stage}","requestURI":"/apis/apps/v1/namespaces/bench-0/deployments/app-00001?fieldManager=watch-cluster","verb":"{verb}","user":{{"username":"{user}","groups":["system:serviceaccounts"]}},{object}"requestReceivedTimestamp":"{at}","stageTimestamp":"{at}"}}"#
        )
    }

    const DEPLOYMENT: &str = r#""objectRef":{"resource":"deployments","namespace":"bench-0","name":"app-00001","apiGroup":"apps","apiVersion":"v1"},"#;

    #[test]
    fn a_line_gives_user_verb_resource_and_receipt_time() {
        let e = parse_line(&line(
            "a",
            CONTROLLER,
            "patch",
            DEPLOYMENT,
            "2026-12-06T15:09:15.386686Z",
            "ResponseComplete",
        ))
        .unwrap();
        assert_eq!(
            (e.id.as_str(), e.user.as_str(), e.verb.as_str()),
            ("a", CONTROLLER, "patch")
        );
        assert_eq!(e.resource, "deployments.apps");
        let micros = e
            .received
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_micros();
        assert_eq!(micros % 1_000_000, 386_686);

        let core_status = r#""objectRef":{"resource":"pods","subresource":"status","namespace":"n","apiVersion":"v1"},"#;
        let e = parse_line(&line(
            "b",
            CONTROLLER,
            "get",
            core_status,
            "2026-12-06T15:09:15Z",
            "x",
        ))
        .unwrap();
        assert_eq!(e.resource, "pods/status");
        let e = parse_line(&line(
            "c",
            CONTROLLER,
            "get",
            "",
            "2026-12-06T15:09:15Z",
            "x",
        ))
        .unwrap();
        assert_eq!(
            e.resource,
            "/apis/apps/v1/namespaces/bench-0/deployments/app-00001"
        );

        assert_eq!(parse_line("not json"), None);
        assert_eq!(parse_line(r#"{"kind":"Other"}"#), None);
        assert_eq!(
            parse_line(&line("d", CONTROLLER, "get", DEPLOYMENT, "yesterday", "x")),
            None
        );
    }

    #[test]
    fn requests_are_counted_once_for_the_user_and_by_receipt_time() {
        let dir = tempfile::tempdir().unwrap();
        let log = [
            line(
                "w",
                CONTROLLER,
                "watch",
                DEPLOYMENT,
                "2026-12-06T15:00:00.5Z",
                "ResponseStarted",
            ),
            line(
                "p1",
                CONTROLLER,
                "patch",
                DEPLOYMENT,
                "2026-12-06T15:00:10Z",
                "ResponseComplete",
            ),
            line(
                "p2",
                CONTROLLER,
                "patch",
                DEPLOYMENT,
                "2026-12-06T15:00:19.999Z",
                "ResponseComplete",
            ),
            line(
                "g",
                CONTROLLER,
                "get",
                DEPLOYMENT,
                "2026-12-06T15:00:11Z",
                "ResponseComplete",
            ),
            line(
                "admin",
                "testbed-admin",
                "patch",
                DEPLOYMENT,
                "2026-12-06T15:00:12Z",
                "ResponseComplete",
            ),
            line(
                "late",
                CONTROLLER,
                "patch",
                DEPLOYMENT,
                "2026-12-06T15:00:20Z",
                "ResponseComplete",
            ),
        ]
        .join("\n");
        // The watch's second stage, in a rotated file, ends inside the window but started before it.
        let rotated = line(
            "w",
            CONTROLLER,
            "watch",
            DEPLOYMENT,
            "2026-12-06T15:00:00.5Z",
            "ResponseComplete",
        );
        std::fs::write(dir.path().join("audit.log"), log).unwrap();
        std::fs::write(
            dir.path().join("audit-2026-12-06T15-00-30.000.log"),
            rotated,
        )
        .unwrap();
        std::fs::write(dir.path().join("kube-apiserver.log"), "ignored").unwrap();
        let events = read_user(dir.path(), CONTROLLER).unwrap();
        assert_eq!(
            events.len(),
            5,
            "the admin's request and the watch's second stage are not counted"
        );
        let start =
            SystemTime::from(chrono::DateTime::parse_from_rfc3339("2026-12-06T15:00:10Z").unwrap());
        let counts = by_kind(
            &events,
            Range {
                start,
                end: start + Duration::from_secs(10),
            },
        );
        let key = |v: &str| (v.to_owned(), "deployments.apps".to_owned());
        assert_eq!(counts.get(&key("patch")), Some(&2));
        assert_eq!(counts.get(&key("get")), Some(&1));
        assert_eq!(counts.get(&key("watch")), None, "opened before the window");
        assert!(read_user(&dir.path().join("nothing"), CONTROLLER).is_err());
    }
}
