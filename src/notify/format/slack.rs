//! Slack incoming-webhook body (docs/notifications.md#formats): Block Kit — a `header`, a `section` of
//! `fields`, the reason in its own `section`, a `context` line — and the top-level `text` Slack shows in
//! notifications and where blocks cannot be drawn.
//!
//! Slack reads `&`, `<` and `>` in mrkdwn as markup (links, mentions), so every mrkdwn text is escaped; the
//! header is `plain_text` and is not. Texts are cut to Block Kit's limits (header 150 characters, a field
//! 2000, a section 3000) so a long error shortens the message instead of getting it refused.

use serde_json::{Value, json};

use super::message::{Message, truncate};

const HEADER_MAX: usize = 150;
const FIELD_MAX: usize = 2000;
const SECTION_MAX: usize = 3000;

/// The body for `message`, with `username` (the receiver's botname) when given.
pub fn body(message: &Message, username: Option<&str>) -> Value {
    let fields: Vec<Value> = message
        .facts
        .iter()
        .map(|(name, value)| {
            let text = format!("*{}*\n{}", escape(name), escape(value));
            json!({"type": "mrkdwn", "text": truncate(&text, FIELD_MAX)})
        })
        .collect();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&message.title, HEADER_MAX)}}),
        json!({"type": "section", "fields": fields}),
    ];
    if let Some(reason) = &message.reason {
        let text = format!("*Reason*\n{}", escape(reason));
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, SECTION_MAX)}}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(&message.footer)}]}));
    let mut body = json!({
        "text": escape(&truncate(&message.summary, SECTION_MAX)),
        "blocks": blocks,
    });
    if let (Some(username), Some(object)) = (username, body.as_object_mut()) {
        object.insert("username".into(), Value::String(username.to_owned()));
    }
    body
}

/// Slack's three escapes for text it parses (`&amp;`, `&lt;`, `&gt;`).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
