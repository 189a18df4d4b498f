//! Discord webhook body (docs/notifications.md#formats): one embed — title, the reason as description,
//! fields, a colour by outcome (green completed, red failed, blue started, grey detected), an ISO 8601
//! `timestamp` and a footer.
//!
//! Discord refuses an embed over its limits (title 256, description 4096, field name 256 and value 1024,
//! footer 2048, 25 fields, 6000 characters in all), and a refused notification is a lost one; so every text is
//! cut to its limit, and the description (where a long error goes) gets what the 6000 leave. Embed text is
//! Markdown: the characters Discord would read as formatting are escaped.

use serde_json::{Value, json};

use super::message::{Message, Tone, truncate};

const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 4096;
const FIELD_NAME_MAX: usize = 256;
const FIELD_VALUE_MAX: usize = 1024;
const FOOTER_MAX: usize = 2048;
const FIELDS_MAX: usize = 25;
const TOTAL_MAX: usize = 6000;

/// The embed colours, as Discord's integer RGB.
fn colour(tone: Tone) -> u32 {
    match tone {
        Tone::Completed => 0x2E_CC_71,
        Tone::Failed => 0xE7_4C_3C,
        Tone::Started => 0x34_98_DB,
        Tone::Detected => 0x95_A5_A6,
    }
}

/// The body for `message`.
pub fn body(message: &Message) -> Value {
    let title = truncate(&escape(&message.title), TITLE_MAX);
    let footer = truncate(&message.footer, FOOTER_MAX);
    let fields: Vec<(String, String)> = message
        .facts
        .iter()
        .take(FIELDS_MAX)
        .map(|(name, value)| {
            (
                truncate(name, FIELD_NAME_MAX),
                truncate(&escape(value), FIELD_VALUE_MAX),
            )
        })
        .collect();
    let used: usize = [&title, &footer]
        .into_iter()
        .chain(fields.iter().flat_map(|(n, v)| [n, v]))
        .map(|t| t.chars().count())
        .sum();
    let mut embed = json!({
        "title": title,
        "color": colour(message.tone),
        "fields": fields
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value, "inline": !value.contains('\n')}))
            .collect::<Vec<_>>(),
        "footer": {"text": footer},
        "timestamp": message.timestamp,
    });
    if let (Some(reason), Some(object)) = (&message.reason, embed.as_object_mut()) {
        let room = DESCRIPTION_MAX.min(TOTAL_MAX.saturating_sub(used));
        object.insert(
            "description".into(),
            Value::String(truncate(&escape(reason), room)),
        );
    }
    json!({"embeds": [embed]})
}

/// A backslash before each character Discord Markdown treats as formatting.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '*' | '_' | '`' | '~' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
