//! What `/proc` says about the controller process: CPU time and memory.
//!
//! Input: the text of `/proc/<pid>/stat` and `/proc/<pid>/status`. Output: CPU seconds (user + system) and
//! resident-set figures in KiB. Parsing is split from reading so it can be tested without a process.

use std::time::Duration;

use anyhow::{Context as _, bail};

/// Clock ticks per second of `utime`/`stime` (USER_HZ). It is 100 on every Linux architecture we run on;
/// `getconf CLK_TCK` confirms it when available.
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// User plus system CPU time from the text of `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may contain spaces, so fields are counted after the
/// last `)`: `utime` and `stime` are fields 14 and 15 of the line.
pub fn parse_cpu(stat: &str, ticks_per_second: u64) -> anyhow::Result<Duration> {
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no `)` after the command name")?;
    // After ")": field 3 (state) is index 0, so field n is index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .with_context(|| format!("field {n} missing"))?
            .parse()
            .with_context(|| format!("field {n} is not a number"))
    };
    let ticks = field(14)? + field(15)?;
    if ticks_per_second == 0 {
        bail!("clock ticks per second is zero");
    }
    Ok(Duration::from_secs_f64(
        ticks as f64 / ticks_per_second as f64,
    ))
}

/// Memory figures of `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// Peak resident set (`VmHWM`).
    pub peak_kib: u64,
    /// Current resident set (`VmRSS`).
    pub rss_kib: u64,
}

/// `VmHWM` and `VmRSS` from the text of `/proc/<pid>/status`.
pub fn parse_memory(status: &str) -> anyhow::Result<Memory> {
    let value = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .with_context(|| format!("no {name} line"))?;
        let number = line.trim().trim_end_matches("kB").trim();
        number
            .parse()
            .with_context(|| format!("{name} is not a number: {line:?}"))
    };
    Ok(Memory {
        peak_kib: value("VmHWM")?,
        rss_kib: value("VmRSS")?,
    })
}

/// The CPU time of process `pid` so far.
pub fn cpu_of(pid: u32, ticks_per_second: u64) -> anyhow::Result<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("failed to read /proc/{pid}/stat"))?;
    parse_cpu(&text, ticks_per_second)
}

/// The memory figures of process `pid` now.
pub fn memory_of(pid: u32) -> anyhow::Result<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("failed to read /proc/{pid}/status"))?;
    parse_memory(&text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_utime_plus_stime_even_when_the_name_has_spaces_and_parens() {
        let stat = "4242 (watch (cluster) x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 70 0 0 20 0 9 0 \
                    123456 30000000 2000 18446744073709551615";
        assert_eq!(parse_cpu(stat, 100).unwrap(), Duration::from_millis(3200));
        assert_eq!(parse_cpu(stat, 1000).unwrap(), Duration::from_millis(320));
    }

    #[test]
    fn malformed_stat_lines_are_errors() {
        assert!(parse_cpu("4242 watch-cluster S 1", 100).is_err());
        assert!(parse_cpu("4242 (w) S 1 2", 100).is_err());
        assert!(parse_cpu("4242 (w) S 1 2 3 4 5 6 7 8 9 10 x 12", 100).is_err());
    }

    #[test]
    fn peak_and_current_rss_are_read_in_kib() {
        let status = "Name:\twatch-cluster\nVmPeak:\t  900000 kB\nVmHWM:\t   21504 kB\nVmRSS:\t   19000 kB\n";
        assert_eq!(
            parse_memory(status).unwrap(),
            Memory {
                peak_kib: 21504,
                rss_kib: 19000
            }
        );
        assert!(parse_memory("Name:\tx\nVmRSS:\t1 kB\n").is_err());
    }
}
