//! The Shoutrrr forms of docs/notifications.md#receivers, one function each: which service, where its
//! requests go, and the Slack botname.
//!
//! Input: one `NOTIFY_URLS` entry with `events` already removed. Output: a [`Form`], or what is wrong with
//! the entry and how to fix it (the caller adds the masked entry; problems here never quote a secret).

use url::Url;

use super::Service;
use super::query;

/// What one entry says.
#[derive(Debug)]
pub struct Form {
    pub service: Service,
    pub endpoint: Url,
    pub username: Option<String>,
    /// Known Shoutrrr parameters given but not used here.
    pub ignored: Vec<String>,
}

/// Shoutrrr's Slack parameters (its docs list `botname`/`username`, `color`, `icon`/`icon_emoji`/`icon_url`,
/// `thread_ts`, `title`): accepted so a Watchtower URL works unchanged, and ignored with a warning.
const SLACK_PARAMS: &[&str] = &[
    "botname",
    "username",
    "color",
    "icon",
    "icon_emoji",
    "icon_url",
    "thread_ts",
    "threadts",
    "title",
];

/// Shoutrrr's Discord parameters, accepted and ignored as [`SLACK_PARAMS`] are.
const DISCORD_PARAMS: &[&str] = &[
    "avatar",
    "avatarurl",
    "color",
    "colordebug",
    "colorerror",
    "colorinfo",
    "colorunknown",
    "colorwarn",
    "json",
    "splitlines",
    "thread_id",
    "title",
    "username",
];

const FORMS: &str = "slack://token-a/token-b/token-c, slack://hook:token-a-token-b-token-c@webhook, \
                     discord://token@webhookid, teams+https://<Workflows URL>, generic+https://host/path";

/// Parses one entry (without `events`).
pub fn parse(entry: &str) -> Result<Form, String> {
    let Some((scheme, rest)) = entry.split_once("://") else {
        return Err(format!("not a receiver URL; use one of {FORMS}"));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "slack" => slack(rest),
        "discord" => discord(rest),
        "teams+https" => inner(Service::Teams, "https", rest),
        "generic+https" => inner(Service::Generic, "https", rest),
        "generic+http" => inner(Service::Generic, "http", rest),
        "teams" => Err(
            "the Office 365 connector form `teams://` is retired; use the Workflows URL as \
                        teams+https://<host>/<path>?…&sig=…"
                .into(),
        ),
        "teams+http" => Err("Teams Workflows URLs are HTTPS; write teams+https://…".into()),
        "generic" => {
            Err("say which protocol: generic+https://host/path or generic+http://host/path".into())
        }
        other => Err(format!("unknown scheme `{other}`; use one of {FORMS}")),
    }
}

fn slack(rest: &str) -> Result<Form, String> {
    let (base, query) = query::split(rest);
    let ignored = known_params(query, SLACK_PARAMS, "slack")?;
    let base = base.trim_end_matches('/');
    let (username, tokens) = match base.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((kind, token)) if kind.eq_ignore_ascii_case("hook") => {
                if !host.eq_ignore_ascii_case("webhook") {
                    return Err("the webhook form ends in `@webhook`: \
                                slack://hook:token-a-token-b-token-c@webhook"
                        .into());
                }
                (None, split_tokens(token, '-')?)
            }
            Some(_) => {
                return Err(
                    "the Slack bot API form (`xoxb:…@channel`) is not supported; use an incoming \
                            webhook: slack://hook:token-a-token-b-token-c@webhook or \
                            slack://[botname@]token-a/token-b/token-c"
                        .into(),
                );
            }
            None => {
                let botname = percent(userinfo);
                if botname.is_empty() {
                    return Err("empty botname before `@`; remove the `@` or name the bot".into());
                }
                (Some(botname), split_tokens(host, '/')?)
            }
        },
        None => (None, split_tokens(base, '/')?),
    };
    let [a, b, c] = tokens;
    let endpoint = Url::parse(&format!("https://hooks.slack.com/services/{a}/{b}/{c}"))
        .map_err(|e| format!("cannot make the webhook URL from the tokens: {e}"))?;
    Ok(Form {
        service: Service::Slack,
        endpoint,
        username,
        ignored,
    })
}

/// The three Slack webhook tokens (`T…`, `B…` and the secret), letters and digits each.
fn split_tokens(text: &str, separator: char) -> Result<[&str; 3], String> {
    let parts: Vec<&str> = text.split(separator).collect();
    let shape = if separator == '/' {
        "slack://[botname@]token-a/token-b/token-c"
    } else {
        "slack://hook:token-a-token-b-token-c@webhook"
    };
    match parts.as_slice() {
        [a, b, c] if [a, b, c].iter().all(|t| is_token(t)) => Ok([a, b, c]),
        _ => Err(format!(
            "expected three webhook tokens of letters and digits, as in {shape} (the three parts of \
             https://hooks.slack.com/services/…)"
        )),
    }
}

fn is_token(token: &str) -> bool {
    !token.is_empty() && token.chars().all(|c| c.is_ascii_alphanumeric())
}

fn discord(rest: &str) -> Result<Form, String> {
    let (base, query) = query::split(rest);
    let ignored = known_params(query, DISCORD_PARAMS, "discord")?;
    let shape =
        "discord://token@webhookid (from https://discord.com/api/webhooks/<webhookid>/<token>)";
    let Some((token, id)) = base.trim_end_matches('/').rsplit_once('@') else {
        return Err(format!("expected {shape}"));
    };
    let token_ok = !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let id_ok = !id.is_empty() && id.chars().all(|c| c.is_ascii_digit());
    if !token_ok || !id_ok {
        return Err(format!(
            "expected {shape}: the id is digits, the token letters, digits, `-`, `_` and `.`"
        ));
    }
    let endpoint = Url::parse(&format!("https://discord.com/api/webhooks/{id}/{token}"))
        .map_err(|e| format!("cannot make the webhook URL: {e}"))?;
    Ok(Form {
        service: Service::Discord,
        endpoint,
        username: None,
        ignored,
    })
}

/// `teams+https://…` and `generic+http(s)://…`: the URL after the `+`, userinfo and query kept.
fn inner(service: Service, protocol: &str, rest: &str) -> Result<Form, String> {
    // Checked on the text: `url` reads `https:///path` as host `path`.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.rsplit('@').next().is_none_or(str::is_empty) {
        return Err(format!("no host after `{}+{protocol}://`", service.label()));
    }
    let endpoint = Url::parse(&format!("{protocol}://{rest}"))
        .map_err(|e| format!("not a valid URL after `{}+`: {e}", service.label()))?;
    if endpoint.host_str().is_none_or(str::is_empty) {
        return Err(format!("no host after `{}+{protocol}://`", service.label()));
    }
    Ok(Form {
        service,
        endpoint,
        username: None,
        ignored: Vec::new(),
    })
}

/// The known parameters given (to be ignored), or an error naming an unknown one.
fn known_params(query: Option<&str>, known: &[&str], scheme: &str) -> Result<Vec<String>, String> {
    let mut ignored = Vec::new();
    for (key, _) in query::pairs(query) {
        let lower = key.to_ascii_lowercase();
        if !known.contains(&lower.as_str()) {
            return Err(format!(
                "unknown parameter `{key}` for {scheme}://; remove it (known Shoutrrr parameters, ignored \
                 here: {}; ours: events)",
                known.join(", ")
            ));
        }
        if !ignored.contains(&lower) {
            ignored.push(lower);
        }
    }
    Ok(ignored)
}

fn percent(text: &str) -> String {
    url::form_urlencoded::parse(format!("v={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
