//! The webhook receiver records exactly and answers as scripted.

use std::time::{Duration, Instant};

use watch_cluster_testkit::webhook::{Response, WebhookReceiver};

use super::{WAIT, client};

#[tokio::test]
async fn webhook_receiver_records_the_exact_body_and_headers() {
    let rx = WebhookReceiver::start().await.unwrap();
    let body =
        br#"{"eventType":"IMAGE_ROLLOUT_COMPLETED","details":{"rolloutDuration":"45000ms"}}"#;
    let resp = client()
        .post(format!("{}hooks/a?x=1", rx.url()))
        .header("content-type", "application/json")
        .header("X-Watch-Cluster-Delivery", "d-1")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = rx.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, http::Method::POST);
    assert_eq!(r.path, "/hooks/a");
    assert_eq!(r.query.as_deref(), Some("x=1"));
    assert_eq!(&r.body[..], &body[..]);
    assert_eq!(r.header("x-watch-cluster-delivery"), Some("d-1"));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.json()["details"]["rolloutDuration"], "45000ms");
}

#[tokio::test]
async fn webhook_receiver_answers_scripted_responses_in_order_then_200() {
    let rx = WebhookReceiver::start().await.unwrap();
    rx.respond_next(Response::TooManyRequests {
        retry_after_secs: 7,
    });
    rx.respond_next(Response::Status(500));
    let c = client();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let r = c.post(rx.url()).body("{}").send().await.unwrap();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        answers.push((r.status().as_u16(), retry));
    }
    assert_eq!(
        answers,
        vec![(429, Some("7".to_owned())), (500, None), (200, None)]
    );
    let got = rx.wait_for_requests(3, WAIT).await.unwrap();
    assert!(got.windows(2).all(|w| w[0].received_at <= w[1].received_at));
}

#[tokio::test]
async fn webhook_receiver_hangs_until_the_client_times_out_and_records_the_request() {
    let rx = WebhookReceiver::start().await.unwrap();
    rx.respond_next(Response::Hang);
    let started = Instant::now();
    let err = client()
        .post(rx.url())
        .timeout(Duration::from_millis(300))
        .body("hang")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let got = rx.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(&got[0].body[..], b"hang");
    // The next request is answered normally.
    let r = client().post(rx.url()).body("ok").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn webhook_wait_for_requests_times_out_when_too_few_arrive() {
    let rx = WebhookReceiver::start().await.unwrap();
    let err = rx
        .wait_for_requests(1, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn webhook_receiver_stops_serving_when_dropped() {
    let rx = WebhookReceiver::start().await.unwrap();
    let url = rx.url();
    rx.respond_next(Response::Hang);
    let c = client();
    let hanging = tokio::spawn({
        let c = c.clone();
        let url = url.clone();
        async move { c.post(url).body("x").send().await }
    });
    rx.wait_for_requests(1, WAIT).await.unwrap();
    drop(rx);
    // The held request is released once the receiver is gone.
    let released = tokio::time::timeout(WAIT, hanging).await.unwrap().unwrap();
    if let Ok(r) = released {
        assert_ne!(r.status(), 200);
    }
    let fresh = reqwest::Client::builder().build().unwrap();
    let after = tokio::time::timeout(WAIT, fresh.post(url).body("y").send())
        .await
        .unwrap();
    assert!(
        after.is_err(),
        "server still answering after drop: {after:?}"
    );
}
