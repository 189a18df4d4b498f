//! Typed `WEBHOOK_*` values: each [`FromStr`] newtype accepts exactly the documented form.
//!
//! Input: one non-empty raw value. Output: the typed value or a [`ValueError`] saying what was expected.
//! Types that hold credentials (URL, headers, secret) never print them in `Debug`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use http::header::{HeaderName, HeaderValue};
use sha2::Sha256;

/// Why a value was rejected; the variable name and an example are added by the caller.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// Not `true`/`false`.
    #[error("expected true or false (any case)")]
    NotABool,
    /// Not a positive whole number of milliseconds.
    #[error("expected a whole number of milliseconds greater than 0")]
    NotMillis,
    /// Not a retry count in range.
    #[error("expected a whole number from 0 to {max}", max = RetryCount::MAX)]
    NotACount,
    /// Not an absolute URL.
    #[error("expected an absolute http or https URL")]
    Url(#[source] url::ParseError),
    /// An absolute URL of another scheme, or without a host.
    #[error("expected an http or https URL with a host")]
    UrlScheme,
    /// A header item without `=`.
    #[error("item {0} has no '=' (expected name=value)")]
    HeaderItem(usize),
    /// An invalid header name.
    #[error("{0:?} is not a valid header name")]
    HeaderName(String),
    /// An invalid header value (the value itself is not shown).
    #[error("the value of header {0:?} contains characters not allowed in a header")]
    HeaderValue(String),
    /// A secret of only whitespace: almost always a quoting slip, and a key anyone can guess.
    #[error(
        "the secret is only whitespace; set a random value (e.g. the output of `openssl rand -hex 32`) \
         or leave WEBHOOK_SECRET unset to send unsigned webhooks"
    )]
    BlankSecret,
    /// A secret the HMAC implementation refuses (HMAC takes any length, so this is not expected).
    #[error("cannot be used as an HMAC-SHA256 key")]
    SecretKey,
    /// A header the controller sets itself.
    #[error("header {0:?} is set by watch-cluster and cannot be overridden")]
    ReservedHeader(String),
}

/// A boolean: `true` or `false` in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Toggle(pub bool);

impl FromStr for Toggle {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            v if v.eq_ignore_ascii_case("true") => Ok(Toggle(true)),
            v if v.eq_ignore_ascii_case("false") => Ok(Toggle(false)),
            _ => Err(ValueError::NotABool),
        }
    }
}

/// `WEBHOOK_TIMEOUT`: milliseconds, > 0; default 10000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutMs(pub Duration);

impl Default for TimeoutMs {
    fn default() -> Self {
        TimeoutMs(Duration::from_millis(10_000))
    }
}

impl FromStr for TimeoutMs {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(TimeoutMs(Duration::from_millis(ms))),
            _ => Err(ValueError::NotMillis),
        }
    }
}

/// `WEBHOOK_RETRY_COUNT`: retries after the first attempt, 0 to [`RetryCount::MAX`]; default 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryCount(pub u32);

impl RetryCount {
    /// The largest accepted count: with the backoff capped at 30 s, more would hold a delivery slot for an hour.
    pub const MAX: u32 = 100;
}

impl Default for RetryCount {
    fn default() -> Self {
        RetryCount(3)
    }
}

impl FromStr for RetryCount {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().parse::<u32>() {
            Ok(n) if n <= Self::MAX => Ok(RetryCount(n)),
            _ => Err(ValueError::NotACount),
        }
    }
}

/// `WEBHOOK_URL`: an absolute http(s) URL. It may embed credentials (userinfo, tokens in the path or
/// query, as Slack and ntfy URLs do), so Debug and [`WebhookUrl::redacted`] show only scheme, host and port.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// The full URL, for sending only.
    pub(crate) fn as_url(&self) -> &url::Url {
        &self.0
    }

    /// `scheme://host[:port]/…`: safe to log.
    pub fn redacted(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        match self.0.port() {
            Some(port) => format!("{}://{host}:{port}/…", self.0.scheme()),
            None => format!("{}://{host}/…", self.0.scheme()),
        }
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({})", self.redacted())
    }
}

impl FromStr for WebhookUrl {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(s.trim()).map_err(ValueError::Url)?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ValueError::UrlScheme);
        }
        Ok(WebhookUrl(url))
    }
}

/// `WEBHOOK_HEADERS`: `name=value` items separated by `,`, each split on its first `=`.
/// Values are marked sensitive and never shown in Debug.
#[derive(Clone, Default)]
pub struct ExtraHeaders(Vec<(HeaderName, HeaderValue)>);

/// Headers the controller sets itself: overriding them would break delivery or signing.
const RESERVED: [&str; 5] = [
    "content-type",
    "content-length",
    "host",
    "x-watch-cluster-delivery",
    "x-watch-cluster-signature",
];

impl ExtraHeaders {
    /// The header names, in order (safe to log).
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_str()).collect()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(HeaderName, HeaderValue)> {
        self.0.iter()
    }
}

impl fmt::Debug for ExtraHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, _)| (name.as_str(), "<redacted>")))
            .finish()
    }
}

impl FromStr for ExtraHeaders {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut headers = Vec::new();
        let items = s.split(',').map(str::trim).filter(|item| !item.is_empty());
        for (position, item) in items.enumerate() {
            let (name, value) = item
                .split_once('=')
                .ok_or(ValueError::HeaderItem(position + 1))?;
            let name = name.trim();
            let header =
                HeaderName::from_str(name).map_err(|_| ValueError::HeaderName(name.into()))?;
            if RESERVED.contains(&header.as_str()) {
                return Err(ValueError::ReservedHeader(name.into()));
            }
            let mut value = HeaderValue::from_str(value.trim())
                .map_err(|_| ValueError::HeaderValue(name.into()))?;
            value.set_sensitive(true);
            headers.push((header, value));
        }
        Ok(ExtraHeaders(headers))
    }
}

/// `WEBHOOK_SECRET`: the HMAC-SHA256 key, held as a keyed MAC state ready to sign.
#[derive(Clone)]
pub struct WebhookSecret(Hmac<Sha256>);

impl WebhookSecret {
    /// `sha256=<hex HMAC-SHA256 of body>`, the `X-Watch-Cluster-Signature` value.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl FromStr for WebhookSecret {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(ValueError::BlankSecret);
        }
        // HMAC accepts keys of any length; the error arm exists only because the API is generic.
        Hmac::<Sha256>::new_from_slice(s.as_bytes())
            .map(WebhookSecret)
            .map_err(|_| ValueError::SecretKey)
    }
}
