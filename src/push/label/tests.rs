#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;

use super::*;

/// A Pod API that records every request as (method, path, body) and answers each PATCH with a Pod;
/// Pods named `gone` answer 404.
#[derive(Clone, Default)]
struct FakePods {
    requests: Arc<Mutex<Vec<(String, String, serde_json::Value)>>>,
}

impl FakePods {
    fn client(&self) -> kube::Client {
        let this = self.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let this = this.clone();
            async move {
                let method = request.method().to_string();
                let path = request.uri().path().to_owned();
                let body = request.into_body().collect_bytes().await?;
                let body = serde_json::from_slice(&body).unwrap_or_default();
                this.requests
                    .lock()
                    .unwrap()
                    .push((method, path.clone(), body));
                let (code, json) = if path.ends_with("/gone") {
                    let status = serde_json::json!({"kind":"Status","apiVersion":"v1","status":"Failure",
                        "reason":"NotFound","code":404,"message":"not found"});
                    (StatusCode::NOT_FOUND, status)
                } else {
                    let pod =
                        serde_json::json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}});
                    (StatusCode::OK, pod)
                };
                let mut response = Response::new(Body::from(serde_json::to_vec(&json).unwrap()));
                *response.status_mut() = code;
                Ok::<_, kube::Error>(response)
            }
        });
        kube::Client::new(service, "watch-cluster")
    }

    fn taken(&self) -> Vec<(String, String, serde_json::Value)> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

fn labelled(pod: &str, leading: bool) -> (String, String, serde_json::Value) {
    (
        "PATCH".into(),
        format!("/api/v1/namespaces/watch-cluster/pods/{pod}"),
        patch(leading),
    )
}

#[test]
fn the_patch_sets_true_or_removes_the_label() {
    assert_eq!(
        patch(true),
        serde_json::json!({"metadata":{"labels":{"watch-cluster.io/leader":"true"}}})
    );
    assert_eq!(
        patch(false),
        serde_json::json!({"metadata":{"labels":{"watch-cluster.io/leader":null}}})
    );
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_labels_its_pod_and_unlabels_the_previous_holders_then_unlabels_when_it_stops_leading()
 {
    let pods = FakePods::default();
    let label = LeaderLabel::new(pods.client(), "watch-cluster", "pod-b".into());
    let (tx, rx) = watch::channel(false);
    let handover = Handover::default();
    let stop = CancellationToken::new();
    let task = tokio::spawn(label.follow(rx, handover.clone(), stop.clone()));
    settle().await;
    assert_eq!(
        pods.taken(),
        vec![labelled("pod-b", false)],
        "a follower clears a label left from an earlier run"
    );
    // What the election leaves when it takes the Lease over from pod-a.
    handover.record("pod-a".into());
    tx.send_replace(true);
    settle().await;
    assert_eq!(
        pods.taken(),
        vec![labelled("pod-b", true), labelled("pod-a", false)]
    );
    tx.send_replace(false);
    settle().await;
    assert_eq!(pods.taken(), vec![labelled("pod-b", false)]);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_previous_pod_that_is_gone_is_no_error_and_shutdown_removes_our_label() {
    let pods = FakePods::default();
    let label = LeaderLabel::new(pods.client(), "watch-cluster", "pod-b".into());
    assert!(label.set("gone", false).await.is_ok());
    assert!(
        label.set("gone", true).await.is_err(),
        "labelling a missing Pod is an error"
    );
    pods.taken();
    label.remove_own().await;
    assert_eq!(pods.taken(), vec![labelled("pod-b", false)]);
}
