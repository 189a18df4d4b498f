//! Settings of the push-event listener (SPEC §12, docs/push-events.md): `EVENTS_ADDR`, the tokens and
//! `EVENTS_HOST_ALIASES`.
//!
//! Tokens are secrets: `--help` never shows their values (`hide_env_values`), `Debug` of the raw and
//! the typed settings is redacted, and an error about a token gives its length, never its text.

use std::{fmt, net::SocketAddr, str::FromStr};

use clap::Args;

use super::{ConfigError, set, validate_host};
use crate::push::{HostAliases, Token, auth::Tokens};

/// Flags and environment variables of the push-event listener.
#[derive(Clone, Default, Args)]
pub struct EventsArgs {
    /// Address of the registry push-event listener; unset: no listener.
    #[arg(long, env = "EVENTS_ADDR", value_name = "ADDR")]
    pub events_addr: Option<String>,
    /// Token of every push-event provider without its own (at least 24 characters).
    #[arg(
        long,
        env = "EVENTS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub events_token: Option<String>,
    /// Token of `/events/distribution` (`Authorization: Bearer <token>`).
    #[arg(
        long,
        env = "EVENTS_TOKEN_DISTRIBUTION",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub events_token_distribution: Option<String>,
    /// Token of `/events/dockerhub/<token>`.
    #[arg(
        long,
        env = "EVENTS_TOKEN_DOCKERHUB",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub events_token_dockerhub: Option<String>,
    /// Secret of `/events/github` (the webhook's secret, checked as `X-Hub-Signature-256`).
    #[arg(
        long,
        env = "EVENTS_TOKEN_GITHUB",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub events_token_github: Option<String>,
    /// Token of `/events/harbor` (`Authorization: <token>` or `Bearer <token>`).
    #[arg(
        long,
        env = "EVENTS_TOKEN_HARBOR",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub events_token_harbor: Option<String>,
    /// Token of `/events/quay/<token>`.
    #[arg(
        long,
        env = "EVENTS_TOKEN_QUAY",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub events_token_quay: Option<String>,
    /// Hosts registries report, mapped to the hosts workloads use: `reported=used,…`.
    #[arg(long, env = "EVENTS_HOST_ALIASES", value_name = "HOST=HOST,...")]
    pub events_host_aliases: Option<String>,
    /// This Pod's name (downward API): with EVENTS_ADDR, the leader labels it for the events Service.
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub pod_name: Option<String>,
}

impl fmt::Debug for EventsArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventsArgs")
            .field("events_addr", &self.events_addr)
            .field("events_host_aliases", &self.events_host_aliases)
            .field("pod_name", &self.pod_name)
            .finish_non_exhaustive()
    }
}

/// The listener's typed settings; present only with `EVENTS_ADDR` set.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Each provider's token (`Debug` redacted).
    pub tokens: Tokens,
    /// `EVENTS_HOST_ALIASES`.
    pub host_aliases: HostAliases,
    /// `POD_NAME`: the Pod the leader labels; `None`: no label is written.
    pub pod_name: Option<String>,
}

/// An example token, for errors: long enough, and the command that makes a real one.
const TOKEN_EXAMPLE: &str = "$(openssl rand -hex 32)";

/// Validates the listener's settings: `None` when `EVENTS_ADDR` is unset.
pub fn parse(args: &EventsArgs) -> Result<Option<EventsConfig>, ConfigError> {
    let tokens = Tokens {
        common: token("EVENTS_TOKEN", &args.events_token)?,
        distribution: token("EVENTS_TOKEN_DISTRIBUTION", &args.events_token_distribution)?,
        dockerhub: token("EVENTS_TOKEN_DOCKERHUB", &args.events_token_dockerhub)?,
        github: token("EVENTS_TOKEN_GITHUB", &args.events_token_github)?,
        harbor: token("EVENTS_TOKEN_HARBOR", &args.events_token_harbor)?,
        quay: token("EVENTS_TOKEN_QUAY", &args.events_token_quay)?,
    };
    let host_aliases = aliases(&args.events_host_aliases)?;
    let Some(addr) = set(&args.events_addr) else {
        return Ok(None);
    };
    let addr = SocketAddr::from_str(addr).map_err(|e| ConfigError {
        variable: "EVENTS_ADDR",
        value: addr.to_owned(),
        problem: format!("not an IP address and port ({e})"),
        example: "0.0.0.0:8081",
    })?;
    if !tokens.any() {
        // An open listener would let anyone make the controller hammer registries.
        return Err(ConfigError {
            variable: "EVENTS_TOKEN",
            value: String::new(),
            problem:
                "EVENTS_ADDR is set but no token is: set EVENTS_TOKEN or an EVENTS_TOKEN_<PROVIDER>"
                    .into(),
            example: TOKEN_EXAMPLE,
        });
    }
    Ok(Some(EventsConfig {
        addr,
        tokens,
        host_aliases,
        pod_name: set(&args.pod_name).map(str::to_owned),
    }))
}

/// A token of at least [`Token::MIN_LEN`] characters; the error shows its length only.
fn token(variable: &'static str, value: &Option<String>) -> Result<Option<Token>, ConfigError> {
    let Some(text) = set(value) else {
        return Ok(None);
    };
    let token = Token::new(text);
    if token.chars() < Token::MIN_LEN {
        return Err(ConfigError {
            variable,
            value: format!("<hidden, {} characters>", token.chars()),
            problem: format!("a token needs at least {} characters", Token::MIN_LEN),
            example: TOKEN_EXAMPLE,
        });
    }
    Ok(Some(token))
}

fn aliases(value: &Option<String>) -> Result<HostAliases, ConfigError> {
    let Some(raw) = set(value) else {
        return Ok(HostAliases::default());
    };
    let error = |problem: String| ConfigError {
        variable: "EVENTS_HOST_ALIASES",
        value: raw.to_owned(),
        problem,
        example: "internal:5000=registry.example.com,harbor-core=harbor.example.com",
    };
    let mut pairs = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((from, to)) = item.split_once('=') else {
            return Err(error(format!("{item:?} is not reported=used")));
        };
        for host in [from.trim(), to.trim()] {
            validate_host(host).map_err(|problem| error(format!("{host:?} {problem}")))?;
        }
        pairs.push((from.trim().to_owned(), to.trim().to_owned()));
    }
    if pairs.is_empty() {
        return Err(error("lists nothing but commas and spaces".into()));
    }
    Ok(HostAliases::new(pairs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn on() -> EventsArgs {
        EventsArgs {
            events_addr: Some("127.0.0.1:8081".into()),
            events_token: Some(TOKEN.into()),
            ..EventsArgs::default()
        }
    }

    #[test]
    fn unset_events_addr_means_no_listener() {
        assert_eq!(parse(&EventsArgs::default()).unwrap(), None);
        let config = parse(&on()).unwrap().unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:8081");
        assert!(config.tokens.any());
    }

    #[test]
    fn a_listener_without_any_token_is_a_config_error_naming_the_variable() {
        let args = EventsArgs {
            events_token: None,
            ..on()
        };
        let error = parse(&args).unwrap_err();
        assert_eq!(error.variable, "EVENTS_TOKEN");
        assert!(
            error.to_string().contains("example: EVENTS_TOKEN="),
            "{error}"
        );
        let github_only = EventsArgs {
            events_token_github: Some(TOKEN.into()),
            ..args
        };
        assert!(parse(&github_only).unwrap().is_some());
    }

    #[test]
    fn a_short_token_is_an_error_that_never_shows_the_token() {
        let args = EventsArgs {
            events_token_quay: Some("short-secret-value".into()),
            ..on()
        };
        let error = parse(&args).unwrap_err();
        assert_eq!(error.variable, "EVENTS_TOKEN_QUAY");
        let shown = error.to_string();
        assert!(!shown.contains("short-secret-value"), "{shown}");
        assert!(shown.contains("18 characters"), "{shown}");
    }

    #[test]
    fn debug_of_the_settings_never_shows_a_token() {
        let args = EventsArgs {
            events_token_github: Some("github-secret-github-secret".into()),
            ..on()
        };
        let config = parse(&args).unwrap().unwrap();
        let shown = format!("{args:?} {config:?}");
        assert!(
            !shown.contains(TOKEN) && !shown.contains("github-secret"),
            "{shown}"
        );
    }

    #[test]
    fn host_aliases_are_reported_equals_used_pairs() {
        let args = EventsArgs {
            events_host_aliases: Some(
                "Internal:5000=registry.example.com, harbor-core=harbor.example.com".into(),
            ),
            ..on()
        };
        let config = parse(&args).unwrap().unwrap();
        assert_eq!(
            config.host_aliases,
            HostAliases::new([
                (
                    "internal:5000".to_owned(),
                    "registry.example.com".to_owned()
                ),
                ("harbor-core".to_owned(), "harbor.example.com".to_owned()),
            ])
        );
        for bad in ["internal:5000", "a=https://b", ",,", "a=b:port"] {
            let args = EventsArgs {
                events_host_aliases: Some(bad.into()),
                ..on()
            };
            assert_eq!(
                parse(&args).unwrap_err().variable,
                "EVENTS_HOST_ALIASES",
                "{bad}"
            );
        }
    }

    #[test]
    fn help_lists_each_variable() {
        use clap::CommandFactory as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            events: EventsArgs,
        }
        let help = Cli::command().render_long_help().to_string();
        for variable in [
            "EVENTS_ADDR",
            "EVENTS_TOKEN",
            "EVENTS_TOKEN_DISTRIBUTION",
            "EVENTS_TOKEN_DOCKERHUB",
            "EVENTS_TOKEN_GITHUB",
            "EVENTS_TOKEN_HARBOR",
            "EVENTS_TOKEN_QUAY",
            "EVENTS_HOST_ALIASES",
        ] {
            assert!(help.contains(variable), "{variable} missing from --help");
        }
    }
}
