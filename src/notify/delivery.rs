//! One delivery to one receiver: POST the prepared body, retry what is worth retrying, report the outcome.
//!
//! Input: a [`Prepared`] request (body rendered for the receiver's service and signed once, so every retry
//! sends the same bytes, signature and delivery id). Output: a [`DeliveryOutcome`], with every attempt
//! counted in the metrics under the receiver's service label.
//!
//! What each receiver gets (docs/notifications.md#headers): every request carries `Content-Type` and the
//! delivery id; only the compat receivers (`WEBHOOK_URL`, `generic+`) get `WEBHOOK_HEADERS` and the
//! `WEBHOOK_SECRET` signature, which are meant for the operator's own endpoint and may hold its credentials.
//! The delivery id goes to the chat services too: it carries no secret, and it lets a relay in front of
//! them deduplicate.
//!
//! Retry policy (docs/notifications.md#retries): connection errors, timeouts, 408, 429 and 5xx are retried up to
//! `WEBHOOK_RETRY_COUNT` times with exponential backoff, or after `Retry-After` (capped at 60 s) when the
//! receiver sends one. Redirects are not followed (a 3xx is a failure: following one could send a signed
//! body somewhere the operator did not configure), and other 4xx mean the request itself is wrong, so
//! sending it again cannot help.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tracing::{debug, warn};

use super::config::WebhookConfig;
use super::format::{self, FormatError};
use super::metrics::{AttemptResult, WebhookMetrics};
use super::payload::{EventType, Notification};
use super::receiver::{Receiver, Service};
use crate::retry::{Backoff, retry_after};

/// The longest `Retry-After` honoured; longer requests are shortened to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Header carrying the deterministic delivery id.
pub const DELIVERY_HEADER: &str = "x-watch-cluster-delivery";
/// Header carrying `sha256=<hex HMAC>` when `WEBHOOK_SECRET` is set.
pub const SIGNATURE_HEADER: &str = "x-watch-cluster-signature";

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Not delivered: retries exhausted or a non-retryable answer. Nothing more will be attempted.
    Exhausted,
    /// Not sent: webhooks are off or this event type is not enabled.
    Disabled,
    /// Not finished because the notifier shut down first; a later leader should deliver it again.
    Interrupted,
}

/// A request ready to send: the exact body and the headers derived from it.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) event_type: EventType,
    pub(crate) delivery_id: HeaderValue,
    pub(crate) body: Bytes,
    pub(crate) signature: Option<HeaderValue>,
}

/// Why a notification could not be turned into a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrepareError {
    #[error("failed to render the body")]
    Render(#[source] FormatError),
    #[error("failed to use the delivery id as a header value")]
    DeliveryId(#[source] http::header::InvalidHeaderValue),
    #[error("failed to use the signature as a header value")]
    Signature(#[source] http::header::InvalidHeaderValue),
}

impl Prepared {
    /// The request `receiver` gets for `n`; signed only for the compat services.
    pub(crate) fn new(
        n: &Notification,
        receiver: &Receiver,
        config: &WebhookConfig,
    ) -> Result<Self, PrepareError> {
        let service = receiver.service;
        let body = Bytes::from(format::render_for(receiver, n).map_err(PrepareError::Render)?);
        let delivery_id =
            HeaderValue::from_str(&n.delivery_id).map_err(PrepareError::DeliveryId)?;
        let secret = config.secret.as_ref().filter(|_| service.compat());
        let signature = match secret {
            Some(secret) => {
                Some(HeaderValue::try_from(secret.sign(&body)).map_err(PrepareError::Signature)?)
            }
            None => None,
        };
        Ok(Prepared {
            event_type: n.event_type(),
            delivery_id,
            body,
            signature,
        })
    }
}

/// What one attempt tells the retry loop.
enum Attempt {
    Delivered,
    /// Worth retrying; `Some` when the receiver said how long to wait.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Fail {
        reason: String,
    },
}

/// Sends prepared requests to one receiver.
pub(crate) struct Sender {
    client: reqwest::Client,
    service: Service,
    /// For logs: the receiver's masked form, never its endpoint.
    masked: String,
    url: url::Url,
    headers: HeaderMap,
    retry_count: u32,
    backoff: Backoff,
    metrics: WebhookMetrics,
}

/// The HTTP client every receiver's sender shares: redirects off (module docs), the per-request timeout.
pub(crate) fn client(config: &WebhookConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .build()
}

impl Sender {
    /// A sender to `receiver`, with the headers its service may get.
    pub(crate) fn new(
        client: reqwest::Client,
        receiver: &Receiver,
        config: &WebhookConfig,
        metrics: WebhookMetrics,
    ) -> Self {
        let mut headers = HeaderMap::new();
        if receiver.service.compat() {
            for (name, value) in config.headers.iter() {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Sender {
            client,
            service: receiver.service,
            masked: receiver.masked.clone(),
            url: receiver.endpoint.clone(),
            headers,
            retry_count: config.retry_count,
            backoff: Backoff::new(config.backoff_base, config.backoff_max),
            metrics,
        }
    }

    /// Attempts delivery until success, a non-retryable answer or the last retry.
    pub(crate) async fn deliver(&self, job: &Prepared) -> DeliveryOutcome {
        let mut retry = 0;
        loop {
            match self.attempt(job).await {
                Attempt::Delivered => {
                    self.count(job, AttemptResult::Delivered);
                    debug!(receiver = %self.masked, event_type = %job.event_type, delivery = ?job.delivery_id, retry, "webhook delivered");
                    return DeliveryOutcome::Delivered;
                }
                Attempt::Retry { reason, after } if retry < self.retry_count => {
                    retry += 1;
                    let wait = after.unwrap_or_else(|| self.backoff.delay(retry));
                    self.count(job, AttemptResult::Retried);
                    debug!(receiver = %self.masked, event_type = %job.event_type, delivery = ?job.delivery_id, %reason, retry, ?wait, "webhook attempt failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Attempt::Retry { reason, .. } | Attempt::Fail { reason } => {
                    self.count(job, AttemptResult::Failed);
                    warn!(receiver = %self.masked, event_type = %job.event_type, delivery = ?job.delivery_id, %reason, attempts = retry + 1, "webhook not delivered");
                    return DeliveryOutcome::Exhausted;
                }
            }
        }
    }

    fn count(&self, job: &Prepared, result: AttemptResult) {
        self.metrics.record(self.service, job.event_type, result);
    }

    async fn attempt(&self, job: &Prepared) -> Attempt {
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(DELIVERY_HEADER, job.delivery_id.clone())
            .body(job.body.clone());
        if let Some(signature) = &job.signature {
            request = request.header(SIGNATURE_HEADER, signature.clone());
        }
        match request.send().await {
            Ok(response) => classify(response.status(), response.headers()),
            // Builder errors cannot improve on retry; every transport error (connect, timeout, reset) can.
            Err(error) if error.is_builder() => Attempt::Fail {
                reason: error_chain(error),
            },
            Err(error) => Attempt::Retry {
                reason: error_chain(error),
                after: None,
            },
        }
    }
}

fn classify(status: StatusCode, headers: &HeaderMap) -> Attempt {
    let reason = format!("receiver answered {status}");
    if status.is_success() {
        Attempt::Delivered
    } else if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Attempt::Retry {
            reason,
            after: retry_after(headers, SystemTime::now()).map(|w| w.min(MAX_RETRY_AFTER)),
        }
    } else if status.is_redirection() {
        Attempt::Fail {
            reason: format!("{reason}; redirects are not followed"),
        }
    } else {
        Attempt::Fail { reason }
    }
}

/// The error and its causes on one line, without the URL (it may carry credentials); reqwest's own
/// Display hides the cause (e.g. "connection refused").
fn error_chain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_retry_after_is_honoured_up_to_sixty_seconds() {
        let after = |value: &str| match classify(StatusCode::SERVICE_UNAVAILABLE, &headers(value)) {
            Attempt::Retry { after, .. } => after,
            _ => panic!("a 503 is retried"),
        };
        assert_eq!(after("2"), Some(Duration::from_secs(2)));
        assert_eq!(after("3600"), Some(MAX_RETRY_AFTER));
        assert_eq!(after("soon"), None);
    }

    #[test]
    fn only_timeouts_rate_limits_and_server_errors_are_retried() {
        let retried = |code: u16| {
            matches!(
                classify(StatusCode::from_u16(code).unwrap(), &HeaderMap::new()),
                Attempt::Retry { .. }
            )
        };
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(retried(code), "{code} should be retried");
        }
        for code in [301, 302, 307, 400, 401, 403, 404, 410, 422] {
            assert!(!retried(code), "{code} should not be retried");
        }
        assert!(matches!(
            classify(StatusCode::NO_CONTENT, &HeaderMap::new()),
            Attempt::Delivered
        ));
    }
}
