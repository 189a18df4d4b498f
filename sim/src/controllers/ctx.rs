//! What a reconcile works with: the store to write to, the cache to read from, the
//! configuration, and write helpers that keep the cache current.
//!
//! Writes carry the resourceVersion read from the cache as a precondition. A failed write
//! (typically a 409 Conflict because the object moved on) refreshes that object in the cache
//! and returns an error; the runner then requeues the key, as real controllers do.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ControllerConfig;
use super::cache::Cache;
use super::meta::ObjRef;
use crate::store::{Kind, Store, StoreError};

/// A write to the store failed; the reconcile is retried.
#[derive(Debug, thiserror::Error)]
#[error("failed to write {target}")]
pub(crate) struct WriteError {
    /// `Kind namespace/name`.
    target: String,
    #[source]
    source: Box<StoreError>,
}

pub(crate) type Requeue = Result<Option<Duration>, WriteError>;

pub(crate) struct Ctx<'a> {
    pub store: &'a Store,
    pub cache: &'a mut Cache,
    pub cfg: &'a ControllerConfig,
    /// Deployments: when the current `Progressing` `lastUpdateTime` was written, to the
    /// sub-second precision the whole-second timestamp lacks (time is scaled in tests).
    pub marks: &'a mut HashMap<ObjRef, (String, Instant)>,
}

impl Ctx<'_> {
    pub fn create(&mut self, kind: Kind, obj: Value) -> Result<Value, WriteError> {
        let r = ObjRef::of(kind, &obj);
        let created = self
            .store
            .create(kind, obj)
            .map_err(|e| self.failed(&r, e))?;
        self.cache.upsert(kind, created.clone());
        Ok(created)
    }

    pub fn update(&mut self, kind: Kind, obj: Value) -> Result<Value, WriteError> {
        let r = ObjRef::of(kind, &obj);
        let updated = self
            .store
            .update(kind, obj)
            .map_err(|e| self.failed(&r, e))?;
        self.cache.upsert(kind, updated.clone());
        Ok(updated)
    }

    pub fn update_status(&mut self, kind: Kind, obj: Value) -> Result<Value, WriteError> {
        let r = ObjRef::of(kind, &obj);
        let updated = self
            .store
            .update_status(kind, obj)
            .map_err(|e| self.failed(&r, e))?;
        self.cache.upsert(kind, updated.clone());
        Ok(updated)
    }

    /// Deletes an object; one that is already gone counts as deleted.
    pub fn delete(&mut self, r: &ObjRef) -> Result<(), WriteError> {
        match self.store.delete(r.kind, r.ns(), &r.name) {
            Ok(_) | Err(StoreError::NotFound { .. }) => {
                self.cache.remove(r);
                Ok(())
            }
            Err(e) => Err(self.failed(r, e)),
        }
    }

    /// `seconds` of simulated time as real time, under the configured time scale.
    pub fn scaled(&self, seconds: f64) -> Duration {
        self.cfg.scaled(seconds)
    }

    fn failed(&mut self, r: &ObjRef, source: StoreError) -> WriteError {
        match self.store.get(r.kind, r.ns(), &r.name) {
            Some(fresh) => self.cache.upsert(r.kind, fresh),
            None => {
                self.cache.remove(r);
            }
        }
        WriteError {
            target: format!("{:?} {}/{}", r.kind, r.namespace, r.name),
            source: Box::new(source),
        }
    }
}
