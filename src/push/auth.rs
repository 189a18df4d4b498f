//! Who may send events: one shared token per provider, checked in constant time.
//!
//! Input: the token configured for a provider and what a request presents (a header, a path segment,
//! or GitHub's `X-Hub-Signature-256` over the body). Output: yes or no. Nothing here logs or formats a
//! token: `Debug` of [`Token`] is redacted.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::Provider;

/// A shared secret for one provider. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The shortest token accepted: 24 characters, so a guess is out of reach over HTTP.
    pub const MIN_LEN: usize = 24;

    /// A token from its text (validated by the config, not here).
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Length in characters, for the config's check; the only thing about a token that may be shown.
    pub fn chars(&self) -> usize {
        self.0.chars().count()
    }

    /// Whether `presented` is this token, in time that depends on neither value.
    ///
    /// Why MACs: `verify_slice` compares in constant time, and comparing HMAC-SHA256(token, presented)
    /// with HMAC-SHA256(token, token) compares two 32-byte values whatever the lengths, so neither the
    /// token's bytes nor its length leak through timing. No extra crate is needed.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let (Some(own), Some(theirs)) = (self.mac(self.0.as_bytes()), self.mac(presented)) else {
            return false;
        };
        theirs.verify_slice(&own.finalize().into_bytes()).is_ok()
    }

    /// Whether `header` (`sha256=<hex>`, GitHub's `X-Hub-Signature-256`) is the HMAC-SHA256 of `body`
    /// keyed by this token. The comparison is constant time (`verify_slice`).
    pub fn signs(&self, body: &[u8], header: &str) -> bool {
        let Some(signature) = header
            .trim()
            .strip_prefix("sha256=")
            .and_then(|h| hex::decode(h).ok())
        else {
            return false;
        };
        self.mac(body)
            .is_some_and(|mac| mac.verify_slice(&signature).is_ok())
    }

    /// HMAC-SHA256 of `message` keyed by the token. HMAC takes keys of any length, so `None` cannot
    /// happen; the `Option` only spares an `expect` on a generic API.
    fn mac(&self, message: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.as_bytes()).ok()?;
        mac.update(message);
        Some(mac)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The token of each provider: `EVENTS_TOKEN_<PROVIDER>`, else `EVENTS_TOKEN`. `Debug` is redacted.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    /// `EVENTS_TOKEN` (every provider without its own).
    pub common: Option<Token>,
    /// `EVENTS_TOKEN_DISTRIBUTION`.
    pub distribution: Option<Token>,
    /// `EVENTS_TOKEN_DOCKERHUB`.
    pub dockerhub: Option<Token>,
    /// `EVENTS_TOKEN_GITHUB`.
    pub github: Option<Token>,
    /// `EVENTS_TOKEN_HARBOR`.
    pub harbor: Option<Token>,
    /// `EVENTS_TOKEN_QUAY`.
    pub quay: Option<Token>,
}

impl Tokens {
    /// The token `provider` must present; `None`: the provider is off (404).
    pub fn of(&self, provider: Provider) -> Option<&Token> {
        let own = match provider {
            Provider::Distribution => &self.distribution,
            Provider::DockerHub => &self.dockerhub,
            Provider::GitHub => &self.github,
            Provider::Harbor => &self.harbor,
            Provider::Quay => &self.quay,
        };
        own.as_ref().or(self.common.as_ref())
    }

    /// Whether any provider has a token.
    pub fn any(&self) -> bool {
        Provider::ALL.iter().any(|p| self.of(*p).is_some())
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Which providers are on, never a token.
        let on: Vec<&str> = Provider::ALL
            .iter()
            .filter(|p| self.of(**p).is_some())
            .map(|p| p.as_str())
            .collect();
        f.debug_struct("Tokens")
            .field("providers", &on)
            .finish_non_exhaustive()
    }
}

/// The token of `Authorization: Bearer <token>` (scheme in any case), if the header has that form.
pub fn bearer(authorization: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = split_scheme(authorization)?;
    scheme.eq_ignore_ascii_case(b"bearer").then_some(token)
}

/// Harbor sends the header value as configured: `<token>` or `Bearer <token>`.
pub fn harbor(authorization: &[u8]) -> &[u8] {
    bearer(authorization).unwrap_or(authorization)
}

fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    Some((scheme, rest.trim_ascii()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn githubs_published_example_signature_verifies() {
        // docs.github.com, "Validating webhook deliveries".
        let token = Token::new("It's a Secret to Everybody");
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(token.signs(b"Hello, World!", good));
        assert!(!token.signs(b"Hello, World?", good));
        assert!(!token.signs(b"Hello, World!", &good.replace("sha256=", "sha1=")));
        assert!(!token.signs(b"Hello, World!", "sha256=not-hex"));
        assert!(!Token::new("another secret").signs(b"Hello, World!", good));
    }

    #[test]
    fn a_token_matches_only_itself() {
        let token = Token::new("0123456789abcdef01234567");
        assert!(token.matches(b"0123456789abcdef01234567"));
        assert!(!token.matches(b"0123456789abcdef0123456"));
        assert!(!token.matches(b"0123456789abcdef012345678"));
        assert!(!token.matches(b""));
    }

    #[test]
    fn a_provider_uses_its_own_token_else_the_common_one() {
        let tokens = Tokens {
            common: Some(Token::new("common-common-common-common")),
            github: Some(Token::new("github-github-github-github")),
            ..Tokens::default()
        };
        assert_eq!(tokens.of(Provider::GitHub), tokens.github.as_ref());
        assert_eq!(tokens.of(Provider::Quay), tokens.common.as_ref());
        let only_github = Tokens {
            github: tokens.github.clone(),
            ..Tokens::default()
        };
        assert_eq!(only_github.of(Provider::Quay), None);
        assert!(only_github.any());
        assert!(!Tokens::default().any());
    }

    #[test]
    fn debug_never_shows_a_token() {
        let tokens = Tokens {
            common: Some(Token::new("secret-secret-secret-secret")),
            ..Tokens::default()
        };
        let shown = format!("{tokens:?} {:?}", tokens.common);
        assert!(!shown.contains("secret-secret"), "{shown}");
        assert!(shown.contains("github"), "{shown}");
    }

    #[test]
    fn authorization_headers_are_read_per_provider() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"abc"), None);
        assert_eq!(harbor(b"Bearer abc"), b"abc");
        assert_eq!(harbor(b"abc"), b"abc");
    }
}
