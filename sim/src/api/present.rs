//! How stored objects are shown to a client and read back from it: the `events.k8s.io/v1`
//! view of core Events (one store seen two ways), and metadata-only answers
//! (`PartialObjectMetadata`) when the client's Accept header asks for them.

use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use super::route::View;

/// Field correspondences core/v1 Event <-> events.k8s.io/v1 Event.
const EVENT_FIELDS: [(&str, &str); 11] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingInstance", "reportingInstance"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("related", "related"),
];
/// Fields with the same name in both versions besides those above.
const EVENT_SHARED: [&str; 4] = ["metadata", "reason", "type", "action"];

/// The representation negotiated for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presenter {
    pub view: View,
    pub metadata_only: bool,
    /// kubectl's human-readable `as=Table`.
    pub table: Option<crate::store::Kind>,
}

impl Presenter {
    pub fn new(view: View, kind: crate::store::Kind, headers: &HeaderMap) -> Presenter {
        let accept = headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // The first acceptable media type wins; kube asks for metadata first or only.
        let first = accept.split(',').next().unwrap_or_default();
        let metadata_only = first.contains("as=PartialObjectMetadata");
        let table = (first.contains("as=Table") && view == View::Native).then_some(kind);
        Presenter {
            view,
            metadata_only,
            table,
        }
    }

    /// The stored object as the client sees it.
    pub fn present(self, stored: &Value) -> Value {
        if let Some(kind) = self.table {
            return super::table::table(kind, std::iter::once(stored), json!({}));
        }
        if self.metadata_only {
            return json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": stored.get("metadata").cloned().unwrap_or_else(|| json!({})),
            });
        }
        match self.view {
            View::Native => stored.clone(),
            View::EventsV1 => to_events_v1(stored),
        }
    }

    /// Whether `present` is the identity (lets callers serialise without copying).
    pub fn is_identity(self) -> bool {
        !self.metadata_only && self.table.is_none() && self.view == View::Native
    }

    /// A client-sent object converted to the stored form.
    pub fn to_stored(self, sent: Value) -> Value {
        match self.view {
            View::Native => sent,
            View::EventsV1 => from_events_v1(&sent),
        }
    }

    /// `kind` and `apiVersion` of a list, given the item kind and apiVersion.
    pub fn list_type(self, kind: &str, api_version: &str) -> (String, String) {
        if self.metadata_only {
            return ("PartialObjectMetadataList".into(), "meta.k8s.io/v1".into());
        }
        match self.view {
            View::Native => (format!("{kind}List"), api_version.to_string()),
            View::EventsV1 => ("EventList".into(), "events.k8s.io/v1".into()),
        }
    }

    /// `kind` and `apiVersion` of a single object (used for watch bookmarks).
    pub fn item_type(self, kind: &str, api_version: &str) -> (String, String) {
        if self.metadata_only {
            return ("PartialObjectMetadata".into(), "meta.k8s.io/v1".into());
        }
        match self.view {
            View::Native => (kind.to_string(), api_version.to_string()),
            View::EventsV1 => ("Event".into(), "events.k8s.io/v1".into()),
        }
    }
}

fn convert(
    from: &Value,
    pairs: impl Iterator<Item = (&'static str, &'static str)>,
    kind: Value,
) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), kind);
    for (src, dst) in pairs {
        if let Some(v) = from.get(src).filter(|v| !v.is_null()) {
            out.insert(dst.to_string(), v.clone());
        }
    }
    Value::Object(out)
}

/// core/v1 Event -> events.k8s.io/v1 Event.
pub fn to_events_v1(core: &Value) -> Value {
    let pairs = EVENT_FIELDS
        .into_iter()
        .chain(EVENT_SHARED.into_iter().map(|f| (f, f)));
    convert(core, pairs, json!("events.k8s.io/v1"))
}

/// events.k8s.io/v1 Event -> core/v1 Event.
pub fn from_events_v1(event: &Value) -> Value {
    let pairs = EVENT_FIELDS
        .into_iter()
        .map(|(core, v1)| (v1, core))
        .chain(EVENT_SHARED.into_iter().map(|f| (f, f)));
    convert(event, pairs, json!("v1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_between_versions() {
        let v1 = json!({"metadata": {"name": "e"}, "regarding": {"name": "d"}, "note": "hi",
            "reportingController": "c", "series": {"count": 2}, "reason": "R", "type": "Normal"});
        let core = from_events_v1(&v1);
        assert_eq!(core["involvedObject"]["name"], "d");
        assert_eq!(core["message"], "hi");
        assert_eq!(core["apiVersion"], "v1");
        let back = to_events_v1(&core);
        assert_eq!(back["note"], "hi");
        assert_eq!(back["series"]["count"], 2);
        assert_eq!(back["apiVersion"], "events.k8s.io/v1");
    }
}
