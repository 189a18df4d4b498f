//! The `pending` annotation and the `min-age` choice (docs/annotations.md#min-age).
//!
//! Input: the annotation `{"<container>":[{"image":"repo:tag@sha256:…","firstSeen":"<RFC 3339>"},…]}`,
//! a container's candidates best-first ([`AgeCandidate`]), `min-age` and `now`. Output: [`select`]'s
//! [`AgeSelection`]: the highest candidate seen for at least `min-age`, the container's new pending list,
//! and the better candidates still waiting with the time each ripens.
//!
//! Rules (docs/annotations.md#pending):
//! - a candidate's first-seen time is its entry's, or `now` when it has none;
//! - candidates are taken best-first among those old enough, so a stream of releases never starves the
//!   workload: a lower candidate that has waited long enough is taken while a newer one ages;
//! - the new list keeps the candidates looked at down to the one chosen (it stays until it is actually
//!   taken, as a window or a hold may delay it); excluded candidates (quarantined, skipped), and entries that
//!   are no longer candidates, leave;
//! - at most [`PENDING_LIMIT`] entries per container, the oldest first-seen times kept: they ripen first,
//!   and a newer candidate enters when one leaves.
//!
//! An unreadable annotation is a [`PendingError`] the caller reports. The caller may then start from an empty
//! list: that can only make updates later, never earlier, so it is safe to rewrite (docs/threat-model.md).

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The most entries kept per container.
pub const PENDING_LIMIT: usize = 10;

/// One candidate waiting for `min-age`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingEntry {
    /// The candidate, pinned: `repo:tag@sha256:…`.
    pub image: String,
    /// When the controller first saw it.
    pub first_seen: DateTime<Utc>,
}

/// The `pending` annotation: container name → entries, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pending {
    containers: BTreeMap<String, Vec<PendingEntry>>,
}

/// The annotation cannot be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "failed to read the pending annotation: expected JSON like \
     {{\"app\":[{{\"image\":\"app:1.2.0@sha256:…\",\"firstSeen\":\"2026-01-01T00:00:00Z\"}}]}}"
)]
pub struct PendingError(#[source] pub serde_json::Error);

impl PendingError {
    /// A short, bounded category for Event reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        "PendingUnreadable"
    }
}

impl Pending {
    /// Reads the annotation value; an empty value is an empty list. Each container's entries are sorted
    /// oldest first, one per image (the oldest), and cut to [`PENDING_LIMIT`].
    pub fn from_annotation(value: &str) -> Result<Pending, PendingError> {
        if value.trim().is_empty() {
            return Ok(Pending::default());
        }
        let mut pending: Pending = serde_json::from_str(value).map_err(PendingError)?;
        for entries in pending.containers.values_mut() {
            normalise(entries);
        }
        pending.containers.retain(|_, entries| !entries.is_empty());
        Ok(pending)
    }

    /// The annotation value; the empty string when there is no entry (the annotation is then removed).
    pub fn to_annotation(&self) -> String {
        if self.containers.is_empty() {
            return String::new();
        }
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A container's entries, oldest first.
    pub fn entries(&self, container: &str) -> &[PendingEntry] {
        self.containers.get(container).map_or(&[], Vec::as_slice)
    }

    /// Replaces a container's entries (normalised as in [`Pending::from_annotation`]); none removes it.
    pub fn set(&mut self, container: &str, mut entries: Vec<PendingEntry>) {
        normalise(&mut entries);
        if entries.is_empty() {
            self.containers.remove(container);
        } else {
            self.containers.insert(container.to_owned(), entries);
        }
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }
}

/// Oldest first (stable, so equal times keep the caller's order), one entry per image, at most the limit.
fn normalise(entries: &mut Vec<PendingEntry>) {
    entries.sort_by_key(|e| e.first_seen);
    let mut seen = std::collections::BTreeSet::new();
    entries.retain(|e| seen.insert(e.image.clone()));
    entries.truncate(PENDING_LIMIT);
}

/// One candidate of a container, as [`select`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeCandidate {
    /// The image that would be written, pinned: `repo:tag@sha256:…`.
    pub image: String,
    /// Its tag.
    pub tag: String,
    /// Its digest.
    pub digest: String,
    /// Quarantined or skipped: never taken, and its entry leaves.
    pub excluded: bool,
}

/// A candidate better than the one chosen, still too new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCandidate {
    /// Its index in the candidates given to [`select`].
    pub index: usize,
    /// When it was first seen.
    pub first_seen: DateTime<Utc>,
    /// When it becomes old enough.
    pub ripens_at: DateTime<Utc>,
}

/// What [`select`] found for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeSelection {
    /// The index of the candidate to take, if one is old enough.
    pub chosen: Option<usize>,
    /// The container's new pending entries, oldest first.
    pub pending: Vec<PendingEntry>,
    /// The better candidates still waiting, best first (only those kept in `pending`: one cut by the limit
    /// would start over at its next check, so it has no ripening time yet).
    pub held: Vec<HeldCandidate>,
}

impl AgeSelection {
    /// When to check again: the earliest time a held candidate ripens.
    pub fn recheck_at(&self) -> Option<DateTime<Utc>> {
        self.held.iter().map(|h| h.ripens_at).min()
    }
}

/// Chooses the highest candidate first seen at least `min_age` before `now` (see the module docs).
pub fn select(
    candidates: &[AgeCandidate],
    pending: &[PendingEntry],
    min_age: Duration,
    now: DateTime<Utc>,
) -> AgeSelection {
    // A min-age beyond chrono's range can never be met: nothing ripens.
    let min_age = chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
    let mut seen: Vec<(usize, DateTime<Utc>)> = Vec::new();
    let mut chosen = None;
    for (index, candidate) in candidates.iter().enumerate() {
        if candidate.excluded {
            continue;
        }
        let first_seen = pending
            .iter()
            .find(|e| e.image == candidate.image)
            .map_or(now, |e| e.first_seen);
        seen.push((index, first_seen));
        if first_seen
            .checked_add_signed(min_age)
            .is_some_and(|ripe| ripe <= now)
        {
            chosen = Some(index);
            break;
        }
    }
    let mut entries: Vec<PendingEntry> = seen
        .iter()
        .map(|(index, first_seen)| PendingEntry {
            image: candidates[*index].image.clone(),
            first_seen: *first_seen,
        })
        .collect();
    normalise(&mut entries);
    let held = seen
        .iter()
        .filter(|(index, _)| Some(*index) != chosen)
        .filter(|(index, _)| entries.iter().any(|e| e.image == candidates[*index].image))
        .filter_map(|(index, first_seen)| {
            Some(HeldCandidate {
                index: *index,
                first_seen: *first_seen,
                ripens_at: first_seen.checked_add_signed(min_age)?,
            })
        })
        .collect();
    AgeSelection {
        chosen,
        pending: entries,
        held,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn t(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, hour, 0, 0).unwrap()
    }

    fn candidate(tag: &str) -> AgeCandidate {
        AgeCandidate {
            image: format!("app:{tag}@sha256:{tag}"),
            tag: tag.into(),
            digest: format!("sha256:{tag}"),
            excluded: false,
        }
    }

    fn entry(tag: &str, hour: u32) -> PendingEntry {
        PendingEntry {
            image: format!("app:{tag}@sha256:{tag}"),
            first_seen: t(hour),
        }
    }

    #[test]
    fn a_new_candidate_is_recorded_and_held_until_it_is_old_enough() {
        let candidates = [candidate("1.1.0")];
        let first = select(&candidates, &[], 2 * HOUR, t(1));
        assert_eq!(first.chosen, None);
        assert_eq!(first.pending, [entry("1.1.0", 1)]);
        assert_eq!(first.held.len(), 1);
        assert_eq!(first.recheck_at(), Some(t(3)));
        // An hour later: still held, first-seen unchanged.
        let later = select(&candidates, &first.pending, 2 * HOUR, t(2));
        assert_eq!(later.chosen, None);
        assert_eq!(later.pending, [entry("1.1.0", 1)]);
        // At exactly first-seen + min-age it is taken, and stays listed until it is applied.
        let ripe = select(&candidates, &later.pending, 2 * HOUR, t(3));
        assert_eq!(ripe.chosen, Some(0));
        assert_eq!(ripe.pending, [entry("1.1.0", 1)]);
        assert!(ripe.held.is_empty());
    }

    #[test]
    fn the_highest_old_enough_candidate_is_taken_while_newer_ones_age() {
        let candidates = [candidate("1.3.0"), candidate("1.2.0"), candidate("1.1.0")];
        let pending = [entry("1.2.0", 1), entry("1.3.0", 4), entry("1.1.0", 0)];
        let s = select(&candidates, &pending, 2 * HOUR, t(5));
        assert_eq!(s.chosen, Some(1));
        // 1.1.0 is below the choice: it leaves.
        assert_eq!(s.pending, [entry("1.2.0", 1), entry("1.3.0", 4)]);
        assert_eq!(s.held.len(), 1);
        assert_eq!(s.held[0].index, 0);
        assert_eq!(s.held[0].ripens_at, t(6));
    }

    #[test]
    fn excluded_candidates_are_passed_over_and_their_entries_leave() {
        let mut quarantined = candidate("1.3.0");
        quarantined.excluded = true;
        let candidates = [quarantined, candidate("1.2.0")];
        let pending = [entry("1.3.0", 0), entry("1.2.0", 0), entry("9.9.9", 0)];
        let s = select(&candidates, &pending, HOUR, t(5));
        assert_eq!(s.chosen, Some(1));
        assert_eq!(s.pending, [entry("1.2.0", 0)]);
    }

    #[test]
    fn at_most_ten_entries_are_kept_the_oldest_first() {
        let tags: Vec<String> = (0..12).map(|i| format!("1.{}.0", 12 - i)).collect();
        let candidates: Vec<AgeCandidate> = tags.iter().map(|t| candidate(t)).collect();
        // The eleven highest are known (seen at hours 12 - i); the lowest is new.
        let pending: Vec<PendingEntry> = tags[..11]
            .iter()
            .enumerate()
            .map(|(i, tag)| entry(tag, 12 - u32::try_from(i).unwrap()))
            .collect();
        let s = select(&candidates, &pending, 24 * HOUR, t(13));
        assert_eq!(s.chosen, None);
        assert_eq!(s.pending.len(), PENDING_LIMIT);
        assert_eq!(s.pending[0].first_seen, t(2));
        assert_eq!(s.pending[9].first_seen, t(11));
        // The newest (1.12.0, hour 12) and the unseen lowest were cut: they are not reported as held.
        assert_eq!(s.held.len(), PENDING_LIMIT);
        assert!(s.held.iter().all(|h| h.index != 0 && h.index != 11));
        assert_eq!(s.recheck_at(), Some(t(2) + chrono::Duration::hours(24)));
    }

    #[test]
    fn the_annotation_round_trips_and_an_empty_one_is_removed() {
        let mut pending = Pending::default();
        assert_eq!(pending.to_annotation(), "");
        pending.set("app", vec![entry("1.2.0", 3), entry("1.1.0", 1)]);
        let value = pending.to_annotation();
        assert_eq!(
            value,
            r#"{"app":[{"image":"app:1.1.0@sha256:1.1.0","firstSeen":"2026-01-01T01:00:00Z"},{"image":"app:1.2.0@sha256:1.2.0","firstSeen":"2026-01-01T03:00:00Z"}]}"#
        );
        assert_eq!(Pending::from_annotation(&value).unwrap(), pending);
        pending.set("app", Vec::new());
        assert!(pending.is_empty());
        assert!(Pending::from_annotation(" ").unwrap().is_empty());
    }

    #[test]
    fn a_garbled_annotation_is_an_error_and_duplicates_keep_the_oldest() {
        let err = Pending::from_annotation("{\"app\":[1]}").unwrap_err();
        assert_eq!(err.reason(), "PendingUnreadable");
        assert!(err.to_string().contains("firstSeen"), "{err}");
        let twice = r#"{"app":[{"image":"a","firstSeen":"2026-01-01T05:00:00Z"},{"image":"a","firstSeen":"2026-01-01T01:00:00Z"}]}"#;
        let pending = Pending::from_annotation(twice).unwrap();
        assert_eq!(pending.entries("app").len(), 1);
        assert_eq!(pending.entries("app")[0].first_seen, t(1));
    }
}
