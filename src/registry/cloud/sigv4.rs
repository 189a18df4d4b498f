//! AWS Signature Version 4 for the one signed call we make, ECR `GetAuthorizationToken` (pure functions).
//!
//! Input: a request (method, URL, the headers to sign, the body), the caller's keys, the region and service,
//! and the signing time. Output: the headers to add (`X-Amz-Date`, `X-Amz-Security-Token` for temporary
//! keys, `Authorization`). The algorithm is AWS's published one ("Create a signed AWS API request", the
//! `aws-sig-v4-test-suite`): canonical request → string to sign → HMAC chain of date, region, service.
//!
//! Why our own ~150 lines rather than the `aws-sigv4` crate: docs/dependencies.md#aws-request-signing gives
//! the measured cost. The tests check it against AWS's published test vectors and, differentially, against
//! botocore's signer (tests/cloud_aws.rs).

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};
use url::Url;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// An AWS access key, with the session token of temporary credentials. `Debug` hides the secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    /// `AccessKeyId`.
    pub access_key_id: String,
    /// `SecretAccessKey`.
    pub secret_access_key: String,
    /// `SessionToken` (STS, Pod Identity): sent and signed as `X-Amz-Security-Token`.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// What a signature is scoped to.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// `us-east-1`.
    pub region: &'a str,
    /// The signing name of the service: `ecr`, `sts`.
    pub service: &'a str,
}

/// A request to sign. `headers` are signed as given (besides `host`, which comes from the URL).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`.
    pub method: &'a str,
    /// The full URL, query included.
    pub url: &'a Url,
    /// Headers to sign and send, e.g. `content-type`, `x-amz-target`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// The headers to add to `request` so that AWS accepts it: `x-amz-date`, `x-amz-security-token` (temporary
/// keys) and `authorization`.
pub fn sign(
    request: &Request<'_>,
    keys: &Keys,
    scope: Scope<'_>,
    at: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    let amz_date = at.format("%Y%m%dT%H%M%SZ").to_string();
    let mut added = vec![("x-amz-date", amz_date.clone())];
    if let Some(token) = &keys.session_token {
        added.push(("x-amz-security-token", token.clone()));
    }
    let mut headers: Vec<(&str, &str)> = request.headers.to_vec();
    headers.extend(added.iter().map(|(k, v)| (*k, v.as_str())));
    let host = host_header(request.url);
    headers.push(("host", &host));
    let (canonical, signed_headers) = canonical_request(request, &headers);
    let date = &amz_date[..8];
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(&keys.secret_access_key, date, scope);
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    added.push((
        "authorization",
        format!(
            "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
            keys.access_key_id
        ),
    ));
    added
}

/// `host` as the request sends it: the port only when it is not the scheme's default.
fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The canonical request and the signed-headers list (AWS: "Create a canonical request").
pub fn canonical_request(request: &Request<'_>, headers: &[(&str, &str)]) -> (String, String) {
    let mut canonical_headers: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let name = name.trim().to_ascii_lowercase();
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        // Repeated headers are one line with the values joined by commas, in the order sent.
        match canonical_headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => canonical_headers.push((name, value)),
        }
    }
    canonical_headers.sort_by(|a, b| a.0.cmp(&b.0));
    let signed_headers = canonical_headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let header_block: String = canonical_headers
        .iter()
        .map(|(n, v)| format!("{n}:{v}\n"))
        .collect();
    let canonical = format!(
        "{}\n{}\n{}\n{header_block}\n{signed_headers}\n{}",
        request.method,
        canonical_uri(request.url.path()),
        canonical_query(request.url),
        hex::encode(Sha256::digest(request.body)),
    );
    (canonical, signed_headers)
}

/// The path without dot segments or empty segments, each byte outside RFC 3986's unreserved set encoded
/// (the already-encoded path is encoded again: every service but S3 expects that).
fn canonical_uri(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
    }
    let trailing = path.ends_with('/') && !kept.is_empty();
    let mut out = String::from("/");
    out.push_str(
        &kept
            .iter()
            .map(|s| encode(s.as_bytes()))
            .collect::<Vec<_>>()
            .join("/"),
    );
    if trailing {
        out.push('/');
    }
    out
}

/// Query parameters decoded, re-encoded with RFC 3986 rules, sorted by name then value.
fn canonical_query(url: &Url) -> String {
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (encode(k.as_bytes()), encode(v.as_bytes())))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes every byte but `A-Z a-z 0-9 - . _ ~`, with upper-case hex.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn signing_key(secret: &str, date: &str, scope: Scope<'_>) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, scope.region.as_bytes());
    let k_service = hmac(&k_region, scope.service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    // AWS's "aws-sig-v4-test-suite" (docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html,
    // also in github.com/awslabs/aws-c-auth tests/aws-signing-test-suite/v4): every case signs at
    // 20150830T123600Z for us-east-1, service "service", with these example keys.
    const SUITE_KEY_ID: &str = "AKIDEXAMPLE";
    const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn suite(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
        let url = Url::parse(url).unwrap();
        let keys = Keys {
            access_key_id: SUITE_KEY_ID.into(),
            secret_access_key: SUITE_SECRET.into(),
            session_token: None,
        };
        let at = Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap();
        let scope = Scope {
            region: "us-east-1",
            service: "service",
        };
        let request = Request {
            method,
            url: &url,
            headers,
            body,
        };
        let added = sign(&request, &keys, scope, at);
        assert_eq!(added[0], ("x-amz-date", "20150830T123600Z".to_owned()));
        added.last().unwrap().1.clone()
    }

    #[test]
    fn get_vanilla_matches_the_aws_test_suite() {
        assert_eq!(
            suite("GET", "https://example.amazonaws.com/", &[], b""),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case_matches_the_aws_test_suite() {
        assert_eq!(
            suite(
                "GET",
                "https://example.amazonaws.com/?Param2=value2&Param1=value1",
                &[],
                b""
            ),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn post_x_www_form_urlencoded_matches_the_aws_test_suite() {
        assert_eq!(
            suite(
                "POST",
                "https://example.amazonaws.com/",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                b"Param1=value1"
            ),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    #[test]
    fn post_vanilla_matches_the_aws_test_suite() {
        assert_eq!(
            suite("POST", "https://example.amazonaws.com/", &[], b""),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_inner_spaces_collapsed() {
        let url = Url::parse("https://example.amazonaws.com/a/./b/../c//").unwrap();
        let request = Request {
            method: "GET",
            url: &url,
            headers: &[],
            body: b"",
        };
        let (canonical, signed) = canonical_request(
            &request,
            &[("My-Header1", "  value1   a  b "), ("host", "h")],
        );
        assert_eq!(signed, "host;my-header1");
        assert!(canonical.starts_with("GET\n/a/c/\n\nhost:h\nmy-header1:value1 a b\n\n"));
    }

    #[test]
    fn a_session_token_is_sent_and_signed() {
        let url = Url::parse("https://api.ecr.us-east-1.amazonaws.com/").unwrap();
        let keys = Keys {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
            session_token: Some("tok".into()),
        };
        let request = Request {
            method: "POST",
            url: &url,
            headers: &[],
            body: b"{}",
        };
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let added = sign(
            &request,
            &keys,
            Scope {
                region: "us-east-1",
                service: "ecr",
            },
            at,
        );
        assert_eq!(added[1], ("x-amz-security-token", "tok".to_owned()));
        assert!(added[2].1.contains(
            "Credential=AKID/20260102/us-east-1/ecr/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token,"
        ));
        assert!(!format!("{keys:?}").contains("secret"));
    }
}
