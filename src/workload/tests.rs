#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use serde_json::json;

fn deployment(
    generation: i64,
    spec_extra: serde_json::Value,
    status: serde_json::Value,
) -> Deployment {
    let mut spec = json!({
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "initContainers": [{"name": "migrate", "image": "migrate:1.0.0"}],
            "containers": [{"name": "app", "image": "app:1.0.0"}, {"name": "proxy", "image": "envoy:1.30.0"}],
            "imagePullSecrets": [{"name": "regcred"}]
        }}
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                     "generation": generation,
                     "annotations": {"watch-cluster.io/enabled": "true",
                                     "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": spec,
        "status": status,
    }))
    .unwrap()
}

#[test]
fn the_projection_keeps_only_what_deciding_needs() {
    let w = Workload::from(&deployment(1, json!({"paused": true}), json!({})));
    assert_eq!((w.namespace.as_str(), w.name.as_str()), ("shop", "web"));
    assert_eq!(
        w.annotations.len(),
        1,
        "only watch-cluster.io/ annotations are kept"
    );
    assert_eq!(w.containers.len(), 3);
    assert_eq!(
        w.container("migrate").unwrap().image_path(),
        "/spec/template/spec/initContainers/0/image"
    );
    assert_eq!(
        w.container("proxy").unwrap().image_path(),
        "/spec/template/spec/containers/1/image"
    );
    assert!(w.paused);
    assert_eq!(w.image_pull_secrets, ["regcred"]);
    assert_eq!(w.service_account, "default");
    assert_eq!(w.progress_deadline_seconds, Some(600));
}

#[test]
fn a_deployment_completes_only_when_every_count_caught_up() {
    let cases = [
        (2, json!({"observedGeneration": 1}), "observed"),
        (
            1,
            json!({"observedGeneration": 1, "updatedReplicas": 1, "replicas": 2}),
            "1 out of 2 new replicas",
        ),
        (
            1,
            json!({"observedGeneration": 1, "updatedReplicas": 2, "replicas": 3, "availableReplicas": 2}),
            "1 old replicas",
        ),
        (
            1,
            json!({"observedGeneration": 1, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 1}),
            "1 of 2 updated",
        ),
    ];
    for (generation, status, expected) in cases {
        match deployment_progress(&deployment(generation, json!({}), status)) {
            Progress::InProgress(msg) => assert!(msg.contains(expected), "{msg}"),
            other => panic!("expected in progress ({expected}), got {other:?}"),
        }
    }
    let done = json!({"observedGeneration": 1, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2});
    assert_eq!(
        deployment_progress(&deployment(1, json!({}), done)),
        Progress::Complete
    );
}

#[test]
fn a_deployment_past_its_progress_deadline_has_failed() {
    let status = json!({"observedGeneration": 1, "updatedReplicas": 1, "replicas": 3,
        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]});
    assert!(matches!(
        deployment_progress(&deployment(1, json!({}), status)),
        Progress::Failed(msg) if msg.contains("exceeded its progress deadline")
    ));
}

#[test]
fn a_statefulset_completes_when_revisions_match_and_pods_are_ready() {
    let sts = |status: serde_json::Value, strategy: serde_json::Value| -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "shop", "generation": 3},
            "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "updateStrategy": strategy,
                     "template": {"spec": {"containers": [{"name": "db", "image": "postgres:16.1"}]}}},
            "status": status,
        }))
        .unwrap()
    };
    let rolling = json!({"type": "RollingUpdate"});
    let moving = json!({"observedGeneration": 3, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 1,
                        "currentRevision": "db-a", "updateRevision": "db-b"});
    assert!(matches!(
        statefulset_progress(&sts(moving, rolling.clone())),
        Progress::InProgress(_)
    ));
    let done = json!({"observedGeneration": 3, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3,
                      "currentRevision": "db-b", "updateRevision": "db-b"});
    assert_eq!(
        statefulset_progress(&sts(done, rolling)),
        Progress::Complete
    );
    let on_delete = Workload::from(&sts(json!({}), json!({"type": "OnDelete"})));
    assert!(on_delete.on_delete);
}

#[test]
fn a_daemonset_completes_when_every_node_runs_the_new_pod() {
    let ds = |status: serde_json::Value| -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "ops", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"spec": {"containers": [{"name": "agent", "image": "agent:2.0.0"}]}}},
            "status": status,
        }))
        .unwrap()
    };
    let base = json!({"observedGeneration": 2, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                      "numberMisscheduled": 0, "numberReady": 3});
    let mut moving = base.clone();
    moving["updatedNumberScheduled"] = json!(2);
    moving["numberAvailable"] = json!(3);
    assert!(matches!(
        daemonset_progress(&ds(moving)),
        Progress::InProgress(_)
    ));
    let mut done = base;
    done["updatedNumberScheduled"] = json!(3);
    done["numberAvailable"] = json!(3);
    assert_eq!(daemonset_progress(&ds(done)), Progress::Complete);
}

#[test]
fn gitops_tools_are_named_by_their_own_labels_and_annotations() {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let none = BTreeMap::new();
    assert_eq!(
        GitOps::detect(
            &none,
            &map(&[(
                "argocd.argoproj.io/tracking-id",
                "app:apps/Deployment:ns/web"
            )])
        ),
        Some(GitOps::ArgoCd)
    );
    assert_eq!(
        GitOps::detect(&map(&[("argocd.argoproj.io/instance", "web")]), &none),
        Some(GitOps::ArgoCd)
    );
    assert_eq!(
        GitOps::detect(&map(&[("kustomize.toolkit.fluxcd.io/name", "apps")]), &none),
        Some(GitOps::Flux)
    );
    assert_eq!(
        GitOps::detect(&map(&[("helm.toolkit.fluxcd.io/name", "web")]), &none),
        Some(GitOps::Flux)
    );
    // Look-alikes are not a tool.
    assert_eq!(
        GitOps::detect(
            &map(&[("app.kubernetes.io/managed-by", "Helm")]),
            &map(&[("argocd.argoproj.io/sync-wave", "1")])
        ),
        None
    );
    let advice = GitOps::ArgoCd.advice();
    assert!(
        advice.contains("ignoreDifferences") && advice.contains("RespectIgnoreDifferences=true")
    );
    assert!(
        GitOps::Flux
            .advice()
            .contains("kustomize.toolkit.fluxcd.io/ssa: IfNotPresent")
    );
}
