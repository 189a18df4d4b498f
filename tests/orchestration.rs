#![allow(clippy::unwrap_used, clippy::expect_used)]
//! In-process orchestration: the controller's watch → reconcile → observe loop against the simulated API
//! served without a socket, on tokio's paused clock. Deadlines of minutes pass at once and interleavings
//! are injected with the API's own fault rules, so these tests are exact about order and time, not racy.
//! (No workload controllers run here: each object's status is what the test writes.)

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::Utc;
use serde_json::{Value, json};
use watch_cluster::{
    annotations::{RolloutOutcome, RolloutRecord},
    config::{Config, RunArgs},
    controller::{self, Context},
    notify::WebhookConfig,
    record::{self, Binding, RecordKey},
    workload::Kind as WorkloadKind,
};
use watch_cluster_sim::{ApiConfig, Fault, InProcess, Kind};
use watch_cluster_testkit::annotations::NEVER_SOON;

const NEW: &str =
    "r.example/app:1.1.0@sha256:0000000000000000000000000000000000000000000000000000000000000001";
const OLD: &str = "r.example/app:1.0.0";

struct Bed {
    api: InProcess,
    key: RecordKey,
    ctx: Arc<Context>,
}

impl Bed {
    fn new() -> Bed {
        Bed::with(RunArgs::default())
    }

    /// A bed whose controller runs with `args` (leader election off).
    fn with(args: RunArgs) -> Bed {
        watch_cluster::install_crypto_provider();
        let api = InProcess::new(ApiConfig::default()).unwrap();
        let key = RecordKey::from_bytes(&[9; 32]).unwrap();
        let config = Config::from_args(&RunArgs {
            leader_election: Some("false".into()),
            ..args
        })
        .unwrap();
        let mut metrics = prometheus_client::registry::Registry::default();
        let ctx = Context::build(
            api.client.clone(),
            config,
            WebhookConfig::disabled(),
            "test".into(),
            tokio::sync::watch::channel(true).1,
            key.clone(),
            &mut metrics,
        )
        .unwrap()
        .with_quarantine_namespace("default");
        Bed {
            api,
            key,
            ctx: Arc::new(ctx),
        }
    }

    /// A Deployment on `image`, opted in with a cron that never fires during the test (no registry).
    fn deployment(&self, name: &str, image: &str, updated: i64) -> Value {
        let created = self
            .api
            .store
            .create(
                Kind::Deployment,
                json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": "default", "annotations": {
                        "watch-cluster.io/enabled": "true", "watch-cluster.io/cron": NEVER_SOON}},
                    "spec": {"replicas": 2, "progressDeadlineSeconds": 600,
                        "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}},
                            "spec": {"containers": [{"name": "app", "image": image}]}}},
                }),
            )
            .unwrap();
        self.set_status(name, updated);
        created
    }

    /// Status as a Deployment controller that observed the spec would write it, with `updated` of 2
    /// replicas on the new template.
    fn set_status(&self, name: &str, updated: i64) {
        let mut object = self.get(name);
        object["status"] = json!({
            "observedGeneration": object["metadata"]["generation"],
            "replicas": 2, "updatedReplicas": updated, "readyReplicas": 2,
            "availableReplicas": updated,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}],
        });
        self.api
            .store
            .update_status(Kind::Deployment, object)
            .unwrap();
    }

    fn get(&self, name: &str) -> Value {
        self.api
            .store
            .get(Kind::Deployment, Some("default"), name)
            .unwrap()
    }

    fn seal(&self, name: &str, record: &RolloutRecord) -> String {
        let object = self.get(name);
        let uid = object["metadata"]["uid"].as_str().unwrap().to_owned();
        let binding = Binding {
            kind: WorkloadKind::Deployment,
            namespace: "default",
            name,
            uid: &uid,
        };
        record::seal(&self.key, &binding, record)
    }

    /// Writes the `rollout` annotation as the controller would have, keeping the status.
    fn write_record(&self, name: &str, value: &str) {
        let mut object = self.get(name);
        object["metadata"]["annotations"]["watch-cluster.io/rollout"] = json!(value);
        self.api.store.update(Kind::Deployment, object).unwrap();
    }

    fn annotation(&self, name: &str, key: &str) -> Option<String> {
        self.get(name)["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_owned)
    }

    fn image(&self, name: &str) -> String {
        self.get(name)["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn start(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(controller::watch_all(self.ctx.clone()))
    }

    /// Lets virtual time pass in small steps, so every timer due meanwhile fires in order.
    async fn pass(&self, duration: Duration) {
        let step = Duration::from_millis(500);
        let mut passed = Duration::ZERO;
        while passed < duration {
            tokio::time::sleep(step).await;
            passed += step;
        }
    }
}

fn record(started_hours_ago: i64, outcome: Option<RolloutOutcome>) -> RolloutRecord {
    RolloutRecord {
        id: format!("id-{started_hours_ago}"),
        from: BTreeMap::from([("app".into(), OLD.into())]),
        to: BTreeMap::from([("app".into(), NEW.into())]),
        started_at: Utc::now() - chrono::Duration::hours(started_hours_ago),
        outcome,
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollout_that_stops_moving_is_rolled_back_at_its_deadline_and_not_before() {
    let bed = Bed::new();
    bed.deployment("web", NEW, 1);
    // Written a day ago (the wall clock does not move under a paused runtime): the limit still runs from
    // when this controller began watching.
    bed.write_record("web", &bed.seal("web", &record(24, None)));
    let controller = bed.start();

    bed.pass(Duration::from_secs(600)).await;
    assert_eq!(
        bed.image("web"),
        NEW,
        "ten minutes: still within 600 s + 60 s"
    );
    bed.pass(Duration::from_secs(90)).await;
    assert_eq!(bed.image("web"), OLD, "past the limit: rolled back");
    let quarantine = bed
        .annotation("web", "watch-cluster.io/quarantine")
        .unwrap();
    assert!(quarantine.contains(NEW), "{quarantine}");
    bed.pass(Duration::from_secs(5)).await;
    assert_eq!(
        bed.annotation("web", "watch-cluster.io/rollout"),
        None,
        "the outcome was delivered (webhooks off) and the record removed"
    );
    controller.abort();
}

#[tokio::test(start_paused = true)]
async fn an_outcome_recorded_while_a_delivery_runs_is_delivered_after_it() {
    // The interleaving behind "completed rollouts without a COMPLETED webhook": a delivery pass starts
    // (its read of the workload is slow), and meanwhile the next outcome is recorded. That request used
    // to be dropped, leaving the outcome until the workload's next schedule tick (here: never).
    let bed = Bed::new();
    bed.deployment("web", NEW, 2);
    let done = |at_hours: i64| {
        Some(RolloutOutcome::Completed {
            delivered: Default::default(),
            at: Utc::now() - chrono::Duration::hours(at_hours),
            duration_ms: 1000,
        })
    };
    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    bed.api
        .faults
        .inject(Fault::delay(path, Duration::from_secs(10), 1).method("GET"));
    bed.write_record("web", &bed.seal("web", &record(3, done(3))));
    let controller = bed.start();
    bed.pass(Duration::from_secs(2)).await;
    let second = bed.seal("web", &record(1, done(1)));
    bed.write_record("web", &second);

    bed.pass(Duration::from_secs(30)).await;
    assert_eq!(
        bed.annotation("web", "watch-cluster.io/rollout"),
        None,
        "the second outcome was delivered and its record removed"
    );
    controller.abort();
}

#[tokio::test(start_paused = true)]
async fn a_forged_record_is_reported_and_never_acted_on() {
    let bed = Bed::new();
    bed.deployment("web", NEW, 1);
    let mut forged = serde_json::to_value(record(24, None)).unwrap();
    forged["from"]["app"] = json!("evil/backdoor:6.6.6");
    bed.write_record("web", &forged.to_string());
    let controller = bed.start();

    bed.pass(Duration::from_secs(3600)).await;
    assert_eq!(bed.image("web"), NEW);
    assert_eq!(bed.annotation("web", "watch-cluster.io/quarantine"), None);
    let events = bed.api.store.list(Kind::Event, Some("default"));
    let reasons: Vec<&str> = events.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert_eq!(reasons, ["RecordRejected"], "one Event, not one per look");
    controller.abort();
}

#[tokio::test(start_paused = true)]
async fn a_refused_outcome_write_is_retried_with_a_growing_pause_and_reported_once() {
    let bed = Bed::new();
    bed.deployment("web", NEW, 2);
    bed.write_record("web", &bed.seal("web", &record(1, None)));
    bed.set_status("web", 2);
    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    bed.api
        .faults
        .inject(Fault::status(path, 500, 1000).method("PATCH"));
    let controller = bed.start();

    bed.pass(Duration::from_secs(60)).await;
    let patches = bed
        .api
        .log
        .entries()
        .into_iter()
        // The outcome writes (JSON Patches), not the `detected` announcement (a merge patch).
        .filter(|r| {
            r.method == "PATCH"
                && r.path == path
                && r.content_type.as_deref() == Some("application/json-patch+json")
        })
        .count();
    // 2 s, 4 s, 8 s, 16 s, 32 s apart: at most 6 tries in a minute (every 2 s would be 30).
    assert!((3..=6).contains(&patches), "{patches} tries in 60 s");
    let events = bed.api.store.list(Kind::Event, Some("default"));
    let unwritable = events
        .iter()
        .filter(|e| e["reason"] == "RolloutRecordUnwritable")
        .count();
    assert_eq!(unwritable, 1, "one Warning, not one per try");

    bed.api.faults.clear();
    bed.pass(Duration::from_secs(70)).await;
    assert_eq!(
        bed.annotation("web", "watch-cluster.io/rollout"),
        None,
        "written, delivered and removed once the API server takes it"
    );
    controller.abort();
}

#[tokio::test(start_paused = true)]
async fn an_outcome_whose_delivery_failed_is_retried_within_seconds_not_at_the_next_tick() {
    let bed = Bed::new();
    bed.deployment("web", NEW, 2);
    let done = Some(RolloutOutcome::Completed {
        delivered: Default::default(),
        at: Utc::now(),
        duration_ms: 1000,
    });
    bed.write_record("web", &bed.seal("web", &record(1, done)));
    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    // The delivery's reads of the workload fail three times.
    bed.api
        .faults
        .inject(Fault::status(path, 500, 3).method("GET"));
    let controller = bed.start();

    bed.pass(Duration::from_secs(30)).await;
    assert_eq!(
        bed.annotation("web", "watch-cluster.io/rollout"),
        None,
        "delivered (webhooks off) and removed after the retries, although the cron fires in 2099"
    );
    controller.abort();
}

#[tokio::test(start_paused = true)]
async fn a_rollout_whose_pods_cannot_pull_quarantines_the_digest_cluster_wide_before_the_rollback()
{
    let bed = Bed::with(RunArgs {
        quarantine_scope: Some("cluster".into()),
        ..RunArgs::default()
    });
    bed.api
        .store
        .create(
            Kind::ConfigMap,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "watch-cluster-quarantine", "namespace": "default"}}),
        )
        .unwrap();
    bed.deployment("web", NEW, 1);
    // One new pod that cannot pull, one old pod that runs: only the new one speaks for the image.
    for (name, image, state) in [
        (
            "web-new",
            NEW,
            json!({"waiting": {"reason": "ErrImagePull"}}),
        ),
        ("web-old", OLD, json!({"running": {}})),
    ] {
        let mut pod = bed
            .api
            .store
            .create(
                Kind::Pod,
                json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": image}]}}),
            )
            .unwrap();
        pod["status"] = json!({"containerStatuses": [{"name": "app", "image": image, "imageID": "",
            "ready": false, "restartCount": 0, "state": state}]});
        bed.api.store.update_status(Kind::Pod, pod).unwrap();
    }
    // Started a day ago by the wall clock, which a paused runtime does not move (see the test above).
    bed.write_record("web", &bed.seal("web", &record(24, None)));
    let controller = bed.start();

    bed.pass(Duration::from_secs(700)).await;
    assert_eq!(bed.image("web"), OLD, "past the limit: rolled back");
    let map = bed
        .api
        .store
        .get(Kind::ConfigMap, Some("default"), "watch-cluster-quarantine")
        .unwrap();
    let entries: Vec<Value> =
        serde_json::from_str(map["data"]["entries.json"].as_str().unwrap()).unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (
            &entries[0]["registry"],
            &entries[0]["repository"],
            &entries[0]["digest"],
        ),
        (
            &json!("r.example"),
            &json!("app"),
            &json!(NEW.split_once('@').unwrap().1),
        )
    );
    assert_eq!(
        (&entries[0]["name"], &entries[0]["reason"]),
        (&json!("web"), &json!("ErrImagePull"))
    );
    // The entry is written first: a restart between the two writes cannot lose it.
    let writes: Vec<String> = bed
        .api
        .log
        .entries()
        .into_iter()
        // The ConfigMap's update, and the JSON Patches of the rollout (not `detected`, a merge patch).
        .filter(|r| {
            r.method == "PUT" || r.content_type.as_deref() == Some("application/json-patch+json")
        })
        .filter(|r| r.path.contains("configmaps") || r.path.contains("deployments/web"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        writes.first().map(String::as_str),
        Some("PUT /api/v1/namespaces/default/configmaps/watch-cluster-quarantine"),
        "{writes:#?}"
    );
    controller.abort();
}
