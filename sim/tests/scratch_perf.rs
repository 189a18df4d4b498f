#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Instant;
use watch_cluster_sim::{Kind, SimCluster, SimOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = SimCluster::start(SimOptions::default()).await.unwrap();
    let t = Instant::now();
    for i in 0..10_000 {
        let name = format!("d{i}");
        sim.store().create(Kind::Deployment, json!({"metadata": {"name": name, "namespace": format!("ns{}", i % 50)},
          "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}},
          "spec": {"containers": [{"name": "a", "image": "r/a:1"}, {"name": "b", "image": "r/b:1"}]}}}})).unwrap();
    }
    eprintln!("create 10k: {:?}", t.elapsed());
    let http = reqwest::Client::new();
    let t = Instant::now();
    let body = http.get(format!("{}/apis/apps/v1/deployments", sim.url())).send().await.unwrap().bytes().await.unwrap();
    eprintln!("list all 10k: {:?} {} bytes", t.elapsed(), body.len());
    let t = Instant::now();
    for i in 0..1000 {
        let r = http.get(format!("{}/apis/apps/v1/namespaces/ns{}/deployments/d{i}", sim.url(), i % 50)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    eprintln!("1000 gets: {:?}", t.elapsed());
    let t = Instant::now();
    for i in 0..1000 {
        let r = http.patch(format!("{}/apis/apps/v1/namespaces/ns{}/deployments/d{i}", sim.url(), i % 50))
            .header("content-type", "application/strategic-merge-patch+json")
            .body(r#"{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"r/a:2"}]}}}}"#).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    eprintln!("1000 patches: {:?}", t.elapsed());
    let t = Instant::now();
    let mut next = None::<String>; let mut pages = 0;
    loop {
        let mut url = format!("{}/apis/apps/v1/deployments?limit=500", sim.url());
        if let Some(c) = &next { url.push_str(&format!("&continue={c}")); }
        let v: serde_json::Value = http.get(url).send().await.unwrap().json().await.unwrap();
        pages += 1;
        match v["metadata"]["continue"].as_str() { Some(c) => next = Some(c.to_string()), None => break }
    }
    eprintln!("paged list {pages} pages: {:?}", t.elapsed());
}
