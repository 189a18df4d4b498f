//! The HTTP API server of the simulated cluster: authentication by bearer token, optional RBAC,
//! fault injection, request logging, and dispatch to discovery, object and watch handlers.
//!
//! Input: HTTP requests on 127.0.0.1; output: Kubernetes-shaped JSON answers backed by the
//! [`Store`]. Routing is done by [`route::parse`] rather than axum routes because Kubernetes
//! paths are data-driven (group, version, namespace, plural, name, subresource).

mod discovery;
mod faults;
mod handlers;
mod kubeconfig;
mod log;
mod patch;
mod present;
mod rbac;
mod route;
mod select;
mod status;
mod strategic;
mod table;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

pub use discovery::GIT_VERSION;
pub use faults::{Fault, Faults};
pub use kubeconfig::{kubeconfig_yaml, write_kubeconfig};
pub use log::{LoggedRequest, RequestCounts, RequestLog, RequestTally, tally_since};
pub use rbac::UserInfo;
pub use status::ApiError;

use crate::store::Store;
use route::{ResourcePath, Route};
use status::json_response;

/// Settings of the API server.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Bearer token -> user. Unknown tokens are rejected (401) only when `rbac` is on.
    pub tokens: HashMap<String, UserInfo>,
    /// Enforce RBAC from the Roles and bindings in the store.
    pub rbac: bool,
    /// How often an idle watch with `allowWatchBookmarks` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Watch duration when the client sends no `timeoutSeconds`.
    pub default_watch_timeout: Duration,
    /// Refuse (404) creating namespaced objects in a Namespace that does not exist, like the
    /// real `NamespaceLifecycle` admission. Writes by the simulated controllers bypass it.
    pub require_namespaces: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            tokens: HashMap::new(),
            rbac: false,
            bookmark_interval: Duration::from_secs(5),
            default_watch_timeout: Duration::from_secs(1800),
            require_namespaces: true,
        }
    }
}

/// Everything a request handler needs.
pub(crate) struct AppState {
    pub store: Store,
    pub config: ApiConfig,
    pub faults: Faults,
    pub log: RequestLog,
    pub counts: RequestCounts,
    pub server_address: String,
}

/// The axum router serving the whole API.
pub(crate) fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new().fallback(serve).with_state(state)
}

async fn serve(
    State(app): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let user = identify(&app.config, &headers);
    let received_at = std::time::Instant::now();
    let response = respond(&app, &method, &uri, &headers, &body, user.as_ref()).await;
    app.log.record(LoggedRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: String::from_utf8_lossy(&body).into_owned(),
        identity: user.map(|u| u.name),
        status: response.status().as_u16(),
        received_at,
        answered_at: std::time::Instant::now(),
    });
    response
}

/// The user of the bearer token, if the token is known.
fn identify(config: &ApiConfig, headers: &HeaderMap) -> Option<UserInfo> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))?;
    config.tokens.get(token.trim()).cloned()
}

async fn respond(
    app: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    user: Option<&UserInfo>,
) -> Response {
    if let Some(injected) = app.faults.take(method.as_str(), uri.path()) {
        if let Some(delay) = injected.delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(code) = injected.status {
            let mut err = ApiError::new(
                code,
                reason_for(code),
                format!("injected fault: status {code}"),
            );
            err.retry_after = injected.retry_after;
            return err.into_response();
        }
    }
    let route = route::parse(uri.path());
    // `/version` and health checks are public (system:public-info-viewer); the rest needs a known token.
    let public = matches!(route, Route::Version | Route::Health);
    if app.config.rbac && user.is_none() && !public {
        return ApiError::new(401, "Unauthorized", "Unauthorized").into_response();
    }
    let query = parse_query(uri.query().unwrap_or_default());
    match route {
        Route::Version => json_response(StatusCode::OK, &discovery::version()),
        Route::Health => (StatusCode::OK, "ok").into_response(),
        Route::CoreVersions => json_response(
            StatusCode::OK,
            &discovery::core_versions(&app.server_address),
        ),
        Route::Groups => json_response(StatusCode::OK, &discovery::groups()),
        Route::GroupVersion { group } => {
            json_response(StatusCode::OK, &discovery::resource_list(&group))
        }
        Route::Resource(path) => {
            let request = handlers::Request {
                path: &path,
                query: &query,
                headers,
                body,
                method,
            };
            let resource = match &path.subresource {
                Some(sub) => format!("{}/{sub}", path.plural()),
                None => path.plural().to_owned(),
            };
            app.counts.record(request.verb(), &resource);
            if let Err(denied) = authorize(app, user, &request) {
                return denied.into_response();
            }
            handlers::handle(app, request).await
        }
        Route::Unknown => ApiError::not_found_path().into_response(),
    }
}

fn authorize(
    app: &AppState,
    user: Option<&UserInfo>,
    request: &handlers::Request<'_>,
) -> Result<(), ApiError> {
    if !app.config.rbac {
        return Ok(());
    }
    let Some(user) = user else {
        return Err(ApiError::new(401, "Unauthorized", "Unauthorized"));
    };
    let path: &ResourcePath = request.path;
    let resource = match &path.subresource {
        Some(sub) => format!("{}/{sub}", path.plural()),
        None => path.plural().to_string(),
    };
    let attrs = rbac::Attributes {
        verb: request.verb(),
        group: &path.group,
        resource,
        namespace: path.namespace.as_deref(),
        name: path.name.as_deref(),
    };
    rbac::authorize(&app.store, user, &attrs).map_err(|message| {
        tracing::info!(user = %user.name, %message, "forbidden");
        let mut details = serde_json::json!({"kind": path.plural()});
        if let Some(name) = &path.name {
            details["name"] = serde_json::json!(name);
        }
        if !path.group.is_empty() {
            details["group"] = serde_json::json!(path.group);
        }
        ApiError::new(403, "Forbidden", message).with_details(details)
    })
}

fn parse_query(query: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// The `Status.reason` the real server uses for a status code.
fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}
