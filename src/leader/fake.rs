//! An in-memory Lease API for the election tests: GET, POST and a PUT that is a compare-and-swap on
//! `resourceVersion`, as the API server's. It can be made to hang (a partitioned API server).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::coordination::v1::Lease;
use kube::client::Body;

/// The Lease store behind a [`kube::Client`].
#[derive(Clone, Default)]
pub struct FakeLeases {
    lease: Arc<Mutex<Option<Lease>>>,
    version: Arc<AtomicU64>,
    hang: Arc<AtomicBool>,
}

impl FakeLeases {
    /// A client whose every request this store answers.
    pub fn client(&self) -> kube::Client {
        let this = self.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let this = this.clone();
            async move {
                if this.hang.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                let method = request.method().clone();
                let body = request.into_body().collect_bytes().await?;
                Ok::<_, kube::Error>(this.answer(&method, &body))
            }
        });
        kube::Client::new(service, "default")
    }

    /// From now on, requests never get an answer (`false`: answered again).
    pub fn hang(&self, hang: bool) {
        self.hang.store(hang, Ordering::SeqCst);
    }

    /// The stored Lease.
    pub fn get(&self) -> Option<Lease> {
        self.lease.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stores `lease` as another writer would, with a new resourceVersion.
    pub fn put(&self, mut lease: Lease) {
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        lease.metadata.resource_version = Some(version.to_string());
        *self.lease.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease);
    }

    fn answer(&self, method: &Method, body: &[u8]) -> Response<Body> {
        let current = self.get();
        match *method {
            Method::GET => match current {
                Some(lease) => json(StatusCode::OK, &lease),
                None => status(StatusCode::NOT_FOUND),
            },
            Method::POST | Method::PUT => {
                let Ok(lease) = serde_json::from_slice::<Lease>(body) else {
                    return status(StatusCode::BAD_REQUEST);
                };
                let expected = current.and_then(|c| c.metadata.resource_version);
                let exists = *method == Method::PUT;
                if expected.is_some() != exists
                    || lease.metadata.resource_version != expected && exists
                {
                    return status(StatusCode::CONFLICT);
                }
                self.put(lease);
                json(StatusCode::OK, &self.get())
            }
            _ => status(StatusCode::METHOD_NOT_ALLOWED),
        }
    }
}

fn json(code: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = code;
    response
}

fn status(code: StatusCode) -> Response<Body> {
    json(
        code,
        &serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": reason(code), "code": code.as_u16(), "message": code.to_string(),
        }),
    )
}

/// The `reason` of a Status, as clients match it (`NotFound`, `Conflict`).
fn reason(code: StatusCode) -> String {
    code.canonical_reason().unwrap_or_default().replace(' ', "")
}
