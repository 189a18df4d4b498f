//! Webhook configuration (docs/settings.md#webhooks): the `WEBHOOK_*` environment variables, parsed once at startup.
//!
//! Input: [`WebhookArgs`], filled by clap from flags or the environment. Output: a validated
//! [`WebhookConfig`] holding one [`Receiver`] per destination (`WEBHOOK_URL`, then each `NOTIFY_URLS` entry),
//! or one [`NotifyConfigError`] line naming the variable, the bad value (masked) and the fix.
//!
//! Why clap keeps raw strings here: `WEBHOOK_URL`, `WEBHOOK_HEADERS` and `WEBHOOK_SECRET` carry credentials,
//! and clap echoes a rejected value verbatim into its error. Parsing in [`WebhookArgs::into_config`] with
//! the [`FromStr`] newtypes below lets the error show non-secret values and withhold secret ones, and
//! treats an empty variable as unset in one place (docs/settings.md: "An empty environment variable counts as unset").

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
mod types;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use types::{
    ExtraHeaders, RetryCount, TimeoutMs, Toggle, ValueError, WebhookSecret, WebhookUrl,
};

use super::payload::EventType;
use super::receiver::{EventSet, Receiver, ReceiverError, Service, parse_notify_urls};

/// The webhook settings as clap reads them; see docs/settings.md#webhooks for each variable.
///
/// Values stay raw until [`WebhookArgs::into_config`]; Debug withholds those that may carry credentials.
#[derive(Clone, Default, clap::Args)]
#[command(next_help_heading = "Webhooks")]
pub struct WebhookArgs {
    /// Receiver URL; empty disables webhooks.
    #[arg(
        long = "webhook-url",
        env = "WEBHOOK_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub url: Option<String>,
    /// Send DEPLOYMENT_DETECTED (true/false).
    #[arg(
        long = "webhook-enable-deployment-detected",
        env = "WEBHOOK_ENABLE_DEPLOYMENT_DETECTED",
        value_name = "BOOL",
        default_value = "false"
    )]
    pub enable_deployment_detected: Option<String>,
    /// Send IMAGE_ROLLOUT_STARTED (true/false).
    #[arg(
        long = "webhook-enable-image-rollout-started",
        env = "WEBHOOK_ENABLE_IMAGE_ROLLOUT_STARTED",
        value_name = "BOOL",
        default_value = "false"
    )]
    pub enable_image_rollout_started: Option<String>,
    /// Send IMAGE_ROLLOUT_COMPLETED (true/false).
    #[arg(
        long = "webhook-enable-image-rollout-completed",
        env = "WEBHOOK_ENABLE_IMAGE_ROLLOUT_COMPLETED",
        value_name = "BOOL",
        default_value = "false"
    )]
    pub enable_image_rollout_completed: Option<String>,
    /// Send IMAGE_ROLLOUT_FAILED (true/false).
    #[arg(
        long = "webhook-enable-image-rollout-failed",
        env = "WEBHOOK_ENABLE_IMAGE_ROLLOUT_FAILED",
        value_name = "BOOL",
        default_value = "false"
    )]
    pub enable_image_rollout_failed: Option<String>,
    /// Extra request headers, `key1=value1,key2=value2` (each item split on its first `=`).
    #[arg(
        long = "webhook-headers",
        env = "WEBHOOK_HEADERS",
        value_name = "K=V,...",
        hide_env_values = true
    )]
    pub headers: Option<String>,
    /// Per-request timeout in milliseconds.
    #[arg(
        long = "webhook-timeout",
        env = "WEBHOOK_TIMEOUT",
        value_name = "MS",
        default_value = "10000"
    )]
    pub timeout: Option<String>,
    /// Retries after the first attempt, with exponential backoff.
    #[arg(
        long = "webhook-retry-count",
        env = "WEBHOOK_RETRY_COUNT",
        value_name = "N",
        default_value = "3"
    )]
    pub retry_count: Option<String>,
    /// HMAC-SHA256 key: requests then carry `X-Watch-Cluster-Signature: sha256=<hex>`.
    #[arg(
        long = "webhook-secret",
        env = "WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub secret: Option<String>,
    /// More receivers: whitespace-separated `slack://`, `discord://`, `teams+https://`, `generic+http(s)://`
    /// URLs, each optionally ending in `?events=...`.
    #[arg(
        long = "notify-urls",
        env = "NOTIFY_URLS",
        value_name = "URLS",
        hide_env_values = true
    )]
    pub notify_urls: Option<String>,
    /// `<scheme>=<base url>,...`: send a scheme's requests to another scheme, host and port (proxies, tests).
    #[arg(
        long = "notify-endpoint-override",
        env = "NOTIFY_ENDPOINT_OVERRIDE",
        value_name = "SCHEME=URL,...",
        hide_env_values = true
    )]
    pub notify_endpoint_override: Option<String>,
}

impl fmt::Debug for WebhookArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("WebhookArgs")
            .field("url", &redacted(&self.url))
            .field(
                "enable_deployment_detected",
                &self.enable_deployment_detected,
            )
            .field(
                "enable_image_rollout_started",
                &self.enable_image_rollout_started,
            )
            .field(
                "enable_image_rollout_completed",
                &self.enable_image_rollout_completed,
            )
            .field(
                "enable_image_rollout_failed",
                &self.enable_image_rollout_failed,
            )
            .field("headers", &redacted(&self.headers))
            .field("timeout", &self.timeout)
            .field("retry_count", &self.retry_count)
            .field("secret", &redacted(&self.secret))
            .field("notify_urls", &redacted(&self.notify_urls))
            .field(
                "notify_endpoint_override",
                &redacted(&self.notify_endpoint_override),
            )
            .finish()
    }
}

/// A `WEBHOOK_*` value that cannot be used.
///
/// Display names the variable, the value (withheld for credentials) and an example; `source` says what is
/// wrong. Print the chain on one line (anyhow's `{:#}`):
/// `failed to read WEBHOOK_TIMEOUT="10s" (example: WEBHOOK_TIMEOUT=10000): expected a whole number of milliseconds greater than 0`.
#[derive(Debug, thiserror::Error)]
#[error("failed to read {variable}={shown} (example: {variable}={example})")]
pub struct WebhookConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// The value as shown: quoted, or a placeholder for values that may carry credentials.
    pub shown: String,
    /// A valid example value.
    pub example: &'static str,
    /// What is wrong with it.
    #[source]
    pub source: ValueError,
}

/// Why the notification settings cannot be used: a bad `WEBHOOK_*` value or a bad receiver URL. Display
/// is the one line startup prints.
#[derive(Debug, thiserror::Error)]
pub enum NotifyConfigError {
    /// A `WEBHOOK_*` value.
    #[error(transparent)]
    Webhook(#[from] WebhookConfigError),
    /// A `NOTIFY_URLS` or `NOTIFY_ENDPOINT_OVERRIDE` entry.
    #[error(transparent)]
    Receiver(#[from] ReceiverError),
}

/// Parses one variable; `None` and `""` mean unset.
fn parse_opt<T: FromStr<Err = ValueError>>(
    variable: &'static str,
    raw: &Option<String>,
    example: &'static str,
    secret: bool,
) -> Result<Option<T>, WebhookConfigError> {
    let Some(value) = raw.as_deref().filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let shown = if secret {
        "<withheld: may carry credentials>".into()
    } else {
        format!("{value:?}")
    };
    value
        .parse()
        .map(Some)
        .map_err(|source| WebhookConfigError {
            variable,
            shown,
            example,
            source,
        })
}

/// Parses one variable, `default` when unset.
fn parse<T: FromStr<Err = ValueError>>(
    variable: &'static str,
    raw: &Option<String>,
    default: T,
    example: &'static str,
) -> Result<T, WebhookConfigError> {
    Ok(parse_opt(variable, raw, example, false)?.unwrap_or(default))
}

impl WebhookArgs {
    /// Validates every variable; the first bad one is the error.
    pub fn into_config(self) -> Result<WebhookConfig, NotifyConfigError> {
        let toggle = |variable, raw| parse(variable, raw, Toggle(false), "true").map(|t| t.0);
        let enabled = [
            toggle(
                "WEBHOOK_ENABLE_DEPLOYMENT_DETECTED",
                &self.enable_deployment_detected,
            )?,
            toggle(
                "WEBHOOK_ENABLE_IMAGE_ROLLOUT_STARTED",
                &self.enable_image_rollout_started,
            )?,
            toggle(
                "WEBHOOK_ENABLE_IMAGE_ROLLOUT_COMPLETED",
                &self.enable_image_rollout_completed,
            )?,
            toggle(
                "WEBHOOK_ENABLE_IMAGE_ROLLOUT_FAILED",
                &self.enable_image_rollout_failed,
            )?,
        ];
        let url = parse_opt(
            "WEBHOOK_URL",
            &self.url,
            "https://hooks.example.com/watch-cluster",
            true,
        )?;
        let headers = parse_opt(
            "WEBHOOK_HEADERS",
            &self.headers,
            "X-Token=abc,X-Env=prod",
            true,
        )?;
        let secret = parse_opt("WEBHOOK_SECRET", &self.secret, "s3cr3t", true)?;
        let timeout: TimeoutMs = parse(
            "WEBHOOK_TIMEOUT",
            &self.timeout,
            TimeoutMs::default(),
            "10000",
        )?;
        let retries: RetryCount = parse(
            "WEBHOOK_RETRY_COUNT",
            &self.retry_count,
            RetryCount::default(),
            "3",
        )?;
        let toggled: EventSet = EventType::ALL
            .into_iter()
            .zip(enabled)
            .filter_map(|(event_type, on)| on.then_some(event_type))
            .collect();
        let mut receivers: Vec<Receiver> = url
            .map(|url: WebhookUrl| webhook_receiver(&url, toggled))
            .into_iter()
            .collect();
        // SPEC §15: NOTIFY_URLS receivers without `events=` take the enabled toggles, or COMPLETED and
        // FAILED when none is on (the outcomes are what a chat channel is for).
        let default_events = if toggled.is_empty() {
            EventSet::NONE
                .with(EventType::ImageRolloutCompleted)
                .with(EventType::ImageRolloutFailed)
        } else {
            toggled
        };
        receivers.extend(parse_notify_urls(
            non_empty(&self.notify_urls),
            non_empty(&self.notify_endpoint_override),
            default_events,
        )?);
        Ok(WebhookConfig {
            receivers,
            headers: headers.unwrap_or_default(),
            secret,
            timeout: timeout.0,
            retry_count: retries.0,
            ..WebhookConfig::disabled()
        })
    }
}

fn non_empty(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().filter(|v| !v.trim().is_empty())
}

/// `WEBHOOK_URL` as a receiver: the compat JSON, id and metrics label `webhook` (SPEC §15).
fn webhook_receiver(url: &WebhookUrl, events: EventSet) -> Receiver {
    Receiver {
        service: Service::Webhook,
        id: Service::Webhook.label().to_owned(),
        endpoint: url.as_url().clone(),
        masked: url.redacted(),
        events,
        username: None,
    }
}

/// Validated notification settings: the receivers and how requests are sent to each. Debug and
/// [`WebhookConfig::summary`] never show credentials.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub(crate) receivers: Vec<Receiver>,
    pub(crate) headers: ExtraHeaders,
    pub(crate) timeout: Duration,
    pub(crate) retry_count: u32,
    pub(crate) secret: Option<WebhookSecret>,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) queue_capacity: usize,
    pub(crate) max_in_flight: usize,
}

impl WebhookConfig {
    /// No receiver: nothing is ever sent.
    pub fn disabled() -> Self {
        WebhookConfig {
            receivers: Vec::new(),
            headers: ExtraHeaders::default(),
            timeout: TimeoutMs::default().0,
            retry_count: RetryCount::default().0,
            secret: None,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            queue_capacity: 256,
            max_in_flight: 4,
        }
    }

    /// Sends to `url` (as `WEBHOOK_URL`) with the defaults of docs/settings.md#webhooks and no event type enabled.
    pub fn new(url: WebhookUrl) -> Self {
        WebhookConfig {
            receivers: vec![webhook_receiver(&url, EventSet::NONE)],
            ..Self::disabled()
        }
    }

    /// Enables sending `event_type` to the `WEBHOOK_URL` receiver (the `WEBHOOK_ENABLE_*` toggles).
    pub fn enable(mut self, event_type: EventType) -> Self {
        for receiver in &mut self.receivers {
            if receiver.service == Service::Webhook {
                receiver.events = receiver.events.with(event_type);
            }
        }
        self
    }

    /// Adds a receiver (as a `NOTIFY_URLS` entry would).
    pub fn with_receiver(mut self, receiver: Receiver) -> Self {
        self.receivers.push(receiver);
        self
    }

    /// The receivers, `WEBHOOK_URL` first, then `NOTIFY_URLS` in order.
    pub fn receivers(&self) -> &[Receiver] {
        &self.receivers
    }

    /// Whether a notification of `event_type` results in a request to at least one receiver.
    pub fn sends(&self, event_type: EventType) -> bool {
        self.receivers.iter().any(|r| r.events.contains(event_type))
    }

    /// Sets the per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the number of retries after the first attempt.
    pub fn with_retry_count(mut self, retries: u32) -> Self {
        self.retry_count = retries;
        self
    }

    /// Signs bodies with `secret`.
    pub fn with_secret(mut self, secret: WebhookSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Adds extra headers (replacing any set before).
    pub fn with_headers(mut self, headers: ExtraHeaders) -> Self {
        self.headers = headers;
        self
    }

    /// Backoff before retry `n` (1-based) is `base × 2^(n-1)`, at most `max` (defaults 1 s and 30 s).
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// Capacity of each receiver's best-effort queue for DETECTED/STARTED (default 256; at least 1).
    pub fn with_queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// How many notifications are delivered at once to each receiver (default 4; at least 1).
    pub fn with_max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// One line for the startup log: each receiver masked with its events, and the settings; never
    /// credentials.
    pub fn summary(&self) -> String {
        if self.receivers.is_empty() {
            return "webhooks disabled (WEBHOOK_URL and NOTIFY_URLS unset)".into();
        }
        let receivers: Vec<String> = self
            .receivers
            .iter()
            .map(|r| {
                let events: Vec<&str> = r.events.iter().map(EventType::as_str).collect();
                format!("{} events=[{}]", r.masked, events.join(","))
            })
            .collect();
        format!(
            "webhooks to {} timeout={}ms retries={} headers={} signed={}",
            receivers.join("; "),
            self.timeout.as_millis(),
            self.retry_count,
            self.headers.names().join(","),
            self.secret.is_some(),
        )
    }
}
