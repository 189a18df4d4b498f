//! Watch streams: newline-delimited JSON events (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`,
//! `ERROR`) replayed from the store's history or started with synthetic ADDED events, then
//! fed by the store's broadcast. Honours `timeoutSeconds`, `allowWatchBookmarks` (bookmarks carry
//! the global resourceVersion), `sendInitialEvents` (ended by an `initial-events-end` bookmark),
//! and answers a too-old resourceVersion with an in-stream 410 `Expired` on an HTTP 200 stream,
//! as the real server does (an HTTP-level 410 would make kube's watcher retry forever).

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use super::faults::Faults;
use super::handlers::Request;
use super::present::Presenter;
use super::status::ApiError;
use crate::store::{Change, ChangeType, Expired, Kind, Store, name_of, namespace_of};

type Filter = Box<dyn Fn(&Value) -> bool + Send + Sync>;

/// How the stream begins.
enum Start {
    /// Synthetic ADDED events for the current objects; `end_marker` adds the initial-events-end bookmark.
    Initial {
        items: Vec<Arc<Value>>,
        resource_version: u64,
        end_marker: bool,
    },
    /// The history after the requested resourceVersion.
    Replay(Vec<Arc<Change>>),
    /// The requested resourceVersion is compacted away.
    Expired(Expired),
}

struct Watch {
    /// With a selector: keys of the objects the client currently sees as matching, so that an
    /// object leaving the selection is reported DELETED and one entering it ADDED, as the
    /// real watch cache does. `None` without a selector.
    matching: Option<Mutex<HashSet<(String, String)>>>,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    kind: Kind,
    namespace: Option<String>,
    filter: Filter,
    presenter: Presenter,
    bookmarks: bool,
    store: Store,
    faults: Faults,
    bookmark_interval: Duration,
    deadline: Instant,
}

/// Starts a watch; errors in the parameters are ordinary HTTP errors.
pub(crate) fn serve(app: &AppState, req: &Request<'_>) -> Response {
    match start(app, req) {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

fn start(app: &AppState, req: &Request<'_>) -> Result<Response, ApiError> {
    let p = req.path;
    let selection = req.filter()?;
    // A watch on an object's own path is a watch filtered to its name.
    let only = p.name.clone();
    let filter: Filter = Box::new(move |o: &Value| {
        only.as_deref().is_none_or(|n| name_of(o) == Some(n)) && selection(o)
    });
    let bookmarks = req.flag("allowWatchBookmarks");
    let send_initial = req.param("sendInitialEvents");
    if send_initial == Some("true")
        && (req.param("resourceVersionMatch") != Some("NotOlderThan") || !bookmarks)
    {
        return Err(ApiError::new(
            422,
            "Invalid",
            "sendInitialEvents requires resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true",
        ));
    }
    let requested = match req.param("resourceVersion") {
        None | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
        ),
    };
    let timeout = match req.param("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| ApiError::bad_request("invalid timeoutSeconds"))?,
        ),
        None => app.config.default_watch_timeout,
    };
    let namespace = p.namespace.as_deref();
    let (start, rx) = match (send_initial, requested) {
        (Some("true"), _) | (None, None) => {
            let (items, resource_version, rx) = app.store.snapshot_and_subscribe(p.kind, namespace);
            let end_marker = send_initial == Some("true");
            (
                Start::Initial {
                    items,
                    resource_version,
                    end_marker,
                },
                Some(rx),
            )
        }
        (_, requested) => match app
            .store
            .watch_from(requested.unwrap_or_else(|| app.store.resource_version()))
        {
            Ok((replay, rx)) => (Start::Replay(replay), Some(rx)),
            Err(expired) => (Start::Expired(expired), None),
        },
    };
    let selective = req.param("labelSelector").is_some()
        || req.param("fieldSelector").is_some()
        || p.name.is_some();
    let matching = selective.then(|| {
        // For a replay, the objects matching now stand in for those matching at the start.
        let current = match &start {
            Start::Initial { .. } | Start::Expired(_) => Vec::new(),
            Start::Replay(_) => app.store.snapshot_and_subscribe(p.kind, namespace).0,
        };
        let keys = current
            .iter()
            .filter(|o| filter(o))
            .map(|o| key(o))
            .collect();
        Mutex::new(keys)
    });
    let (tx, body_rx) = mpsc::channel(64);
    let watch = Watch {
        matching,
        tx,
        kind: p.kind,
        namespace: p.namespace.clone(),
        filter,
        presenter: req.presenter(),
        bookmarks,
        store: app.store.clone(),
        faults: app.faults.clone(),
        bookmark_interval: app.config.bookmark_interval,
        deadline: Instant::now() + timeout,
    };
    // Subscribed before answering, so a drop requested after the answer is never missed.
    let drops = app.faults.watch_drops();
    tokio::spawn(watch.run(start, rx, drops));
    let mut response = Response::new(Body::from_stream(ReceiverStream::new(body_rx)));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

impl Watch {
    async fn run(
        self,
        start: Start,
        rx: Option<broadcast::Receiver<Arc<Change>>>,
        mut drops: tokio::sync::watch::Receiver<u64>,
    ) {
        if !self.begin(start).await {
            return;
        }
        let Some(mut rx) = rx else { return };
        let mut ticker = tokio::time::interval_at(
            Instant::now() + self.bookmark_interval,
            self.bookmark_interval,
        );
        loop {
            let keep_going = tokio::select! {
                received = rx.recv() => match received {
                    Ok(change) => self.on_change(&change).await,
                    // Lagging or closed: end the stream; the client re-watches from its last RV.
                    Err(_) => false,
                },
                _ = ticker.tick() => self.bookmark(&mut rx).await,
                () = tokio::time::sleep_until(self.deadline) => false,
                _ = drops.changed() => false,
                () = self.tx.closed() => false,
            };
            if !keep_going {
                return;
            }
        }
    }

    /// Sends the initial events, replay, or expiry error; false when the stream is over.
    async fn begin(&self, start: Start) -> bool {
        match start {
            Start::Initial {
                items,
                resource_version,
                end_marker,
            } => {
                for item in items.iter().filter(|o| (self.filter)(o)) {
                    self.track(item, true);
                    if !self.send("ADDED", &self.presenter.present(item)).await {
                        return false;
                    }
                }
                if end_marker {
                    let mut marker = self.bookmark_object(resource_version);
                    marker["metadata"]["annotations"] =
                        json!({"k8s.io/initial-events-end": "true"});
                    return self.send("BOOKMARK", &marker).await;
                }
                true
            }
            Start::Replay(changes) => {
                for change in &changes {
                    if !self.on_change(change).await {
                        return false;
                    }
                }
                true
            }
            Start::Expired(expired) => {
                let status = ApiError::new(410, "Expired", expired.to_string()).status();
                self.send("ERROR", &status).await;
                false
            }
        }
    }

    /// Sends the event a change makes for this watch.
    async fn on_change(&self, change: &Change) -> bool {
        let in_scope = change.kind == self.kind
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| namespace_of(&change.object) == Some(ns));
        if !in_scope {
            return true;
        }
        let event_type = match &self.matching {
            None => match change.change_type {
                ChangeType::Added => "ADDED",
                ChangeType::Modified => "MODIFIED",
                ChangeType::Deleted => "DELETED",
            },
            Some(_) => match self.selected_event(change) {
                Some(event_type) => event_type,
                None => return true,
            },
        };
        self.send(event_type, &self.presenter.present(&change.object))
            .await
    }

    /// The event type of a change for a selective watch, `None` when the client is not to hear
    /// of it. (When replaying history, the objects matching now stand in for those matching at
    /// the start resourceVersion; see `start`.)
    fn selected_event(&self, change: &Change) -> Option<&'static str> {
        let passes = change.change_type != ChangeType::Deleted && (self.filter)(&change.object);
        let seen = self.track(&change.object, passes);
        match (change.change_type, passes, seen) {
            (ChangeType::Deleted, _, _) if seen || (self.filter)(&change.object) => Some("DELETED"),
            (ChangeType::Deleted, _, _) => None,
            (ChangeType::Added, true, _) | (_, true, false) => Some("ADDED"),
            (_, true, true) => Some("MODIFIED"),
            (_, false, true) => Some("DELETED"),
            (_, false, false) => None,
        }
    }

    /// With a selector, records whether the object now matches and returns whether the client
    /// saw it matching before; without one, does nothing.
    fn track(&self, object: &Value, matches: bool) -> bool {
        let Some(matching) = &self.matching else {
            return false;
        };
        let mut set = matching.lock().unwrap_or_else(|p| p.into_inner());
        if matches {
            !set.insert(key(object))
        } else {
            set.remove(&key(object))
        }
    }

    /// Delivers every change already committed, then a bookmark at the global resourceVersion.
    async fn bookmark(&self, rx: &mut broadcast::Receiver<Arc<Change>>) -> bool {
        if !self.bookmarks || !self.faults.bookmarks_enabled() {
            return true;
        }
        let resource_version = self.store.resource_version();
        loop {
            match rx.try_recv() {
                Ok(change) => {
                    if !self.on_change(&change).await {
                        return false;
                    }
                }
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(_) => return false,
            }
        }
        self.send("BOOKMARK", &self.bookmark_object(resource_version))
            .await
    }

    fn bookmark_object(&self, resource_version: u64) -> Value {
        let (kind, api_version) = self
            .presenter
            .item_type(self.kind.info().kind, &self.kind.api_version());
        json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": resource_version.to_string()}})
    }

    async fn send(&self, event_type: &str, object: &Value) -> bool {
        let mut line =
            serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
        line.push(b'\n');
        self.tx.send(Ok(Bytes::from(line))).await.is_ok()
    }
}

fn key(object: &Value) -> (String, String) {
    let part = |s: Option<&str>| s.unwrap_or_default().to_string();
    (part(namespace_of(object)), part(name_of(object)))
}
