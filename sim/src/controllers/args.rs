//! Command-line flags of the controllers for the standalone simulator binary (flatten
//! [`ControllerArgs`] into its clap parser), turned into a [`ControllerConfig`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::images::{HttpResolver, HttpResolverError, RegistryEndpoint};
use super::{ControllerConfig, Outcome, ParseOutcomeError, RolloutControl, SyntheticResolver};

/// Flags for timing, outcomes and image resolution of the simulated controllers.
#[derive(Debug, Clone, clap::Args)]
pub struct ControllerArgs {
    /// Milliseconds from a pod's creation to Running.
    #[arg(long, env = "SIM_POD_START_DELAY_MS", default_value_t = 200)]
    pub pod_start_delay_ms: u64,
    /// Milliseconds from Running to Ready.
    #[arg(long, env = "SIM_POD_READY_DELAY_MS", default_value_t = 300)]
    pub pod_ready_delay_ms: u64,
    /// Real seconds per simulated second for progressDeadlineSeconds and minReadySeconds.
    #[arg(long, env = "SIM_TIME_SCALE", default_value_t = 1.0)]
    pub time_scale: f64,
    /// `IMAGE_SUBSTRING=OUTCOME` (complete, stuck, never-ready, slow:<factor>) for new pods
    /// whose image contains the substring; repeatable.
    #[arg(long = "outcome", value_name = "IMAGE_SUBSTRING=OUTCOME")]
    pub outcomes: Vec<String>,
    /// `HOST=URL`: resolve images named `HOST/…` against the registry at URL (for instance
    /// `registry.test:5000=http://127.0.0.1:5000`); repeatable. With none, every image exists
    /// with a digest derived from its name, unless `--resolve-loopback` is set.
    #[arg(long = "registry", value_name = "HOST=URL")]
    pub registries: Vec<String>,
    /// `HOST=USER:PASSWORD` basic credentials for a registry; repeatable.
    #[arg(long = "registry-credentials", value_name = "HOST=USER:PASSWORD")]
    pub registry_credentials: Vec<String>,
    /// A PEM CA certificate to trust for HTTPS registries.
    #[arg(long)]
    pub registry_ca: Option<std::path::PathBuf>,
    /// Resolve images against real registries even without `--registry` (loopback hosts are
    /// reached directly).
    #[arg(long)]
    pub resolve_loopback: bool,
}

/// The controller flags are invalid.
#[derive(Debug, thiserror::Error)]
pub enum ControllerArgsError {
    #[error("failed to parse {flag} value {value:?}: expected {expected}")]
    Malformed {
        flag: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("failed to parse an --outcome value")]
    Outcome(#[source] ParseOutcomeError),
    #[error("failed to read the registry CA file")]
    Ca(#[source] std::io::Error),
    #[error("failed to set up registry access")]
    Resolver(#[source] HttpResolverError),
}

fn split<'a>(
    flag: &'static str,
    v: &'a str,
    expected: &'static str,
) -> Result<(&'a str, &'a str), ControllerArgsError> {
    v.split_once('=')
        .ok_or_else(|| ControllerArgsError::Malformed {
            flag,
            value: v.to_string(),
            expected,
        })
}

impl ControllerArgs {
    /// The configuration these flags describe.
    pub fn into_config(self) -> Result<ControllerConfig, ControllerArgsError> {
        let control = RolloutControl::new();
        for o in &self.outcomes {
            let (image, outcome) = split("--outcome", o, "IMAGE_SUBSTRING=OUTCOME")?;
            control.set_outcome_for_image(
                image,
                outcome
                    .parse::<Outcome>()
                    .map_err(ControllerArgsError::Outcome)?,
            );
        }
        let mut config = ControllerConfig {
            pod_start_delay: Duration::from_millis(self.pod_start_delay_ms),
            pod_ready_delay: Duration::from_millis(self.pod_ready_delay_ms),
            time_scale: self.time_scale,
            control,
            ..ControllerConfig::default()
        };
        let routes = self.routes()?;
        config.resolver = if routes.is_empty() && !self.resolve_loopback {
            Arc::new(SyntheticResolver)
        } else {
            let ca = self
                .registry_ca
                .as_ref()
                .map(std::fs::read)
                .transpose()
                .map_err(ControllerArgsError::Ca)?;
            Arc::new(
                HttpResolver::new(routes, ca.as_deref()).map_err(ControllerArgsError::Resolver)?,
            )
        };
        Ok(config)
    }

    /// `--registry` routes with their `--registry-credentials`.
    fn routes(&self) -> Result<HashMap<String, RegistryEndpoint>, ControllerArgsError> {
        let mut map = HashMap::new();
        for r in &self.registries {
            let (host, url) = split("--registry", r, "HOST=URL")?;
            let base_url = Url::parse(url).map_err(|_| ControllerArgsError::Malformed {
                flag: "--registry",
                value: r.clone(),
                expected: "HOST=URL with an absolute URL",
            })?;
            map.insert(
                host.to_string(),
                RegistryEndpoint {
                    base_url,
                    basic_auth: None,
                },
            );
        }
        for c in &self.registry_credentials {
            let malformed = || ControllerArgsError::Malformed {
                flag: "--registry-credentials",
                value: c.clone(),
                expected: "HOST=USER:PASSWORD for a HOST given with --registry",
            };
            let (host, cred) = c.split_once('=').ok_or_else(malformed)?;
            let (user, password) = cred.split_once(':').ok_or_else(malformed)?;
            let endpoint = map.get_mut(host).ok_or_else(malformed)?;
            endpoint.basic_auth = Some((user.to_string(), password.to_string()));
        }
        Ok(map)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::store::Kind;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ControllerArgs,
    }

    fn parse(argv: &[&str]) -> Result<ControllerConfig, ControllerArgsError> {
        let mut full = vec!["sim"];
        full.extend_from_slice(argv);
        Cli::try_parse_from(full).unwrap().args.into_config()
    }

    #[test]
    fn flags_set_timing_and_image_outcomes() {
        let config = parse(&[
            "--pod-start-delay-ms",
            "5",
            "--pod-ready-delay-ms",
            "7",
            "--time-scale",
            "0.5",
            "--outcome",
            "bad=stuck",
            "--outcome",
            "slow=slow:3",
        ])
        .unwrap();
        assert_eq!(config.pod_start_delay, Duration::from_millis(5));
        assert_eq!(config.pod_ready_delay, Duration::from_millis(7));
        assert_eq!(config.scaled(10.0), Duration::from_secs(5));
        assert_eq!(
            config.control.outcome_for(None, &["reg/bad:1"]),
            Outcome::Stuck
        );
        assert_eq!(
            config.control.outcome_for(None, &["reg/slow:1"]),
            Outcome::Slow(3.0)
        );
        let w = Some((Kind::Deployment, "ns", "x"));
        assert_eq!(config.control.outcome_for(w, &["ok:1"]), Outcome::Complete);
    }

    #[test]
    fn malformed_flags_are_rejected_naming_the_flag() {
        let err = parse(&["--outcome", "nostatus"]).unwrap_err();
        assert!(err.to_string().contains("--outcome"), "{err}");
        assert!(parse(&["--outcome", "x=sideways"]).is_err());
        let err = parse(&["--registry", "reg.test=not a url"]).unwrap_err();
        assert!(err.to_string().contains("--registry"), "{err}");
        assert!(parse(&["--registry-credentials", "reg=userpass"]).is_err());
    }

    #[test]
    fn registry_routes_select_the_http_resolver() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = parse(&["--registry", "reg.test=http://127.0.0.1:5000"]).unwrap();
        assert!(format!("{:?}", config).contains("ControllerConfig"));
    }
}
