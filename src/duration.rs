//! The one duration grammar of watch-cluster (docs/annotations.md#durations).
//!
//! Input: text such as `30m`, `24h`, `7d`, `1h30m` or `1d12h`. Output: a [`std::time::Duration`], or a
//! [`DurationError`] naming what is wrong and where.
//!
//! Grammar: one or more `<n><unit>` parts, `<n>` decimal digits, `<unit>` one of `d` (24 hours), `h`, `m`,
//! `s`; units in descending order, each at most once (`1h30m`, not `30m1h` nor `1h1h`), no inner spaces.
//! Surrounding whitespace is ignored. Zero (`0s`, `0h0m`) is refused: no user of a duration means "never"
//! or "no time", and removing the setting says that better. Upper bounds are the caller's (a window is at
//! most 7 days, a setting at most a year): they differ by use.
//!
//! Plain seconds (`600`) are not part of this grammar: only the environment settings that accepted them
//! before (`ROLLOUT_TIMEOUT`, `REGISTRY_CACHE_TTL`) still do, in [`crate::config::parse_duration`].

use std::{fmt, time::Duration};

/// The units, largest first: their order in a compound duration.
const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Why a duration cannot be read. Display names the problem and gives an example.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing but whitespace.
    #[error("failed to read duration: it is empty (expected e.g. 30m, 24h, 7d or 1h30m)")]
    Empty,
    /// A unit or other character where a number should start.
    #[error(
        "failed to read duration {text:?}: expected a number at {found:?} (expected e.g. 30m or 1h30m)"
    )]
    MissingNumber { text: String, found: String },
    /// A number without a unit after it.
    #[error(
        "failed to read duration {text:?}: the number {number} has no unit (s, m, h or d, e.g. {number}m)"
    )]
    MissingUnit { text: String, number: String },
    /// A unit other than `s`, `m`, `h`, `d`.
    #[error("failed to read duration {text:?}: unknown unit {unit:?} (expected s, m, h or d)")]
    UnknownUnit { text: String, unit: char },
    /// A unit after a smaller one or repeated (`30m1h`, `1h1h`).
    #[error(
        "failed to read duration {text:?}: unit {unit:?} comes after {previous:?}; each unit at most \
         once, largest first (e.g. 1d12h, 1h30m)"
    )]
    Order {
        text: String,
        unit: char,
        previous: char,
    },
    /// More seconds than fit in 64 bits.
    #[error("failed to read duration {text:?}: it is too large")]
    TooLarge { text: String },
    /// A total of zero.
    #[error("failed to read duration {text:?}: it must be greater than zero")]
    Zero { text: String },
}

/// Parses a duration of the grammar in the module docs.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    let owned = || trimmed.to_owned();
    let mut rest = trimmed;
    let mut total: u64 = 0;
    // Index into UNITS of the last unit seen: the next one must come strictly after it.
    let mut last: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        if number.is_empty() {
            return Err(DurationError::MissingNumber {
                text: owned(),
                found: after.to_owned(),
            });
        }
        let Some(unit) = after.chars().next() else {
            return Err(DurationError::MissingUnit {
                text: owned(),
                number: number.to_owned(),
            });
        };
        let index =
            UNITS
                .iter()
                .position(|(u, _)| *u == unit)
                .ok_or(DurationError::UnknownUnit {
                    text: owned(),
                    unit,
                })?;
        if let Some(previous) = last.filter(|p| *p >= index) {
            return Err(DurationError::Order {
                text: owned(),
                unit,
                previous: UNITS[previous].0,
            });
        }
        last = Some(index);
        total = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(UNITS[index].1))
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(|| DurationError::TooLarge { text: owned() })?;
        rest = &after[unit.len_utf8()..];
    }
    if total == 0 {
        return Err(DurationError::Zero { text: owned() });
    }
    Ok(Duration::from_secs(total))
}

/// A duration in this grammar, largest units first (`1d2h`, `90s` → `1m30s`); whole seconds only.
pub struct Display(pub Duration);

impl fmt::Display for Display {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn single_and_compound_durations_add_up() {
        for (text, secs) in [
            ("30s", 30),
            ("5m", 300),
            ("24h", 86_400),
            ("7d", 604_800),
            ("1h30m", 5_400),
            ("1d12h", 129_600),
            ("1d2h3m4s", 93_784),
            (" 2h ", 7_200),
            ("0h5m", 300),
        ] {
            assert_eq!(parse(text).unwrap(), Duration::from_secs(secs), "{text}");
        }
    }

    #[test]
    fn each_kind_of_mistake_is_named() {
        assert_eq!(parse("  "), Err(DurationError::Empty));
        assert!(matches!(
            parse("h"),
            Err(DurationError::MissingNumber { .. })
        ));
        assert!(matches!(
            parse("1h30"),
            Err(DurationError::MissingUnit { number, .. }) if number == "30"
        ));
        assert!(matches!(
            parse("600"),
            Err(DurationError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse("3w"),
            Err(DurationError::UnknownUnit { unit: 'w', .. })
        ));
        assert!(matches!(
            parse("1h 30m"),
            Err(DurationError::MissingNumber { found, .. }) if found == " 30m"
        ));
        assert!(matches!(
            parse("30m1h"),
            Err(DurationError::Order {
                unit: 'h',
                previous: 'm',
                ..
            })
        ));
        assert!(matches!(parse("1h1h"), Err(DurationError::Order { .. })));
        assert!(matches!(
            parse("-1h"),
            Err(DurationError::MissingNumber { .. })
        ));
        assert!(matches!(
            parse("1.5h"),
            Err(DurationError::UnknownUnit { unit: '.', .. })
        ));
        assert!(matches!(
            parse("99999999999999999999d"),
            Err(DurationError::TooLarge { .. })
        ));
        assert!(matches!(
            parse("999999999999999999d"),
            Err(DurationError::TooLarge { .. })
        ));
        assert!(matches!(parse("0s"), Err(DurationError::Zero { .. })));
        assert!(matches!(parse("0h0m"), Err(DurationError::Zero { .. })));
    }

    #[test]
    fn errors_quote_the_text_and_give_an_example() {
        let text = parse("30m1h").unwrap_err().to_string();
        assert!(
            text.contains("\"30m1h\"") && text.contains("1h30m"),
            "{text}"
        );
    }

    #[test]
    fn display_writes_the_largest_units_first_and_parses_back() {
        for (secs, text) in [
            (90, "1m30s"),
            (93_784, "1d2h3m4s"),
            (7_200, "2h"),
            (0, "0s"),
        ] {
            let shown = Display(Duration::from_secs(secs)).to_string();
            assert_eq!(shown, text);
            if secs > 0 {
                assert_eq!(parse(&shown).unwrap(), Duration::from_secs(secs));
            }
        }
    }
}
