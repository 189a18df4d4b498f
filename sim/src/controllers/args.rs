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
        if !self.registries.is_empty() || self.resolve_loopback {
            config.resolver = Arc::new(self.http_resolver()?);
        } else {
            config.resolver = Arc::new(SyntheticResolver);
        }
        Ok(config)
    }

    fn http_resolver(&self) -> Result<HttpResolver, ControllerArgsError> {
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
            let (host, cred) = split("--registry-credentials", c, "HOST=USER:PASSWORD")?;
            let (user, password) =
                cred.split_once(':')
                    .ok_or_else(|| ControllerArgsError::Malformed {
                        flag: "--registry-credentials",
                        value: c.clone(),
                        expected: "HOST=USER:PASSWORD",
                    })?;
            if let Some(e) = map.get_mut(host) {
                e.basic_auth = Some((user.to_string(), password.to_string()));
            }
        }
        let ca = self
            .registry_ca
            .as_ref()
            .map(std::fs::read)
            .transpose()
            .map_err(ControllerArgsError::Ca)?;
        HttpResolver::new(map, ca.as_deref()).map_err(ControllerArgsError::Resolver)
    }
}
