//! When to check (docs/annotations.md#cron): parse a cron expression and compute the next fire time in a time zone.
//!
//! Input: the `cron` annotation and the zone from `TZ` (UTC by default; the caller resolves `TZ`).
//! Output: a [`Schedule`] answering "when is the next check strictly after `now`?" and "how long to sleep".
//!
//! Accepted forms, all parsed by croner:
//! - 5 fields: Unix (`*/5 * * * *`), no seconds; day-of-week 0-7 with 0 and 7 = Sunday.
//! - 6 or 7 fields: Quartz (`0 */5 * * * ?`, `0 0 0 1 * ? 2099`): seconds first, optional year last,
//!   day-of-week 1-7 = SUN-SAT (so `6#3` is the third Friday), `0/5` as "from 0 every 5".
//! - macros: `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`.
//!
//! `?`, `L`, `W`, `#` and names (`MON-FRI`, `JAN`) are supported. Each field is checked here before croner
//! sees it, because croner replaces names anywhere in the text (`MON` in the minutes field would silently
//! become a number) and its errors do not say which field is wrong.
//!
//! Ranges that wrap (start after end: `SAT-SUN`, `FRI-MON`, hours `22-2`, months `NOV-FEB`, day-of-month
//! `28-3`, numeric weekdays `6-0` in Unix or `7-1` in Quartz) are expanded here into the values they name,
//! because croner rejects them. Weekday numbers follow the form's numbering (Unix 0-7 with 0 and 7 =
//! Sunday, Quartz 1-7 = SUN-SAT), so `5-1` is FRI-MON in Unix and THU-SUN in Quartz. A step on a wrapping
//! range counts on across the wrap: hours `22-2/2` are 22, 0 and 2; minutes `50-10/15` are 50, 5. The year
//! field never wraps: `2030-2026` is rejected by croner as written.
//!
//! WHY [`Schedule::delay_until_next`] is capped: a fire time years away (`0 0 0 1 * ? 2099`) must not
//! overflow a timer, and a sleep that is re-evaluated daily also survives clock and zone-data changes.

pub mod slots;
pub mod state;

pub use state::{FailureBackoff, Poll, ScheduleState, max_answer_age};

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::{
    Cron,
    errors::CronError,
    parser::{CronParser, Seconds},
};

/// The `cron` annotation's default: every 5 minutes.
pub const DEFAULT_CRON: &str = "0 */5 * * * ?";
/// The longest single sleep [`Schedule::delay_until_next`] returns; the caller recomputes on waking.
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A parsed cron expression bound to a time zone.
#[derive(Clone, PartialEq, Eq)]
pub struct Schedule {
    expression: String,
    cron: Cron,
    tz: Tz,
}

/// One field of a cron expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronField {
    Seconds,
    Minutes,
    Hours,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CronField::Seconds => "seconds",
            CronField::Minutes => "minutes",
            CronField::Hours => "hours",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
            CronField::Year => "year",
        })
    }
}

/// The expression cannot be used. Display names the problem and gives an example.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "failed to parse cron expression '{expression}': it is empty (expected e.g. '0 */5 * * * ?')"
    )]
    Empty { expression: String },
    #[error(
        "failed to parse cron expression '{expression}': found {count} fields, expected 5 (Unix, e.g. \
         '*/5 * * * *'), 6 or 7 (Quartz with seconds and an optional year, e.g. '0 */5 * * * ?')"
    )]
    FieldCount { expression: String, count: usize },
    #[error(
        "failed to parse cron expression '{expression}': unknown macro (expected one of @hourly, @daily, \
         @midnight, @weekly, @monthly, @yearly, @annually)"
    )]
    UnknownMacro { expression: String },
    #[error(
        "failed to parse cron expression '{expression}': the {field} field '{value}' is invalid \
         (expected e.g. '0 */5 * * * ?')"
    )]
    InvalidField {
        expression: String,
        field: CronField,
        value: String,
        #[source]
        source: Option<CronError>,
    },
    #[error("failed to parse cron expression '{expression}' (expected e.g. '0 */5 * * * ?')")]
    Invalid {
        expression: String,
        #[source]
        source: CronError,
    },
}

impl ScheduleError {
    /// A short, bounded category for Event reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            ScheduleError::Empty { .. } => "CronEmpty",
            ScheduleError::FieldCount { .. } => "CronFieldCount",
            ScheduleError::UnknownMacro { .. } => "CronUnknownMacro",
            ScheduleError::InvalidField { .. } => "CronInvalidField",
            ScheduleError::Invalid { .. } => "CronInvalid",
        }
    }
}

impl Schedule {
    /// Parses `expression` (Unix, Quartz or a macro) to be evaluated in `tz`.
    pub fn parse(expression: &str, tz: Tz) -> Result<Schedule, ScheduleError> {
        let trimmed = expression.trim();
        if trimmed.is_empty() {
            return Err(ScheduleError::Empty {
                expression: expression.to_owned(),
            });
        }
        let pattern = if trimmed.starts_with('@') {
            expand_macro(trimmed).ok_or_else(|| ScheduleError::UnknownMacro {
                expression: expression.to_owned(),
            })?
        } else {
            trimmed
        };
        let fields: Vec<&str> = pattern.split_whitespace().collect();
        let layout = layout(fields.len()).ok_or_else(|| ScheduleError::FieldCount {
            expression: expression.to_owned(),
            count: fields.len(),
        })?;
        let invalid_field = |index: usize, source| ScheduleError::InvalidField {
            expression: expression.to_owned(),
            field: layout[index],
            value: fields[index].to_owned(),
            source,
        };
        if let Some(index) = (0..fields.len()).find(|&i| !is_lexically_valid(layout[i], fields[i]))
        {
            return Err(invalid_field(index, None));
        }
        let unix = fields.len() == 5;
        let expanded: Vec<String> = (0..fields.len())
            .map(|i| {
                expand_wrapping(layout[i], fields[i], unix).ok_or_else(|| invalid_field(i, None))
            })
            .collect::<Result<_, _>>()?;
        let fields: Vec<&str> = expanded.iter().map(String::as_str).collect();
        let pattern = &fields.join(" ");
        let parser = parser_for(fields.len());
        let cron = parser.parse(pattern).map_err(|source| {
            match (0..fields.len()).find(|&i| parser.parse(&isolate(&fields, i)).is_err()) {
                Some(index) => invalid_field(index, Some(source)),
                None => ScheduleError::Invalid {
                    expression: expression.to_owned(),
                    source,
                },
            }
        })?;
        Ok(Schedule {
            expression: expression.to_owned(),
            cron,
            tz,
        })
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The zone the expression is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The next fire time strictly after `now`, or `None` if the expression never fires again
    /// (e.g. a year in the past, or 30 February).
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }

    /// The latest fire time before `t` (or at `t` when `inclusive`), or `None` if there is none.
    pub fn previous_before(&self, t: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_previous_occurrence(&local, inclusive)
            .ok()
            .map(|previous| previous.with_timezone(&Utc))
    }

    /// How long to sleep from `now` until the next fire time, at most [`MAX_DELAY`]
    /// (also when the expression never fires again); recompute after waking.
    pub fn delay_until_next(&self, now: DateTime<Utc>) -> Duration {
        self.next_after(now)
            .and_then(|next| (next - now).to_std().ok())
            .map_or(MAX_DELAY, |delay| delay.min(MAX_DELAY))
    }
}

/// Short form: croner's own `Debug` prints every bit of every field.
impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("expression", &self.expression)
            .field("tz", &self.tz)
            .finish()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expression, self.tz)
    }
}

/// Macros as Quartz expressions (croner has no `@midnight`).
fn expand_macro(text: &str) -> Option<&'static str> {
    match text.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => Some("0 0 0 1 1 ?"),
        "@monthly" => Some("0 0 0 1 * ?"),
        "@weekly" => Some("0 0 0 ? * SUN"),
        "@daily" | "@midnight" => Some("0 0 0 * * ?"),
        "@hourly" => Some("0 0 * * * ?"),
        _ => None,
    }
}

fn layout(count: usize) -> Option<&'static [CronField]> {
    use CronField::*;
    match count {
        5 => Some(&[Minutes, Hours, DayOfMonth, Month, DayOfWeek]),
        6 | 7 => Some(&[Seconds, Minutes, Hours, DayOfMonth, Month, DayOfWeek, Year][..count]),
        _ => None,
    }
}

/// Unix for 5 fields; Quartz (seconds required, 1=SUN…7=SAT, `0/5`) for 6 or 7.
fn parser_for(count: usize) -> CronParser {
    if count == 5 {
        CronParser::builder().seconds(Seconds::Disallowed).build()
    } else {
        CronParser::builder()
            .seconds(Seconds::Required)
            .alternative_weekdays(true)
            .sloppy_ranges(true)
            .build()
    }
}

/// The expression with every field but `keep` replaced by `*`, to find which field croner rejects.
fn isolate(fields: &[&str], keep: usize) -> String {
    let parts: Vec<&str> = (0..fields.len())
        .map(|i| if i == keep { fields[i] } else { "*" })
        .collect();
    parts.join(" ")
}

/// The values of a field that a range may wrap around, with the form's weekday numbering; `None` for the
/// year, which has no cycle.
fn cycle(field: CronField, unix: bool) -> Option<(u32, u32)> {
    match field {
        CronField::Seconds | CronField::Minutes => Some((0, 59)),
        CronField::Hours => Some((0, 23)),
        CronField::DayOfMonth => Some((1, 31)),
        CronField::Month => Some((1, 12)),
        // Unix also accepts 7 for Sunday; a range starting at 7 is handled as starting at 0.
        CronField::DayOfWeek if unix => Some((0, 6)),
        CronField::DayOfWeek => Some((1, 7)),
        CronField::Year => None,
    }
}

/// A field value or name as a number in the form's numbering (`SUN` is 0 in Unix, 1 in Quartz).
fn value_of(field: CronField, text: &str, unix: bool) -> Option<u32> {
    if let Ok(n) = text.parse::<u32>() {
        return Some(n);
    }
    let upper = text.to_ascii_uppercase();
    let (names, first): (&[&str], u32) = match field {
        CronField::Month => (&MONTHS, 1),
        CronField::DayOfWeek => (&WEEKDAYS, u32::from(!unix)),
        _ => return None,
    };
    let index = names.iter().position(|n| *n == upper)?;
    u32::try_from(index).ok().map(|i| i + first)
}

/// The field with every wrapping range (`22-2`, `FRI-MON`, `22-2/2`) replaced by the values it names.
/// Items that do not wrap, or that are not plain ranges, are left as written for croner to judge;
/// `None` when a wrapping range has a step of 0.
fn expand_wrapping(field: CronField, value: &str, unix: bool) -> Option<String> {
    let Some((min, max)) = cycle(field, unix) else {
        return Some(value.to_owned());
    };
    let mut items = Vec::new();
    for item in value.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let bounds = range
            .split_once('-')
            .and_then(|(a, b)| Some((value_of(field, a, unix)?, value_of(field, b, unix)?)));
        let Some((mut start, end)) = bounds else {
            items.push(item.to_owned());
            continue;
        };
        if unix && field == CronField::DayOfWeek && start == 7 && end < 7 {
            // `7-2` is Sunday to Tuesday, which croner reads only as `0-2`.
            start = 0;
            items.push(match step {
                Some(step) => format!("{start}-{end}/{step}"),
                None => format!("{start}-{end}"),
            });
            continue;
        }
        let in_cycle = |v: u32| (min..=max).contains(&v);
        if start <= end || !in_cycle(start) || !in_cycle(end) {
            // Not wrapping, or out of range: croner's own rules and errors apply.
            items.push(item.to_owned());
            continue;
        }
        let step = match step {
            None => 1,
            Some(step) => step.parse::<u32>().ok().filter(|s| *s > 0)?,
        };
        // Walk from start to end around the cycle, one step at a time.
        let length = max - min + 1;
        let span = (end + length - start) % length;
        let mut offset = 0;
        while offset <= span {
            items.push((min + (start - min + offset) % length).to_string());
            offset += step;
        }
    }
    Some(items.join(","))
}

/// Characters (and names) a field may contain; values and ranges are left to croner.
fn is_lexically_valid(field: CronField, value: &str) -> bool {
    let extra: &[char] = match field {
        CronField::DayOfMonth => &['L', 'W', '?'],
        CronField::DayOfWeek => &['L', '#', '?'],
        _ => &[],
    };
    let names: &[&str] = match field {
        CronField::Month => &MONTHS,
        CronField::DayOfWeek => &WEEKDAYS,
        _ => &[],
    };
    let upper = value.to_ascii_uppercase();
    let mut rest = upper.as_str();
    while let Some(c) = rest.chars().next() {
        if let Some(name) = names.iter().find(|n| rest.starts_with(*n)) {
            rest = &rest[name.len()..];
        } else if c.is_ascii_digit() || matches!(c, '*' | '/' | ',' | '-') || extra.contains(&c) {
            rest = &rest[c.len_utf8()..];
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests;
