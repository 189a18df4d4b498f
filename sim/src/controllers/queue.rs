//! The controllers' work queue: each object at most once in line, plus timers for work that is
//! due later (pod start, progress deadlines, image-pull back-off).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::meta::ObjRef;

#[derive(Default)]
pub(crate) struct WorkQueue {
    line: VecDeque<ObjRef>,
    queued: HashSet<ObjRef>,
    timers: BinaryHeap<Reverse<(Instant, ObjRef)>>,
    /// The earliest timer of each object; heap entries that disagree are stale.
    scheduled: HashMap<ObjRef, Instant>,
}

impl WorkQueue {
    /// Queues `r` unless it is already waiting.
    pub fn add(&mut self, r: ObjRef) {
        if self.queued.insert(r.clone()) {
            self.line.push_back(r);
        }
    }

    /// Queues `r` after `delay` (an earlier timer for it wins).
    pub fn add_after(&mut self, r: ObjRef, delay: Duration) {
        let at = Instant::now() + delay;
        if self.scheduled.get(&r).is_some_and(|t| *t <= at) {
            return;
        }
        self.scheduled.insert(r.clone(), at);
        self.timers.push(Reverse((at, r)));
    }

    /// Moves every timer due by `now` into the line.
    pub fn promote_due(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, r))) = self.timers.pop() else {
                break;
            };
            if self.scheduled.get(&r) == Some(&at) {
                self.scheduled.remove(&r);
                self.add(r);
            }
        }
    }

    pub fn pop(&mut self) -> Option<ObjRef> {
        let r = self.line.pop_front()?;
        self.queued.remove(&r);
        Some(r)
    }

    /// When the next timer is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::Kind;

    #[test]
    fn an_object_waits_in_line_once_and_timers_keep_the_earliest() {
        let mut q = WorkQueue::default();
        let a = ObjRef::new(Kind::Pod, "ns", "a");
        q.add(a.clone());
        q.add(a.clone());
        assert_eq!(q.pop(), Some(a.clone()));
        assert_eq!(q.pop(), None);
        q.add_after(a.clone(), Duration::from_secs(60));
        q.add_after(a.clone(), Duration::ZERO);
        q.promote_due(Instant::now());
        assert_eq!(q.pop(), Some(a.clone()));
        q.promote_due(Instant::now() + Duration::from_secs(61));
        assert_eq!(q.pop(), None, "the later, superseded timer is stale");
    }
}
