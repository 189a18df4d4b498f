//! Receivers of notifications: `WEBHOOK_URL` and each `NOTIFY_URLS` entry (docs/notifications.md#receivers).
//!
//! Input: the raw `NOTIFY_URLS` and `NOTIFY_ENDPOINT_OVERRIDE` values and the default event set (from the
//! `WEBHOOK_ENABLE_*` toggles). Output: one [`Receiver`] per URL, each with the service it speaks, the events it
//! takes, where its requests go, a masked form for logs, and the stable id recorded in the `rollout` record's
//! `delivered` list. Parsing is all-or-nothing: one bad URL stops startup, naming it masked.
//!
//! Why by hand rather than `url::Url` alone: the Shoutrrr forms are not URLs a parser agrees on (`slack://` puts
//! tokens in the host, `discord://` a token in the userinfo, `teams+https://` wraps a whole URL), and the Teams
//! `sig` must reach the service byte for byte, so each form is split as text and only the inner
//! `teams+`/`generic+` URLs go through `url::Url`.
//!
//! | file | responsibility |
//! |---|---|
//! | `forms` | one Shoutrrr form → service, endpoint, username |
//! | `query` | `events=` and the other query parameters |
//! | `mask` | the masked form of any entry, valid or not |
//! | `endpoint_override` | `NOTIFY_ENDPOINT_OVERRIDE` |

mod endpoint_override;
mod forms;
mod mask;
mod query;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

use std::fmt;

use sha2::{Digest, Sha256};

pub use endpoint_override::EndpointOverride;

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
    /// Slack's `botname@`: the message's `username` (docs/notifications.md#receivers). `None` elsewhere.
    pub username: Option<String>,
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

/// The variable `NOTIFY_URLS` entries come from, as errors name it.
const NOTIFY_URLS: &str = "NOTIFY_URLS";

/// Parses `NOTIFY_URLS` (whitespace-separated) with the optional `NOTIFY_ENDPOINT_OVERRIDE`.
///
/// `default_events` applies to URLs without `events=`. Returns the receivers in the order given; an empty
/// or unset value yields none. Known Shoutrrr parameters this controller does not use are logged once per
/// receiver (a `warn!` line naming them) and otherwise ignored.
pub fn parse_notify_urls(
    raw: Option<&str>,
    endpoint_override: Option<&str>,
    default_events: EventSet,
) -> Result<Vec<Receiver>, ReceiverError> {
    let overrides = EndpointOverride::parse(endpoint_override.unwrap_or_default())?;
    let mut receivers: Vec<Receiver> = Vec::new();
    for entry in raw.unwrap_or_default().split_whitespace() {
        let parsed = parse_one(entry, &overrides, default_events)?;
        if !parsed.ignored.is_empty() {
            tracing::warn!(
                receiver = %parsed.receiver.masked,
                ignored = %parsed.ignored.join(","),
                "ignoring Shoutrrr parameters this controller does not use"
            );
        }
        if let Some(same) = receivers.iter().find(|r| r.id == parsed.receiver.id) {
            return Err(ReceiverError {
                variable: NOTIFY_URLS,
                masked: parsed.receiver.masked,
                problem: format!(
                    "the same receiver as {} (id {}); list each receiver once",
                    same.masked, same.id
                ),
            });
        }
        receivers.push(parsed.receiver);
    }
    Ok(receivers)
}

/// One parsed entry and the known Shoutrrr parameters it carried that are ignored.
struct Parsed {
    receiver: Receiver,
    ignored: Vec<String>,
}

fn parse_one(
    entry: &str,
    overrides: &EndpointOverride,
    default_events: EventSet,
) -> Result<Parsed, ReceiverError> {
    let masked = mask::mask(entry);
    let fail = |problem: String| ReceiverError {
        variable: NOTIFY_URLS,
        masked: masked.clone(),
        problem,
    };
    let (without_events, events) = query::take_events(entry).map_err(fail)?;
    let form = forms::parse(&without_events).map_err(fail)?;
    let events = events.unwrap_or(default_events);
    if events.is_empty() {
        return Err(fail(
            "it takes no event; add ?events=IMAGE_ROLLOUT_FAILED (or more, comma-separated) or enable a \
             WEBHOOK_ENABLE_* default"
                .into(),
        ));
    }
    let endpoint = overrides.apply(form.service, form.endpoint);
    Ok(Parsed {
        receiver: Receiver {
            service: form.service,
            id: receiver_id(form.service, &without_events),
            endpoint,
            masked,
            events,
            username: form.username,
        },
        ignored: form.ignored,
    })
}

/// `<label>:<first 8 hex of SHA-256 of the URL as configured without events>`: the `delivered` id (SPEC §15 in
/// docs/notifications.md#receivers). Derived from configuration only, so every replica and restart agrees.
fn receiver_id(service: Service, without_events: &str) -> String {
    let digest = hex::encode(Sha256::digest(without_events.as_bytes()));
    format!("{}:{}", service.label(), &digest[..8])
}
