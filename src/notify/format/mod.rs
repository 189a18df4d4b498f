//! Request bodies per service (docs/notifications.md#formats): the compat JSON for `WEBHOOK_URL` and
//! `generic+`, Block Kit for Slack, an embed for Discord, an Adaptive Card in the Workflows envelope for Teams.
//!
//! Input: the receiver's [`Service`] and a [`Notification`]. Output: the exact body bytes (JSON). Pure.
//!
//! INTERFACE SKELETON (coordinator): the chat formats are being written.

use super::payload::Notification;
use super::receiver::Service;

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

/// The body `service` gets for `notification`.
pub fn render(service: Service, notification: &Notification) -> Result<Vec<u8>, FormatError> {
    let serialize = |source| FormatError::Serialize {
        service: service.label(),
        source,
    };
    match service {
        Service::Webhook | Service::Generic => notification.to_json().map_err(serialize),
        Service::Slack | Service::Discord | Service::Teams => {
            // Skeleton: replaced by the chat formats.
            notification.to_json().map_err(serialize)
        }
    }
}
