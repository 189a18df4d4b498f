//! Rollout slots: `MAX_CONCURRENT_ROLLOUTS` (docs/settings.md#max_concurrent_rollouts).
//!
//! Input: which workloads have a rollout in flight (read from their sealed `rollout` records by the caller
//! at every request, so a new leader needs no warm-up: the records are the state), requests for a slot with
//! the time the workload's other gates first passed, and the caller's own grants. Output: [`Answer::Granted`]
//! or the workload's place in the queue, oldest first.
//!
//! WHY reservations: between a grant and the moment the watch shows the written record, the record is not
//! in the caller's list yet. Without counting the grant itself, two checks running at once could both see a
//! free slot. A reservation ends when the list shows that record (it then counts as in flight, or as done),
//! when the grant is given back (the write failed or was not made), or after [`RESERVATION_TTL`], so a lost
//! watch event can never hold a slot for good.

use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// How long a grant counts without the list showing its record.
pub const RESERVATION_TTL: Duration = Duration::from_secs(60);

/// What the caller knows of one workload's rollout record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordState {
    /// The record's id.
    pub id: String,
    /// Whether it has an outcome (then it no longer holds a slot).
    pub done: bool,
}

/// The answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Start the update now; report the write with [`Slots::written`] or give it back with [`Slots::release`].
    Granted,
    /// Wait: `position` (1-based) among `waiting`, with `in_flight` rollouts running (of `max`).
    Wait {
        /// Place in the queue, 1 for the next one.
        position: usize,
        /// How many wait.
        waiting: usize,
        /// Rollouts in flight, reservations included.
        in_flight: usize,
        /// The bound.
        max: usize,
    },
}

#[derive(Debug, Clone)]
struct Reservation {
    record: Option<String>,
    granted: Instant,
}

/// The queue and the grants not yet visible in the records.
#[derive(Debug)]
pub struct Slots<K> {
    max: usize,
    waiting: HashMap<K, DateTime<Utc>>,
    reserved: HashMap<K, Reservation>,
}

impl<K: Clone + Eq + Hash + Ord> Slots<K> {
    /// Slots for at most `max` rollouts; `0` is unbounded (every request is granted, nothing is kept).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            waiting: HashMap::new(),
            reserved: HashMap::new(),
        }
    }

    /// Whether there is a bound at all.
    pub fn bounded(&self) -> bool {
        self.max > 0
    }

    /// How many updates wait for a slot.
    pub fn queue_len(&self) -> usize {
        self.waiting.len()
    }

    /// Asks for a slot for `key`, whose other gates first passed at `since` (kept from its first request while
    /// it keeps waiting). `records` lists every watched workload's sealed record.
    pub fn request(
        &mut self,
        key: &K,
        since: DateTime<Utc>,
        records: &HashMap<K, RecordState>,
        now: Instant,
    ) -> Answer {
        if self.max == 0 {
            return Answer::Granted;
        }
        self.settle(records, now);
        self.waiting
            .entry(key.clone())
            .and_modify(|s| *s = (*s).min(since))
            .or_insert(since);
        let in_flight = self.in_flight(records);
        let free = self.max.saturating_sub(in_flight);
        let position = self.ordered().iter().position(|k| k == key).unwrap_or(0);
        if position < free {
            self.waiting.remove(key);
            self.reserved.insert(
                key.clone(),
                Reservation {
                    record: None,
                    granted: now,
                },
            );
            return Answer::Granted;
        }
        Answer::Wait {
            position: position + 1,
            waiting: self.waiting.len(),
            in_flight,
            max: self.max,
        }
    }

    /// The granted update was written with record `id`: its reservation lasts until the list shows it.
    pub fn written(&mut self, key: &K, id: &str, now: Instant) {
        if let Some(reservation) = self.reserved.get_mut(key) {
            reservation.record = Some(id.to_owned());
            reservation.granted = now;
        }
    }

    /// The grant was not used (nothing written): the slot is free again.
    pub fn release(&mut self, key: &K) {
        self.reserved.remove(key);
    }

    /// `key` no longer waits (nothing to update, or another gate holds it again): it leaves the queue, and a
    /// later request queues it anew.
    pub fn withdraw(&mut self, key: &K) {
        self.waiting.remove(key);
    }

    /// The waiting workloads that would be granted a slot now, oldest first: the ones to wake when a slot
    /// frees.
    pub fn next_in_line(&mut self, records: &HashMap<K, RecordState>, now: Instant) -> Vec<K> {
        if self.max == 0 || self.waiting.is_empty() {
            return Vec::new();
        }
        self.settle(records, now);
        let free = self.max.saturating_sub(self.in_flight(records));
        self.ordered().into_iter().take(free).collect()
    }

    /// Rollouts in flight: records without an outcome, plus grants the list does not show yet.
    fn in_flight(&self, records: &HashMap<K, RecordState>) -> usize {
        let mut keys: HashSet<&K> = records
            .iter()
            .filter(|(_, r)| !r.done)
            .map(|(k, _)| k)
            .collect();
        keys.extend(self.reserved.keys());
        keys.len()
    }

    /// Ends the reservations the list shows now, and the expired ones.
    fn settle(&mut self, records: &HashMap<K, RecordState>, now: Instant) {
        self.reserved.retain(|key, reservation| {
            let shown = match (&reservation.record, records.get(key)) {
                (Some(id), Some(record)) => record.id == *id,
                _ => false,
            };
            !shown && now.saturating_duration_since(reservation.granted) < RESERVATION_TTL
        });
    }

    fn ordered(&self) -> Vec<K> {
        let mut waiting: Vec<(&DateTime<Utc>, &K)> =
            self.waiting.iter().map(|(k, s)| (s, k)).collect();
        waiting.sort();
        waiting.into_iter().map(|(_, k)| k.clone()).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn running(ids: &[(&'static str, &str, bool)]) -> HashMap<&'static str, RecordState> {
        ids.iter()
            .map(|(k, id, done)| {
                (
                    *k,
                    RecordState {
                        id: (*id).to_owned(),
                        done: *done,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn unbounded_grants_everything_and_keeps_nothing() {
        let mut slots = Slots::new(0);
        let now = Instant::now();
        for key in ["a", "b", "c"] {
            assert_eq!(
                slots.request(&key, at(0), &HashMap::new(), now),
                Answer::Granted
            );
        }
        assert_eq!(slots.queue_len(), 0);
    }

    #[test]
    fn grants_never_exceed_the_bound_even_before_the_records_show_up() {
        let mut slots = Slots::new(2);
        let now = Instant::now();
        let none = HashMap::new();
        assert_eq!(slots.request(&"a", at(0), &none, now), Answer::Granted);
        assert_eq!(slots.request(&"b", at(1), &none, now), Answer::Granted);
        // Neither record is listed yet: the reservations count.
        assert_eq!(
            slots.request(&"c", at(2), &none, now),
            Answer::Wait {
                position: 1,
                waiting: 1,
                in_flight: 2,
                max: 2
            }
        );
    }

    #[test]
    fn a_listed_record_replaces_its_reservation_and_its_outcome_frees_the_slot() {
        let mut slots = Slots::new(1);
        let now = Instant::now();
        assert_eq!(
            slots.request(&"a", at(0), &HashMap::new(), now),
            Answer::Granted
        );
        slots.written(&"a", "r1", now);
        let in_flight = running(&[("a", "r1", false)]);
        assert!(matches!(
            slots.request(&"b", at(1), &in_flight, now),
            Answer::Wait { in_flight: 1, .. }
        ));
        assert_eq!(slots.next_in_line(&in_flight, now), Vec::<&str>::new());
        let done = running(&[("a", "r1", true)]);
        assert_eq!(slots.next_in_line(&done, now), vec!["b"]);
        assert_eq!(slots.request(&"b", at(1), &done, now), Answer::Granted);
    }

    #[test]
    fn the_queue_is_oldest_first_by_when_the_other_gates_first_passed() {
        let mut slots = Slots::new(1);
        let now = Instant::now();
        let busy = running(&[("x", "r", false)]);
        // Requests arrive in another order than their gates passed.
        slots.request(&"late", at(30), &busy, now);
        slots.request(&"early", at(10), &busy, now);
        // A second request of `late` with a later time keeps its first time.
        slots.request(&"late", at(50), &busy, now);
        slots.request(&"middle", at(20), &busy, now);
        let free = running(&[("x", "r", true)]);
        assert_eq!(slots.next_in_line(&free, now), vec!["early"]);
        assert!(matches!(
            slots.request(&"late", at(30), &free, now),
            Answer::Wait { position: 3, .. }
        ));
        assert_eq!(slots.request(&"early", at(10), &free, now), Answer::Granted);
    }

    #[test]
    fn a_withdrawn_or_released_workload_frees_its_place() {
        let mut slots = Slots::new(1);
        let now = Instant::now();
        let none = HashMap::new();
        assert_eq!(slots.request(&"a", at(0), &none, now), Answer::Granted);
        assert!(matches!(
            slots.request(&"b", at(1), &none, now),
            Answer::Wait { .. }
        ));
        slots.withdraw(&"b");
        assert_eq!(slots.queue_len(), 0);
        slots.release(&"a");
        assert_eq!(slots.request(&"c", at(2), &none, now), Answer::Granted);
    }

    #[test]
    fn a_reservation_whose_record_never_shows_expires() {
        let mut slots = Slots::new(1);
        let start = Instant::now();
        let none = HashMap::new();
        assert_eq!(slots.request(&"a", at(0), &none, start), Answer::Granted);
        slots.written(&"a", "r1", start);
        assert!(matches!(
            slots.request(&"b", at(1), &none, start + Duration::from_secs(59)),
            Answer::Wait { .. }
        ));
        assert_eq!(
            slots.request(&"b", at(1), &none, start + RESERVATION_TTL),
            Answer::Granted
        );
    }

    #[test]
    fn records_of_a_previous_leader_count_without_any_request_of_ours() {
        // A new leader has no reservations: the records alone fill the slots.
        let mut slots = Slots::new(2);
        let now = Instant::now();
        let inherited = running(&[("a", "r1", false), ("b", "r2", false), ("c", "r3", true)]);
        assert!(matches!(
            slots.request(&"d", at(0), &inherited, now),
            Answer::Wait {
                in_flight: 2,
                position: 1,
                ..
            }
        ));
    }
}
