//! The object store of the simulated cluster: every object as JSON, one global resourceVersion
//! counter, per-kind ordered maps, a bounded change history for watch replay, and a broadcast
//! channel that fans every committed change out to watchers and controllers.
//!
//! Input: create/update/update_status/delete calls (from the HTTP layer and the simulated
//! controllers). Output: the stored objects, and [`Change`]s in resourceVersion order.
//!
//! Why one lock: a change, its resourceVersion, its history entry and its broadcast must be one
//! atomic step, so a watcher that subscribes under the same lock sees no gap and no duplicate.
//! Objects are kept behind `Arc` so that listing copies pointers, not documents, while the lock
//! is held.

mod defaults;
mod error;
mod gc;
mod history;
mod kind;
mod manifest;
mod meta;
mod validate;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

pub use error::{Expired, StoreError};
pub use kind::{Kind, KindInfo};
pub use manifest::{ManifestError, load_yaml, load_yaml_lenient};
pub use meta::{name_of, namespace_of, new_uid, now_rfc3339, resource_version_of};

/// How many changes the history keeps for watch replay by default.
pub const DEFAULT_HISTORY_LIMIT: usize = 20_000;
/// Capacity of the broadcast channel; a watcher lagging further behind is disconnected.
const BROADCAST_CAPACITY: usize = 16_384;

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One committed change; `object` is the object after the change (for `Deleted`, the last
/// state, carrying the resourceVersion of the deletion).
#[derive(Clone, Debug)]
pub struct Change {
    pub kind: Kind,
    pub change_type: ChangeType,
    pub object: Value,
}

impl Change {
    /// The resourceVersion at which this change was committed.
    pub fn resource_version(&self) -> u64 {
        resource_version_of(&self.object).unwrap_or(0)
    }
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Arc<Value>>,
    /// Key (namespace, name) of the last item when more items follow.
    pub next: Option<(String, String)>,
    /// The store's resourceVersion when the page was read.
    pub resource_version: u64,
}

type Key = (String, String);

struct State {
    resource_version: u64,
    objects: HashMap<Kind, BTreeMap<Key, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    /// Watches may start at any resourceVersion >= this.
    history_floor: u64,
    history_limit: usize,
}

struct Inner {
    state: Mutex<State>,
    /// Changes for [`Store::subscribe`] (the contract's owned `Change`s).
    tx: broadcast::Sender<Change>,
    /// The same changes, shared, for API watches: no copy per watcher.
    shared_tx: broadcast::Sender<Arc<Change>>,
}

/// The shared object store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// An empty store at resourceVersion 1 (so "0" is always older than anything).
    pub fn new() -> Store {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (shared_tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let state = State {
            resource_version: 1,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_floor: 1,
            history_limit: DEFAULT_HISTORY_LIMIT,
        };
        Store {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                tx,
                shared_tx,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    /// One object, if stored.
    pub fn get(&self, kind: Kind, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.get_arc(kind, namespace, name).map(|o| (*o).clone())
    }

    /// One object without copying it.
    pub fn get_arc(&self, kind: Kind, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        let key = key_of(kind, namespace, name);
        self.lock()
            .objects
            .get(&kind)
            .and_then(|m| m.get(&key))
            .cloned()
    }

    /// All objects of a kind, in one namespace or (None) in all namespaces, ordered by key.
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> Vec<Value> {
        self.page(kind, namespace, None, usize::MAX, |_| true)
            .items
            .into_iter()
            .map(|o| (*o).clone())
            .collect()
    }

    /// Up to `limit` objects matching `filter`, after key `after`, plus the key to continue from.
    pub fn page(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        after: Option<&Key>,
        limit: usize,
        filter: impl Fn(&Value) -> bool,
    ) -> Page {
        let state = self.lock();
        let mut items = Vec::new();
        let mut next = None;
        if let Some(map) = state.objects.get(&kind) {
            let start = match (after, namespace) {
                (Some(k), _) => std::ops::Bound::Excluded(k.clone()),
                (None, Some(ns)) => std::ops::Bound::Included((ns.to_string(), String::new())),
                (None, None) => std::ops::Bound::Unbounded,
            };
            let range = map.range((start, std::ops::Bound::Unbounded));
            for ((ns, _), obj) in range {
                if namespace.is_some_and(|want| want != ns) {
                    break;
                }
                if !filter(obj) {
                    continue;
                }
                if items.len() == limit {
                    next = items.last().map(|o: &Arc<Value>| key_of_object(kind, o));
                    break;
                }
                items.push(obj.clone());
            }
        }
        Page {
            items,
            next,
            resource_version: state.resource_version,
        }
    }

    /// Stores a new object: defaults, uid, creationTimestamp, resourceVersion, generation,
    /// and a name from `generateName`.
    pub fn create(&self, kind: Kind, object: Value) -> Result<Value, StoreError> {
        let mut object = object;
        meta::prepare_new(kind, &mut object)?;
        defaults::apply(kind, &mut object);
        let mut state = self.lock();
        let map = state.objects.entry(kind).or_default();
        if meta::has_generate_name_only(&object) {
            meta::generate_name(&mut object, |key| map.contains_key(key), kind);
        }
        let key = key_of_object(kind, &object);
        validate::validate(kind, &object)?;
        if map.contains_key(&key) {
            return Err(StoreError::AlreadyExists {
                kind,
                resource: kind.qualified_plural(),
                name: key.1,
            });
        }
        meta::stamp_created(kind, &mut object);
        Ok(self.commit(&mut state, kind, ChangeType::Added, object))
    }

    /// Replaces an object except its `status` (for kinds with a status subresource).
    /// `metadata.resourceVersion`, when set, must match the stored one.
    pub fn update(&self, kind: Kind, object: Value) -> Result<Value, StoreError> {
        let mut object = object;
        defaults::apply(kind, &mut object);
        let mut state = self.lock();
        let old = current(&state, kind, &object)?;
        let mut new = object;
        if kind.info().has_status {
            meta::copy_field(&old, &mut new, "status");
        }
        meta::carry_over(kind, &old, &mut new);
        validate::validate(kind, &new)?;
        Ok(self.commit_update(&mut state, kind, &old, new, Write::Object))
    }

    /// Replaces only the `status` of an object; `metadata.resourceVersion`, when set, must match.
    pub fn update_status(&self, kind: Kind, object: Value) -> Result<Value, StoreError> {
        let mut state = self.lock();
        let old = current(&state, kind, &object)?;
        let mut new = (*old).clone();
        meta::copy_field(&object, &mut new, "status");
        // Kubernetes' Deployment status strategy keeps the annotations of the request (its controller
        // writes `deployment.kubernetes.io/revision` that way), never the spec or labels.
        if kind == Kind::Deployment
            && let Some(annotations) = object.pointer("/metadata/annotations")
        {
            new["metadata"]["annotations"] = annotations.clone();
        }
        Ok(self.commit_update(&mut state, kind, &old, new, Write::Status))
    }

    /// Removes an object (and, like the garbage collector with background propagation, the
    /// objects it owns); returns the removed object with the deletion's resourceVersion.
    pub fn delete(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, StoreError> {
        let mut state = self.lock();
        let key = key_of(kind, namespace, name);
        let removed = state
            .objects
            .get_mut(&kind)
            .and_then(|m| m.remove(&key))
            .ok_or_else(|| StoreError::not_found(kind, name))?;
        let deleted = self.commit_delete(&mut state, kind, &removed);
        if kind == Kind::Namespace {
            self.empty_namespace(&mut state, name);
        }
        self.collect_garbage(&mut state, &removed);
        Ok(deleted)
    }

    /// Every committed change from now on, in resourceVersion order.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.tx.subscribe()
    }

    fn commit_update(
        &self,
        state: &mut State,
        kind: Kind,
        old: &Arc<Value>,
        mut new: Value,
        write: Write,
    ) -> Value {
        meta::set_resource_version(&mut new, resource_version_of(old).unwrap_or(0));
        if new == **old {
            // A no-op write changes nothing and notifies nobody, as in Kubernetes.
            return new;
        }
        // Kubernetes bumps a Deployment's generation on annotation changes too (they are copied to its
        // ReplicaSets); other kinds only on spec changes.
        let annotations = |o: &Value| o.pointer("/metadata/annotations").cloned();
        let bumps = old.get("spec") != new.get("spec")
            || (kind == Kind::Deployment && annotations(old) != annotations(&new));
        if kind.info().has_generation && write == Write::Object && bumps {
            meta::bump_generation(&mut new);
        }
        self.commit(state, kind, ChangeType::Modified, new)
    }

    fn commit(
        &self,
        state: &mut State,
        kind: Kind,
        change_type: ChangeType,
        mut object: Value,
    ) -> Value {
        state.resource_version += 1;
        meta::set_resource_version(&mut object, state.resource_version);
        let key = key_of_object(kind, &object);
        state
            .objects
            .entry(kind)
            .or_default()
            .insert(key, Arc::new(object.clone()));
        self.record(
            state,
            Change {
                kind,
                change_type,
                object: object.clone(),
            },
        );
        object
    }

    fn commit_delete(&self, state: &mut State, kind: Kind, removed: &Value) -> Value {
        state.resource_version += 1;
        let mut object = removed.clone();
        meta::set_resource_version(&mut object, state.resource_version);
        self.record(
            state,
            Change {
                kind,
                change_type: ChangeType::Deleted,
                object: object.clone(),
            },
        );
        object
    }

    fn record(&self, state: &mut State, change: Change) {
        let change = Arc::new(change);
        state.history.push_back(change.clone());
        history::trim_history(state);
        // A send without receivers fails harmlessly: nobody is watching.
        if self.inner.tx.receiver_count() > 0 {
            let _ = self.inner.tx.send((*change).clone());
        }
        let _ = self.inner.shared_tx.send(change);
    }
}

/// The stored object `object` refers to by name, checking its resourceVersion precondition.
fn current(state: &State, kind: Kind, object: &Value) -> Result<Arc<Value>, StoreError> {
    let key = key_of_object(kind, object);
    let old = state
        .objects
        .get(&kind)
        .and_then(|m| m.get(&key))
        .cloned()
        .ok_or_else(|| StoreError::not_found(kind, &key.1))?;
    let wanted = object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty());
    if let Some(wanted) = wanted {
        let stored = old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        if stored != Some(wanted) {
            return Err(StoreError::Conflict {
                kind,
                resource: kind.qualified_plural(),
                name: key.1,
            });
        }
    }
    Ok(old)
}

fn key_of(kind: Kind, namespace: Option<&str>, name: &str) -> Key {
    let ns = if kind.info().namespaced {
        namespace.unwrap_or_default()
    } else {
        ""
    };
    (ns.to_string(), name.to_string())
}

fn key_of_object(kind: Kind, object: &Value) -> Key {
    key_of(
        kind,
        namespace_of(object),
        name_of(object).unwrap_or_default(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

/// Which endpoint an update came through: only the object's own bumps its generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Object,
    Status,
}
