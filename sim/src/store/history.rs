//! Watch support of the store: replay from the bounded change history, atomic snapshots with
//! a subscription, and compaction (which makes older resourceVersions answer 410 Expired).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::{Change, Expired, Kind, State, Store};

/// Changes to replay, and a receiver for the ones after them.
pub type Replay = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

impl Store {
    /// The changes after `resource_version` still in history, and a receiver for the ones after
    /// them; fails when the history no longer reaches back that far.
    pub fn watch_from(&self, resource_version: u64) -> Result<Replay, Expired> {
        let state = self.lock();
        if resource_version < state.history_floor {
            return Err(Expired {
                requested: resource_version,
                oldest: state.history_floor,
            });
        }
        let replay = state
            .history
            .iter()
            .filter(|c| c.resource_version() > resource_version)
            .cloned()
            .collect();
        Ok((replay, self.inner.shared_tx.subscribe()))
    }

    /// The current objects of a kind (in one namespace or all) and a receiver for every change
    /// after them, taken atomically.
    pub fn snapshot_and_subscribe(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<Arc<Change>>) {
        let state = self.lock();
        let items = state
            .objects
            .get(&kind)
            .map(|m| {
                m.iter()
                    .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
                    .map(|(_, o)| o.clone())
                    .collect()
            })
            .unwrap_or_default();
        (
            items,
            state.resource_version,
            self.inner.shared_tx.subscribe(),
        )
    }

    /// Forgets the change history, so a watch from any older resourceVersion gets 410 Expired.
    pub fn compact(&self) {
        let mut state = self.lock();
        state.history.clear();
        state.history_floor = state.resource_version;
    }

    /// Sets how many changes the history keeps (older ones are compacted away).
    pub fn set_history_limit(&self, limit: usize) {
        let mut state = self.lock();
        state.history_limit = limit.max(1);
        trim_history(&mut state);
    }
}

pub(super) fn trim_history(state: &mut State) {
    while state.history.len() > state.history_limit {
        if let Some(dropped) = state.history.pop_front() {
            state.history_floor = dropped.resource_version();
        }
    }
}
