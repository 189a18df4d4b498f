//! Object handlers: get, list (selectors, limit/continue), create, replace, delete; dispatch of
//! watch and patch requests to their modules. Input: a routed request; output: the response.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::present::Presenter;
use super::route::ResourcePath;
use super::select::{FieldSelector, LabelSelector};
use super::status::{ApiError, bytes_response, json_response};
use super::{AppState, patch, watch};
use crate::store::{Kind, Store, StoreError, name_of, namespace_of};

/// A request for objects, as routed.
pub(crate) struct Request<'a> {
    pub path: &'a ResourcePath,
    pub query: &'a HashMap<String, String>,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    pub method: &'a Method,
}

impl Request<'_> {
    /// The RBAC verb of this request.
    pub fn verb(&self) -> &'static str {
        match (self.method.as_str(), self.path.name.is_some()) {
            ("GET", _) if self.flag("watch") => "watch",
            ("GET", true) => "get",
            ("GET", false) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            _ => "unknown",
        }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true" | "1"))
    }

    pub fn presenter(&self) -> Presenter {
        Presenter::new(self.path.view, self.path.kind, self.headers)
    }

    /// The label and field selectors of the request as one filter.
    pub fn filter(&self) -> Result<impl Fn(&Value) -> bool + Send + Sync + 'static, ApiError> {
        let labels = LabelSelector::parse(self.param("labelSelector").unwrap_or_default())?;
        let fields = FieldSelector::parse(self.param("fieldSelector").unwrap_or_default())?;
        Ok(move |o: &Value| labels.matches(o) && fields.matches(o))
    }

    /// The request body as a JSON value (JSON, or YAML when so declared).
    pub fn body_json(&self) -> Result<Value, ApiError> {
        let content_type = self.content_type();
        let parsed = if content_type.contains("yaml") {
            serde_saphyr::from_slice::<Value>(self.body).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice::<Value>(self.body).map_err(|e| e.to_string())
        };
        match parsed {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => Err(ApiError::bad_request(
                "the body of the request must be an object",
            )),
            Err(e) => Err(ApiError::bad_request(format!(
                "the body of the request was in an unknown format: {e}"
            ))),
        }
    }

    pub fn content_type(&self) -> String {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    }
}

/// Serves one routed object request.
pub(crate) async fn handle(app: &AppState, req: Request<'_>) -> Response {
    let result = match (req.method.as_str(), req.path.subresource.as_deref()) {
        (_, Some(sub)) if sub != "status" || !req.path.kind.info().has_status => {
            Err(ApiError::not_found_path())
        }
        // Refused rather than ignored: ignoring it would write what the client meant to try.
        (method, _) if method != "GET" && req.param("dryRun").is_some() => Err(
            ApiError::bad_request("dryRun is not supported by the simulated API server"),
        ),
        ("GET", _) if req.flag("watch") => return watch::serve(app, &req),
        ("GET", _) if req.path.name.is_some() => get(&app.store, &req),
        ("GET", None) => list(&app.store, &req),
        ("POST", None) if req.path.name.is_none() => create(app, &req),
        ("PUT", _) if req.path.name.is_some() => update(&app.store, &req),
        ("PATCH", _) if req.path.name.is_some() => patch::handle(&app.store, &req),
        ("DELETE", None) if req.path.name.is_some() => delete(&app.store, &req),
        (method, _) => Err(ApiError::method_not_allowed(method)),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn get(store: &Store, req: &Request<'_>) -> Result<Response, ApiError> {
    let p = req.path;
    let name = p.name.as_deref().unwrap_or_default();
    let object = store
        .get_arc(p.kind, p.namespace.as_deref(), name)
        .ok_or_else(|| crate::store::StoreError::not_found(p.kind, name))?;
    Ok(json_response(
        StatusCode::OK,
        &req.presenter().present(&object),
    ))
}

fn list(store: &Store, req: &Request<'_>) -> Result<Response, ApiError> {
    let p = req.path;
    let filter = req.filter()?;
    let limit = match req.param("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("invalid limit"))?,
        None => 0,
    };
    let token = req.param("continue").map(Continue::decode).transpose()?;
    let after = token
        .as_ref()
        .map(|t| (t.namespace.clone(), t.name.clone()));
    let limit = if limit == 0 { usize::MAX } else { limit };
    let page = store.page(
        p.kind,
        p.namespace.as_deref(),
        after.as_ref(),
        limit,
        filter,
    );
    // Continued pages report the first page's resourceVersion: a watch from it replays every
    // later change, which is what the client needs for a consistent start.
    let rv = token
        .as_ref()
        .map_or(page.resource_version, |t| t.resource_version);
    let presenter = req.presenter();
    let info = p.kind.info();
    let (kind, api_version) = presenter.list_type(info.kind, &p.kind.api_version());
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some((namespace, name)) = page.next {
        metadata["continue"] = json!(
            Continue {
                resource_version: rv,
                namespace,
                name
            }
            .encode()
        );
    }
    if let Some(kind) = presenter.table {
        let table = super::table::table(kind, page.items.iter().map(|o| &**o), metadata);
        return Ok(json_response(StatusCode::OK, &table));
    }
    let mut body = Vec::with_capacity(256 + page.items.len() * 1024);
    body.extend_from_slice(
        format!("{{\"kind\":\"{kind}\",\"apiVersion\":\"{api_version}\",\"metadata\":").as_bytes(),
    );
    body.extend_from_slice(metadata.to_string().as_bytes());
    body.extend_from_slice(b",\"items\":[");
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let written = if presenter.is_identity() {
            serde_json::to_writer(&mut body, &**item)
        } else {
            serde_json::to_writer(&mut body, &presenter.present(item))
        };
        written.map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
    }
    body.extend_from_slice(b"]}");
    Ok(bytes_response(StatusCode::OK, body))
}

/// Checks and completes the namespace and name of a sent object against the path.
fn place(req: &Request<'_>, object: &mut Value) -> Result<(), ApiError> {
    let p = req.path;
    if let Some(ns) = &p.namespace {
        match namespace_of(object) {
            None | Some("") => object["metadata"]["namespace"] = json!(ns),
            Some(sent) if sent != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(name) = &p.name {
        match name_of(object) {
            None | Some("") => object["metadata"]["name"] = json!(name),
            Some(sent) if sent != name => {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn sent_object(req: &Request<'_>) -> Result<Value, ApiError> {
    let presenter = req.presenter();
    let mut object = presenter.to_stored(req.body_json()?);
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    place(req, &mut object)?;
    Ok(object)
}

fn create(app: &AppState, req: &Request<'_>) -> Result<Response, ApiError> {
    let object = sent_object(req)?;
    if app.config.require_namespaces
        && let Some(namespace) = namespace_of(&object).filter(|_| req.path.kind.info().namespaced)
        && app
            .store
            .get_arc(Kind::Namespace, None, namespace)
            .is_none()
    {
        return Err(StoreError::not_found(Kind::Namespace, namespace).into());
    }
    let created = app.store.create(req.path.kind, object)?;
    Ok(json_response(
        StatusCode::CREATED,
        &req.presenter().present(&created),
    ))
}

fn update(store: &Store, req: &Request<'_>) -> Result<Response, ApiError> {
    let object = sent_object(req)?;
    let updated = if req.path.subresource.is_some() {
        store.update_status(req.path.kind, object)?
    } else {
        store.update(req.path.kind, object)?
    };
    Ok(json_response(
        StatusCode::OK,
        &req.presenter().present(&updated),
    ))
}

fn delete(store: &Store, req: &Request<'_>) -> Result<Response, ApiError> {
    let p = req.path;
    let name = p.name.as_deref().unwrap_or_default();
    let deleted = store.delete(p.kind, p.namespace.as_deref(), name)?;
    let info = p.kind.info();
    let mut details =
        json!({"name": name, "kind": info.plural, "uid": deleted.pointer("/metadata/uid")});
    if !p.group.is_empty() {
        details["group"] = json!(p.group);
    }
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details
    });
    Ok(json_response(StatusCode::OK, &status))
}

/// The opaque `continue` token: where the next page starts and the list's resourceVersion.
struct Continue {
    resource_version: u64,
    namespace: String,
    name: String,
}

impl Continue {
    fn encode(&self) -> String {
        let raw = json!([self.resource_version, self.namespace, self.name]).to_string();
        raw.bytes().map(|b| format!("{b:02x}")).collect()
    }

    fn decode(token: &str) -> Result<Continue, ApiError> {
        let invalid = || ApiError::bad_request("continue key is not valid");
        let bytes: Vec<u8> = (0..token.len())
            .step_by(2)
            .map(|i| {
                token
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<_>>()
            .ok_or_else(invalid)?;
        let (resource_version, namespace, name): (u64, String, String) =
            serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        Ok(Continue {
            resource_version,
            namespace,
            name,
        })
    }
}
