//! Receivers of notifications: `WEBHOOK_URL` and each `NOTIFY_URLS` entry (docs/notifications.md#receivers).
//!
//! Input: the raw `NOTIFY_URLS` and `NOTIFY_ENDPOINT_OVERRIDE` values and the default event set (from the
//! `WEBHOOK_ENABLE_*` toggles). Output: one [`Receiver`] per URL, each with the service it speaks, the events it
//! takes, where its requests go, a masked form for logs, and the stable id recorded in the `rollout` record's
//! `delivered` list. Parsing is all-or-nothing: one bad URL stops startup, naming it masked.
//!
//! INTERFACE SKELETON (coordinator): the types and function signatures below are the contract between the
//! parser/formats work and the delivery work; the parsing itself is being written.

use std::fmt;

use super::payload::EventType;

/// The service a receiver speaks; also its metrics label and the prefix of its `delivered` id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// `WEBHOOK_URL`: compat JSON, headers, signature.
    Webhook,
    /// `generic+http(s)://`: the same compat JSON, headers and signature as `WEBHOOK_URL`.
    Generic,
    /// `slack://`: an incoming webhook, Block Kit with a `text` fallback.
    Slack,
    /// `discord://`: a webhook, one embed.
    Discord,
    /// `teams+https://`: a Workflows URL, an Adaptive Card 1.4 in the message envelope.
    Teams,
}

impl Service {
    /// The metrics label and `delivered` prefix: `webhook`, `generic`, `slack`, `discord`, `teams`.
    pub fn label(self) -> &'static str {
        match self {
            Service::Webhook => "webhook",
            Service::Generic => "generic",
            Service::Slack => "slack",
            Service::Discord => "discord",
            Service::Teams => "teams",
        }
    }

    /// Whether requests carry `WEBHOOK_HEADERS` and the `WEBHOOK_SECRET` signature (the compat receivers only:
    /// those headers may hold credentials meant for the operator's own endpoint, never for a chat service).
    pub fn compat(self) -> bool {
        matches!(self, Service::Webhook | Service::Generic)
    }
}

/// A set of event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct EventSet([bool; 4]);

impl EventSet {
    /// No event.
    pub const NONE: EventSet = EventSet([false; 4]);

    /// Adds `event_type`.
    pub fn with(mut self, event_type: EventType) -> Self {
        self.0[index(event_type)] = true;
        self
    }

    /// Whether `event_type` is in the set.
    pub fn contains(self, event_type: EventType) -> bool {
        self.0[index(event_type)]
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == [false; 4]
    }

    /// The members, in [`EventType::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = EventType> {
        EventType::ALL
            .into_iter()
            .filter(move |e| self.contains(*e))
    }
}

impl FromIterator<EventType> for EventSet {
    fn from_iter<I: IntoIterator<Item = EventType>>(iter: I) -> Self {
        iter.into_iter().fold(EventSet::NONE, EventSet::with)
    }
}

fn index(event_type: EventType) -> usize {
    match event_type {
        EventType::DeploymentDetected => 0,
        EventType::ImageRolloutStarted => 1,
        EventType::ImageRolloutCompleted => 2,
        EventType::ImageRolloutFailed => 3,
    }
}

/// One configured receiver. Debug shows only the masked form.
#[derive(Clone, PartialEq, Eq)]
pub struct Receiver {
    /// What it speaks.
    pub service: Service,
    /// `webhook` for `WEBHOOK_URL`; else `<label>:<first 8 hex of SHA-256 of the URL as configured, without
    /// events>`: stable across restarts and replicas, never a credential.
    pub id: String,
    /// Where requests go (`events` removed, `NOTIFY_ENDPOINT_OVERRIDE` applied). Holds credentials: send only.
    pub endpoint: url::Url,
    /// The URL as configured with its secret parts masked: for logs, errors and the startup summary.
    pub masked: String,
    /// The event types it takes.
    pub events: EventSet,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Receiver({} {})", self.id, self.masked)
    }
}

/// A `NOTIFY_URLS` or `NOTIFY_ENDPOINT_OVERRIDE` entry that cannot be used. Display names the variable, the
/// entry masked, what is wrong and the fix; it never shows a secret.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {masked}: {problem}")]
pub struct ReceiverError {
    /// `NOTIFY_URLS` or `NOTIFY_ENDPOINT_OVERRIDE`.
    pub variable: &'static str,
    /// The entry with its secret parts masked.
    pub masked: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

/// Parses `NOTIFY_URLS` (whitespace-separated) with the optional `NOTIFY_ENDPOINT_OVERRIDE`.
///
/// `default_events` applies to URLs without `events=`. Returns the receivers in the order given; an empty
/// or unset value yields none.
pub fn parse_notify_urls(
    raw: Option<&str>,
    endpoint_override: Option<&str>,
    default_events: EventSet,
) -> Result<Vec<Receiver>, ReceiverError> {
    let _ = (endpoint_override, default_events);
    match raw.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(Vec::new()),
        Some(first) => Err(ReceiverError {
            variable: "NOTIFY_URLS",
            masked: first
                .split_whitespace()
                .next()
                .map(|_| "<url>".to_owned())
                .unwrap_or_default(),
            problem: "NOTIFY_URLS is not parsed yet (skeleton)".into(),
        }),
    }
}
