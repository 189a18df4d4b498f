//! The controllers' informer cache: the watched kinds, kept current from the store's change
//! stream, indexed by controlling owner.
//!
//! Input: a full relist and then every [`Change`]. Output: fast reads of objects and of the
//! children of an owner, so one reconcile costs O(its own children) and thousands of workloads
//! do not mean thousands of full-namespace listings.
//!
//! Why resourceVersion checks: a controller puts the result of its own write into the cache at
//! once (so its next reconcile sees it), while the change event for that write, or an older one,
//! may still be queued; an object is never replaced by an older version of itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::meta::{self, ObjRef};
use crate::store::{Change, ChangeType, Kind, Store};

/// The kinds the controllers read.
pub(crate) const WATCHED: [Kind; 7] = [
    Kind::Deployment,
    Kind::ReplicaSet,
    Kind::StatefulSet,
    Kind::DaemonSet,
    Kind::ControllerRevision,
    Kind::Pod,
    Kind::Node,
];

type Key = (String, String);

#[derive(Default)]
pub(crate) struct Cache {
    objects: HashMap<Kind, BTreeMap<Key, Value>>,
    /// Controller uid → children.
    children: HashMap<String, BTreeSet<ObjRef>>,
}

impl Cache {
    /// Replaces the whole cache with the store's current content.
    pub fn relist(&mut self, store: &Store) {
        *self = Cache::default();
        for kind in WATCHED {
            for obj in store.list(kind, None) {
                self.upsert(kind, obj);
            }
        }
    }

    /// Applies one change; returns false for kinds that are not watched.
    pub fn apply(&mut self, change: &Change) -> bool {
        if !WATCHED.contains(&change.kind) {
            return false;
        }
        match change.change_type {
            ChangeType::Added | ChangeType::Modified => {
                self.upsert(change.kind, change.object.clone())
            }
            ChangeType::Deleted => {
                let r = ObjRef::of(change.kind, &change.object);
                let newer = self
                    .get(&r)
                    .and_then(meta::resource_version)
                    .zip(meta::resource_version(&change.object))
                    .is_some_and(|(cached, deleted)| cached > deleted);
                if !newer {
                    self.remove(&r);
                }
            }
        }
        true
    }

    /// Stores `obj` unless the cache already holds a newer version of it.
    pub fn upsert(&mut self, kind: Kind, obj: Value) {
        let r = ObjRef::of(kind, &obj);
        let cached = self.get(&r).and_then(meta::resource_version);
        if cached
            .zip(meta::resource_version(&obj))
            .is_some_and(|(a, b)| a > b)
        {
            return;
        }
        self.remove(&r);
        if let Some((_, _, owner)) = meta::controller_of(&obj) {
            self.children
                .entry(owner.to_string())
                .or_default()
                .insert(r.clone());
        }
        self.objects
            .entry(kind)
            .or_default()
            .insert((r.namespace, r.name), obj);
    }

    /// Forgets an object; returns it.
    pub fn remove(&mut self, r: &ObjRef) -> Option<Value> {
        let old = self
            .objects
            .get_mut(&r.kind)?
            .remove(&(r.namespace.clone(), r.name.clone()))?;
        if let Some((_, _, owner)) = meta::controller_of(&old)
            && let Some(set) = self.children.get_mut(owner)
        {
            set.remove(r);
            if set.is_empty() {
                self.children.remove(owner);
            }
        }
        Some(old)
    }

    pub fn get(&self, r: &ObjRef) -> Option<&Value> {
        self.objects
            .get(&r.kind)?
            .get(&(r.namespace.clone(), r.name.clone()))
    }

    /// Every cached object of `kind`.
    pub fn all(&self, kind: Kind) -> impl Iterator<Item = &Value> {
        self.objects
            .get(&kind)
            .into_iter()
            .flat_map(BTreeMap::values)
    }

    /// The `kind` objects controlled by the object with `owner_uid`.
    pub fn children(&self, owner_uid: &str, kind: Kind) -> Vec<&Value> {
        self.children
            .get(owner_uid)
            .into_iter()
            .flatten()
            .filter(|r| r.kind == kind)
            .filter_map(|r| self.get(r))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, rv: &str, owner: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv,
            "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "uid": owner, "controller": true}]}})
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let mut c = Cache::default();
        c.upsert(Kind::Pod, pod("p", "7", "u1"));
        c.upsert(Kind::Pod, pod("p", "5", "u1"));
        let r = ObjRef::new(Kind::Pod, "ns", "p");
        assert_eq!(meta::resource_version(c.get(&r).unwrap()), Some(7));
        let stale_delete = Change {
            kind: Kind::Pod,
            change_type: ChangeType::Deleted,
            object: pod("p", "6", "u1"),
        };
        c.apply(&stale_delete);
        assert!(c.get(&r).is_some());
    }

    #[test]
    fn children_follow_the_controlling_owner() {
        let mut c = Cache::default();
        c.upsert(Kind::Pod, pod("a", "1", "u1"));
        c.upsert(Kind::Pod, pod("b", "2", "u1"));
        c.upsert(Kind::Pod, pod("c", "3", "u2"));
        assert_eq!(c.children("u1", Kind::Pod).len(), 2);
        c.remove(&ObjRef::new(Kind::Pod, "ns", "a"));
        assert_eq!(c.children("u1", Kind::Pod).len(), 1);
        assert!(c.children("u1", Kind::ReplicaSet).is_empty());
    }
}
