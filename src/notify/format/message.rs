//! What every chat message says, before any service's markup (docs/notifications.md#formats): a title, the
//! facts as (name, value) pairs, the reason of a failure, and a one-line summary for notifications and
//! fallbacks. Slack, Discord and Teams each lay this out in their own format, so the three say the same thing.
//!
//! Image references are shortened by one rule: a digest `@sha256:<64 hex>` keeps its first 12 hex digits and
//! an ellipsis (`app:1.2.0@sha256:abcdef123456…`), enough to tell digests apart at a glance; the tag and
//! repository stay whole.

use std::time::Duration;

use chrono::SecondsFormat;

use crate::notify::payload::{Event, EventType, Notification, WorkloadKind};

/// How a message is coloured: one per event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// DEPLOYMENT_DETECTED: grey.
    Detected,
    /// IMAGE_ROLLOUT_STARTED: blue.
    Started,
    /// IMAGE_ROLLOUT_COMPLETED: green.
    Completed,
    /// IMAGE_ROLLOUT_FAILED: red.
    Failed,
}

/// The service-neutral content of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub tone: Tone,
    /// e.g. `Rollout completed: Deployment default/my-app`.
    pub title: String,
    /// (name, value) in display order; values may span lines.
    pub facts: Vec<(&'static str, String)>,
    /// The failure's reason, verbatim (each service truncates it to its limits).
    pub reason: Option<String>,
    /// The title and the update on one line, for notifications and plain-text fallbacks.
    pub summary: String,
    /// `IMAGE_ROLLOUT_COMPLETED · 2024-01-01T12:00:00Z`.
    pub footer: String,
    /// RFC 3339 UTC, whole seconds (the compat `timestamp`).
    pub timestamp: String,
}

/// The content of `notification`'s message.
pub fn message(notification: &Notification) -> Message {
    let workload = &notification.workload;
    let kind = kind_name(workload.kind);
    let subject = format!("{kind} {}/{}", workload.namespace, workload.name);
    let mut facts = vec![
        ("Workload", workload.name.clone()),
        ("Namespace", workload.namespace.clone()),
        ("Kind", kind.to_owned()),
    ];
    let update = update_lines(notification);
    let mut reason = None;
    let (tone, title) = match &notification.event {
        Event::DeploymentDetected {
            cron_expression,
            update_strategy,
        } => {
            facts.push(("Images", update.join("\n")));
            facts.push(("Schedule", cron_expression.clone()));
            facts.push(("Strategy", update_strategy.clone()));
            (Tone::Detected, format!("Watching {subject}"))
        }
        Event::ImageRolloutStarted { .. } => {
            facts.push(("Update", update.join("\n")));
            (Tone::Started, format!("Rollout started: {subject}"))
        }
        Event::ImageRolloutCompleted { rollout_duration } => {
            facts.push(("Update", update.join("\n")));
            facts.push(("Duration", human(*rollout_duration)));
            (Tone::Completed, format!("Rollout completed: {subject}"))
        }
        Event::ImageRolloutFailed {
            error,
            rolled_back_to,
        } => {
            facts.push(("Update", update.join("\n")));
            if let Some(ran) = failed_after(notification) {
                facts.push(("Duration", human(ran)));
            }
            if let Some(restored) = rolled_back_to {
                facts.push((
                    "Rolled back to",
                    restored_lines(notification, restored).join("\n"),
                ));
            }
            let quarantined = &notification.facts.quarantined;
            if !quarantined.is_empty() {
                let lines: Vec<String> = quarantined
                    .iter()
                    .map(|(c, i)| format!("{c}: {}", shorten(i)))
                    .collect();
                facts.push(("Quarantined", lines.join("\n")));
            }
            reason = Some(error.clone());
            let title = if rolled_back_to.is_some() {
                format!("Rollout failed and rolled back: {subject}")
            } else {
                format!("Rollout failed: {subject}")
            };
            (Tone::Failed, title)
        }
    };
    let summary = format!("{title} ({})", update.join("; "));
    let event_type: EventType = notification.event_type();
    let timestamp = notification.at.to_rfc3339_opts(SecondsFormat::Secs, true);
    Message {
        tone,
        footer: format!("{event_type} · {timestamp}"),
        title,
        facts,
        reason,
        summary,
        timestamp,
    }
}

fn kind_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::StatefulSet => "StatefulSet",
        WorkloadKind::DaemonSet => "DaemonSet",
    }
}

/// One line per container, `web: app:1.0.0 → app:1.0.1` (or only the image where nothing changed, as on
/// DETECTED). Without per-container facts, the compat image strings.
fn update_lines(notification: &Notification) -> Vec<String> {
    let facts = &notification.facts;
    if facts.to.is_empty() {
        let to = shorten(&notification.image);
        return match &notification.event {
            Event::ImageRolloutStarted { previous_image } => {
                vec![format!("{} → {to}", shorten(previous_image))]
            }
            _ => vec![to],
        };
    }
    facts
        .to
        .iter()
        .map(|(container, to)| match facts.from.get(container) {
            Some(from) if from != to => {
                format!("{container}: {} → {}", shorten(from), shorten(to))
            }
            _ => format!("{container}: {}", shorten(to)),
        })
        .collect()
}

/// Per container when the facts say what was restored, else the compat string.
fn restored_lines(notification: &Notification, restored: &str) -> Vec<String> {
    let from = &notification.facts.from;
    if from.is_empty() {
        return vec![shorten(restored)];
    }
    from.iter()
        .map(|(c, i)| format!("{c}: {}", shorten(i)))
        .collect()
}

/// How long a failed rollout ran: from the accepted patch to the failure.
fn failed_after(notification: &Notification) -> Option<Duration> {
    let started = notification.facts.started_at?;
    (notification.at - started).to_std().ok()
}

/// `850ms`, `45s`, `2m 5s`, `1h 2m` (whole seconds from one second on; hours drop the seconds).
pub fn human(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) if s == 0 => format!("{m}m"),
        (0, _) => format!("{m}m {s}s"),
        _ if m == 0 => format!("{h}h"),
        _ => format!("{h}h {m}m"),
    }
}

/// Every `@sha256:<hex>` in `text` cut to 12 hex digits and `…` (the rule in this module's docs).
pub fn shorten(text: &str) -> String {
    const MARK: &str = "@sha256:";
    const KEEP: usize = 12;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        let (head, tail) = rest.split_at(at + MARK.len());
        out.push_str(head);
        let hex = tail.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex > KEEP {
            out.push_str(&tail[..KEEP]);
            out.push('…');
        } else {
            out.push_str(&tail[..hex]);
        }
        rest = &tail[hex..];
    }
    out.push_str(rest);
    out
}

/// `text` cut to at most `max` characters, the last one an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
