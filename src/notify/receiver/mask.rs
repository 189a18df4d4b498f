//! The masked form of a `NOTIFY_URLS` entry: what logs, errors and the startup summary show
//! (docs/notifications.md#receivers, "Masking").
//!
//! Total over any text, valid or not: an entry that fails to parse is still named in its error, so masking
//! cannot rely on the parse. Each form hides what carries the credential — the Slack tokens, the Discord token,
//! userinfo, and every query value except our own `events` (the Teams `sig` is one) — and keeps what tells
//! receivers apart (scheme, botname, webhook id, host, path). Text that is not a URL is hidden whole.

use super::query;

/// What replaces a secret.
const HIDDEN: &str = "***";

/// `entry` with its secret parts replaced by `***`.
pub fn mask(entry: &str) -> String {
    let Some((scheme, rest)) = entry.split_once("://") else {
        return HIDDEN.to_owned();
    };
    let (base, query) = query::split(rest);
    let base = match scheme.to_ascii_lowercase().as_str() {
        "slack" => slack(base),
        "discord" => match base.rsplit_once('@') {
            Some((_, id)) => format!("{HIDDEN}@{id}"),
            None => HIDDEN.to_owned(),
        },
        "teams" | "teams+https" | "teams+http" | "generic" | "generic+https" | "generic+http" => {
            without_userinfo(base)
        }
        _ => HIDDEN.to_owned(),
    };
    match query {
        Some(query) => format!("{scheme}://{base}?{}", masked_query(query)),
        None => format!("{scheme}://{base}"),
    }
}

/// `hook:***@webhook`, `xoxb:***@channel`, `botname@***`, or `***`.
fn slack(base: &str) -> String {
    match base.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((kind, _)) => format!("{kind}:{HIDDEN}@{host}"),
            None => format!("{userinfo}@{HIDDEN}"),
        },
        None => HIDDEN.to_owned(),
    }
}

/// The authority's userinfo (everything before its last `@`) hidden; host, port and path kept.
fn without_userinfo(base: &str) -> String {
    let (authority, path) = match base.find('/') {
        Some(slash) => base.split_at(slash),
        None => (base, ""),
    };
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{HIDDEN}@{host}{path}"),
        None => base.to_owned(),
    }
}

/// Every value hidden but `events`'; an item without `=` hidden whole.
fn masked_query(query: &str) -> String {
    query
        .split('&')
        .map(|item| match item.split_once('=') {
            Some(("events", _)) => item.to_owned(),
            Some((key, _)) => format!("{key}={HIDDEN}"),
            None if item.is_empty() => String::new(),
            None => HIDDEN.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}
