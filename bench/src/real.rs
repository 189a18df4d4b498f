//! `--cluster real`: the scenario of the simulator run on a real control plane (`testbed/up` with
//! `TESTBED_PROFILE=bench`, in a state dir of the run's own, stopped with `testbed/down` when the run ends,
//! also on error).
//!
//! Input: [`RealSettings`]. Output: a [`RealReport`]. The steps:
//!
//! 1. **Control plane**: `testbed/up`, then the product installed as a user installs it (`kubectl apply -k
//!    k8s/`, the in-cluster Deployment scaled to 0: nothing here runs its container).
//! 2. **Setup** (timed apart): the registry programmed as for the simulator, every Deployment created by the
//!    admin with bounded concurrency; the watched ones with 1 replica, the others with 0 replicas and paused
//!    (no ReplicaSet, no pods, nothing rolls), until every watched rollout is complete. The node agent
//!    makes the pods Ready after resolving their images in the bench's fake registry, as a kubelet pulls;
//!    its requests carry no `watch-cluster/` User-Agent, so they are not counted as the controller's.
//! 3. **The controller** runs on the host as the in-cluster Pod would: the applied ConfigMap's and Secret's
//!    settings, a TokenRequest token of its ServiceAccount (RBAC on), and over them the environment the
//!    simulator run gives ([`crate::run::environment`]).
//! 4. **Windows** exactly as on the simulator ([`crate::run::measure_windows`]). Patches are timed by a
//!    watch of the watched Deployments (by label) seeing their template images change.
//! 5. **API requests** of the controller's ServiceAccount, per window, from the audit log ([`crate::audit`]).
//! 6. **The floor**: with the controller stopped and every rollout complete, the same number of update
//!    patches (the controller's JSON Patch: a `test` and a `replace` per container, the same six
//!    annotations with values of the same size) sent by a minimal kube-rs client with the controller's
//!    credentials (so the API server's priority and fairness treats it alike) at the controller's check
//!    concurrency, timed from their common fire time to the watch seeing the images change.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use watch_cluster_testkit::cluster::{
    CONTROLLER_NAMESPACE, ControllerCredentials, SERVICE_ACCOUNT, Testbed, client_from,
};
use watch_cluster_testkit::{FakeRegistry, LoggedRequest, TagListMode, WebhookReceiver};

use crate::audit;
use crate::cluster::{annotated, filler, program_registry, publish_updates, push_image};
use crate::controller::{Controller, free_admin_addr};
use crate::observe::{Recorder, rollout_complete};
use crate::run::{self, RunReport, environment, measure_windows};
use crate::scenario::Scenario;
use crate::stats::Summary;
use crate::window::{self, Range};

/// The label that marks the watched Deployments, so the bench's own watch lists only those.
const WATCHED_LABEL: &str = "bench.watch-cluster.io/watched";
/// The controller's checks at once: `MAX_CONCURRENT_CHECKS` unset gives `DEFAULT_CONCURRENT_CHECKS` (64,
/// src/config.rs). The floor sends its patches at this concurrency.
pub const CHECK_CONCURRENCY: usize = 64;
/// Deployments created at once during setup.
const CREATE_CONCURRENCY: usize = 32;
/// The controller's identity in the audit log.
pub fn controller_user() -> String {
    format!("system:serviceaccount:{CONTROLLER_NAMESPACE}:{SERVICE_ACCOUNT}")
}
/// The field manager of the controller's writes (src/update/mod.rs).
const FIELD_MANAGER: &str = "watch-cluster";

/// What to run.
#[derive(Debug, Clone)]
pub struct RealSettings {
    /// The controller binary.
    pub binary: PathBuf,
    /// Watched workloads.
    pub workloads: usize,
    /// Deployments in the cluster, watched ones included.
    pub cluster_size: usize,
    /// Measured windows.
    pub windows: usize,
    /// Seconds between fire times.
    pub period: u64,
    /// Controller logs, credentials, and (with `--keep-logs`) the control plane's state.
    pub dir: PathBuf,
    /// The control plane's state dir (outside the repository).
    pub state: PathBuf,
    /// How long waiting for the cluster may take before the harness counts as broken.
    pub limit: Duration,
}

/// What the real run measured.
#[derive(Debug, Clone)]
pub struct RealReport {
    /// `testbed/up` and `kubectl apply -k k8s/`.
    pub control_plane: Duration,
    /// Creating every Deployment.
    pub created: Duration,
    /// Creating every Deployment until every watched one runs (the setup).
    pub setup: Duration,
    /// The figures the simulator table has (`setup` is [`Self::setup`]).
    pub run: RunReport,
    /// The controller's API requests per window by `(verb, resource)`.
    pub api: Vec<BTreeMap<(String, String), usize>>,
    /// The floor's fire → patch.
    pub floor: Option<Summary>,
    /// Floor patches the API server refused (should be 0).
    pub floor_refused: usize,
}

/// Runs everything; the control plane is stopped when this returns.
pub async fn run(settings: &RealSettings) -> anyhow::Result<RealReport> {
    let scenario = Scenario::new(settings.workloads);
    let started = Instant::now();
    let state = settings.state.clone();
    eprintln!(
        "real: starting the control plane (testbed/up, TESTBED_PROFILE=bench) in {}",
        state.display()
    );
    let testbed = tokio::task::spawn_blocking(move || {
        let testbed = Testbed::start_at(&state, Some("bench"))?;
        testbed.install()?;
        anyhow::Ok(testbed)
    })
    .await??;
    let control_plane = started.elapsed();
    let admin = testbed.admin().await?;

    let registry = FakeRegistry::start().await?;
    registry.set_tag_list_mode(TagListMode::Paginate);
    let webhook = WebhookReceiver::start().await?;
    program_registry(&registry, &scenario, |_, _, _| {});
    let watch = DeploymentWatch::start(admin.clone());

    eprintln!(
        "real: control plane up in {:.0} s; creating {} Deployments",
        control_plane.as_secs_f64(),
        settings.cluster_size
    );
    let setup_started = Instant::now();
    create(&admin, &scenario, settings, &registry.host()).await?;
    let created = setup_started.elapsed();
    watch
        .wait(settings.workloads, settings.limit, "running", |s| {
            s.complete
        })
        .await?;
    let setup = setup_started.elapsed();
    eprintln!(
        "real: setup {:.1} s (created in {:.1} s); starting the controller",
        setup.as_secs_f64(),
        created.as_secs_f64()
    );

    let credentials = ControllerCredentials::issue(&testbed, &admin, &settings.dir).await?;
    let mut env = testbed.installed_settings(&admin).await?;
    let ours = environment(
        settings.period,
        true,
        &registry.host(),
        &webhook.url(),
        &credentials.kubeconfig,
    );
    env.retain(|(k, _)| !ours.iter().any(|(o, _)| o == k));
    env.extend(ours);
    // The downward API's part of the Pod's environment.
    env.push(("POD_NAMESPACE".into(), CONTROLLER_NAMESPACE.into()));
    env.push(("POD_NAME".into(), "watch-cluster-bench".into()));
    let admin_addr = free_admin_addr()?;
    let process_started = Instant::now();
    let mut controller = Controller::spawn(
        &settings.binary,
        &env,
        &admin_addr,
        settings.dir.join("controller-real.log"),
    )?;
    let ready = controller
        .wait_ready(process_started, settings.limit)
        .await?;
    watch
        .wait(
            settings.workloads,
            settings.limit,
            "detected and running",
            |s| s.detected && s.complete,
        )
        .await?;
    let memory_after_sync = controller.memory()?;
    eprintln!(
        "real: controller synced; measuring {} windows",
        settings.windows
    );

    let measured = measure_windows(
        &mut controller,
        settings.workloads,
        settings.windows,
        settings.period,
        || publish_updates(&registry, &scenario, |_, _, _| {}),
        // The real API server's requests are counted from its audit log instead.
        watch_cluster_sim::RequestTally::default,
    )
    .await?;
    controller.ensure_alive()?;
    controller.stop().await;
    let stopped = SystemTime::now();

    let registry_log = controllers_requests(registry.requests());
    let windows = measured.stats(&scenario, &registry_log, &controller, &watch.recorder);
    let (rollout, rollouts_unreported) =
        run::rollout_latency(&webhook, &watch.recorder, Some(stopped));
    let events = audit::read_user(&testbed.state_dir().join("logs"), &controller_user())?;
    let api = measured
        .ranges
        .iter()
        .map(|range| audit::by_kind(&events, *range))
        .collect();

    eprintln!("real: windows done; the floor next");
    watch
        .wait(settings.workloads, settings.limit, "rolled out", |s| {
            s.complete
        })
        .await?;
    let sa = client_from(&credentials.kubeconfig).await?;
    let (floor, floor_refused) = floor(&sa, &watch, &registry, settings).await?;
    drop(credentials);
    drop(testbed);
    Ok(RealReport {
        control_plane,
        created,
        setup,
        run: RunReport {
            setup,
            ready,
            memory_after_sync,
            memory_after_first_steady: measured.memory_after_first_steady,
            memory_at_end: measured.memory_at_end,
            windows,
            rollout,
            rollouts_unreported,
            lagged: 0,
        },
        api,
        floor,
        floor_refused,
    })
}

/// The registry requests the controller made: the node agent resolves images in the same registry, as a
/// kubelet pulls, and sends no `watch-cluster/` User-Agent.
pub fn controllers_requests(log: Vec<LoggedRequest>) -> Vec<LoggedRequest> {
    log.into_iter()
        .filter(|r| {
            r.header("user-agent")
                .is_some_and(|u| u.starts_with("watch-cluster/"))
        })
        .collect()
}

/// The Deployment `index` as the real run creates it: a watched one labelled, the others paused.
pub fn object(scenario: &Scenario, index: usize, host: &str, cron: &str) -> Value {
    match scenario.workloads.get(index) {
        Some(spec) => {
            let mut object = annotated(spec, index, host, cron);
            object["metadata"]["labels"][WATCHED_LABEL] = json!("true");
            object
        }
        None => {
            let mut object = filler(index);
            // Zero replicas and paused: the deployment controller makes no ReplicaSet for it.
            object["spec"]["paused"] = json!(true);
            object
        }
    }
}

async fn create(
    admin: &kube::Client,
    scenario: &Scenario,
    settings: &RealSettings,
    host: &str,
) -> anyhow::Result<()> {
    let cron = format!("*/{} * * * * ?", settings.period);
    let namespaces = Api::<Namespace>::all(admin.clone());
    for ns in 0..settings.cluster_size.div_ceil(100).max(1) {
        let name = Scenario::namespace_of(ns * 100);
        let object: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("create namespace {name}"))?;
    }
    futures::stream::iter(0..settings.cluster_size)
        .map(|index| {
            let admin = admin.clone();
            let object = object(scenario, index, host, &cron);
            async move {
                let deployment: Deployment = serde_json::from_value(object)?;
                Api::<Deployment>::namespaced(admin, &Scenario::namespace_of(index))
                    .create(&PostParams::default(), &deployment)
                    .await
                    .with_context(|| format!("create Deployment {index}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// What the bench knows of a watched Deployment now.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    detected: bool,
    complete: bool,
}

/// A watch of the watched Deployments: their image changes and rollouts (the [`Recorder`]), and whether
/// each was detected and runs its current template.
struct DeploymentWatch {
    recorder: Recorder,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    /// The last `watch-cluster.io/rollout` value seen per Deployment: the record the controller's update
    /// patch wrote (it is removed once the rollout is observed complete), for the floor's patch.
    records: Arc<Mutex<HashMap<String, String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl DeploymentWatch {
    fn start(client: kube::Client) -> Self {
        let recorder = Recorder::default();
        let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
        let records: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let api = Api::<Deployment>::all(client);
        let config = watcher::Config::default().labels(&format!("{WATCHED_LABEL}=true"));
        let (r, s, rec) = (recorder.clone(), seen.clone(), records.clone());
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, config).boxed();
            while let Some(event) = stream.next().await {
                let object = match event {
                    Ok(watcher::Event::Apply(d) | watcher::Event::InitApply(d)) => d,
                    Ok(_) => continue,
                    Err(error) => {
                        eprintln!(
                            "real: the bench's Deployment watch failed ({error}); it retries"
                        );
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let at = SystemTime::now();
                let Ok(value) = serde_json::to_value(&object) else {
                    continue;
                };
                r.note(&value, at);
                let key = format!(
                    "{}/{}",
                    value["metadata"]["namespace"].as_str().unwrap_or_default(),
                    value["metadata"]["name"].as_str().unwrap_or_default()
                );
                let state = Seen {
                    detected: !value["metadata"]["annotations"]["watch-cluster.io/detected"]
                        .is_null(),
                    complete: rollout_complete(
                        &value,
                        value["metadata"]["generation"].as_i64().unwrap_or(1),
                    ),
                };
                if let Some(record) =
                    value["metadata"]["annotations"]["watch-cluster.io/rollout"].as_str()
                {
                    rec.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key.clone(), record.to_owned());
                }
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, state);
            }
        });
        Self {
            recorder,
            seen,
            records,
            task,
        }
    }

    /// Waits until `count` watched Deployments satisfy `done`.
    async fn wait(
        &self,
        count: usize,
        limit: Duration,
        what: &str,
        done: impl Fn(&Seen) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let ready = {
                let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.values().filter(|s| done(s)).count()
            };
            if ready >= count {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {ready} of {count} watched Deployments were {what} within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for DeploymentWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A container's image `host/repository:tag@digest` as (repository, tag, digest).
pub fn split_pinned(image: &str, host: &str) -> Option<(String, String, Option<String>)> {
    let rest = image.strip_prefix(host)?.strip_prefix('/')?;
    let (name, digest) = match rest.split_once('@') {
        Some((name, digest)) => (name, Some(digest.to_owned())),
        None => (rest, None),
    };
    let (repository, tag) = name.rsplit_once(':')?;
    Some((repository.to_owned(), tag.to_owned(), digest))
}

/// `name=value,…` over the containers, or the value alone for one (src/update/patch.rs `per_container`).
fn per_container(values: &[(String, String)]) -> String {
    match values {
        [(_, only)] => only.clone(),
        many => many
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// The controller's update patch (src/update/patch.rs `update_patch`) for a Deployment whose containers
/// `(name, from image, from digest)` move to `to` images: a `test` of each image, a `replace` of each, then
/// the six annotations in the controller's (sorted) order, `rollout` carrying `record` (a sealed record of
/// the size the controller writes).
pub fn update_patch(
    containers: &[(String, String, Option<String>)],
    to: &[(String, String)],
    record: &str,
    now_millis: i64,
) -> Value {
    let path = |i: usize| format!("/spec/template/spec/containers/{i}/image");
    let annotation = |key: &str| format!("/metadata/annotations/{}", key.replace('/', "~1"));
    let mut ops = Vec::new();
    for (i, (_, from, _)) in containers.iter().enumerate() {
        ops.push(json!({"op": "test", "path": path(i), "value": from}));
    }
    for (i, (_, image)) in to.iter().enumerate() {
        ops.push(json!({"op": "replace", "path": path(i), "value": image}));
    }
    let from: Vec<(String, String)> = containers
        .iter()
        .map(|(n, image, _)| (n.clone(), image.clone()))
        .collect();
    let from_digests: Vec<(String, String)> = containers
        .iter()
        .filter_map(|(n, _, d)| Some((n.clone(), d.clone()?)))
        .collect();
    let to_digests: Vec<(String, String)> = to
        .iter()
        .map(|(n, image)| {
            (
                n.clone(),
                image
                    .split_once('@')
                    .map(|(_, d)| d)
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let mut written = BTreeMap::new();
    written.insert(
        "watch-cluster.io/change",
        format!("{} -> {}", per_container(&from), per_container(to)),
    );
    written.insert("watch-cluster.io/last-update", now_millis.to_string());
    if from_digests.len() == containers.len() {
        written.insert(
            "watch-cluster.io/last-update-from-digest",
            per_container(&from_digests),
        );
    }
    written.insert("watch-cluster.io/last-update-image", per_container(to));
    written.insert(
        "watch-cluster.io/last-update-to-digest",
        per_container(&to_digests),
    );
    written.insert("watch-cluster.io/rollout", record.to_owned());
    for (key, value) in written {
        ops.push(json!({"op": "add", "path": annotation(key), "value": value}));
    }
    Value::Array(ops)
}

/// The floor: one update patch per watched Deployment, every tag moved to a new digest, sent at the
/// controller's check concurrency from one fire time. Returns fire → patch seen, and refusals.
async fn floor(
    client: &kube::Client,
    watch: &DeploymentWatch,
    registry: &FakeRegistry,
    settings: &RealSettings,
) -> anyhow::Result<(Option<Summary>, usize)> {
    let host = registry.host();
    let list = Api::<Deployment>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{WATCHED_LABEL}=true")))
        .await
        .context("list the watched Deployments for the floor")?;
    let mut moved: HashMap<(String, String), String> = HashMap::new();
    let mut patches = Vec::new();
    for deployment in list.items {
        let value = serde_json::to_value(&deployment)?;
        let namespace = value["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let record = watch
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&format!("{namespace}/{name}"))
            .cloned()
            .with_context(|| {
                format!("{namespace}/{name} never had a rollout record: was it updated?")
            })?;
        let mut containers = Vec::new();
        let mut to = Vec::new();
        for c in value["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (cname, image) = (
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["image"].as_str().unwrap_or_default().to_owned(),
            );
            let (repository, tag, digest) = split_pinned(&image, &host)
                .with_context(|| format!("{namespace}/{name}: unexpected image {image}"))?;
            let new = moved
                .entry((repository.clone(), tag.clone()))
                .or_insert_with(|| push_image(registry, &repository, &tag, 2))
                .clone();
            to.push((cname.clone(), format!("{host}/{repository}:{tag}@{new}")));
            containers.push((cname, image, digest));
        }
        patches.push((namespace, name, containers, to, record));
    }
    if patches.len() != settings.workloads {
        bail!(
            "the floor found {} watched Deployments, not {}",
            patches.len(),
            settings.workloads
        );
    }
    let fire = SystemTime::now() + Duration::from_secs(1);
    while let Ok(left) = fire.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
    let millis = chrono::Utc::now().timestamp_millis();
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let results: Vec<bool> = futures::stream::iter(patches)
        .map(|(namespace, name, containers, to, record)| {
            let api = Api::<Deployment>::namespaced(client.clone(), &namespace);
            let params = params.clone();
            async move {
                let body = update_patch(&containers, &to, &record, millis);
                let Ok(patch) = serde_json::from_value::<json_patch::Patch>(body) else {
                    return false;
                };
                api.patch(&name, &params, &Patch::<()>::Json(patch))
                    .await
                    .is_ok()
            }
        })
        .buffer_unordered(CHECK_CONCURRENCY)
        .collect()
        .await;
    let refused = results.iter().filter(|ok| !**ok).count();
    let range = Range {
        start: fire,
        end: fire + settings.limit,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = window::patch_delays(&watch.recorder.histories(), range).map_or(0, |s| s.count);
        if seen + refused >= settings.workloads || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((
        window::patch_delays(&watch.recorder.histories(), range),
        refused,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pinned_images_split_into_repository_tag_and_digest() {
        assert_eq!(
            split_pinned("127.0.0.1:5000/bench/r01:2.0.2@sha256:ab", "127.0.0.1:5000"),
            Some(("bench/r01".into(), "2.0.2".into(), Some("sha256:ab".into())))
        );
        assert_eq!(
            split_pinned("127.0.0.1:5000/bench/r01:edge-0", "127.0.0.1:5000"),
            Some(("bench/r01".into(), "edge-0".into(), None))
        );
        assert_eq!(
            split_pinned("docker.io/library/nginx:1", "127.0.0.1:5000"),
            None
        );
    }

    #[test]
    fn the_floor_patch_has_the_controllers_shape() {
        let containers = vec![
            (
                "app".to_owned(),
                "h/r:1@sha256:a".to_owned(),
                Some("sha256:a".to_owned()),
            ),
            (
                "sidecar".to_owned(),
                "h/s:1@sha256:b".to_owned(),
                Some("sha256:b".to_owned()),
            ),
        ];
        let to = vec![
            ("app".to_owned(), "h/r:1@sha256:c".to_owned()),
            ("sidecar".to_owned(), "h/s:1@sha256:d".to_owned()),
        ];
        let patch = update_patch(&containers, &to, "sealed", 42);
        let ops = patch.as_array().unwrap();
        let kinds: Vec<&str> = ops.iter().map(|o| o["op"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "test", "test", "replace", "replace", "add", "add", "add", "add", "add", "add"
            ]
        );
        assert_eq!(ops[0]["path"], "/spec/template/spec/containers/0/image");
        assert_eq!(ops[3]["value"], "h/s:1@sha256:d");
        assert_eq!(
            ops[4]["path"],
            "/metadata/annotations/watch-cluster.io~1change"
        );
        assert_eq!(
            ops[4]["value"],
            "app=h/r:1@sha256:a,sidecar=h/s:1@sha256:b -> app=h/r:1@sha256:c,sidecar=h/s:1@sha256:d"
        );
        assert_eq!(ops[6]["value"], "app=sha256:a,sidecar=sha256:b");
        assert_eq!(ops[8]["value"], "app=sha256:c,sidecar=sha256:d");
        assert_eq!(ops[9]["value"], "sealed");
        serde_json::from_value::<json_patch::Patch>(patch).unwrap();
        let without = update_patch(
            &[(containers[0].0.clone(), containers[0].1.clone(), None)],
            &to[..1],
            "r",
            1,
        );
        assert_eq!(
            without.as_array().unwrap().len(),
            2 + 5,
            "no from-digest when unknown"
        );
    }

    #[test]
    fn unwatched_deployments_are_paused_with_no_replicas_and_watched_ones_labelled() {
        let s = Scenario::new(20);
        let watched = object(&s, 0, "h", "*/5 * * * * ?");
        assert_eq!(watched["metadata"]["labels"][WATCHED_LABEL], "true");
        assert_eq!(watched["spec"]["replicas"], 1);
        let other = object(&s, 20, "h", "*/5 * * * * ?");
        assert_eq!(
            (
                other["spec"]["replicas"].clone(),
                other["spec"]["paused"].clone()
            ),
            (json!(0), json!(true))
        );
        assert!(other["metadata"]["labels"][WATCHED_LABEL].is_null());
    }
}
