//! Delivery ids already seen, so a replayed event costs nothing.
//!
//! Input: an id and the time it arrived. Output: whether it is new. Bounded both ways: at most
//! [`MAX_IDS`] ids, each kept at most [`KEEP_FOR`]; the oldest go first. Senders retry within minutes, so
//! an hour covers their replays, and the bound keeps a flood of distinct ids from growing memory.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// The most ids remembered.
pub const MAX_IDS: usize = 10_000;
/// How long an id is remembered.
pub const KEEP_FOR: Duration = Duration::from_secs(3600);

/// A bounded set of recently seen ids.
#[derive(Debug)]
pub struct Seen {
    ids: HashSet<String>,
    /// Arrival order, oldest first: what expires or is evicted next.
    order: VecDeque<(Instant, String)>,
    max: usize,
    keep_for: Duration,
}

impl Default for Seen {
    fn default() -> Self {
        Self::new(MAX_IDS, KEEP_FOR)
    }
}

impl Seen {
    /// A store of at most `max` ids, each kept for `keep_for`.
    pub fn new(max: usize, keep_for: Duration) -> Self {
        Self {
            ids: HashSet::new(),
            order: VecDeque::new(),
            max: max.max(1),
            keep_for,
        }
    }

    /// Records `id` at `now`: `true` if it was not seen within the window (a new delivery).
    pub fn first_time(&mut self, id: &str, now: Instant) -> bool {
        self.expire(now);
        if self.ids.contains(id) {
            return false;
        }
        while self.order.len() >= self.max {
            self.evict_oldest();
        }
        self.ids.insert(id.to_owned());
        self.order.push_back((now, id.to_owned()));
        true
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= self.keep_for)
        {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((_, id)) = self.order.pop_front() {
            self.ids.remove(&id);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_within_the_hour_is_not_new_and_after_it_is() {
        let mut seen = Seen::default();
        let start = Instant::now();
        assert!(seen.first_time("a", start));
        assert!(!seen.first_time("a", start + Duration::from_secs(3599)));
        assert!(seen.first_time("a", start + KEEP_FOR));
    }

    #[test]
    fn the_oldest_ids_leave_first_when_the_store_is_full() {
        let mut seen = Seen::new(3, KEEP_FOR);
        let now = Instant::now();
        for id in ["a", "b", "c", "d"] {
            assert!(seen.first_time(id, now));
        }
        assert_eq!(seen.len(), 3);
        assert!(!seen.first_time("d", now));
        assert!(!seen.first_time("b", now));
        assert!(seen.first_time("a", now), "evicted, so new again");
    }

    #[test]
    fn ten_thousand_ids_are_the_bound() {
        let mut seen = Seen::default();
        let now = Instant::now();
        for i in 0..MAX_IDS + 5 {
            seen.first_time(&i.to_string(), now);
        }
        assert_eq!(seen.len(), MAX_IDS);
    }
}
