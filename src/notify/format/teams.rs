//! Microsoft Teams Workflows body (docs/notifications.md#formats): an Adaptive Card 1.4 in the message
//! envelope the Workflows "post to a channel when a webhook request is received" trigger expects —
//! `{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive",…}]}`.
//!
//! The card: a bold title coloured by outcome, a `FactSet`, the reason in a red `TextBlock`, and a subtle
//! footer (a long reason cut to 4000 characters). Version 1.4 is what Teams renders everywhere; nothing here needs a later one.

use serde_json::{Value, json};

use super::message::{Message, Tone, truncate};

/// A reason longer than this is cut: Teams refuses messages over about 28 KB, and a card is for reading.
const REASON_MAX: usize = 4000;

fn colour(tone: Tone) -> &'static str {
    match tone {
        Tone::Completed => "Good",
        Tone::Failed => "Attention",
        Tone::Started => "Accent",
        Tone::Detected => "Default",
    }
}

/// The body for `message`.
pub fn body(message: &Message) -> Value {
    let facts: Vec<Value> = message
        .facts
        .iter()
        .map(|(name, value)| json!({"title": name, "value": value}))
        .collect();
    let mut card = vec![
        json!({"type": "TextBlock", "text": message.title, "weight": "Bolder", "size": "Medium",
               "color": colour(message.tone), "wrap": true}),
        json!({"type": "FactSet", "facts": facts}),
    ];
    if let Some(reason) = &message.reason {
        card.push(json!({"type": "TextBlock", "text": truncate(reason, REASON_MAX), "color": "Attention", "wrap": true}));
    }
    card.push(
        json!({"type": "TextBlock", "text": message.footer, "isSubtle": true, "size": "Small",
                     "wrap": true}),
    );
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": card,
            },
        }],
    })
}
