//! StatefulSet and DaemonSet rollouts.

use serde_json::json;
use watch_cluster_sim::controllers::ControllerConfig;
use watch_cluster_sim::{ChangeType, Kind};

use super::*;

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
