//! `NOTIFY_ENDPOINT_OVERRIDE=<scheme>=<base url>,…` (docs/settings.md#notify_endpoint_override): sends a
//! service's requests to another scheme, host and port — a proxy, or a local receiver in tests — while the
//! service's path and query (its tokens, the Teams `sig`) stay as they would be.

use url::Url;

use super::{ReceiverError, Service};

const VARIABLE: &str = "NOTIFY_ENDPOINT_OVERRIDE";
const EXAMPLE: &str = "slack=http://127.0.0.1:8080,teams=https://proxy.example:8443";

/// The parsed overrides, at most one per service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOverride(Vec<(Service, Url)>);

impl EndpointOverride {
    /// Parses the variable's value; empty means none.
    pub fn parse(raw: &str) -> Result<Self, ReceiverError> {
        let mut overrides: Vec<(Service, Url)> = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (service, base) = item_of(item)?;
            if overrides.iter().any(|(s, _)| *s == service) {
                return Err(error(
                    item,
                    format!("`{}` is overridden twice; keep one", service.label()),
                ));
            }
            overrides.push((service, base));
        }
        Ok(EndpointOverride(overrides))
    }

    /// `endpoint` with the override's scheme, host and port, if `service` has one.
    pub fn apply(&self, service: Service, endpoint: Url) -> Url {
        let Some((_, base)) = self.0.iter().find(|(s, _)| *s == service) else {
            return endpoint;
        };
        let mut moved = base.clone();
        moved.set_path(endpoint.path());
        moved.set_query(endpoint.query());
        // Userinfo belongs to the service's URL (generic receivers' basic auth), not to the base.
        // Both setters fail only for URLs without a host, which `item_of` refused.
        let _ = moved.set_username(endpoint.username());
        let _ = moved.set_password(endpoint.password());
        moved
    }
}

fn item_of(item: &str) -> Result<(Service, Url), ReceiverError> {
    let Some((scheme, base)) = item.split_once('=') else {
        return Err(error(
            item,
            format!("expected <scheme>=<base url>, as in {EXAMPLE}"),
        ));
    };
    let service = match scheme.trim() {
        "slack" => Service::Slack,
        "discord" => Service::Discord,
        "teams" => Service::Teams,
        "generic" => Service::Generic,
        other => {
            return Err(error(
                item,
                format!("unknown scheme `{other}`; use slack, discord, teams or generic"),
            ));
        }
    };
    let url = Url::parse(base.trim()).map_err(|e| {
        error(
            item,
            format!("the base is not a URL ({e}); as in {EXAMPLE}"),
        )
    })?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    if !plain {
        return Err(error(
            item,
            format!(
                "the base is http(s)://host[:port] only (the service's path and query are kept); as in {EXAMPLE}"
            ),
        ));
    }
    Ok((service, url))
}

fn error(item: &str, problem: String) -> ReceiverError {
    // The base is a host and port, never a credential; a base with userinfo is refused, and shown masked.
    let masked = match item.split_once("://") {
        Some((head, tail)) if tail.split('/').next().is_some_and(|a| a.contains('@')) => {
            format!(
                "{head}://***@{}",
                tail.rsplit_once('@').map_or("", |(_, h)| h)
            )
        }
        _ => item.to_owned(),
    };
    ReceiverError {
        variable: VARIABLE,
        masked,
        problem,
    }
}
