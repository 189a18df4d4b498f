//! Summaries of measured durations: percentiles by the nearest-rank method.
//!
//! Input: a list of durations. Output: p50, p99 and the maximum, or nothing for an empty list, so a table
//! never shows a made-up zero.

use std::time::Duration;

/// p50, p99 and max of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// How many values.
    pub count: usize,
    /// Median (nearest rank).
    pub p50: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
    /// Largest value.
    pub max: Duration,
}

/// The nearest-rank percentile `p` (0 < p ≤ 100) of sorted `values`.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Summarizes `values`; `None` when there are none.
pub fn summarize(mut values: Vec<Duration>) -> Option<Summary> {
    values.sort_unstable();
    Some(Summary {
        count: values.len(),
        p50: percentile(&values, 50.0)?,
        p99: percentile(&values, 99.0)?,
        max: *values.last()?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn nearest_rank_percentiles_of_one_to_a_hundred() {
        let values: Vec<Duration> = (1..=100).map(ms).collect();
        let s = summarize(values).unwrap();
        assert_eq!(
            (s.count, s.p50, s.p99, s.max),
            (100, ms(50), ms(99), ms(100))
        );
    }

    #[test]
    fn small_sets_take_the_value_at_or_above_the_rank() {
        let s = summarize(vec![ms(30), ms(10), ms(20)]).unwrap();
        assert_eq!((s.p50, s.p99, s.max), (ms(20), ms(30), ms(30)));
        assert_eq!(percentile(&[ms(5)], 99.0), Some(ms(5)));
    }

    #[test]
    fn nothing_measured_gives_no_summary() {
        assert_eq!(summarize(Vec::new()), None);
        assert_eq!(percentile(&[ms(1)], 0.0), None);
    }
}
