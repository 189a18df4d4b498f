//! Garbage collection on delete: like the real garbage collector with background propagation,
//! deleting an owner deletes the objects whose ownerReferences name it (Deployment ->
//! ReplicaSets -> Pods), each with its own DELETED change; deleting a Namespace deletes its
//! contents.

use serde_json::Value;

use super::{Key, Kind, State, Store, meta, namespace_of};

impl Store {
    /// Deletes everything in a deleted Namespace (at once; the real server passes through a
    /// `Terminating` phase first).
    pub(super) fn empty_namespace(&self, state: &mut State, namespace: &str) {
        for kind in Kind::ALL.into_iter().filter(|k| k.info().namespaced) {
            let keys: Vec<Key> = state
                .objects
                .get(&kind)
                .map(|m| {
                    m.range((namespace.to_string(), String::new())..)
                        .take_while(|((ns, _), _)| ns == namespace)
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            for key in keys {
                if let Some(removed) = state.objects.get_mut(&kind).and_then(|m| m.remove(&key)) {
                    self.commit_delete(state, kind, &removed);
                }
            }
        }
    }

    /// Deletes, recursively, the namespaced objects whose ownerReferences name `owner`'s uid.
    pub(super) fn collect_garbage(&self, state: &mut State, owner: &Value) {
        let mut pending = vec![owner.clone()];
        while let Some(owner) = pending.pop() {
            let Some(uid) = owner.pointer("/metadata/uid").and_then(Value::as_str) else {
                continue;
            };
            let namespace = namespace_of(&owner).unwrap_or_default().to_string();
            // Only workload objects own anything here; deleting a Pod (the common case during a
            // rollout) must not scan every Pod of the namespace.
            let owned_kinds: &[Kind] = match owner.get("kind").and_then(Value::as_str) {
                Some("Deployment") => &[Kind::ReplicaSet],
                Some("ReplicaSet") => &[Kind::Pod],
                Some("StatefulSet" | "DaemonSet") => &[Kind::Pod, Kind::ControllerRevision],
                _ => &[],
            };
            for &kind in owned_kinds {
                let owned: Vec<Key> = state
                    .objects
                    .get(&kind)
                    .map(|m| {
                        m.range((namespace.clone(), String::new())..)
                            .take_while(|((ns, _), _)| *ns == namespace)
                            .filter(|(_, o)| meta::is_owned_by(o, uid))
                            .map(|(k, _)| k.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                for key in owned {
                    if let Some(removed) = state.objects.get_mut(&kind).and_then(|m| m.remove(&key))
                    {
                        self.commit_delete(state, kind, &removed);
                        pending.push((*removed).clone());
                    }
                }
            }
        }
    }
}
