//! When is a workload's next check due? (docs/annotations.md#cron)
//!
//! Input: the workload's schedule and the current time. Output: [`Poll::Due`] at most once per fire time, or
//! how long to wait. Any watch event may run reconcile, so "is a check due?" is computed from the schedule
//! and the last fire time, never assumed: watch events, resyncs and the controller's own writes never
//! cause extra checks, and missed ticks (controller down) are not replayed.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{retry::Backoff, schedule::Schedule};

/// The longest single wait; a schedule years away is re-evaluated daily instead of overflowing a timer.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// The schedule state of one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleState {
    cron: String,
    next_fire: Option<DateTime<Utc>>,
}

/// What reconcile should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// A fire time has passed: check now, then wait this long.
    Due(Duration),
    /// Wait this long.
    Wait(Duration),
}

impl ScheduleState {
    /// The state of a workload first seen now: its first check is its schedule's next fire time.
    pub fn new(cron: &str, schedule: &Schedule, now: DateTime<Utc>) -> Self {
        Self {
            cron: cron.to_owned(),
            next_fire: schedule.next_after(now),
        }
    }

    /// Whether this state was computed for `cron`.
    pub fn is_for(&self, cron: &str) -> bool {
        self.cron == cron
    }

    /// The next fire time, if the schedule has one.
    pub fn next_fire(&self) -> Option<DateTime<Utc>> {
        self.next_fire
    }

    /// Decides whether a check is due at `now` and advances past it.
    pub fn poll(&mut self, schedule: &Schedule, now: DateTime<Utc>) -> Poll {
        let Some(fire) = self.next_fire else {
            return Poll::Wait(MAX_WAIT);
        };
        if now < fire {
            return Poll::Wait(wait(now, fire));
        }
        // Skip every fire time already past: missed ticks are not replayed.
        self.next_fire = schedule.next_after(now);
        Poll::Due(self.next_fire.map_or(MAX_WAIT, |next| wait(now, next)))
    }
}

/// After consecutive failed checks (registry down, refused patch), scheduled checks are spaced out:
/// 30 s, 1 min, 2 min… up to an hour, so a fast cron never turns a failing registry into a hot loop (docs/guarantees.md#registries).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureBackoff {
    failures: u32,
    not_before: Option<DateTime<Utc>>,
}

impl FailureBackoff {
    /// First pause after a failure.
    pub const BASE: Duration = Duration::from_secs(30);
    /// Longest pause.
    pub const MAX: Duration = Duration::from_secs(3600);

    /// Whether a scheduled check may run at `now`.
    pub fn allows(&self, now: DateTime<Utc>) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }

    /// When checks may run again, while backing off.
    pub fn resumes_at(&self) -> Option<DateTime<Utc>> {
        self.not_before
    }

    /// Records a check's result at `now`.
    pub fn record(&mut self, failed: bool, now: DateTime<Utc>) {
        if !failed {
            *self = Self::default();
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let pause = Backoff::new(Self::BASE, Self::MAX).delay(self.failures);
        self.not_before = chrono::Duration::from_std(pause).ok().map(|p| now + p);
    }
}

/// The oldest registry answer a scheduled check at `now` may use (docs/guarantees.md, "Registries"): the
/// time since the workload's previous fire time, the one before the tick that made this check due. So no
/// check sees the registry as it was more than about one schedule interval ago, and an every-second cron
/// sees a re-pushed tag on its next tick rather than after `REGISTRY_CACHE_TTL`. `None` when the schedule
/// has no earlier fire time.
pub fn max_answer_age(schedule: &Schedule, now: DateTime<Utc>) -> Option<Duration> {
    let tick = schedule.previous_before(now, true)?;
    let previous = schedule.previous_before(tick, false)?;
    (now - previous).to_std().ok()
}

fn wait(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO).min(MAX_WAIT)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn every_five_minutes() -> Schedule {
        Schedule::parse("0 */5 * * * ?", chrono_tz::UTC).unwrap()
    }

    #[test]
    fn a_new_workload_waits_for_its_first_fire_time() {
        let schedule = every_five_minutes();
        let mut state = ScheduleState::new("0 */5 * * * ?", &schedule, at("2026-01-01T10:01:00Z"));
        assert_eq!(
            state.poll(&schedule, at("2026-01-01T10:01:00Z")),
            Poll::Wait(Duration::from_secs(240))
        );
    }

    #[test]
    fn a_fire_time_is_due_once_however_often_reconcile_runs() {
        let schedule = every_five_minutes();
        let mut state = ScheduleState::new("0 */5 * * * ?", &schedule, at("2026-01-01T10:04:00Z"));
        assert_eq!(
            state.poll(&schedule, at("2026-01-01T10:05:00Z")),
            Poll::Due(Duration::from_secs(300))
        );
        // Watch events right after the check run reconcile again: nothing is due.
        assert_eq!(
            state.poll(&schedule, at("2026-01-01T10:05:01Z")),
            Poll::Wait(Duration::from_secs(299))
        );
    }

    #[test]
    fn missed_ticks_are_not_replayed() {
        let schedule = every_five_minutes();
        let mut state = ScheduleState::new("0 */5 * * * ?", &schedule, at("2026-01-01T10:04:00Z"));
        // The controller was busy or down for an hour: one check, then the next regular tick.
        assert_eq!(
            state.poll(&schedule, at("2026-01-01T11:07:00Z")),
            Poll::Due(Duration::from_secs(180))
        );
        assert!(matches!(
            state.poll(&schedule, at("2026-01-01T11:07:30Z")),
            Poll::Wait(_)
        ));
    }

    #[test]
    fn failed_checks_space_out_scheduled_checks_until_one_succeeds() {
        let mut backoff = FailureBackoff::default();
        let t0 = at("2026-01-01T10:00:00Z");
        assert!(backoff.allows(t0));
        backoff.record(true, t0);
        assert!(!backoff.allows(at("2026-01-01T10:00:29Z")));
        assert!(backoff.allows(at("2026-01-01T10:00:30Z")));
        backoff.record(true, at("2026-01-01T10:00:30Z"));
        assert!(
            !backoff.allows(at("2026-01-01T10:01:29Z")),
            "doubled to a minute"
        );
        for _ in 0..30 {
            backoff.record(true, t0);
        }
        assert!(
            backoff.allows(at("2026-01-01T11:00:00Z")),
            "capped at an hour"
        );
        backoff.record(false, t0);
        assert!(backoff.allows(t0), "a success resets it");
    }

    #[test]
    fn a_scheduled_check_accepts_answers_no_older_than_the_time_since_the_previous_fire_time() {
        let every_second = Schedule::parse("* * * * * ?", chrono_tz::UTC).unwrap();
        assert_eq!(
            max_answer_age(&every_second, at("2026-01-01T10:00:05.300Z")),
            Some(Duration::from_millis(1300))
        );
        assert_eq!(
            max_answer_age(&every_five_minutes(), at("2026-01-01T10:05:00.200Z")),
            Some(Duration::from_millis(300_200))
        );
        let never_before = Schedule::parse("0 0 0 1 1 ? 2099", chrono_tz::UTC).unwrap();
        assert_eq!(
            max_answer_age(&never_before, at("2026-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn a_fire_time_years_away_never_waits_longer_than_a_day() {
        let schedule = Schedule::parse("0 0 0 1 * ? 2099", chrono_tz::UTC).unwrap();
        let mut state =
            ScheduleState::new("0 0 0 1 * ? 2099", &schedule, at("2026-01-01T00:00:00Z"));
        assert_eq!(
            state.poll(&schedule, at("2026-01-01T00:00:00Z")),
            Poll::Wait(MAX_WAIT)
        );
        assert!(state.is_for("0 0 0 1 * ? 2099"));
    }
}
