#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Rollouts of the simulated workload controllers, on the in-process store: the Deployment
//! condition sequence and revisions, stuck and never-ready rollouts, missing images, image
//! digests from the real registry, StatefulSet and DaemonSet rollouts.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;
use watch_cluster_sim::controllers::{
    self, ControllerConfig, HttpResolver, Outcome, StaticResolver, images::RegistryEndpoint,
};
use watch_cluster_sim::{Change, ChangeType, Kind, Store};

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(20);

/// A store with the controllers running; the controllers stop on drop.
struct Sim {
    store: Store,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sim {
    fn start(config: ControllerConfig) -> Self {
        let store = Store::new();
        let task = controllers::spawn(store.clone(), config);
        Sim { store, task }
    }

    fn get(&self, kind: Kind, name: &str) -> Value {
        self.store.get(kind, Some(NS), name).unwrap_or(Value::Null)
    }

    /// Waits until `check` holds for the object, re-checking on every change.
    async fn wait_for(
        &self,
        kind: Kind,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_longer(WAIT, kind, name, what, check).await
    }

    /// [`Sim::wait_for`] with another timeout.
    async fn wait_longer(
        &self,
        wait: Duration,
        kind: Kind,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut rx = self.store.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let obj = self.get(kind, name);
            if check(&obj) {
                return obj;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                _ => panic!(
                    "timed out waiting for {kind:?} {name}: {what}; last: {obj:#}\nreplica sets and pods: {:#}",
                    self.related(name)
                ),
            }
        }
    }

    /// The ReplicaSets and pods of workload `name` (for failure messages).
    fn related(&self, name: &str) -> Value {
        let mine = |o: &Value| {
            o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&format!("{name}-")))
        };
        let brief = |o: &Value| {
            json!({"name": o["metadata"]["name"], "spec": o["spec"]["replicas"],
            "status": o["status"], "deleting": o["metadata"]["deletionTimestamp"]})
        };
        let rss: Vec<Value> = self
            .store
            .list(Kind::ReplicaSet, Some(NS))
            .iter()
            .filter(|o| mine(o))
            .map(brief)
            .collect();
        let pods: Vec<Value> = self.store.list(Kind::Pod, Some(NS)).iter().filter(|o| mine(o))
            .map(|p| json!({"name": p["metadata"]["name"], "phase": p["status"]["phase"], "image": p["spec"]["containers"][0]["image"], "waiting": p["status"]["containerStatuses"][0]["state"]["waiting"]}))
            .collect();
        json!({"replicaSets": rss, "pods": pods})
    }

    fn pods(&self, label: (&str, &str)) -> Vec<Value> {
        self.store
            .list(Kind::Pod, Some(NS))
            .into_iter()
            .filter(|p| p["metadata"]["labels"][label.0] == label.1)
            .collect()
    }

    fn set_image(&self, kind: Kind, name: &str, image: &str) {
        let mut obj = self.get(kind, name);
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
        self.store.update(kind, obj).unwrap();
    }
}

fn workload(kind: Kind, name: &str, replicas: Option<i64>, image: &str) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": image}]}},
    });
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    json!({"apiVersion": "apps/v1", "kind": kind.info().kind,
        "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

fn deployment(name: &str, replicas: i64, image: &str) -> Value {
    workload(Kind::Deployment, name, Some(replicas), image)
}

fn count(v: &Value, key: &str) -> i64 {
    v["status"][key].as_i64().unwrap_or(0)
}

fn progressing(d: &Value) -> (String, String) {
    let conds = d["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    conds
        .iter()
        .find(|c| c["type"] == "Progressing")
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap().to_string(),
            )
        })
        .unwrap_or_default()
}

/// `kubectl rollout status`'s verdict on a Deployment (TESTBED §4).
fn deployment_complete(d: &Value) -> bool {
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    d["metadata"]["generation"].as_i64() <= d["status"]["observedGeneration"].as_i64()
        && count(d, "updatedReplicas") == want
        && count(d, "replicas") == want
        && count(d, "availableReplicas") == want
}

fn revision(v: &Value) -> &str {
    v["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .unwrap_or_default()
}

/// Records the Deployment's `Progressing` reasons and largest `status.replicas` as they change.
fn record(
    rx: &mut broadcast::Receiver<Change>,
    name: &str,
    reasons: &mut Vec<String>,
    max_replicas: &mut i64,
) {
    while let Ok(c) = rx.try_recv() {
        if c.kind != Kind::Deployment || c.object["metadata"]["name"] != name {
            continue;
        }
        let (_, reason) = progressing(&c.object);
        if !reason.is_empty() && reasons.last() != Some(&reason) {
            reasons.push(reason);
        }
        *max_replicas = (*max_replicas).max(count(&c.object, "replicas"));
    }
}

#[tokio::test]
async fn deployment_rollout_surges_and_reports_the_kubernetes_condition_sequence() {
    let sim = Sim::start(ControllerConfig::fast());
    sim.store
        .create(Kind::Deployment, deployment("web", 3, "app:1"))
        .unwrap();
    let d = sim
        .wait_for(Kind::Deployment, "web", "first rollout complete", |d| {
            deployment_complete(d) && progressing(d).1 == "NewReplicaSetAvailable"
        })
        .await;
    assert_eq!(revision(&d), "1");

    let mut rx = sim.store.subscribe();
    sim.set_image(Kind::Deployment, "web", "app:2");
    let d = sim
        .wait_for(Kind::Deployment, "web", "second rollout complete", |d| {
            deployment_complete(d)
                && progressing(d).1 == "NewReplicaSetAvailable"
                && revision(d) == "2"
        })
        .await;
    let (mut reasons, mut max_replicas) = (Vec::new(), 0);
    record(&mut rx, "web", &mut reasons, &mut max_replicas);
    assert_eq!(
        reasons.first().map(String::as_str),
        Some("NewReplicaSetAvailable"),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"NewReplicaSetCreated".to_string()),
        "{reasons:?}"
    );
    let created = reasons
        .iter()
        .position(|r| r == "NewReplicaSetCreated")
        .unwrap();
    assert_eq!(
        reasons[created + 1..],
        ["ReplicaSetUpdated", "NewReplicaSetAvailable"],
        "{reasons:?}"
    );
    assert_eq!(
        max_replicas, 4,
        "maxSurge 25% of 3 rounds up to one extra pod"
    );

    for key in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        assert_eq!(count(&d, key), 3, "{key}");
    }
    assert!(
        d["status"].get("unavailableReplicas").is_none(),
        "zero counts are omitted"
    );
    let available = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .unwrap();
    assert_eq!(
        (available["status"].as_str(), available["reason"].as_str()),
        (Some("True"), Some("MinimumReplicasAvailable"))
    );

    let rss = sim.store.list(Kind::ReplicaSet, Some(NS));
    assert_eq!(rss.len(), 2);
    let new_rs = rss.iter().find(|rs| rs["spec"]["replicas"] == 3).unwrap();
    let hash = new_rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(new_rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(revision(new_rs), "2");
    let pods = sim.pods(("app", "web"));
    assert_eq!(pods.len(), 3, "old pods are gone");
    for p in &pods {
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash);
        assert_eq!(p["status"]["phase"], "Running");
        let image_id = p["status"]["containerStatuses"][0]["imageID"]
            .as_str()
            .unwrap();
        assert!(
            image_id.starts_with("docker.io/library/app@sha256:"),
            "{image_id}"
        );
    }
}

#[tokio::test]
async fn rollback_to_an_old_template_reuses_its_replica_set_with_the_next_revision() {
    let sim = Sim::start(ControllerConfig::fast());
    sim.store
        .create(Kind::Deployment, deployment("web", 2, "app:1"))
        .unwrap();
    sim.wait_for(
        Kind::Deployment,
        "web",
        "rev 1 complete",
        deployment_complete,
    )
    .await;
    sim.set_image(Kind::Deployment, "web", "app:2");
    sim.wait_for(Kind::Deployment, "web", "rev 2 complete", |d| {
        deployment_complete(d) && revision(d) == "2"
    })
    .await;
    sim.set_image(Kind::Deployment, "web", "app:1");
    let d = sim
        .wait_for(Kind::Deployment, "web", "rev 3 complete", |d| {
            deployment_complete(d)
                && revision(d) == "3"
                && progressing(d).1 == "NewReplicaSetAvailable"
        })
        .await;
    let rss = sim.store.list(Kind::ReplicaSet, Some(NS));
    assert_eq!(rss.len(), 2, "no third ReplicaSet");
    let active = rss.iter().find(|rs| rs["spec"]["replicas"] == 2).unwrap();
    assert_eq!(revision(active), "3");
    assert_eq!(
        active["spec"]["template"]["spec"]["containers"][0]["image"],
        "app:1"
    );
    assert_eq!(count(&d, "availableReplicas"), 2);
}

#[tokio::test]
async fn stuck_rollout_exceeds_its_progress_deadline_and_keeps_old_pods() {
    let config = ControllerConfig::fast();
    config
        .control
        .set_outcome_for_image("app:2", Outcome::Stuck);
    let sim = Sim::start(config);
    let mut d = deployment("web", 2, "app:1");
    d["spec"]["progressDeadlineSeconds"] = json!(50); // 0.5 s at time scale 0.01
    sim.store.create(Kind::Deployment, d).unwrap();
    sim.wait_for(
        Kind::Deployment,
        "web",
        "rev 1 complete",
        deployment_complete,
    )
    .await;
    sim.set_image(Kind::Deployment, "web", "app:2");
    let d = sim
        .wait_for(Kind::Deployment, "web", "deadline exceeded", |d| {
            progressing(d) == ("False".to_string(), "ProgressDeadlineExceeded".to_string())
        })
        .await;
    assert_eq!(count(&d, "availableReplicas"), 2, "old pods keep serving");
    assert_eq!(count(&d, "updatedReplicas"), 1);
    let new_pod = sim
        .pods(("app", "web"))
        .into_iter()
        .find(|p| p["spec"]["containers"][0]["image"] == "app:2")
        .unwrap();
    assert_eq!(new_pod["status"]["phase"], "Pending");
    assert_eq!(
        new_pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
}

#[tokio::test]
async fn never_ready_pods_run_but_the_deployment_times_out() {
    let config = ControllerConfig::fast();
    config
        .control
        .set_outcome(Kind::Deployment, NS, "web", Outcome::NeverReady);
    let sim = Sim::start(config);
    let mut d = deployment("web", 1, "app:1");
    d["spec"]["progressDeadlineSeconds"] = json!(30);
    sim.store.create(Kind::Deployment, d).unwrap();
    let d = sim
        .wait_for(Kind::Deployment, "web", "deadline exceeded", |d| {
            progressing(d).1 == "ProgressDeadlineExceeded"
        })
        .await;
    assert_eq!(count(&d, "availableReplicas"), 0);
    let pod = &sim.pods(("app", "web"))[0];
    assert_eq!(pod["status"]["phase"], "Running");
    let ready = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
}

#[tokio::test]
async fn an_image_the_registry_lacks_stays_in_image_pull_back_off() {
    let resolver = StaticResolver::new().with("app:1", "sha256:1111");
    let sim = Sim::start(ControllerConfig::fast().with_resolver(resolver));
    sim.store
        .create(Kind::Deployment, deployment("web", 1, "app:1"))
        .unwrap();
    let d = sim
        .wait_for(
            Kind::Deployment,
            "web",
            "rev 1 complete",
            deployment_complete,
        )
        .await;
    assert_eq!(count(&d, "availableReplicas"), 1);
    let pod = &sim.pods(("app", "web"))[0];
    assert_eq!(
        pod["status"]["containerStatuses"][0]["imageID"],
        "docker.io/library/app@sha256:1111"
    );
    sim.set_image(Kind::Deployment, "web", "app:404");
    let mut rx = sim.store.subscribe();
    sim.wait_for(Kind::Deployment, "web", "new pod created", |d| {
        count(d, "updatedReplicas") == 1
    })
    .await;
    let pod = loop {
        let pods = sim.pods(("app", "web"));
        let p = pods.into_iter().find(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
        });
        if let Some(p) = p {
            break p;
        }
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
    };
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(pod["status"]["containerStatuses"][0]["imageID"], "");
    let d = sim.get(Kind::Deployment, "web");
    assert_eq!(count(&d, "availableReplicas"), 1, "the old pod stays");
    assert_eq!(count(&d, "replicas"), 2);
}

#[tokio::test]
async fn paused_deployment_makes_no_progress_and_zero_replicas_have_no_pods() {
    let sim = Sim::start(ControllerConfig::fast());
    sim.store
        .create(Kind::Deployment, deployment("web", 1, "app:1"))
        .unwrap();
    sim.store
        .create(Kind::Deployment, deployment("none", 0, "app:1"))
        .unwrap();
    sim.wait_for(
        Kind::Deployment,
        "web",
        "rev 1 complete",
        deployment_complete,
    )
    .await;
    let none = sim
        .wait_for(Kind::Deployment, "none", "complete", |d| {
            progressing(d).1 == "NewReplicaSetAvailable"
        })
        .await;
    assert!(sim.pods(("app", "none")).is_empty());
    assert!(none["status"].get("replicas").is_none());

    let mut d = sim.get(Kind::Deployment, "web");
    d["spec"]["paused"] = json!(true);
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:2");
    sim.store.update(Kind::Deployment, d).unwrap();
    let d = sim
        .wait_for(Kind::Deployment, "web", "paused observed", |d| {
            progressing(d).1 == "DeploymentPaused"
                && d["status"]["observedGeneration"] == d["metadata"]["generation"]
        })
        .await;
    assert_eq!(count(&d, "updatedReplicas"), 0);
    assert_eq!(
        sim.store
            .list(Kind::ReplicaSet, Some(NS))
            .iter()
            .filter(|r| r["metadata"]["name"].as_str().unwrap().starts_with("web-"))
            .count(),
        1
    );
}

#[tokio::test]
async fn recreate_removes_old_pods_before_starting_new_ones() {
    let sim = Sim::start(ControllerConfig::fast());
    let mut d = deployment("web", 2, "app:1");
    d["spec"]["strategy"] = json!({"type": "Recreate"});
    sim.store.create(Kind::Deployment, d).unwrap();
    sim.wait_for(
        Kind::Deployment,
        "web",
        "rev 1 complete",
        deployment_complete,
    )
    .await;
    let mut rx = sim.store.subscribe();
    sim.set_image(Kind::Deployment, "web", "app:2");
    sim.wait_for(Kind::Deployment, "web", "rev 2 complete", |d| {
        deployment_complete(d) && revision(d) == "2"
    })
    .await;
    let (mut live_old, mut max_mixed) = (2, 0);
    while let Ok(c) = rx.try_recv() {
        if c.kind != Kind::Pod {
            continue;
        }
        let old = c.object["spec"]["containers"][0]["image"] == "app:1";
        match (c.change_type, old) {
            (ChangeType::Deleted, true) => live_old -= 1,
            (ChangeType::Added, false) => max_mixed = max_mixed.max(live_old),
            _ => {}
        }
    }
    assert_eq!(
        max_mixed, 0,
        "no new pod was created while an old one existed"
    );
}

#[tokio::test]
async fn statefulset_rolls_from_the_highest_ordinal_down() {
    let sim = Sim::start(ControllerConfig::fast());
    sim.store
        .create(
            Kind::StatefulSet,
            workload(Kind::StatefulSet, "db", Some(3), "db:1"),
        )
        .unwrap();
    let done = |s: &Value| {
        let want = s["spec"]["replicas"].as_i64().unwrap_or(1);
        s["status"]["observedGeneration"] == s["metadata"]["generation"]
            && count(s, "readyReplicas") == want
            && count(s, "updatedReplicas") == want
            && s["status"]["currentRevision"] == s["status"]["updateRevision"]
    };
    let s = sim
        .wait_for(Kind::StatefulSet, "db", "first rollout", done)
        .await;
    let first = s["status"]["updateRevision"].as_str().unwrap().to_string();
    let mut rx = sim.store.subscribe();
    sim.set_image(Kind::StatefulSet, "db", "db:2");
    let s = sim
        .wait_for(Kind::StatefulSet, "db", "second rollout", |s| {
            done(s) && s["status"]["updateRevision"] != first.as_str()
        })
        .await;
    let mut deleted = Vec::new();
    while let Ok(c) = rx.try_recv() {
        if c.kind == Kind::Pod && c.change_type == ChangeType::Deleted {
            deleted.push(c.object["metadata"]["name"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(deleted, ["db-2", "db-1", "db-0"]);
    let rev = s["status"]["updateRevision"].as_str().unwrap();
    assert!(rev.starts_with("db-"));
    for p in sim.pods(("app", "db")) {
        assert_eq!(p["metadata"]["labels"]["controller-revision-hash"], rev);
        assert_eq!(p["spec"]["containers"][0]["image"], "db:2");
    }
    assert_eq!(count(&s, "currentReplicas"), 3);
    assert_eq!(count(&s, "availableReplicas"), 3);
}

#[tokio::test]
async fn statefulset_partition_keeps_lower_ordinals_and_on_delete_replaces_nothing() {
    let sim = Sim::start(ControllerConfig::fast());
    let mut s = workload(Kind::StatefulSet, "db", Some(3), "db:1");
    s["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}});
    sim.store.create(Kind::StatefulSet, s).unwrap();
    sim.wait_for(Kind::StatefulSet, "db", "ready", |s| {
        count(s, "readyReplicas") == 3
    })
    .await;
    sim.set_image(Kind::StatefulSet, "db", "db:2");
    let s = sim
        .wait_for(Kind::StatefulSet, "db", "partitioned rollout", |s| {
            count(s, "updatedReplicas") == 1 && count(s, "readyReplicas") == 3
        })
        .await;
    assert_ne!(
        s["status"]["currentRevision"],
        s["status"]["updateRevision"]
    );
    assert_eq!(
        sim.get(Kind::Pod, "db-0")["spec"]["containers"][0]["image"],
        "db:1"
    );
    assert_eq!(
        sim.get(Kind::Pod, "db-2")["spec"]["containers"][0]["image"],
        "db:2"
    );

    let mut o = workload(Kind::StatefulSet, "od", Some(1), "od:1");
    o["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    sim.store.create(Kind::StatefulSet, o).unwrap();
    sim.wait_for(Kind::StatefulSet, "od", "ready", |s| {
        count(s, "readyReplicas") == 1
    })
    .await;
    sim.set_image(Kind::StatefulSet, "od", "od:2");
    sim.wait_for(Kind::StatefulSet, "od", "observed", |s| {
        s["status"]["observedGeneration"] == 2
    })
    .await;
    assert_eq!(
        sim.get(Kind::Pod, "od-0")["spec"]["containers"][0]["image"],
        "od:1"
    );
    sim.store.delete(Kind::Pod, Some(NS), "od-0").unwrap();
    sim.wait_for(Kind::Pod, "od-0", "recreated at the new revision", |p| {
        p["spec"]["containers"][0]["image"] == "od:2"
    })
    .await;
}

#[tokio::test]
async fn daemonset_runs_one_pod_per_node_and_rolls_them() {
    let sim = Sim::start(ControllerConfig::fast());
    for n in ["node-a", "node-b"] {
        sim.store
            .create(
                Kind::Node,
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}}),
            )
            .unwrap();
    }
    sim.store
        .create(
            Kind::DaemonSet,
            workload(Kind::DaemonSet, "agent", None, "agent:1"),
        )
        .unwrap();
    let done = |d: &Value| {
        let desired = count(d, "desiredNumberScheduled");
        d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && desired == 2
            && count(d, "updatedNumberScheduled") == desired
            && count(d, "numberAvailable") == desired
    };
    sim.wait_for(Kind::DaemonSet, "agent", "first rollout", done)
        .await;
    let mut rx = sim.store.subscribe();
    sim.set_image(Kind::DaemonSet, "agent", "agent:2");
    let d = sim
        .wait_for(Kind::DaemonSet, "agent", "second rollout", |d| {
            done(d) && d["status"]["observedGeneration"] == 2
        })
        .await;
    assert_eq!(count(&d, "numberReady"), 2);
    let pods = sim.pods(("app", "agent"));
    let mut nodes: Vec<&str> = pods
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["node-a", "node-b"]);
    assert!(
        pods.iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "agent:2")
    );
    // maxUnavailable 1: the second old pod goes only after the first replacement is ready.
    let mut old_deleted = 0;
    let mut new_ready_before_second_delete = false;
    while let Ok(c) = rx.try_recv() {
        if c.kind != Kind::Pod {
            continue;
        }
        if c.change_type == ChangeType::Deleted {
            old_deleted += 1;
        } else if old_deleted == 1
            && c.object["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        {
            new_ready_before_second_delete = true;
        }
    }
    assert_eq!(old_deleted, 2);
    assert!(new_ready_before_second_delete);
}

#[tokio::test]
async fn image_ids_carry_the_digest_the_real_registry_serves_for_the_tag() {
    use watch_cluster_testkit::{ImageKind, RealRegistry, RegistryAuth};
    let registry = RealRegistry::start(RegistryAuth::basic("ci", "secret"))
        .await
        .unwrap();
    let pushed = registry
        .push("team/app", "1.0", ImageKind::OciIndex, "a")
        .await
        .unwrap();
    let single = registry
        .push("team/app", "1.1", ImageKind::DockerManifest, "b")
        .await
        .unwrap();
    let endpoint = RegistryEndpoint {
        base_url: registry.base_url().parse().unwrap(),
        basic_auth: registry.credentials(),
    };
    let resolver = HttpResolver::new(
        HashMap::from([("registry.test".to_string(), endpoint)]),
        None,
    )
    .unwrap();
    let sim = Sim::start(ControllerConfig::fast().with_resolver(resolver));
    sim.store
        .create(
            Kind::Deployment,
            deployment("web", 1, "registry.test/team/app:1.0"),
        )
        .unwrap();
    sim.wait_for(
        Kind::Deployment,
        "web",
        "rev 1 complete",
        deployment_complete,
    )
    .await;
    let pod = &sim.pods(("app", "web"))[0];
    assert_eq!(
        pod["status"]["containerStatuses"][0]["imageID"],
        format!("registry.test/team/app@{}", pushed.digest),
        "the index digest, as containerd reports for a multi-arch tag"
    );
    let pinned = format!("registry.test/team/app:ignored@{}", single.digest);
    sim.set_image(Kind::Deployment, "web", &pinned);
    sim.wait_for(Kind::Deployment, "web", "rev 2 complete", |d| {
        deployment_complete(d) && revision(d) == "2"
    })
    .await;
    let pod = &sim.pods(("app", "web"))[0];
    assert_eq!(
        pod["status"]["containerStatuses"][0]["imageID"],
        format!("registry.test/team/app@{}", single.digest)
    );
    sim.set_image(Kind::Deployment, "web", "registry.test/team/app:9.9");
    let d = sim
        .wait_for(Kind::Deployment, "web", "missing tag pulled", |d| {
            count(d, "updatedReplicas") == 1 && count(d, "replicas") == 2
        })
        .await;
    assert_eq!(count(&d, "availableReplicas"), 1);
}

/// `kubectl rollout status` against the standalone simulator binary.
mod kubectl {
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Output, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    const NODES: &str = "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-a\n---\napiVersion: v1\nkind: Node\nmetadata:\n  name: node-b\n";

    /// The simulator process; killed on drop.
    struct SimProcess {
        child: Child,
        dir: tempfile::TempDir,
    }

    impl Drop for SimProcess {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl SimProcess {
        /// Starts the binary with fast timing; new pods of images containing `stuck` never start.
        fn start() -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("nodes.yaml"), NODES).unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_watch-cluster-sim"))
                .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
                .arg(dir.path().join("kubeconfig"))
                .arg("--load")
                .arg(dir.path().join("nodes.yaml"))
                .args([
                    "--pod-start-delay-ms",
                    "20",
                    "--pod-ready-delay-ms",
                    "30",
                    "--time-scale",
                    "0.01",
                ])
                .args(["--outcome", "stuck=stuck"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let sim = SimProcess { child, dir };
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(line);
            });
            let url = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("simulator did not start");
            assert!(url.starts_with("http://127.0.0.1:"), "{url}");
            sim
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn kubectl(&self, args: &[&str]) -> Output {
            Command::new("/usr/bin/kubectl")
                .arg("--kubeconfig")
                .arg(self.path("kubeconfig"))
                .arg("--cache-dir")
                .arg(self.path("cache"))
                .args(args)
                .output()
                .unwrap()
        }

        fn create(&self, yaml: &str) {
            let file = self.path("obj.yaml");
            std::fs::write(&file, yaml).unwrap();
            let out = self.kubectl(&["create", "--validate=false", "-f", path_str(&file)]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        fn set_image(&self, target: &str, image: &str) {
            let out = self.kubectl(&["set", "image", target, &format!("app={image}")]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        /// `kubectl rollout status`: exit code and stdout + stderr.
        fn rollout_status(&self, target: &str, timeout: &str) -> (i32, String) {
            let out = self.kubectl(&["rollout", "status", target, &format!("--timeout={timeout}")]);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.code().unwrap_or(-1), text)
        }
    }

    fn path_str(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    fn manifest(kind: &str, name: &str, extra_spec: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n{extra_spec}  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: app\n        image: {name}:1\n"
        )
    }

    /// What `kubectl rollout status` prints on success and on failure of a kind.
    struct Expect {
        done: &'static str,
        stuck_timeout: &'static str,
        stuck: &'static str,
    }

    fn assert_completes_then_gets_stuck(
        sim: &SimProcess,
        target: &str,
        name: &str,
        expect: &Expect,
    ) {
        let (code, text) = sim.rollout_status(target, "30s");
        assert_eq!(code, 0, "{text}");
        assert!(text.contains(expect.done), "{text}");
        sim.set_image(target, &format!("{name}:2"));
        let (code, text) = sim.rollout_status(target, "30s");
        assert_eq!(code, 0, "{text}");
        assert!(text.contains(expect.done), "{text}");
        sim.set_image(target, &format!("{name}:stuck"));
        let (code, text) = sim.rollout_status(target, expect.stuck_timeout);
        assert_eq!(code, 1, "{text}");
        assert!(text.contains(expect.stuck), "{text}");
    }

    #[test]
    fn kubectl_rollout_status_succeeds_for_completing_and_fails_for_stuck_deployments() {
        let sim = SimProcess::start();
        sim.create(&manifest(
            "Deployment",
            "web",
            "  replicas: 2\n  progressDeadlineSeconds: 100\n",
        ));
        let expect = Expect {
            done: "deployment \"web\" successfully rolled out",
            stuck_timeout: "60s",
            stuck: "deployment \"web\" exceeded its progress deadline",
        };
        assert_completes_then_gets_stuck(&sim, "deployment/web", "web", &expect);
    }

    #[test]
    fn kubectl_rollout_status_succeeds_for_completing_and_times_out_for_stuck_statefulsets() {
        let sim = SimProcess::start();
        sim.create(&manifest(
            "StatefulSet",
            "db",
            "  replicas: 2\n  serviceName: db\n",
        ));
        // The API server defaults `partition: 0`, so kubectl reports a partitioned roll out.
        let expect = Expect {
            done: "partitioned roll out complete: 2 new pods have been updated",
            stuck_timeout: "2s",
            stuck: "timed out waiting for the condition",
        };
        assert_completes_then_gets_stuck(&sim, "statefulset/db", "db", &expect);
    }

    #[test]
    fn kubectl_rollout_status_succeeds_for_completing_and_times_out_for_stuck_daemonsets() {
        let sim = SimProcess::start();
        sim.create(&manifest("DaemonSet", "agent", ""));
        let expect = Expect {
            done: "daemon set \"agent\" successfully rolled out",
            stuck_timeout: "2s",
            stuck: "timed out waiting for the condition",
        };
        assert_completes_then_gets_stuck(&sim, "daemonset/agent", "agent", &expect);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_deployments_roll_out_promptly() {
    const N: usize = 1000;
    const UPDATED: usize = 100;
    let sim = Sim::start(ControllerConfig::fast());
    let long = Duration::from_secs(60);
    for i in 0..N {
        let d = deployment(&format!("d{i}"), 2, "app:1");
        sim.store.create(Kind::Deployment, d).unwrap();
    }
    for i in 0..N {
        let name = format!("d{i}");
        sim.wait_longer(
            long,
            Kind::Deployment,
            &name,
            "complete",
            deployment_complete,
        )
        .await;
    }
    for i in 0..UPDATED {
        sim.set_image(Kind::Deployment, &format!("d{i}"), "app:2");
    }
    for i in 0..UPDATED {
        let name = format!("d{i}");
        sim.wait_longer(long, Kind::Deployment, &name, "updated", |d| {
            deployment_complete(d) && revision(d) == "2"
        })
        .await;
    }
}

/// Pushes `team/app:1.0` as an OCI index and checks the pod's `imageID` after a rollout.
async fn assert_pod_pulls_the_index_digest(registry: &watch_cluster_testkit::RealRegistry) {
    use watch_cluster_testkit::ImageKind;
    let pushed = registry
        .push("team/app", "1.0", ImageKind::OciIndex, "t")
        .await
        .unwrap();
    let endpoint = RegistryEndpoint {
        base_url: registry.base_url().parse().unwrap(),
        basic_auth: registry.credentials(),
    };
    let routes = HashMap::from([("registry.test".to_string(), endpoint)]);
    let ca = registry.ca_pem().map(str::as_bytes);
    let resolver = HttpResolver::new(routes, ca).unwrap();
    let sim = Sim::start(ControllerConfig::fast().with_resolver(resolver));
    let d = deployment("web", 1, "registry.test/team/app:1.0");
    sim.store.create(Kind::Deployment, d).unwrap();
    sim.wait_for(Kind::Deployment, "web", "complete", deployment_complete)
        .await;
    let pod = &sim.pods(("app", "web"))[0];
    let want = format!("registry.test/team/app@{}", pushed.digest);
    assert_eq!(pod["status"]["containerStatuses"][0]["imageID"], want);
}

#[tokio::test]
async fn image_ids_resolve_through_registry_bearer_tokens() {
    use watch_cluster_testkit::{RealRegistry, RegistryAuth};
    let registry = RealRegistry::start(RegistryAuth::token("ci", "secret"))
        .await
        .unwrap();
    assert_pod_pulls_the_index_digest(&registry).await;
}

#[tokio::test]
async fn image_ids_resolve_over_tls_with_a_private_ca() {
    use watch_cluster_testkit::{RealRegistry, RegistryAuth};
    let registry = RealRegistry::start(RegistryAuth::Tls).await.unwrap();
    assert_pod_pulls_the_index_digest(&registry).await;
}
