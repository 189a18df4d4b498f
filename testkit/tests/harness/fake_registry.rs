//! The fake registry: pagination, rate limits, faults, auth modes and the request log.

use std::time::Duration;

use watch_cluster_testkit::fake::{FakeRegistry, Fault, TagListMode};
use watch_cluster_testkit::registry::OCI_INDEX;

use super::{ALL_TYPES, WAIT, client, sha256};

fn many_tags(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("1.{i:03}")).rev().collect()
}

fn next_link(resp: &reqwest::Response) -> Option<String> {
    let link = resp.headers().get("link")?.to_str().unwrap();
    let target = link.strip_prefix('<')?.split_once(">; rel=\"next\"")?.0;
    Some(target.to_owned())
}

#[tokio::test]
async fn fake_registry_paginates_tags_with_link_headers_until_the_last_page() {
    let fake = FakeRegistry::start().await.unwrap();
    fake.set_tags("team/app", many_tags(250));
    let c = client();
    let mut url = format!("{}/v2/team/app/tags/list?n=100", fake.base_url());
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let resp = c.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        pages += 1;
        let next = next_link(&resp);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["name"], "team/app");
        seen.extend(
            body["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned()),
        );
        match next {
            Some(path) => url = format!("{}{path}", fake.base_url()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected = many_tags(250);
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(fake.count(http::Method::GET, "/v2/team/app/tags/list"), 3);
    let queries: Vec<Option<String>> = fake.requests().into_iter().map(|r| r.query).collect();
    assert_eq!(queries[1].as_deref(), Some("n=100&last=1.099"));
}

#[tokio::test]
async fn fake_registry_can_ignore_n_and_last_like_distribution_2_8() {
    let fake = FakeRegistry::start().await.unwrap();
    fake.set_tag_list_mode(TagListMode::IgnorePagination);
    fake.set_tags("app", many_tags(30));
    let resp = client()
        .get(format!(
            "{}/v2/app/tags/list?n=10&last=1.005",
            fake.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("link").is_none());
    let body: serde_json::Value = resp.json().await.unwrap();
    let tags: Vec<String> = body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tags, many_tags(30), "all tags, in the order set");
}

#[tokio::test]
async fn fake_registry_answers_429_with_retry_after_once_then_normally_and_records_times() {
    let fake = FakeRegistry::start().await.unwrap();
    fake.set_digest("app", "1.0", "sha256:aaaa");
    fake.fault(
        "/v2/app/manifests/",
        Fault::too_many_requests(2).on_method(http::Method::HEAD),
    );
    let c = client();
    let url = format!("{}/v2/app/manifests/1.0", fake.base_url());
    let first = c.head(&url).send().await.unwrap();
    assert_eq!(first.status(), 429);
    assert_eq!(first.headers()["retry-after"], "2");
    let second = c.head(&url).send().await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["docker-content-digest"], "sha256:aaaa");
    let log = fake.requests();
    assert_eq!(log.len(), 2);
    assert!(log[1].at >= log[0].at);
    assert!(log[1].wall >= log[0].wall);
}

#[tokio::test]
async fn fake_registry_sends_retry_after_as_an_http_date() {
    let fake = FakeRegistry::start().await.unwrap();
    fake.set_tags("app", vec!["1".to_owned()]);
    let at = std::time::SystemTime::now() + Duration::from_secs(30);
    fake.fault("/v2/app/tags/list", Fault::status(429).retry_after_date(at));
    let resp = client()
        .get(format!("{}/v2/app/tags/list", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let date = httpdate::parse_http_date(resp.headers()["retry-after"].to_str().unwrap()).unwrap();
    let diff = at.duration_since(date).unwrap_or_else(|e| e.duration());
    assert!(diff < Duration::from_secs(1));
}

#[tokio::test]
async fn fake_registry_adds_docker_hub_rate_limit_headers_to_successful_answers() {
    let fake = FakeRegistry::start().await.unwrap();
    fake.set_digest("library/nginx", "latest", "sha256:bbbb");
    fake.fault_always(
        "/v2/library/nginx/",
        Fault::ok().rate_limit("100;w=21600", "0;w=3"),
    );
    for _ in 0..2 {
        let resp = client()
            .head(format!(
                "{}/v2/library/nginx/manifests/latest",
                fake.base_url()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["ratelimit-limit"], "100;w=21600");
        assert_eq!(resp.headers()["ratelimit-remaining"], "0;w=3");
    }
    fake.clear_faults();
    let resp = client()
        .head(format!(
            "{}/v2/library/nginx/manifests/latest",
            fake.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("ratelimit-remaining").is_none());
}

#[tokio::test]
async fn fake_registry_can_send_malformed_json_and_wrong_digests() {
    let fake = FakeRegistry::start().await.unwrap();
    fake.set_tags("app", vec!["1".to_owned()]);
    fake.set_digest("app", "1", "sha256:right");
    fake.fault("/v2/app/tags/list", Fault::ok().malformed_body());
    fake.fault(
        "/v2/app/manifests/1",
        Fault::ok().wrong_digest("sha256:wrong"),
    );
    let c = client();
    let tags = c
        .get(format!("{}/v2/app/tags/list", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(tags.status(), 200);
    let text = tags.text().await.unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_err(),
        "{text}"
    );
    let head = c
        .head(format!("{}/v2/app/manifests/1", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["docker-content-digest"], "sha256:wrong");
}

#[tokio::test]
async fn fake_registry_delays_answers_past_a_client_timeout() {
    let fake = FakeRegistry::start().await.unwrap();
    fake.set_digest("app", "1", "sha256:cccc");
    fake.fault("/v2/app/", Fault::ok().delay(Duration::from_secs(30)));
    let err = client()
        .head(format!("{}/v2/app/manifests/1", fake.base_url()))
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    fake.wait_for_count(http::Method::HEAD, "/v2/app/", 1, WAIT)
        .await
        .unwrap();
}

#[tokio::test]
async fn fake_registry_serves_programmed_manifests_by_tag_and_digest() {
    let fake = FakeRegistry::start().await.unwrap();
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let digest = fake.set_manifest("app", Some("2.0"), OCI_INDEX, body);
    assert_eq!(digest, sha256(body));
    let c = client();
    for reference in ["2.0", digest.as_str()] {
        let resp = c
            .get(format!("{}/v2/app/manifests/{reference}", fake.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["docker-content-digest"], digest.as_str());
        assert_eq!(resp.headers()["content-type"], OCI_INDEX);
        assert_eq!(&resp.bytes().await.unwrap()[..], &body[..]);
    }
    let missing = c
        .head(format!("{}/v2/app/manifests/3.0", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let unknown = c
        .get(format!("{}/v2/other/tags/list", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert!(unknown.text().await.unwrap().contains("NAME_UNKNOWN"));
}

#[tokio::test]
async fn fake_registry_bearer_mode_challenges_issues_expiring_tokens_and_counts_them() {
    let fake = FakeRegistry::start().await.unwrap();
    fake.set_digest("team/app", "1", "sha256:dddd");
    fake.require_bearer(Some(("u", "p")), 60);
    let c = client();
    let url = format!("{}/v2/team/app/manifests/1", fake.base_url());
    let challenged = c.head(&url).send().await.unwrap();
    assert_eq!(challenged.status(), 401);
    let challenge = challenged.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let realm = format!("{}/token", fake.base_url());
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"{realm}\",service=\"fake-registry\",scope=\"repository:team/app:pull\""
        )
    );
    let refused = c
        .get(&realm)
        .basic_auth("u", Some("bad"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let token: serde_json::Value = c
        .get(&realm)
        .basic_auth("u", Some("p"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["expires_in"], 60);
    let ok = c
        .head(&url)
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(fake.token_requests(), 2);

    fake.require_bearer(None, 0);
    let instant: serde_json::Value = c.get(&realm).send().await.unwrap().json().await.unwrap();
    let expired = c
        .head(&url)
        .bearer_auth(instant["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        expired.status(),
        401,
        "a token with expires_in 0 is already expired"
    );
}

#[tokio::test]
async fn fake_registry_basic_mode_requires_the_credentials_and_logs_headers() {
    let fake = FakeRegistry::start().await.unwrap();
    fake.set_digest("app", "1", "sha256:eeee");
    fake.require_basic("u", "p");
    let c = client();
    let url = format!("{}/v2/app/manifests/1", fake.base_url());
    let anonymous = c.head(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"fake-registry\""
    );
    let mut req = c.head(&url).basic_auth("u", Some("p"));
    for t in ALL_TYPES {
        req = req.header("accept", t);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
    let last = fake.requests().pop().unwrap();
    assert_eq!(last.header_all("accept"), ALL_TYPES.to_vec());
    assert!(last.header("authorization").unwrap().starts_with("Basic "));
}

#[tokio::test]
async fn fake_registry_replaces_answers_with_queued_statuses_a_number_of_times() {
    let fake = FakeRegistry::start().await.unwrap();
    fake.set_tags("app", vec!["1".to_owned()]);
    fake.fault_times("/v2/app/tags/list", Fault::status(503), 2);
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            c.get(format!("{}/v2/app/tags/list", fake.base_url()))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, vec![503, 503, 200]);
}
