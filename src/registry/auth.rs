//! Registry authentication: parsing `WWW-Authenticate` and decoding token-server answers (pure functions).
//!
//! Input: the header values of a 401 and the body of a token endpoint. Output: the [`Challenge`] to answer
//! (Bearer preferred over Basic) and a [`Token`] with the instant it stops being used. The handshake itself
//! (which request carries which credential) lives in `transport`, the cache in `cache`.
//!
//! The challenge grammar (RFC 9110 §11.6.1) allows several challenges in one header, quoted values with
//! commas and escapes; registries in the wild also vary the case of names. The parser is total: any
//! string yields some list of challenges, never a panic (property-tested below).

use std::time::{Duration, Instant};

use base64::Engine as _;

use super::Credential;

/// How a registry asks to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm=…`: send the credential to the registry itself.
    Basic,
    /// `Bearer realm=…,service=…`: fetch a token from `realm` and send it.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Picks the challenge to answer from the `WWW-Authenticate` values of one response.
pub(crate) fn select_challenge<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    let all: Vec<_> = values.into_iter().flat_map(parse_challenges).collect();
    let bearer = all.iter().find_map(|(scheme, params)| {
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let realm = param(params, "realm")?;
        Some(Challenge::Bearer {
            realm: realm.to_owned(),
            service: param(params, "service").map(str::to_owned),
        })
    });
    bearer.or_else(|| {
        all.iter()
            .any(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .then_some(Challenge::Basic)
    })
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

type Parsed = (String, Vec<(String, String)>);

/// Splits one header value into `(scheme, [(name, value)])` challenges.
pub(crate) fn parse_challenges(header: &str) -> Vec<Parsed> {
    let chars: Vec<char> = header.chars().collect();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        skip(&chars, &mut pos, |c| c.is_whitespace() || c == ',');
        let scheme = take_while(&chars, &mut pos, |c| !c.is_whitespace() && c != ',');
        if scheme.is_empty() {
            return out;
        }
        let params = parse_params(&chars, &mut pos);
        out.push((scheme, params));
    }
}

/// Reads `name=value` pairs until something that is not one (the next scheme, or the end).
fn parse_params(chars: &[char], pos: &mut usize) -> Vec<(String, String)> {
    let mut params = Vec::new();
    loop {
        skip(chars, pos, |c| c.is_whitespace() || c == ',');
        let start = *pos;
        let name = take_while(chars, pos, |c| !c.is_whitespace() && c != ',' && c != '=');
        skip(chars, pos, char::is_whitespace);
        if chars.get(*pos) != Some(&'=') {
            *pos = start;
            return params;
        }
        *pos += 1;
        skip(chars, pos, char::is_whitespace);
        let value = if chars.get(*pos) == Some(&'"') {
            *pos += 1;
            quoted(chars, pos)
        } else {
            take_while(chars, pos, |c| !c.is_whitespace() && c != ',')
        };
        params.push((name.to_ascii_lowercase(), value));
    }
}

/// Reads a quoted string after its opening quote, honouring `\` escapes; an unterminated one ends at the end.
fn quoted(chars: &[char], pos: &mut usize) -> String {
    let mut value = String::new();
    while let Some(&c) = chars.get(*pos) {
        *pos += 1;
        match c {
            '"' => break,
            '\\' => {
                if let Some(&escaped) = chars.get(*pos) {
                    value.push(escaped);
                    *pos += 1;
                }
            }
            c => value.push(c),
        }
    }
    value
}

fn skip(chars: &[char], pos: &mut usize, pred: impl Fn(char) -> bool) {
    while chars.get(*pos).is_some_and(|&c| pred(c)) {
        *pos += 1;
    }
}

fn take_while(chars: &[char], pos: &mut usize, pred: impl Fn(char) -> bool) -> String {
    let start = *pos;
    skip(chars, pos, pred);
    chars[start..*pos].iter().collect()
}

/// A bearer token and the instant after which it is not used any more.
#[derive(Clone)]
pub(crate) struct Token {
    pub(crate) value: String,
    pub(crate) use_until: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .finish()
    }
}

/// Tokens are dropped this long before the server says they expire, so none expires in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// The lifetime the token specification assumes when `expires_in` is absent (and its minimum).
const DEFAULT_EXPIRES_IN: u64 = 60;

#[derive(serde::Deserialize)]
struct TokenBody {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Decodes a token endpoint's answer: `token` or `access_token`, valid for `expires_in` (default 60 s).
pub(crate) fn decode_token(body: &[u8], now: Instant) -> Result<Token, String> {
    let parsed: TokenBody =
        serde_json::from_slice(body).map_err(|e| format!("token answer is not JSON: {e}"))?;
    let value = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| "token answer has neither `token` nor `access_token`".to_owned())?;
    let lifetime = Duration::from_secs(
        parsed
            .expires_in
            .unwrap_or(DEFAULT_EXPIRES_IN)
            .max(DEFAULT_EXPIRES_IN),
    );
    Ok(Token {
        value,
        use_until: now + lifetime.saturating_sub(EXPIRY_MARGIN),
    })
}

/// The `Authorization` value for Basic authentication.
pub(crate) fn basic_header(credential: &Credential) -> String {
    let raw = format!("{}:{}", credential.username, credential.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bearer_challenge_with_quoted_commas_and_several_params_is_parsed() {
        let header = r#"Bearer realm="https://auth.example.com/token?a=1,b=2",service="registry.example.com",scope="repository:team/app:pull,push""#;
        assert_eq!(
            select_challenge([header]),
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token?a=1,b=2".into(),
                service: Some("registry.example.com".into()),
            })
        );
        let parsed = parse_challenges(header);
        assert_eq!(
            parsed[0].1[2],
            ("scope".into(), "repository:team/app:pull,push".into())
        );
    }

    #[test]
    fn bearer_is_preferred_over_basic_in_any_order_and_case() {
        let header =
            r#"Basic realm="Registry", BEARER Realm=https://t.example/token , Service = reg"#;
        assert_eq!(
            select_challenge([header]),
            Some(Challenge::Bearer {
                realm: "https://t.example/token".into(),
                service: Some("reg".into()),
            })
        );
        assert_eq!(
            select_challenge([r#"Basic realm="x""#]),
            Some(Challenge::Basic)
        );
        assert_eq!(select_challenge(["Bearer service=x"]), None);
        assert_eq!(select_challenge([""]), None);
    }

    #[test]
    fn escaped_quotes_stay_inside_the_value() {
        let parsed = parse_challenges(r#"Bearer realm="a\"b,c""#);
        assert_eq!(
            parsed,
            vec![("Bearer".into(), vec![("realm".into(), "a\"b,c".into())])]
        );
    }

    #[test]
    fn token_answer_uses_token_or_access_token_and_expires_with_a_margin() {
        let now = Instant::now();
        let t = decode_token(br#"{"token":"abc","expires_in":300}"#, now).unwrap();
        assert_eq!(t.value, "abc");
        assert_eq!(t.use_until, now + Duration::from_secs(290));
        let t = decode_token(br#"{"access_token":"xyz"}"#, now).unwrap();
        assert_eq!(t.value, "xyz");
        assert_eq!(t.use_until, now + Duration::from_secs(50));
        assert!(decode_token(br#"{"expires_in":3}"#, now).is_err());
        assert!(decode_token(b"<html>", now).is_err());
    }

    #[test]
    fn basic_header_encodes_user_colon_password() {
        assert_eq!(basic_header(&Credential::new("u", "p")), "Basic dTpw");
    }

    proptest! {
        #[test]
        fn any_header_value_parses_without_panicking(s in ".*") {
            let _ = select_challenge([s.as_str()]);
        }

        #[test]
        fn header_like_values_parse_without_panicking(s in r#"[A-Za-z ,="\\]{0,64}"#) {
            let _ = parse_challenges(&s);
        }

        #[test]
        fn any_token_body_decodes_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_token(&bytes, Instant::now());
        }
    }
}
