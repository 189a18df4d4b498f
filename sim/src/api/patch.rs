//! PATCH: merge patch, JSON patch (with `test`), strategic merge patch, each applied to the
//! object as the client sees it (so the Events view patches `events.k8s.io/v1` fields) and
//! written back with the store's resourceVersion precondition. A resourceVersion written by
//! the patch is the client's precondition (409 on mismatch); without one, a concurrent write
//! is retried like the real server's GuaranteedUpdate. Server-side apply is not supported (415).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::handlers::Request;
use super::status::{ApiError, json_response};
use super::strategic;
use crate::store::{Store, StoreError, resource_version_of};

const ATTEMPTS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatchType {
    Merge,
    Json,
    Strategic,
}

pub(crate) fn handle(store: &Store, req: &Request<'_>) -> Result<Response, ApiError> {
    let patch_type = patch_type(&req.content_type())?;
    let patch: Value = serde_json::from_slice(req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let p = req.path;
    let name = p.name.as_deref().unwrap_or_default();
    let presenter = req.presenter();
    let view = super::present::Presenter {
        metadata_only: false,
        table: None,
        ..presenter
    };
    for _ in 0..ATTEMPTS {
        let current = store
            .get_arc(p.kind, p.namespace.as_deref(), name)
            .ok_or_else(|| StoreError::not_found(p.kind, name))?;
        let seen = view.present(&current);
        let patched = apply(patch_type, &seen, &patch)?;
        let client_precondition = resource_version_of(&patched) != resource_version_of(&seen);
        let mut stored = view.to_stored(patched);
        keep_identity(&current, &mut stored)?;
        let written = if p.subresource.is_some() {
            store.update_status(p.kind, stored)
        } else {
            store.update(p.kind, stored)
        };
        match written {
            Ok(object) => return Ok(json_response(StatusCode::OK, &presenter.present(&object))),
            Err(StoreError::Conflict { .. }) if !client_precondition => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(ApiError::new(
        409,
        "Conflict",
        format!("too many concurrent writes to {name:?}, giving up"),
    ))
}

fn patch_type(content_type: &str) -> Result<PatchType, ApiError> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    match media {
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "server-side apply (application/apply-patch+yaml) is not supported by the simulated API server",
        )),
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({other}) - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"
            ),
        )),
    }
}

fn apply(patch_type: PatchType, object: &Value, patch: &Value) -> Result<Value, ApiError> {
    match patch_type {
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            let mut doc = object.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        PatchType::Json => {
            let operations: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
            let mut doc = object.clone();
            json_patch::patch(&mut doc, &operations).map_err(|e| {
                // kube-apiserver's answer to an operation that cannot be applied (a failed `test`, a
                // `remove` of a missing path): empty details, unlike a validation refusal, which names
                // the object and its causes. Clients tell the two apart by that.
                tracing::debug!(error = %e, "JSON patch operation failed");
                ApiError::new(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                )
                .with_details(json!({}))
            })?;
            Ok(doc)
        }
        PatchType::Strategic => strategic::apply(object, patch).map_err(|message| {
            ApiError::new(
                422,
                "Invalid",
                format!("unable to apply strategic merge patch: {message}"),
            )
        }),
    }
}

/// A patch may not rename or move an object.
fn keep_identity(current: &Value, patched: &mut Value) -> Result<(), ApiError> {
    for field in ["name", "namespace"] {
        let before = current.pointer(&format!("/metadata/{field}"));
        if patched.pointer(&format!("/metadata/{field}")) != before {
            return Err(ApiError::bad_request(format!(
                "metadata.{field} does not match the object being patched"
            )));
        }
    }
    if !patched.get("metadata").is_some_and(Value::is_object) {
        return Err(ApiError::bad_request("the patch removed metadata"));
    }
    Ok(())
}
