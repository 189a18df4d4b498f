#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::Request;
use sha2::Sha256;
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::*;
use crate::push::Token;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

const PUSH: &str = r#"{"events":[{"id":"e-1","action":"push","target":{
  "mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"team/app","tag":"1.2.3",
  "digest":"sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
  "url":"https://internal:5000/v2/team/app/manifests/sha256:fea8"},"request":{"host":"internal:5000"}}]}"#;

struct Bed {
    listener: Arc<Listener>,
    leader: watch::Sender<bool>,
    pushed: mpsc::UnboundedReceiver<RepositoryPushed>,
}

fn bed_with(tokens: Tokens) -> Bed {
    let (leader, leader_rx) = watch::channel(true);
    let (sink, pushed) = mpsc::unbounded_channel();
    let listener = Arc::new(Listener {
        tokens,
        aliases: HostAliases::new([(
            "internal:5000".to_owned(),
            "registry.example.com".to_owned(),
        )]),
        leader: leader_rx,
        metrics: Metrics::default(),
        sink,
        registry: None,
        seen: Mutex::new(Seen::default()),
    });
    Bed {
        listener,
        leader,
        pushed,
    }
}

fn bed() -> Bed {
    bed_with(Tokens {
        common: Some(Token::new(TOKEN)),
        ..Tokens::default()
    })
}

fn post(path: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::post(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body.into()).unwrap()
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

impl Bed {
    async fn send(&self, request: Request<Body>) -> StatusCode {
        router(self.listener.clone())
            .oneshot(request)
            .await
            .unwrap()
            .status()
    }

    fn count(&self, provider: Provider, result: EventResult) -> u64 {
        self.listener.metrics.get(provider, result)
    }

    fn drain(&mut self) -> Vec<RepositoryPushed> {
        let mut items = Vec::new();
        while let Ok(item) = self.pushed.try_recv() {
            items.push(item);
        }
        items
    }
}

/// A body that records whether anyone polled it.
fn watched_body(polled: Arc<AtomicBool>) -> Body {
    let stream = futures::stream::poll_fn(move |_| {
        polled.store(true, Ordering::SeqCst);
        std::task::Poll::Ready(None::<Result<Bytes, std::io::Error>>)
    });
    Body::from_stream(stream)
}

#[tokio::test]
async fn an_authenticated_push_is_accepted_once_with_the_host_alias_applied_and_its_replay_is_a_duplicate()
 {
    let mut bed = bed();
    let auth = bearer();
    let request = || post("/events/distribution", &[("authorization", &auth)], PUSH);
    assert_eq!(bed.send(request()).await, StatusCode::OK);
    assert_eq!(
        bed.drain(),
        vec![RepositoryPushed {
            registry: "registry.example.com".into(),
            repository: "team/app".into(),
            signature: false,
        }]
    );
    assert_eq!(
        bed.send(request()).await,
        StatusCode::OK,
        "a replay is answered 2xx"
    );
    assert_eq!(bed.drain(), vec![], "and not sent on again");
    assert_eq!(bed.count(Provider::Distribution, EventResult::accepted), 1);
    assert_eq!(bed.count(Provider::Distribution, EventResult::duplicate), 1);
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401_and_the_body_is_never_read() {
    let mut bed = bed();
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong-token-wrong-token-wrong")],
        vec![("authorization", TOKEN)],
    ] {
        let polled = Arc::new(AtomicBool::new(false));
        let request = post(
            "/events/distribution",
            &headers,
            watched_body(polled.clone()),
        );
        assert_eq!(
            bed.send(request).await,
            StatusCode::UNAUTHORIZED,
            "{headers:?}"
        );
        assert!(
            !polled.load(Ordering::SeqCst),
            "body read before the token was checked"
        );
    }
    let polled = Arc::new(AtomicBool::new(false));
    let wrong_path = post(
        "/events/quay/not-the-token",
        &[],
        watched_body(polled.clone()),
    );
    assert_eq!(bed.send(wrong_path).await, StatusCode::UNAUTHORIZED);
    assert!(!polled.load(Ordering::SeqCst));
    assert_eq!(
        bed.count(Provider::Distribution, EventResult::unauthorized),
        3
    );
    assert_eq!(bed.count(Provider::Quay, EventResult::unauthorized), 1);
    assert_eq!(bed.drain(), vec![]);
}

#[tokio::test]
async fn a_follower_answers_503_so_the_sender_retries() {
    let mut bed = bed();
    bed.leader.send_replace(false);
    let polled = Arc::new(AtomicBool::new(false));
    let auth = bearer();
    let request = post(
        "/events/distribution",
        &[("authorization", &auth)],
        watched_body(polled.clone()),
    );
    assert_eq!(bed.send(request).await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !polled.load(Ordering::SeqCst),
        "a follower does not read bodies"
    );
    assert_eq!(
        bed.count(Provider::Distribution, EventResult::not_leader),
        1
    );
    bed.leader.send_replace(true);
    let request = post("/events/distribution", &[("authorization", &auth)], PUSH);
    assert_eq!(bed.send(request).await, StatusCode::OK);
    assert_eq!(
        bed.drain().len(),
        1,
        "the event was not remembered as seen by the follower"
    );
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413_whether_declared_or_streamed() {
    let bed = bed();
    let auth = bearer();
    let big = vec![b' '; MAX_BODY + 1];
    let declared = post(
        "/events/distribution",
        &[("authorization", &auth)],
        big.clone(),
    );
    assert_eq!(bed.send(declared).await, StatusCode::PAYLOAD_TOO_LARGE);
    let chunks = big
        .chunks(64 * 1024)
        .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)));
    let streamed = Body::from_stream(futures::stream::iter(chunks.collect::<Vec<_>>()));
    let streamed = post(
        "/events/distribution",
        &[("authorization", &auth)],
        streamed,
    );
    assert_eq!(bed.send(streamed).await, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(bed.count(Provider::Distribution, EventResult::too_large), 2);
    let at_limit = format!("{PUSH}{}", " ".repeat(MAX_BODY - PUSH.len()));
    let at_limit = post(
        "/events/distribution",
        &[("authorization", &auth)],
        at_limit,
    );
    assert_eq!(
        bed.send(at_limit).await,
        StatusCode::OK,
        "exactly 1 MiB is read"
    );
}

#[tokio::test]
async fn an_unparseable_body_is_400_and_an_event_without_pushes_is_200() {
    let mut bed = bed();
    let auth = bearer();
    let garbage = post(
        "/events/distribution",
        &[("authorization", &auth)],
        "not json",
    );
    assert_eq!(bed.send(garbage).await, StatusCode::BAD_REQUEST);
    let pull = PUSH.replace(r#""action":"push""#, r#""action":"pull""#);
    let pull = post("/events/distribution", &[("authorization", &auth)], pull);
    assert_eq!(bed.send(pull).await, StatusCode::OK);
    assert_eq!(bed.drain(), vec![]);
    assert_eq!(bed.count(Provider::Distribution, EventResult::malformed), 1);
    assert_eq!(bed.count(Provider::Distribution, EventResult::ignored), 1);
}

#[tokio::test]
async fn a_provider_without_a_token_is_404() {
    let bed = bed_with(Tokens {
        github: Some(Token::new(TOKEN)),
        ..Tokens::default()
    });
    let auth = bearer();
    for path in ["/events/distribution", "/events/harbor"] {
        let request = post(path, &[("authorization", &auth)], PUSH);
        assert_eq!(bed.send(request).await, StatusCode::NOT_FOUND, "{path}");
    }
    let path = format!("/events/dockerhub/{TOKEN}");
    assert_eq!(
        bed.send(post(&path, &[], "{}")).await,
        StatusCode::NOT_FOUND
    );
}

fn github_signature(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

const GITHUB: &str = r#"{"action":"published","registry_package":{"package_type":"CONTAINER",
  "package_version":{"version":"sha256:ab","package_url":"ghcr.io/Octo-Org/App:1.0.0",
  "container_metadata":{"tag":{"name":"1.0.0","digest":"sha256:ab"}}}}}"#;

#[tokio::test]
async fn github_events_are_checked_by_their_hmac_and_ping_is_answered() {
    let mut bed = bed();
    let signature = github_signature(GITHUB);
    let headers = |event: &'static str, signature: &str| {
        vec![
            ("x-github-event", event.to_owned()),
            ("x-github-delivery", "d-1".to_owned()),
            ("x-hub-signature-256", signature.to_owned()),
        ]
    };
    let send = |headers: Vec<(&'static str, String)>, body: &'static str| {
        let mut request = Request::post("/events/github");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.body(Body::from(body)).unwrap()
    };
    let forged = github_signature("{}");
    assert_eq!(
        bed.send(send(headers("registry_package", &forged), GITHUB))
            .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        bed.send(send(headers("registry_package", &signature), GITHUB))
            .await,
        StatusCode::OK
    );
    assert_eq!(
        bed.drain(),
        vec![RepositoryPushed {
            registry: "ghcr.io".into(),
            repository: "octo-org/app".into(),
            signature: false
        }]
    );
    let ping = r#"{"zen":"Design for failure.","hook_id":1}"#;
    let ping_signature = github_signature(ping);
    assert_eq!(
        bed.send(send(headers("ping", &ping_signature), ping)).await,
        StatusCode::OK
    );
    assert_eq!(bed.drain(), vec![]);
    assert_eq!(bed.count(Provider::GitHub, EventResult::accepted), 1);
    assert_eq!(bed.count(Provider::GitHub, EventResult::ignored), 1);
    assert_eq!(bed.count(Provider::GitHub, EventResult::unauthorized), 1);
}

#[tokio::test]
async fn path_tokens_and_harbors_header_authenticate_their_providers() {
    let mut bed = bed();
    let dockerhub =
        r#"{"push_data":{"tag":"latest","pushed_at":1},"repository":{"repo_name":"nginx"}}"#;
    let path = format!("/events/dockerhub/{TOKEN}");
    assert_eq!(bed.send(post(&path, &[], dockerhub)).await, StatusCode::OK);
    let quay = r#"{"docker_url":"quay.io/ns/app","updated_tags":["sha256-fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf.sig"]}"#;
    let path = format!("/events/quay/{TOKEN}");
    assert_eq!(bed.send(post(&path, &[], quay)).await, StatusCode::OK);
    let harbor = r#"{"type":"PUSH_ARTIFACT","occur_at":1,"event_data":{"resources":[
        {"tag":"v1","digest":"sha256:ab","resource_url":"harbor.example.com/lib/app:v1"}]}}"#;
    let raw = post("/events/harbor", &[("authorization", TOKEN)], harbor);
    assert_eq!(bed.send(raw).await, StatusCode::OK);
    let item = |registry: &str, repository: &str, signature| RepositoryPushed {
        registry: registry.into(),
        repository: repository.into(),
        signature,
    };
    assert_eq!(
        bed.drain(),
        vec![
            item("docker.io", "library/nginx", false),
            item("quay.io", "ns/app", true),
            item("harbor.example.com", "lib/app", false),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(accept_loop(socket, router(bed().listener), stop.clone()));
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"POST /events/distribution HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(HEADER_READ_TIMEOUT * 2, client.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "still connected after twice the header read timeout"
    );
    stop.cancel();
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_arrives_is_408_after_the_body_read_timeout() {
    let bed = bed();
    let auth = bearer();
    let never = Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
    let started = Instant::now();
    let request = post("/events/distribution", &[("authorization", &auth)], never);
    assert_eq!(bed.send(request).await, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(started.elapsed(), BODY_READ_TIMEOUT);
    assert_eq!(bed.count(Provider::Distribution, EventResult::malformed), 1);
}

#[tokio::test]
async fn only_post_is_served() {
    let bed = bed();
    let request = Request::get("/events/distribution")
        .body(Body::empty())
        .unwrap();
    assert_eq!(bed.send(request).await, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(start_paused = true)]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(accept_loop(socket, router(bed().listener), stop.clone()));
    // Every slot taken by a client that sends nothing; they free up at the header read timeout.
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let started = Instant::now();
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"POST /events/distribution HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        started.elapsed() >= HEADER_READ_TIMEOUT,
        "served after {:?}, while every slot was taken",
        started.elapsed()
    );
    stop.cancel();
    server.await.unwrap();
}
