//! Request bodies per service (docs/notifications.md#formats): the compat JSON for `WEBHOOK_URL` and
//! `generic+`, Block Kit for Slack, an embed for Discord, an Adaptive Card in the Workflows envelope for Teams.
//!
//! Input: the receiver (its [`Service`], and Slack's botname) and a [`Notification`]. Output: the exact body
//! bytes (compact JSON). Pure. The chat formats share one [`message`](message::message) so the three services
//! say the same thing; each module only lays it out within its service's limits.

mod discord;
pub mod examples;
mod message;
mod slack;
mod teams;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

pub use message::{human, shorten};

use super::payload::Notification;
use super::receiver::{Receiver, Service};

/// Why a body could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// serde_json refused the value.
    #[error("failed to serialize the {service} body")]
    Serialize {
        /// The service's label.
        service: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The body `service` gets for `notification` (a Slack message without a botname).
pub fn render(service: Service, notification: &Notification) -> Result<Vec<u8>, FormatError> {
    render_as(service, None, notification)
}

/// The body `receiver` gets for `notification`: [`render`] with the receiver's Slack botname as `username`.
pub fn render_for(
    receiver: &Receiver,
    notification: &Notification,
) -> Result<Vec<u8>, FormatError> {
    render_as(receiver.service, receiver.username.as_deref(), notification)
}

fn render_as(
    service: Service,
    username: Option<&str>,
    notification: &Notification,
) -> Result<Vec<u8>, FormatError> {
    let serialize = |source| FormatError::Serialize {
        service: service.label(),
        source,
    };
    let body = match service {
        Service::Webhook | Service::Generic => return notification.to_json().map_err(serialize),
        Service::Slack => slack::body(&message::message(notification), username),
        Service::Discord => discord::body(&message::message(notification)),
        Service::Teams => teams::body(&message::message(notification)),
    };
    serde_json::to_vec(&body).map_err(serialize)
}
