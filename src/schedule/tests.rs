//! Table and property tests of [`super::Schedule`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::TimeZone;
use proptest::prelude::*;

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn next(expression: &str, tz: Tz, now: &str) -> String {
    let schedule = Schedule::parse(expression, tz).unwrap_or_else(|e| panic!("{e}"));
    let next = schedule
        .next_after(at(now))
        .unwrap_or_else(|| panic!("{expression} never fires"));
    next.to_rfc3339()
}

#[test]
fn expressions_fire_at_the_expected_next_time() {
    // (expression, now, next) in UTC. 2026-01-01 is a Thursday.
    let cases = [
        (
            DEFAULT_CRON,
            "2026-01-01T00:02:30Z",
            "2026-01-01T00:05:00+00:00",
        ),
        (
            "0 0/5 * * * ?",
            "2026-01-01T00:02:30Z",
            "2026-01-01T00:05:00+00:00",
        ),
        (
            "*/5 * * * *",
            "2026-01-01T00:02:30Z",
            "2026-01-01T00:05:00+00:00",
        ),
        (
            "0 0 9-17 * * MON-FRI",
            "2026-01-02T17:30:00Z",
            "2026-01-05T09:00:00+00:00",
        ),
        (
            "0 0 9-17 * * MON-FRI",
            "2026-01-05T09:00:00Z",
            "2026-01-05T10:00:00+00:00",
        ),
        (
            "0 0 0 1 * ?",
            "2026-01-15T10:00:00Z",
            "2026-02-01T00:00:00+00:00",
        ),
        (
            "0 0 3 * * SUN",
            "2026-01-01T00:00:00Z",
            "2026-01-04T03:00:00+00:00",
        ),
        (
            "0 0 12 L * ?",
            "2026-02-01T00:00:00Z",
            "2026-02-28T12:00:00+00:00",
        ),
        (
            "0 0 12 L * ?",
            "2028-02-01T00:00:00Z",
            "2028-02-29T12:00:00+00:00",
        ),
        (
            "0 0 12 ? * 6#3",
            "2026-01-01T00:00:00Z",
            "2026-01-16T12:00:00+00:00",
        ),
        (
            "0 0 12 ? * FRI#3",
            "2026-01-01T00:00:00Z",
            "2026-01-16T12:00:00+00:00",
        ),
        (
            "0 0 12 15W * ?",
            "2026-02-01T00:00:00Z",
            "2026-02-16T12:00:00+00:00",
        ),
        (
            "0 0 0 1 * ? 2099",
            "2026-01-01T00:00:00Z",
            "2099-01-01T00:00:00+00:00",
        ),
        (
            "0 0 8 ? JAN,JUL MON",
            "2026-02-01T00:00:00Z",
            "2026-07-06T08:00:00+00:00",
        ),
        // Unix numbers weekdays from 0 = Sunday, Quartz from 1 = Sunday.
        (
            "0 9 * * 1",
            "2026-01-01T00:00:00Z",
            "2026-01-05T09:00:00+00:00",
        ),
        (
            "0 0 9 ? * 2",
            "2026-01-01T00:00:00Z",
            "2026-01-05T09:00:00+00:00",
        ),
        (
            "@hourly",
            "2026-01-01T00:02:00Z",
            "2026-01-01T01:00:00+00:00",
        ),
        (
            "@daily",
            "2026-01-01T00:02:00Z",
            "2026-01-02T00:00:00+00:00",
        ),
        (
            "@MIDNIGHT",
            "2026-01-01T00:02:00Z",
            "2026-01-02T00:00:00+00:00",
        ),
        (
            "@weekly",
            "2026-01-01T00:02:00Z",
            "2026-01-04T00:00:00+00:00",
        ),
        (
            "@monthly",
            "2026-01-01T00:02:00Z",
            "2026-02-01T00:00:00+00:00",
        ),
        (
            "@yearly",
            "2026-01-01T00:02:00Z",
            "2027-01-01T00:00:00+00:00",
        ),
        (
            "@annually",
            "2026-01-01T00:02:00Z",
            "2027-01-01T00:00:00+00:00",
        ),
    ];
    for (expression, now, expected) in cases {
        assert_eq!(
            next(expression, Tz::UTC, now),
            expected,
            "{expression} after {now}"
        );
    }
}

#[test]
fn the_next_time_is_strictly_after_now() {
    assert_eq!(
        next(DEFAULT_CRON, Tz::UTC, "2026-01-01T00:05:00Z"),
        "2026-01-01T00:10:00+00:00"
    );
    assert_eq!(
        next(DEFAULT_CRON, Tz::UTC, "2026-01-01T00:05:00.500Z"),
        "2026-01-01T00:10:00+00:00"
    );
    assert_eq!(
        next(DEFAULT_CRON, Tz::UTC, "2026-01-01T00:04:59.999Z"),
        "2026-01-01T00:05:00+00:00"
    );
}

#[test]
fn expressions_are_evaluated_in_the_given_zone() {
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    assert_eq!(
        next("0 0 9 * * ?", berlin, "2026-01-01T00:00:00Z"),
        "2026-01-01T08:00:00+00:00"
    );
    assert_eq!(
        next("0 0 9 * * ?", berlin, "2026-07-01T00:00:00Z"),
        "2026-07-01T07:00:00+00:00"
    );
    let schedule = Schedule::parse("0 0 9 * * ?", berlin).unwrap();
    assert_eq!(schedule.timezone(), berlin);
    assert_eq!(schedule.to_string(), "0 0 9 * * ? (Europe/Berlin)");
}

#[test]
fn local_times_follow_daylight_saving_changes() {
    let new_york: Tz = "America/New_York".parse().unwrap();
    // DST starts 2026-03-08: 09:00 local is 14:00Z before and 13:00Z after.
    assert_eq!(
        next("0 0 9 * * ?", new_york, "2026-03-07T12:00:00Z"),
        "2026-03-07T14:00:00+00:00"
    );
    assert_eq!(
        next("0 0 9 * * ?", new_york, "2026-03-07T15:00:00Z"),
        "2026-03-08T13:00:00+00:00"
    );
    // 02:30 does not exist in Berlin on 2026-03-29 (clocks jump from 02:00 to 03:00): the check runs at
    // the end of the gap, 03:00 CEST, and the next day at 02:30 again.
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    let schedule = Schedule::parse("0 30 2 * * ?", berlin).unwrap();
    let gap = schedule.next_after(at("2026-03-28T12:00:00Z")).unwrap();
    assert_eq!(gap, at("2026-03-29T01:00:00Z"));
    assert_eq!(
        schedule.next_after(gap).unwrap(),
        at("2026-03-30T00:30:00Z")
    );
    // 02:30 happens twice on 2026-10-25 (03:00 CEST back to 02:00 CET): it fires once, at the first.
    let first = schedule.next_after(at("2026-10-24T12:00:00Z")).unwrap();
    assert_eq!(first, at("2026-10-25T00:30:00Z"));
    assert_eq!(
        schedule.next_after(first).unwrap(),
        at("2026-10-26T01:30:00Z")
    );
}

#[test]
fn the_delay_is_the_time_to_the_next_fire_capped_at_one_day() {
    let every_five = Schedule::parse(DEFAULT_CRON, Tz::UTC).unwrap();
    assert_eq!(
        every_five.delay_until_next(at("2026-01-01T00:02:30Z")),
        Duration::from_secs(150)
    );
    let far = Schedule::parse("0 0 0 1 * ? 2099", Tz::UTC).unwrap();
    assert_eq!(far.delay_until_next(at("2026-01-01T00:00:00Z")), MAX_DELAY);
    let past = Schedule::parse("0 0 0 1 * ? 2020", Tz::UTC).unwrap();
    assert_eq!(past.next_after(at("2026-01-01T00:00:00Z")), None);
    assert_eq!(past.delay_until_next(at("2026-01-01T00:00:00Z")), MAX_DELAY);
}

#[test]
fn an_impossible_date_never_fires() {
    let never = Schedule::parse("0 0 0 30 2 ?", Tz::UTC).unwrap();
    assert_eq!(never.next_after(at("2026-01-01T00:00:00Z")), None);
}

#[test]
fn invalid_expressions_name_the_field_and_give_an_example() {
    use CronField::*;
    let cases = [
        ("61 * * * * ?", Seconds),
        ("0 60 * * * ?", Minutes),
        ("0 MON * * * ?", Minutes),
        ("0 0 25 * * ?", Hours),
        ("0 0 0 32 * ?", DayOfMonth),
        ("0 0 0 1 13 ?", Month),
        ("0 0 0 1 FOO ?", Month),
        ("0 0 0 ? * 8", DayOfWeek),
        ("0 0 0 ? * MON#9", DayOfWeek),
        ("0 0 0 1 * ? 99999", Year),
        ("60 * * * *", Minutes),
        ("*/0 * * * *", Minutes),
        ("* ? * * *", Hours),
        ("0 0 * * * ? abc", Year),
    ];
    for (expression, field) in cases {
        match Schedule::parse(expression, Tz::UTC) {
            Err(err @ ScheduleError::InvalidField { field: found, .. }) => {
                assert_eq!(found, field, "{expression}: {err}");
                assert_eq!(err.reason(), "CronInvalidField");
                let text = err.to_string();
                assert!(text.contains(&format!("the {field} field")), "{text}");
                assert!(text.contains("'0 */5 * * * ?'"), "{text}");
            }
            other => panic!(
                "{expression}: expected an invalid {field} field, got {:?}",
                other.map(|s| s.to_string())
            ),
        }
    }
}

#[test]
fn wrong_shapes_are_rejected_with_their_own_reason() {
    let cases = [
        ("", "CronEmpty"),
        ("   ", "CronEmpty"),
        ("* * * *", "CronFieldCount"),
        ("0 0 0 * * ? 2026 x", "CronFieldCount"),
        ("@every5m", "CronUnknownMacro"),
    ];
    for (expression, reason) in cases {
        let err = Schedule::parse(expression, Tz::UTC).unwrap_err();
        assert_eq!(err.reason(), reason, "{expression}: {err}");
        assert!(
            err.to_string().contains(&format!("'{expression}'")),
            "{err}"
        );
    }
}

proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(expression in "\\PC{0,40}") {
        let _ = Schedule::parse(&expression, Tz::UTC);
    }

    #[test]
    fn valid_step_schedules_fire_at_multiples_of_the_step_after_now(
        step in 1u32..30, seconds in 0i64..10_000_000,
    ) {
        let expression = format!("0 */{step} * * * ?");
        let schedule = Schedule::parse(&expression, Tz::UTC).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(seconds);
        let next = schedule.next_after(now).unwrap();
        prop_assert!(next > now);
        prop_assert!(next - now <= chrono::Duration::hours(1));
        prop_assert_eq!(next.timestamp() % 60, 0);
        prop_assert!(schedule.delay_until_next(now) <= MAX_DELAY);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn cron_shaped_text_never_panics_and_fires_after_now(
        expression in "([0-9*/,?LW#-]{1,4}|MON|JAN|L|\\?)( ([0-9*/,?LW#-]{1,4}|MON-FRI|FEB|L|\\?)){4,6}",
    ) {
        if let Ok(schedule) = Schedule::parse(&expression, Tz::UTC) {
            let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            if let Some(next) = schedule.next_after(now) {
                prop_assert!(next > now);
            }
        }
    }
}

/// Every fire time strictly after `from`, `count` of them, in UTC.
fn fires(expression: &str, from: &str, count: usize) -> Vec<String> {
    let schedule = Schedule::parse(expression, chrono_tz::UTC).unwrap_or_else(|e| panic!("{e}"));
    let mut t = at(from);
    (0..count)
        .map(|_| {
            t = schedule.next_after(t).unwrap();
            t.to_rfc3339()
        })
        .collect()
}

#[test]
fn weekday_ranges_that_wrap_cover_the_weekend_in_every_numbering() {
    // 2026-01-01 is a Thursday: Sat 3rd, Sun 4th, Sat 10th.
    let weekend = [
        "2026-01-03T02:00:00+00:00",
        "2026-01-04T02:00:00+00:00",
        "2026-01-10T02:00:00+00:00",
    ];
    for expression in [
        "0 0 2 * * SAT-SUN",
        "0 0 2 ? * sat-sun",
        "0 0 2 ? * 7-1",
        "0 2 * * SAT-SUN",
        "0 2 * * 6-0",
    ] {
        assert_eq!(
            fires(expression, "2026-01-01T00:00:00Z", 3),
            weekend,
            "{expression}"
        );
    }
}

#[test]
fn friday_to_monday_wraps_in_unix_and_quartz_numbering() {
    // From Tuesday 6 January: Fri 9, Sat 10, Sun 11, Mon 12, Fri 16.
    let expected = [
        "2026-01-09T12:00:00+00:00",
        "2026-01-10T12:00:00+00:00",
        "2026-01-11T12:00:00+00:00",
        "2026-01-12T12:00:00+00:00",
        "2026-01-16T12:00:00+00:00",
    ];
    for expression in [
        "0 0 12 ? * FRI-MON",
        "0 0 12 ? * 6-2",
        "0 12 * * FRI-MON",
        "0 12 * * 5-1",
    ] {
        assert_eq!(
            fires(expression, "2026-01-06T00:00:00Z", 5),
            expected,
            "{expression}"
        );
    }
    // Unix 7 is Sunday too: `7-2` is Sunday to Tuesday.
    assert_eq!(
        fires("0 12 * * 7-2", "2026-01-06T13:00:00Z", 3),
        [
            "2026-01-11T12:00:00+00:00",
            "2026-01-12T12:00:00+00:00",
            "2026-01-13T12:00:00+00:00",
        ]
    );
}

#[test]
fn hour_ranges_that_wrap_pass_midnight() {
    assert_eq!(
        fires("0 0 22-2 * * ?", "2026-01-01T03:00:00Z", 6),
        [
            "2026-01-01T22:00:00+00:00",
            "2026-01-01T23:00:00+00:00",
            "2026-01-02T00:00:00+00:00",
            "2026-01-02T01:00:00+00:00",
            "2026-01-02T02:00:00+00:00",
            "2026-01-02T22:00:00+00:00",
        ]
    );
    assert_eq!(
        fires("0 22-2 * * *", "2026-01-01T23:30:00Z", 2),
        ["2026-01-02T00:00:00+00:00", "2026-01-02T01:00:00+00:00"]
    );
}

#[test]
fn a_step_on_a_wrapping_range_counts_on_across_the_wrap() {
    assert_eq!(
        fires("0 0 22-2/2 * * ?", "2026-01-01T03:00:00Z", 4),
        [
            "2026-01-01T22:00:00+00:00",
            "2026-01-02T00:00:00+00:00",
            "2026-01-02T02:00:00+00:00",
            "2026-01-02T22:00:00+00:00",
        ]
    );
    assert_eq!(
        fires("0 50-10/15 3 * * ?", "2026-01-01T00:00:00Z", 3),
        [
            "2026-01-01T03:05:00+00:00",
            "2026-01-01T03:50:00+00:00",
            "2026-01-02T03:05:00+00:00",
        ]
    );
    let err = Schedule::parse("0 0 22-2/0 * * ?", chrono_tz::UTC).unwrap_err();
    assert!(
        matches!(
            err,
            ScheduleError::InvalidField {
                field: CronField::Hours,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn month_and_day_ranges_that_wrap_cross_the_year_and_the_month() {
    assert_eq!(
        fires("0 0 0 1 NOV-FEB ?", "2026-03-01T12:00:00Z", 5),
        [
            "2026-11-01T00:00:00+00:00",
            "2026-12-01T00:00:00+00:00",
            "2027-01-01T00:00:00+00:00",
            "2027-02-01T00:00:00+00:00",
            "2027-11-01T00:00:00+00:00",
        ]
    );
    assert_eq!(
        fires("0 0 30-2 * *", "2026-01-29T00:00:00Z", 5),
        [
            "2026-01-30T00:00:00+00:00",
            "2026-01-31T00:00:00+00:00",
            "2026-02-01T00:00:00+00:00",
            "2026-02-02T00:00:00+00:00",
            "2026-03-01T00:00:00+00:00",
        ]
    );
}

#[test]
fn wrapping_ranges_mix_with_lists_and_out_of_range_ends_stay_errors() {
    assert_eq!(
        fires("0 0 12 ? * SAT-SUN,WED", "2026-01-05T00:00:00Z", 3),
        [
            "2026-01-07T12:00:00+00:00",
            "2026-01-10T12:00:00+00:00",
            "2026-01-11T12:00:00+00:00",
        ]
    );
    for bad in ["0 0 25-2 * * ?", "0 0 0 ? * 9-1", "0 0 0 1 1 ? 2030-2026"] {
        assert!(Schedule::parse(bad, chrono_tz::UTC).is_err(), "{bad}");
    }
}

#[test]
fn the_latest_fire_time_before_a_moment_is_found_backwards() {
    let schedule = Schedule::parse("0 0 2 * * SAT-SUN", chrono_tz::UTC).unwrap();
    // Thursday 8 January: the last fire was Sunday 4th at 02:00.
    assert_eq!(
        schedule.previous_before(at("2026-01-08T00:00:00Z"), false),
        Some(at("2026-01-04T02:00:00Z"))
    );
    let fire = at("2026-01-04T02:00:00Z");
    assert_eq!(schedule.previous_before(fire, true), Some(fire));
    assert_eq!(
        schedule.previous_before(fire, false),
        Some(at("2026-01-03T02:00:00Z"))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn a_wrapping_hour_range_with_a_step_fires_on_exactly_the_hours_it_names(
        start in 1u32..24, end in 0u32..23, step in 1u32..5,
    ) {
        prop_assume!(start > end);
        let expression = format!("0 0 {start}-{end}/{step} * * ?");
        let schedule = Schedule::parse(&expression, Tz::UTC).unwrap();
        // Counting on from `start` across midnight, every `step` hours, up to `end`.
        let span = end + 24 - start;
        let expected: std::collections::BTreeSet<u32> =
            (0..=span).step_by(step as usize).map(|o| (start + o) % 24).collect();
        let mut t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..expected.len() * 2 {
            t = schedule.next_after(t).unwrap();
            prop_assert_eq!(t.timestamp() % 3600, 0);
            seen.insert(u32::try_from(t.timestamp() / 3600 % 24).unwrap());
        }
        prop_assert_eq!(seen, expected);
    }
}
