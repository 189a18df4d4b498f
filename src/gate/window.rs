//! The `update-window` annotation (docs/annotations.md#update-window): when an update may start.
//!
//! Input: `<cron> for <duration>` entries separated by `;` (e.g. `0 0 2 * * SAT-SUN for 4h; 0 30 12 * * WED
//! for 30m`) and the zone of `TZ`. Output: an [`UpdateWindow`] answering, for an instant `t`, "is it open?",
//! "when does it next open?" and "when does the open period containing `t` end?".
//!
//! Open at `t` when some entry has a fire time `f ≤ t` with `t < f + duration`. Only the latest fire time
//! of each entry at or before `t` needs looking at: with one duration per entry, an earlier fire ends
//! earlier. Overlapping or touching periods (of one entry or several) are one open period for
//! [`UpdateWindow::closes_at`].

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::{
    duration::{self, DurationError},
    schedule::{Schedule, ScheduleError},
};

/// The longest duration of one entry: a window that needs more is "always open" and better left unset.
pub const MAX_WINDOW_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How far [`UpdateWindow::closes_at`] looks ahead before deciding the window never closes.
const CLOSE_HORIZON_DAYS: i64 = 366;
/// How many consecutive periods [`UpdateWindow::closes_at`] merges before giving up: a window of one-second
/// periods every second would otherwise take millions of steps to reach the horizon.
const MAX_MERGED_PERIODS: usize = 10_000;

/// An example of a valid value, for error messages.
pub const WINDOW_EXAMPLE: &str = "0 0 2 * * SAT-SUN for 4h; 0 30 12 * * WED for 30m";

/// One `<cron> for <duration>` entry.
#[derive(Clone, PartialEq, Eq)]
struct Entry {
    schedule: Schedule,
    length: chrono::Duration,
}

/// A parsed `update-window`.
#[derive(Clone, PartialEq, Eq)]
pub struct UpdateWindow {
    expression: String,
    entries: Vec<Entry>,
}

/// Why an `update-window` value cannot be used; Display names the entry and the problem.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// No entry at all.
    #[error("failed to read update window: it has no entry (expected e.g. '{WINDOW_EXAMPLE}')")]
    Empty,
    /// An entry without ` for `.
    #[error(
        "failed to read update window entry '{entry}': expected '<cron> for <duration>', e.g. '0 0 2 * * SAT-SUN for 4h'"
    )]
    MissingFor { entry: String },
    /// The cron part is invalid.
    #[error("failed to read update window entry '{entry}'")]
    Cron {
        entry: String,
        #[source]
        source: ScheduleError,
    },
    /// The duration part is invalid.
    #[error("failed to read update window entry '{entry}'")]
    Duration {
        entry: String,
        #[source]
        source: DurationError,
    },
    /// The duration is longer than [`MAX_WINDOW_DURATION`].
    #[error("failed to read update window entry '{entry}': the duration must be at most 7d")]
    TooLong { entry: String },
}

impl UpdateWindow {
    /// Parses the annotation value, evaluated in `tz`.
    pub fn parse(text: &str, tz: Tz) -> Result<UpdateWindow, WindowError> {
        let mut entries = Vec::new();
        for raw in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let entry = || raw.to_owned();
            // The last " for " splits: cron expressions never contain "for".
            let (cron, length) = raw
                .rsplit_once(" for ")
                .ok_or_else(|| WindowError::MissingFor { entry: entry() })?;
            let schedule =
                Schedule::parse(cron.trim(), tz).map_err(|source| WindowError::Cron {
                    entry: entry(),
                    source,
                })?;
            let length = duration::parse(length).map_err(|source| WindowError::Duration {
                entry: entry(),
                source,
            })?;
            if length > MAX_WINDOW_DURATION {
                return Err(WindowError::TooLong { entry: entry() });
            }
            let length = chrono::Duration::from_std(length)
                .map_err(|_| WindowError::TooLong { entry: entry() })?;
            entries.push(Entry { schedule, length });
        }
        if entries.is_empty() {
            return Err(WindowError::Empty);
        }
        Ok(UpdateWindow {
            expression: text.trim().to_owned(),
            entries,
        })
    }

    /// The value as given (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether an update may start at `t`.
    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        self.open_until(t).is_some()
    }

    /// `t` itself when open, else the earliest fire time of any entry after `t`; `None` when no entry
    /// ever fires again.
    pub fn next_open(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(t) {
            return Some(t);
        }
        self.entries
            .iter()
            .filter_map(|e| e.schedule.next_after(t))
            .min()
    }

    /// When the open period containing `t` ends, overlapping and touching periods merged; `None` when
    /// closed at `t`, or when no end is in sight: not within a year, or not within 10,000 merged periods
    /// (a window that is always open).
    pub fn closes_at(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let horizon = t + chrono::Duration::days(CLOSE_HORIZON_DAYS);
        let mut end = self.open_until(t)?;
        // Each round moves `end` strictly later (a period open at `end` ends after it).
        for _ in 0..MAX_MERGED_PERIODS {
            if end > horizon {
                return None;
            }
            match self.open_until(end) {
                Some(later) => end = later,
                None => return Some(end),
            }
        }
        None
    }

    /// The latest end among the periods open at `t`, if any.
    fn open_until(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.entries
            .iter()
            .filter_map(|e| {
                let fired = e.schedule.previous_before(t, true)?;
                let end = fired + e.length;
                (t < end).then_some(end)
            })
            .max()
    }
}

/// Short form: the expression and zone, not every parsed field.
impl fmt::Debug for UpdateWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UpdateWindow")
            .field(&self.expression)
            .finish()
    }
}

impl fmt::Display for UpdateWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn window(text: &str) -> UpdateWindow {
        UpdateWindow::parse(text, chrono_tz::UTC).unwrap_or_else(|e| panic!("{e}"))
    }

    // 2026-01-03 is a Saturday.

    #[test]
    fn a_window_is_open_from_each_fire_time_for_its_duration() {
        let w = window("0 0 2 * * SAT-SUN for 4h");
        assert!(!w.is_open(at("2026-01-03T01:59:59Z")));
        assert!(w.is_open(at("2026-01-03T02:00:00Z")));
        assert!(w.is_open(at("2026-01-03T05:59:59Z")));
        assert!(!w.is_open(at("2026-01-03T06:00:00Z")));
        assert!(w.is_open(at("2026-01-04T03:00:00Z")));
        assert!(!w.is_open(at("2026-01-05T03:00:00Z")));
    }

    #[test]
    fn next_open_is_now_when_open_else_the_next_fire_time_of_any_entry() {
        let w = window("0 0 2 * * SAT-SUN for 4h; 0 30 12 * * WED for 30m");
        let open = at("2026-01-03T03:00:00Z");
        assert_eq!(w.next_open(open), Some(open));
        assert_eq!(
            w.next_open(at("2026-01-05T00:00:00Z")),
            Some(at("2026-01-07T12:30:00Z"))
        );
        assert_eq!(
            w.next_open(at("2026-01-07T13:00:00Z")),
            Some(at("2026-01-10T02:00:00Z"))
        );
    }

    #[test]
    fn closes_at_merges_overlapping_and_touching_periods() {
        // Saturday 02:00-06:00 and 05:00-08:00 overlap, 08:00-09:00 touches: one period to 09:00.
        let w = window("0 0 2 * * SAT for 4h; 0 0 5 * * SAT for 3h; 0 0 8 * * SAT for 1h");
        assert_eq!(
            w.closes_at(at("2026-01-03T02:30:00Z")),
            Some(at("2026-01-03T09:00:00Z"))
        );
        assert_eq!(w.closes_at(at("2026-01-03T09:00:00Z")), None);
        // Saturday and Sunday at 22:00 for 30h: Sat 22:00 → Mon 04:00 and Sun 22:00 → Tue 04:00 merge.
        let weekend = window("0 0 22 * * SAT-SUN for 30h");
        assert_eq!(
            weekend.closes_at(at("2026-01-03T23:00:00Z")),
            Some(at("2026-01-06T04:00:00Z"))
        );
    }

    #[test]
    fn a_window_that_never_closes_has_no_closing_time() {
        let w = window("0 0 * * * ? for 2h");
        assert!(w.is_open(at("2026-01-03T00:30:00Z")));
        assert_eq!(w.closes_at(at("2026-01-03T00:30:00Z")), None);
    }

    #[test]
    fn back_to_back_one_second_periods_give_up_instead_of_walking_a_year() {
        let w = window("* * * * * ? for 1s");
        let t = at("2026-01-03T00:00:00Z");
        assert!(w.is_open(t));
        assert_eq!(w.closes_at(t), None);
        // Separated periods are still found.
        let w = window("0 * * * * ? for 30s");
        assert_eq!(
            w.closes_at(at("2026-01-03T00:00:10Z")),
            Some(at("2026-01-03T00:00:30Z"))
        );
    }

    #[test]
    fn windows_are_evaluated_in_the_given_zone() {
        let w = UpdateWindow::parse("0 0 2 * * * for 1h", chrono_tz::Europe::Paris).unwrap();
        // 02:00 in Paris in January is 01:00 UTC.
        assert!(w.is_open(at("2026-01-03T01:30:00Z")));
        assert!(!w.is_open(at("2026-01-03T02:30:00Z")));
    }

    #[test]
    fn wrapping_hours_work_in_a_window() {
        let w = window("0 0 22-2 * * ? for 30m");
        assert!(w.is_open(at("2026-01-03T00:10:00Z")));
        assert!(!w.is_open(at("2026-01-03T03:10:00Z")));
    }

    #[test]
    fn invalid_windows_name_the_entry_and_the_problem() {
        let parse = |text| UpdateWindow::parse(text, chrono_tz::UTC).unwrap_err();
        assert!(matches!(parse(" ; "), WindowError::Empty));
        assert!(matches!(
            parse("0 0 2 * * SAT"),
            WindowError::MissingFor { .. }
        ));
        assert!(matches!(
            parse("0 0 2 * * XYZ for 1h"),
            WindowError::Cron { .. }
        ));
        assert!(matches!(
            parse("0 0 2 * * SAT for 1w"),
            WindowError::Duration { .. }
        ));
        assert!(matches!(
            parse("0 0 2 * * SAT for 0h"),
            WindowError::Duration { .. }
        ));
        let err = parse("0 0 2 * * SAT for 4h; 0 0 2 * * SUN for 7d1s");
        assert!(
            matches!(&err, WindowError::TooLong { entry } if entry == "0 0 2 * * SUN for 7d1s")
        );
        assert!(err.to_string().contains("at most 7d"), "{err}");
        assert!(UpdateWindow::parse("0 0 2 * * SUN for 7d", chrono_tz::UTC).is_ok());
    }
}
