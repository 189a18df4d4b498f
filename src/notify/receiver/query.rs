//! The query of a `NOTIFY_URLS` entry: `events=` is ours and removed before sending; the rest belongs to the
//! form (Shoutrrr parameters for `slack://`/`discord://`, the service's own query for `teams+`/`generic+`).
//!
//! The query is handled as text, item by item, so what is kept reaches the service exactly as configured
//! (a Teams `sig` is percent-encoded base64; decoding and re-encoding could change it).

use super::EventSet;
use crate::notify::payload::EventType;

/// The entry without its `events` parameter (and without a `?` left empty), and the events it named.
pub fn take_events(entry: &str) -> Result<(String, Option<EventSet>), String> {
    let (base, query) = split(entry);
    let Some(query) = query else {
        return Ok((entry.to_owned(), None));
    };
    let mut kept = Vec::new();
    let mut events = None;
    for item in query.split('&') {
        let (key, value) = decode(item);
        if key != "events" {
            kept.push(item);
            continue;
        }
        if events.is_some() {
            return Err("`events` is given twice; name every event in one `events=A,B`".into());
        }
        events = Some(event_set(&value)?);
    }
    let without = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((without, events))
}

/// The entry before `?`, and its query if any.
pub fn split(entry: &str) -> (&str, Option<&str>) {
    match entry.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (entry, None),
    }
}

/// The decoded `(key, value)` pairs of a query, in order; empty items are skipped.
pub fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|item| !item.is_empty())
        .map(decode)
        .collect()
}

fn decode(item: &str) -> (String, String) {
    url::form_urlencoded::parse(item.as_bytes())
        .next()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .unwrap_or_default()
}

fn event_set(value: &str) -> Result<EventSet, String> {
    let names: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Err(format!(
            "`events=` names no event; name at least one of {}, or leave `events` out for the defaults",
            all_names()
        ));
    }
    names
        .into_iter()
        .map(|name| {
            EventType::ALL
                .into_iter()
                .find(|e| e.as_str() == name)
                .ok_or_else(|| {
                    format!(
                        "unknown event `{name}` in `events=`; known: {}",
                        all_names()
                    )
                })
        })
        .collect()
}

fn all_names() -> String {
    EventType::ALL.map(EventType::as_str).join(", ")
}
