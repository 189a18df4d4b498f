//! Faults the fake registry injects into its answers.
//!
//! Input: [`Fault`] values queued per path prefix (and optionally method). Output: the changes applied to the
//! next matching answer — another status, `Retry-After` (seconds or HTTP date), `RateLimit-*` headers, a delay,
//! a malformed JSON body, or a wrong `Docker-Content-Digest`. A fault without a status keeps the normal answer
//! and only adds its headers or malformations, as Docker Hub does with `RateLimit-*` on successful answers.

use std::time::{Duration, SystemTime};

use http::Method;

/// The value of a `Retry-After` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryAfter {
    /// Delay in seconds.
    Seconds(u64),
    /// An HTTP date (IMF-fixdate).
    Date(SystemTime),
}

impl RetryAfter {
    pub(crate) fn header_value(&self) -> String {
        match self {
            Self::Seconds(s) => s.to_string(),
            Self::Date(t) => httpdate::fmt_http_date(*t),
        }
    }
}

/// One injected fault. Build with [`Fault::status`] or [`Fault::ok`], then the builder methods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fault {
    pub(crate) method: Option<Method>,
    pub(crate) status: Option<u16>,
    pub(crate) retry_after: Option<RetryAfter>,
    pub(crate) rate_limit: Option<(String, String)>,
    pub(crate) delay: Option<Duration>,
    pub(crate) malformed_body: bool,
    pub(crate) wrong_digest: Option<String>,
}

impl Fault {
    /// Answer with `status` (and an error JSON body) instead of the normal answer.
    pub fn status(status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::default()
        }
    }

    /// Keep the normal answer; add the changes set by the builder methods.
    pub fn ok() -> Self {
        Self::default()
    }

    /// `429 Too Many Requests` with `Retry-After: <secs>`.
    pub fn too_many_requests(secs: u64) -> Self {
        Self::status(429).retry_after_secs(secs)
    }

    /// Only requests with this method match (default: any method).
    pub fn on_method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Adds `Retry-After: <secs>`.
    pub fn retry_after_secs(mut self, secs: u64) -> Self {
        self.retry_after = Some(RetryAfter::Seconds(secs));
        self
    }

    /// Adds `Retry-After: <HTTP date>`.
    pub fn retry_after_date(mut self, at: SystemTime) -> Self {
        self.retry_after = Some(RetryAfter::Date(at));
        self
    }

    /// Adds `RateLimit-Limit` and `RateLimit-Remaining` with these raw values, e.g. `"100;w=21600"`, `"0;w=3"`.
    pub fn rate_limit(mut self, limit: &str, remaining: &str) -> Self {
        self.rate_limit = Some((limit.to_owned(), remaining.to_owned()));
        self
    }

    /// Answers only after `delay` (released early when the fake registry is dropped).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Replaces the body with truncated JSON (status unchanged).
    pub fn malformed_body(mut self) -> Self {
        self.malformed_body = true;
        self
    }

    /// Sends this `Docker-Content-Digest` instead of the real one.
    pub fn wrong_digest(mut self, digest: &str) -> Self {
        self.wrong_digest = Some(digest.to_owned());
        self
    }

    /// Adds this fault's headers and malformations to `response`.
    pub(crate) fn apply(&self, response: &mut axum::response::Response) {
        let headers = response.headers_mut();
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = http::HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        if let Some(retry) = &self.retry_after {
            set("retry-after", &retry.header_value());
        }
        if let Some((limit, remaining)) = &self.rate_limit {
            set("ratelimit-limit", limit);
            set("ratelimit-remaining", remaining);
        }
        if let Some(digest) = &self.wrong_digest {
            set("docker-content-digest", digest);
        }
        if self.malformed_body {
            headers.remove(http::header::CONTENT_LENGTH);
            *response.body_mut() = axum::body::Body::from(r#"{"name":"broken","tags":["1.0","#);
        }
    }
}

/// How often a queued fault applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Times {
    Remaining(usize),
    Always,
}

/// A fault waiting for a request whose path starts with `path_prefix`.
#[derive(Debug, Clone)]
pub(crate) struct QueuedFault {
    pub(crate) path_prefix: String,
    pub(crate) fault: Fault,
    pub(crate) times: Times,
}

impl QueuedFault {
    fn matches(&self, method: &Method, path: &str) -> bool {
        path.starts_with(&self.path_prefix)
            && self.fault.method.as_ref().is_none_or(|m| m == method)
    }
}

/// Takes the first queued fault matching the request, consuming one use of it.
pub(crate) fn take(queue: &mut Vec<QueuedFault>, method: &Method, path: &str) -> Option<Fault> {
    let index = queue.iter().position(|q| q.matches(method, path))?;
    let fault = queue[index].fault.clone();
    if let Times::Remaining(n) = &mut queue[index].times {
        *n -= 1;
        if *n == 0 {
            queue.remove(index);
        }
    }
    Some(fault)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn queued(prefix: &str, fault: Fault, times: Times) -> QueuedFault {
        QueuedFault {
            path_prefix: prefix.to_owned(),
            fault,
            times,
        }
    }

    #[test]
    fn faults_are_consumed_in_order_per_matching_prefix_and_method() {
        let mut q = vec![
            queued("/v2/a/", Fault::status(500), Times::Remaining(2)),
            queued(
                "/v2/b/",
                Fault::status(429).on_method(Method::HEAD),
                Times::Remaining(1),
            ),
        ];
        assert_eq!(take(&mut q, &Method::GET, "/v2/b/manifests/1"), None);
        assert_eq!(
            take(&mut q, &Method::HEAD, "/v2/b/manifests/1")
                .unwrap()
                .status,
            Some(429)
        );
        assert_eq!(take(&mut q, &Method::HEAD, "/v2/b/manifests/1"), None);
        assert_eq!(
            take(&mut q, &Method::GET, "/v2/a/tags/list")
                .unwrap()
                .status,
            Some(500)
        );
        assert_eq!(
            take(&mut q, &Method::GET, "/v2/a/tags/list")
                .unwrap()
                .status,
            Some(500)
        );
        assert!(q.is_empty());
    }

    #[test]
    fn sticky_faults_never_run_out() {
        let mut q = vec![queued("/", Fault::status(503), Times::Always)];
        for _ in 0..5 {
            assert_eq!(
                take(&mut q, &Method::GET, "/v2/").unwrap().status,
                Some(503)
            );
        }
    }

    #[test]
    fn retry_after_dates_are_http_dates() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            RetryAfter::Date(at).header_value(),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }
}
