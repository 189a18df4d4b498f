//! The controller's settings (docs/settings.md), read from flags and environment variables in one place.
//!
//! clap collects the raw strings (so `--help` lists every variable); this module turns them into typed
//! values. Each bad value stops startup with one line naming the variable, the value and an example,
//! because a controller that starts with a half-understood configuration updates the wrong things.
//! An empty variable counts as unset.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::Args;

/// Flags and environment variables of `watch-cluster run` and `plan`.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Comma-separated namespaces to watch; empty watches all namespaces.
    #[arg(long, env = "WATCH_NAMESPACES", value_name = "NS,NS")]
    pub watch_namespaces: Option<String>,
    /// Comma-separated `host[:port]` registries that may be reached over plain HTTP.
    #[arg(long, env = "INSECURE_REGISTRIES", value_name = "HOST[:PORT],...")]
    pub insecure_registries: Option<String>,
    /// PEM file with extra CA certificates trusted for registries.
    #[arg(long, env = "REGISTRY_CA_FILE", value_name = "PATH")]
    pub registry_ca_file: Option<String>,
    /// How long registry answers are shared (the check window).
    #[arg(
        long,
        env = "REGISTRY_CACHE_TTL",
        value_name = "DURATION",
        default_value = "30s"
    )]
    pub registry_cache_ttl: Option<String>,
    /// Give up on a rollout after this long (StatefulSets and DaemonSets default to 10m).
    #[arg(long, env = "ROLLOUT_TIMEOUT", value_name = "DURATION")]
    pub rollout_timeout: Option<String>,
    /// Time zone for cron evaluation (IANA name).
    #[arg(long = "tz", env = "TZ", value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// Decide and report, but change nothing.
    #[arg(long, env = "DRY_RUN", value_name = "BOOL")]
    pub dry_run: Option<String>,
    /// Address of the admin server (/healthz, /readyz, /metrics).
    #[arg(
        long,
        env = "ADMIN_ADDR",
        value_name = "ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_addr: Option<String>,
    /// Only the holder of a Lease acts; turn off only when running a single replica.
    #[arg(
        long,
        env = "LEADER_ELECTION",
        value_name = "BOOL",
        default_value = "true"
    )]
    pub leader_election: Option<String>,
    /// Name of the leader-election Lease in the controller's namespace; replicas that share it elect one
    /// leader. Two installs in one namespace need different names.
    #[arg(
        long,
        env = "LEASE_NAME",
        value_name = "NAME",
        default_value = "watch-cluster"
    )]
    pub lease_name: Option<String>,
    /// How many checks (registry questions and update patches) run at once, over every kind and namespace.
    #[arg(
        long,
        env = "MAX_CONCURRENT_CHECKS",
        value_name = "N",
        default_value = "64"
    )]
    pub max_concurrent_checks: Option<String>,
    /// Bound on this installation's rollouts in flight (updates whose rollout has no outcome yet); further
    /// due updates wait for a slot, oldest first. Rollbacks never wait. `0`: unbounded.
    #[arg(
        long,
        env = "MAX_CONCURRENT_ROLLOUTS",
        value_name = "N",
        default_value = "0"
    )]
    pub max_concurrent_rollouts: Option<String>,
    /// Share registry answers between workloads (cache and coalesce). `false` only for the benchmark's
    /// naive baseline; hidden because no one should run that in a cluster.
    #[arg(
        long,
        env = "REGISTRY_SHARING",
        value_name = "BOOL",
        default_value = "true",
        hide = true
    )]
    pub registry_sharing: Option<String>,
    /// `workload`: a failed image is quarantined on its workload; `cluster`: a failure its pods blame on the
    /// image (pull or crash) also quarantines that digest for every workload (docs/settings.md).
    #[arg(
        long,
        env = "QUARANTINE_SCOPE",
        value_name = "SCOPE",
        default_value = "workload"
    )]
    pub quarantine_scope: Option<String>,
    /// The registry push-event listener (`EVENTS_*`).
    #[command(flatten)]
    pub events: EventsArgs,
    /// A PEM public key, or a directory of them, that candidate signatures must verify with (cosign
    /// `verify` annotation, `VERIFY_REQUIRED_FOR`).
    #[arg(long, env = "VERIFY_KEYS", value_name = "PATH")]
    pub verify_keys: Option<String>,
    /// Comma-separated globs over `host/repository` (`*` within a path component, `**` across) whose
    /// images must be verified whatever their annotations say; needs VERIFY_KEYS.
    #[arg(long, env = "VERIFY_REQUIRED_FOR", value_name = "GLOB,GLOB")]
    pub verify_required_for: Option<String>,
}

/// Flags and environment variables of logging, shared by every command.
#[derive(Debug, Clone, Default, Args)]
pub struct LogArgs {
    /// Log level or filter (`info`, `debug`, `watch_cluster=debug,kube=warn`); `RUST_LOG` wins when set.
    #[arg(long, env = "LOG_LEVEL", value_name = "LEVEL", global = true)]
    pub log_level: Option<String>,
    /// `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", value_name = "FORMAT", global = true)]
    pub log_format: Option<String>,
}

/// A setting that could not be used: names the variable, the value and an example.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}={value:?}: {problem} (example: {variable}={example})")]
pub struct ConfigError {
    /// The environment variable (the flag has the same meaning).
    pub variable: &'static str,
    /// The value as given.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
    /// A value that would be accepted.
    pub example: &'static str,
}

/// The typed settings of the controller.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Namespaces to watch; empty means all.
    pub watch_namespaces: Vec<String>,
    /// Registries reachable over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Extra CA certificates for registries.
    pub registry_ca_file: Option<PathBuf>,
    /// How long registry answers are shared.
    pub registry_cache_ttl: Duration,
    /// Overall rollout timeout, if set.
    pub rollout_timeout: Option<Duration>,
    /// Zone for cron evaluation.
    pub time_zone: chrono_tz::Tz,
    /// Change nothing, report what would change.
    pub dry_run: bool,
    /// Admin server address.
    pub admin_addr: SocketAddr,
    /// Lease-based leader election.
    pub leader_election: bool,
    /// Name of the leader-election Lease.
    pub lease_name: String,
    /// Share registry answers between workloads (`REGISTRY_SHARING`, hidden; benchmark baseline only).
    pub registry_sharing: bool,
    /// How many checks run at once in the whole process.
    pub max_concurrent_checks: usize,
    /// How many rollouts may be in flight at once; `0` is unbounded.
    pub max_concurrent_rollouts: usize,
    /// The registry push-event listener; `None` without `EVENTS_ADDR`.
    pub events: Option<EventsConfig>,
    /// Where a failed image is quarantined.
    pub quarantine_scope: QuarantineScope,
    /// Signature verification: `VERIFY_KEYS` loaded, `VERIFY_REQUIRED_FOR` parsed.
    pub verify: crate::verify::VerifyConfig,
}

/// `QUARANTINE_SCOPE`: where a failed image is quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuarantineScope {
    /// On the workload whose rollout failed only.
    #[default]
    Workload,
    /// Also for every workload, when the failure was the image's (pull or crash).
    Cluster,
}

impl FromStr for QuarantineScope {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, ConfigError> {
        match value.to_ascii_lowercase().as_str() {
            "workload" => Ok(Self::Workload),
            "cluster" => Ok(Self::Cluster),
            _ => Err(ConfigError {
                variable: "QUARANTINE_SCOPE",
                value: value.to_owned(),
                problem: "expected `workload` or `cluster`".into(),
                example: "cluster",
            }),
        }
    }
}

impl Config {
    /// Validates the raw settings.
    pub fn from_args(args: &RunArgs) -> Result<Self, ConfigError> {
        Ok(Self {
            watch_namespaces: parse_list(
                List {
                    variable: "WATCH_NAMESPACES",
                    example: "team-a,team-b",
                    unset_means: "watch all namespaces",
                    validate: validate_namespace,
                },
                &args.watch_namespaces,
            )?,
            insecure_registries: parse_list(
                List {
                    variable: "INSECURE_REGISTRIES",
                    example: "registry.local:5000,10.0.0.5",
                    unset_means: "reach every registry over HTTPS",
                    validate: validate_host,
                },
                &args.insecure_registries,
            )?,
            registry_ca_file: parse_ca_file(&args.registry_ca_file)?,
            registry_cache_ttl: set(&args.registry_cache_ttl)
                .map(|v| parse_duration("REGISTRY_CACHE_TTL", v, "30s"))
                .transpose()?
                .unwrap_or(Duration::from_secs(30)),
            rollout_timeout: set(&args.rollout_timeout)
                .map(|v| parse_duration("ROLLOUT_TIMEOUT", v, "15m"))
                .transpose()?,
            time_zone: set(&args.time_zone)
                .map(parse_time_zone)
                .transpose()?
                .unwrap_or(chrono_tz::UTC),
            dry_run: parse_bool("DRY_RUN", &args.dry_run, false)?,
            admin_addr: set(&args.admin_addr)
                .map(|v| {
                    SocketAddr::from_str(v).map_err(|e| ConfigError {
                        variable: "ADMIN_ADDR",
                        value: v.to_owned(),
                        problem: format!("not an IP address and port ({e})"),
                        example: "0.0.0.0:8080",
                    })
                })
                .transpose()?
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8080))),
            leader_election: parse_bool("LEADER_ELECTION", &args.leader_election, true)?,
            lease_name: set(&args.lease_name)
                .map(parse_lease_name)
                .transpose()?
                .unwrap_or_else(|| "watch-cluster".into()),
            registry_sharing: parse_bool("REGISTRY_SHARING", &args.registry_sharing, true)?,
            max_concurrent_checks: set(&args.max_concurrent_checks)
                .map(parse_concurrency)
                .transpose()?
                .unwrap_or(DEFAULT_CONCURRENT_CHECKS),
            quarantine_scope: set(&args.quarantine_scope)
                .map(QuarantineScope::from_str)
                .transpose()?
                .unwrap_or_default(),
            max_concurrent_rollouts: set(&args.max_concurrent_rollouts)
                .map(parse_rollout_bound)
                .transpose()?
                .unwrap_or(0),
            events: events::parse(&args.events)?,
            verify: verify::parse(&args.verify_keys, &args.verify_required_for)?,
        })
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogArgs {
    /// The log format, validated.
    pub fn format(&self) -> Result<LogFormat, ConfigError> {
        match set(&self.log_format)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(_) => Err(ConfigError {
                variable: "LOG_FORMAT",
                value: self.log_format.clone().unwrap_or_default(),
                problem: "expected `text` or `json`".into(),
                example: "json",
            }),
        }
    }
}

/// Checks at once unless `MAX_CONCURRENT_CHECKS` says otherwise.
const DEFAULT_CONCURRENT_CHECKS: usize = 64;

fn parse_concurrency(value: &str) -> Result<usize, ConfigError> {
    match value.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(ConfigError {
            variable: "MAX_CONCURRENT_CHECKS",
            value: value.to_owned(),
            problem: "expected a whole number from 1 to 1024".into(),
            example: "64",
        }),
    }
}

fn parse_rollout_bound(value: &str) -> Result<usize, ConfigError> {
    match value.parse::<usize>() {
        Ok(n) if n <= 10_000 => Ok(n),
        _ => Err(ConfigError {
            variable: "MAX_CONCURRENT_ROLLOUTS",
            value: value.to_owned(),
            problem: "expected a whole number from 0 (unbounded) to 10000".into(),
            example: "5",
        }),
    }
}

/// The value of an option, treating an empty string as unset.
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A comma-separated setting.
struct List {
    variable: &'static str,
    example: &'static str,
    /// What leaving the variable unset means, for the error of a list that names nothing.
    unset_means: &'static str,
    validate: fn(&str) -> Result<(), String>,
}

fn parse_list(list: List, value: &Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = set(value) else {
        return Ok(Vec::new());
    };
    let error = |problem: String| ConfigError {
        variable: list.variable,
        value: raw.to_owned(),
        problem,
        example: list.example,
    };
    let mut items = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        (list.validate)(item).map_err(|problem| error(format!("{item:?} {problem}")))?;
        if !items.iter().any(|i| i == item) {
            items.push(item.to_owned());
        }
    }
    // `,,,` is a templating slip, not a choice: read as "unset" it would silently widen the scope
    // (WATCH_NAMESPACES: every namespace).
    if items.is_empty() {
        return Err(error(format!(
            "lists nothing but commas and spaces; leave {} unset or empty to {}, or list at least one entry",
            list.variable, list.unset_means
        )));
    }
    Ok(items)
}

fn validate_namespace(ns: &str) -> Result<(), String> {
    let ok = ns.len() <= 63
        && ns
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !ns.starts_with('-')
        && !ns.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err("is not a namespace name (lowercase letters, digits and '-', at most 63)".into())
    }
}

/// A Lease name is a DNS subdomain (RFC 1123): lowercase alphanumerics, '-' and '.', at most 253.
fn parse_lease_name(name: &str) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(name.to_owned())
    } else {
        Err(ConfigError {
            variable: "LEASE_NAME",
            value: name.to_owned(),
            problem: "is not a Lease name (lowercase letters, digits, '-' and '.', at most 253)"
                .into(),
            example: "watch-cluster",
        })
    }
}

fn validate_host(host: &str) -> Result<(), String> {
    if host.contains("://") {
        return Err("must be host[:port] without a scheme".into());
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err("has a port that is not a number from 0 to 65535".into());
    }
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err("is not a host name or IPv4 address".into())
    }
}

fn parse_ca_file(value: &Option<String>) -> Result<Option<PathBuf>, ConfigError> {
    set(value).map(ca_file::parse).transpose()
}

/// Parses a duration of [`crate::duration`] (`30s`, `15m`, `1h30m`, `2d`) or plain seconds (`600`, as
/// before that grammar existed), greater than zero and at most a year.
pub fn parse_duration(
    variable: &'static str,
    value: &str,
    example: &'static str,
) -> Result<Duration, ConfigError> {
    let error = |problem: String| ConfigError {
        variable,
        value: value.to_owned(),
        problem,
        example,
    };
    let trimmed = value.trim();
    let parsed = if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        trimmed
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| error("must be at most a year".into()))?
    } else {
        crate::duration::parse(trimmed).map_err(|e| {
            error(match e {
                crate::duration::DurationError::TooLarge { .. } => "must be at most a year".into(),
                crate::duration::DurationError::Zero { .. } => "must be greater than zero".into(),
                _ => "expected <n>s, <n>m, <n>h, <n>d, a compound like 1h30m, or plain seconds"
                    .into(),
            })
        })?
    };
    if parsed.is_zero() {
        return Err(error("must be greater than zero".into()));
    }
    if parsed > Duration::from_secs(366 * 24 * 3600) {
        return Err(error("must be at most a year".into()));
    }
    Ok(parsed)
}

fn parse_time_zone(value: &str) -> Result<chrono_tz::Tz, ConfigError> {
    // POSIX allows a leading ':' meaning "implementation-defined"; glibc treats `:Europe/Paris` as a zone name.
    let name = value.strip_prefix(':').unwrap_or(value);
    chrono_tz::Tz::from_str(name).map_err(|_| ConfigError {
        variable: "TZ",
        value: value.to_owned(),
        problem: "not a known IANA time zone".into(),
        example: "Europe/Berlin",
    })
}

fn parse_bool(
    variable: &'static str,
    value: &Option<String>,
    default: bool,
) -> Result<bool, ConfigError> {
    match set(value).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(ConfigError {
            variable,
            value: value.clone().unwrap_or_default(),
            problem: "expected true or false".into(),
            example: "true",
        }),
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

mod ca_file;
mod events;
mod verify;

pub use events::{EventsArgs, EventsConfig};

#[cfg(test)]
mod tests;
