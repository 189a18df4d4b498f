//! Fake Nodes: registered once with a capacity no test exhausts, kept Ready by Lease renewals, as a kubelet
//! with node leases does (the node-lifecycle controller reads the Lease as the heartbeat).

use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Node};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

/// Creates the Node when missing and reports it Ready with its capacity.
pub async fn register(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.watch-cluster.io/testbed": "true",
            },
        },
        "spec": {},
    }))?;
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => return Err(error.into()),
    }
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(status(name, &Utc::now().to_rfc3339())),
    )
    .await?;
    Ok(())
}

/// The status a healthy kubelet reports: Ready, no pressure, room for 10,000 pods.
fn status(name: &str, now: &str) -> Value {
    let condition = |type_: &str, status: &str, reason: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": reason,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        })
    };
    let resources =
        json!({"cpu": "1000", "memory": "1Ti", "pods": "10000", "ephemeral-storage": "1Ti"});
    json!({
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
                condition("Ready", "True", "KubeletReady"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "machineID": name, "systemUUID": name, "bootID": name,
                "kernelVersion": "testbed", "osImage": "watch-cluster test bed",
                "containerRuntimeVersion": "testbed://1", "kubeletVersion": "v1.36.3",
                "kubeProxyVersion": "v1.36.3", "operatingSystem": "linux", "architecture": "amd64",
            },
        }
    })
}

/// Renews every Node's Lease each `every`, and its status every sixth time (a kubelet reports status far
/// less often than it renews its Lease). A failed renewal is logged and retried on the next beat.
pub async fn heartbeat(client: Client, names: Vec<String>, every: Duration) -> anyhow::Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(client);
    let mut beat: u64 = 0;
    loop {
        let now = Utc::now();
        for name in &names {
            if let Err(error) = renew(&leases, name, every, &now).await {
                tracing::warn!(node = %name, %error, "Lease renewal failed; retrying next beat");
            }
            if beat % 6 == 5 {
                let patch = Patch::Merge(status(name, &now.to_rfc3339()));
                if let Err(error) = nodes
                    .patch_status(name, &PatchParams::default(), &patch)
                    .await
                {
                    tracing::warn!(node = %name, %error, "Node status update failed");
                }
            }
        }
        beat += 1;
        tokio::time::sleep(every).await;
    }
}

async fn renew(
    api: &Api<Lease>,
    name: &str,
    every: Duration,
    now: &chrono::DateTime<Utc>,
) -> anyhow::Result<()> {
    let renew_time = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let spec = json!({
        "holderIdentity": name,
        "leaseDurationSeconds": (every.as_secs() * 4).max(40),
        "renewTime": renew_time,
    });
    match api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": spec,
            }))?;
            api.create(&PostParams::default(), &lease).await?;
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}
