//! Logs: a `tracing` subscriber writing text or JSON lines, filtered by `RUST_LOG` or `LOG_LEVEL`.
//!
//! Spans on reconcile and each I/O step carry `namespace`, `name`, `kind`, `container` and `image`, so one
//! workload's story can be followed with a single filter in any log store.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{ConfigError, LogArgs, LogFormat};

/// Installs the global subscriber. `RUST_LOG` wins over `LOG_LEVEL`; the default is `info`.
pub fn init(args: &LogArgs) -> Result<(), ConfigError> {
    let format = args.format()?;
    let filter = filter(args)?;
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests, or a library user with its own subscriber) keeps the first one.
    let _ = match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_target(true)
                    // Colour codes only for a person at a terminal, never in log files or collectors.
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    Ok(())
}

fn filter(args: &LogArgs) -> Result<EnvFilter, ConfigError> {
    if let Ok(rust_log) = std::env::var("RUST_LOG")
        && !rust_log.trim().is_empty()
    {
        return EnvFilter::try_new(&rust_log).map_err(|e| ConfigError {
            variable: "RUST_LOG",
            value: rust_log.clone(),
            problem: format!("not a log filter ({e})"),
            example: "info,watch_cluster=debug",
        });
    }
    let level = args
        .log_level
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .unwrap_or("info");
    EnvFilter::try_new(level)
        .ok()
        .filter(|_| is_plausible_level(level))
        .ok_or_else(|| ConfigError {
            variable: "LOG_LEVEL",
            value: level.to_owned(),
            problem: "expected error, warn, info, debug, trace or a filter like info,kube=warn"
                .into(),
            example: "debug",
        })
}

/// `EnvFilter` accepts any word as a target name; a typo like `inof` would silently log nothing of ours.
fn is_plausible_level(filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    filter.split(',').all(|directive| {
        let level = directive.rsplit('=').next().unwrap_or(directive).trim();
        LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_are_accepted_and_typos_rejected() {
        for ok in ["info", "DEBUG", "info,kube=warn", "watch_cluster=trace"] {
            assert!(is_plausible_level(ok), "{ok}");
        }
        for bad in ["inof", "info,kube=loud", "verbose"] {
            assert!(!is_plausible_level(bad), "{bad}");
        }
    }
}
