//! Request handling of the fake registry: log, authenticate, inject faults, then answer the distribution API.
//!
//! Order per request: every request is logged first; `/v2/…` requests are then authenticated (a 401 does not
//! consume a fault); the first matching queued fault is taken; finally the API answer is built and the fault's
//! headers and malformations are applied to it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde_json::json;

use super::fault::{self, Fault};
use super::{Auth, FAKE_SERVICE, LoggedRequest, Programmed, Shared, TagListMode, lock};

pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().map(str::to_owned);
    record(&shared, &method, &path, query.as_deref(), &headers);
    if path == "/token" {
        let fault = lock(&shared.programmed).faults_take(&method, &path);
        return faulted(&shared, fault, |p| token(p, &headers)).await;
    }
    if let Some(challenge) = unauthorized(&shared, &path, &headers) {
        return challenge;
    }
    let fault = lock(&shared.programmed).faults_take(&method, &path);
    let head = method == Method::HEAD;
    faulted(&shared, fault, |p| api(p, head, &path, query.as_deref())).await
}

impl Programmed {
    fn faults_take(&mut self, method: &Method, path: &str) -> Option<Fault> {
        fault::take(&mut self.faults, method, path)
    }
}

fn record(shared: &Shared, method: &Method, path: &str, query: Option<&str>, headers: &HeaderMap) {
    let entry = LoggedRequest {
        method: method.clone(),
        path: path.to_owned(),
        query: query.map(str::to_owned),
        headers: headers.clone(),
        at: Instant::now(),
        wall: SystemTime::now(),
    };
    lock(&shared.log).push(entry);
    shared.logged.send_modify(|n| *n += 1);
}

/// Delays, replaces or decorates the answer `answer` builds, as `fault` says.
async fn faulted(
    shared: &Shared,
    fault: Option<Fault>,
    answer: impl FnOnce(&mut Programmed) -> Response,
) -> Response {
    if let Some(delay) = fault.as_ref().and_then(|f| f.delay) {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.stopped.clone().wait() => {}
        }
    }
    let mut response = match fault.as_ref().and_then(|f| f.status) {
        Some(status) => error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "INJECTED",
            "injected fault",
        ),
        None => answer(&mut lock(&shared.programmed)),
    };
    if let Some(f) = &fault {
        f.apply(&mut response);
    }
    response
}

/// The 401 challenge for a `/v2/…` request without valid credentials, if auth is on.
fn unauthorized(shared: &Shared, path: &str, headers: &HeaderMap) -> Option<Response> {
    let mut p = lock(&shared.programmed);
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let challenge = match &p.auth {
        Auth::None => return None,
        Auth::Basic { user, password } => {
            if given.is_some_and(|g| basic_matches(g, user, password)) {
                return None;
            }
            format!("Basic realm=\"{FAKE_SERVICE}\"")
        }
        Auth::Bearer { .. } => {
            let now = Instant::now();
            p.tokens.retain(|_, expiry| *expiry > now);
            if given
                .and_then(|g| g.strip_prefix("Bearer "))
                .is_some_and(|t| p.tokens.contains_key(t))
            {
                return None;
            }
            let realm = format!("{}/token", lock(&shared.base_url));
            let mut c = format!("Bearer realm=\"{realm}\",service=\"{FAKE_SERVICE}\"");
            if let Some(repo) = repo_of(path) {
                c.push_str(&format!(",scope=\"repository:{repo}:pull\""));
            }
            c
        }
    };
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required",
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
    }
    Some(r)
}

fn basic_matches(given: &str, user: &str, password: &str) -> bool {
    given
        .strip_prefix("Basic ")
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .is_some_and(|d| d == format!("{user}:{password}").as_bytes())
}

/// `GET /token`: checks Basic credentials when configured and issues an opaque token.
fn token(p: &mut Programmed, headers: &HeaderMap) -> Response {
    let Auth::Bearer {
        credentials,
        expires_in,
    } = &p.auth
    else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "no token endpoint");
    };
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some((user, password)) = credentials
        && !given.is_some_and(|g| basic_matches(g, user, password))
    {
        return error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "bad credentials");
    }
    let expires_in = *expires_in;
    let token = format!("fake-{:032x}", rand::random::<u128>());
    p.tokens.insert(
        token.clone(),
        Instant::now() + Duration::from_secs(expires_in),
    );
    json_response(
        StatusCode::OK,
        json!({ "token": token, "access_token": token, "expires_in": expires_in }).to_string(),
    )
}

/// The repository named in a `/v2/<repo>/tags/list` or `/v2/<repo>/manifests/<ref>` path.
fn repo_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    rest.strip_suffix("/tags/list")
        .or_else(|| rest.rsplit_once("/manifests/").map(|(repo, _)| repo))
        .or_else(|| rest.rsplit_once("/blobs/").map(|(repo, _)| repo))
        .or_else(|| rest.rsplit_once("/referrers/").map(|(repo, _)| repo))
}

fn api(p: &mut Programmed, head: bool, path: &str, query: Option<&str>) -> Response {
    if path == "/v2/" || path == "/v2" {
        return json_response(StatusCode::OK, "{}".into());
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "not a registry path");
    };
    if let Some(repo) = rest.strip_suffix("/tags/list") {
        return tags(p, repo, query);
    }
    if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        return manifest(p, head, repo, reference);
    }
    if let Some((repo, digest)) = rest.rsplit_once("/blobs/") {
        return blob(p, head, repo, digest);
    }
    if let Some((repo, digest)) = rest.rsplit_once("/referrers/")
        && p.referrers_api
    {
        return referrers(p, repo, digest);
    }
    error(
        StatusCode::NOT_FOUND,
        "UNSUPPORTED",
        "the fake registry serves tags, manifests, blobs and (when enabled) referrers only",
    )
}

fn blob(p: &Programmed, head: bool, repo: &str, digest: &str) -> Response {
    let Some(body) = p.repos.get(repo).and_then(|r| r.blobs.get(digest)) else {
        return error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown");
    };
    let mut response = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(body.clone()))
    };
    if let Ok(v) = HeaderValue::from_str(digest) {
        response.headers_mut().insert("docker-content-digest", v);
    }
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// The OCI 1.1 referrers index of `digest`: every stored manifest whose `subject.digest` is it, in
/// digest order (the API promises no order).
fn referrers(p: &Programmed, repo: &str, digest: &str) -> Response {
    let mut manifests: Vec<serde_json::Value> = p
        .repos
        .get(repo)
        .map(|r| {
            r.manifests
                .iter()
                .filter_map(|(d, (media_type, body))| {
                    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
                    (json["subject"]["digest"] == digest).then(|| {
                        let artifact_type = json["artifactType"]
                            .as_str()
                            .or_else(|| json["config"]["mediaType"].as_str())
                            .unwrap_or_default()
                            .to_owned();
                        json!({"mediaType": media_type, "digest": d, "size": body.len(),
                               "artifactType": artifact_type})
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    manifests.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    let body = json!({"schemaVersion": 2, "mediaType": crate::registry::OCI_INDEX,
                      "manifests": manifests})
    .to_string();
    let mut response = json_response(StatusCode::OK, body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
    );
    response
}

fn tags(p: &Programmed, repo: &str, query: Option<&str>) -> Response {
    let Some(r) = p.repos.get(repo) else {
        return error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        );
    };
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let (page, next) = match p.mode {
        TagListMode::IgnorePagination => (r.tags.clone(), None),
        TagListMode::Paginate => paginate(
            &r.tags,
            param("n").and_then(|n| n.parse().ok()),
            param("last"),
        ),
    };
    let body = json!({ "name": repo, "tags": page }).to_string();
    let mut response = json_response(StatusCode::OK, body);
    if let Some(last) = next.and_then(|(n, last)| link(repo, n, &last)) {
        response.headers_mut().insert(http::header::LINK, last);
    }
    response
}

/// Sorted tags after `last`, at most `n`; plus `(n, last tag of the page)` when more tags follow.
fn paginate(
    tags: &[String],
    n: Option<usize>,
    last: Option<String>,
) -> (Vec<String>, Option<(usize, String)>) {
    let mut sorted = tags.to_vec();
    sorted.sort();
    let after: Vec<String> = sorted
        .into_iter()
        .filter(|t| last.as_ref().is_none_or(|l| t > l))
        .collect();
    match n {
        Some(n) if n < after.len() => {
            let page = after[..n].to_vec();
            let next = page.last().map(|l| (n, l.clone()));
            (page, next)
        }
        _ => (after, None),
    }
}

fn link(repo: &str, n: usize, last: &str) -> Option<HeaderValue> {
    let last: String = url::form_urlencoded::byte_serialize(last.as_bytes()).collect();
    HeaderValue::from_str(&format!(
        "</v2/{repo}/tags/list?n={n}&last={last}>; rel=\"next\""
    ))
    .ok()
}

fn manifest(p: &Programmed, head: bool, repo: &str, reference: &str) -> Response {
    let Some(r) = p.repos.get(repo) else {
        return error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        );
    };
    let (digest, media_type) = if reference.starts_with("sha256:") {
        match r.manifests.get(reference) {
            Some((media_type, _)) => (reference.to_owned(), media_type.clone()),
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    "manifest unknown",
                );
            }
        }
    } else {
        match r.digests.get(reference) {
            Some(found) => found.clone(),
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    "manifest unknown",
                );
            }
        }
    };
    let body = r.manifests.get(&digest).map(|(_, b)| b.clone());
    let mut response = match (head, body) {
        (true, _) => Response::new(Body::empty()),
        (false, Some(b)) => Response::new(Body::from(b)),
        // A digest without stored content can be HEADed only: GET needs set_manifest.
        (false, None) => {
            return error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "no manifest body programmed",
            );
        }
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("docker-content-digest", digest.as_str()),
        ("content-type", media_type.as_str()),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
    response
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        json!({ "errors": [{ "code": code, "message": message, "detail": {} }] }).to_string();
    json_response(status, body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn pages_are_sorted_and_continue_after_last() {
        let all = tags(&["c", "a", "d", "b", "e"]);
        assert_eq!(
            paginate(&all, Some(2), None),
            (tags(&["a", "b"]), Some((2, "b".to_owned())))
        );
        assert_eq!(
            paginate(&all, Some(2), Some("b".to_owned())),
            (tags(&["c", "d"]), Some((2, "d".to_owned())))
        );
        assert_eq!(
            paginate(&all, Some(2), Some("d".to_owned())),
            (tags(&["e"]), None)
        );
        assert_eq!(paginate(&all, None, None).0.len(), 5);
    }

    #[test]
    fn repository_names_may_contain_slashes() {
        assert_eq!(
            repo_of("/v2/library/nginx/tags/list"),
            Some("library/nginx")
        );
        assert_eq!(repo_of("/v2/a/b/c/manifests/1.0"), Some("a/b/c"));
        assert_eq!(repo_of("/v2/"), None);
    }
}
