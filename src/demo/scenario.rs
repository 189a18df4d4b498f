//! The story the demo tells: which images exist, which workloads run them, and what must happen.
//!
//! Input: a started registry, cluster and narrator. Output: images published, four annotated Deployments
//! running, then — with the controller running — each expected outcome waited for and announced:
//! `web` (`version`) moves to the highest release and skips a pre-release, `worker`
//! (`version-lock-minor`) stays inside its minor line, `api` (`version-lock-major`) gets a broken image
//! that never starts, so its rollout fails, is rolled back and the image quarantined, and `cache`
//! (`latest`) follows its tag when it is re-pushed.

use std::{collections::HashMap, time::Duration};

use watch_cluster_sim::controllers::Outcome;

use super::{DemoError, narrate::Narrator, registry::DemoRegistry};

/// How long each milestone may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Checked every second (Quartz, with seconds).
pub const CRON: &str = "* * * * * ?";
/// The tags published at the start, per repository.
const IMAGES: [(&str, &[&str]); 4] = [
    ("demo/web", &["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc1"]),
    ("demo/worker", &["1.4.0", "1.4.2", "1.5.0"]),
    ("demo/api", &["2.0.0", "2.1.0", "3.0.0"]),
    ("demo/cache", &["stable"]),
];
/// The image whose pods never start.
const BROKEN: (&str, &str) = ("demo/api", "2.1.0");
/// The moving tag that is pushed again mid-demo.
const MOVING: (&str, &str) = ("demo/cache", "stable");

/// One Deployment of the demo.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Its name (namespace `demo`).
    pub name: &'static str,
    /// Repository of its image.
    pub repo: &'static str,
    /// Tag it starts on.
    pub tag: &'static str,
    /// `watch-cluster.io/strategy`.
    pub strategy: &'static str,
    /// What should happen, for the table at the start.
    pub expected: &'static str,
}

/// The demo's Deployments.
pub const WORKLOADS: [Workload; 4] = [
    Workload {
        name: "web",
        repo: "demo/web",
        tag: "1.0.0",
        strategy: "version",
        expected: "-> 1.2.0 (2.0.0-rc1 is a pre-release: never taken)",
    },
    Workload {
        name: "worker",
        repo: "demo/worker",
        tag: "1.4.0",
        strategy: "version-lock-minor",
        expected: "-> 1.4.2 (1.5.0 is outside 1.4)",
    },
    Workload {
        name: "api",
        repo: "demo/api",
        tag: "2.0.0",
        strategy: "version-lock-major",
        expected: "-> 2.1.0, which never starts: rolled back, quarantined (3.0.0 is outside 2.x)",
    },
    Workload {
        name: "cache",
        repo: "demo/cache",
        tag: "stable",
        strategy: "latest",
        expected: "follows the digest behind `stable` (re-pushed during the demo)",
    },
];

/// The images in the registry: `repo:tag` → digest.
pub struct Scenario {
    host: String,
    digests: HashMap<(String, String), String>,
}

impl Scenario {
    /// Publishes every image of [`IMAGES`] (all at once: a push takes a few hundred milliseconds) and
    /// prints what was published.
    pub async fn publish(registry: &DemoRegistry) -> anyhow::Result<Self> {
        let pushes = IMAGES.iter().flat_map(|(repo, tags)| {
            tags.iter().map(move |tag| async move {
                let digest = registry.push(repo, tag, "first").await?;
                anyhow::Ok((((*repo).to_owned(), (*tag).to_owned()), digest))
            })
        });
        let digests = futures::future::try_join_all(pushes)
            .await?
            .into_iter()
            .collect();
        for (repo, tags) in IMAGES {
            let broken = if repo == BROKEN.0 {
                format!("   ({} is broken: its pods never start)", BROKEN.1)
            } else {
                String::new()
            };
            println!("  pushed {repo:<12} {}{broken}", tags.join(" "));
        }
        Ok(Self {
            host: registry.host(),
            digests,
        })
    }

    /// `HOST/repo:tag`.
    pub fn image(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host)
    }

    /// `HOST/repo:tag@sha256:…` as published (empty digest if it was not).
    pub fn pinned(&self, repo: &str, tag: &str) -> String {
        let digest = self
            .digests
            .get(&(repo.to_owned(), tag.to_owned()))
            .map(String::as_str)
            .unwrap_or_default();
        format!("{}@{digest}", self.image(repo, tag))
    }

    /// Creates the Deployments, marks the broken image, and waits until every Deployment runs.
    pub async fn deploy(&self, narrator: &mut Narrator<'_>) -> anyhow::Result<()> {
        let cluster = narrator.cluster();
        cluster
            .control()
            .set_outcome_for_image(&format!("{}:{}", BROKEN.0, BROKEN.1), Outcome::Stuck);
        println!(
            "\nWorkloads (Deployments in namespace demo, {} replicas, checked every second: cron \"{CRON}\"):",
            super::cluster::REPLICAS
        );
        println!("  {:<8}{:<20}{:<20}EXPECTED", "NAME", "STRATEGY", "IMAGE");
        for w in WORKLOADS {
            let image = self.image(w.repo, w.tag);
            cluster.create_deployment(
                w.name,
                &image,
                &[
                    ("watch-cluster.io/enabled", "true"),
                    ("watch-cluster.io/cron", CRON),
                    ("watch-cluster.io/strategy", w.strategy),
                ],
            )?;
            let shown = format!("{}:{}", w.repo, w.tag);
            println!("  {:<8}{:<20}{shown:<20}{}", w.name, w.strategy, w.expected);
        }
        println!();
        narrator
            .wait_until(
                "every Deployment running its first image",
                STEP_TIMEOUT,
                |n| WORKLOADS.iter().all(|w| n.cluster().is_rolled_out(w.name)),
            )
            .await?;
        narrator.say("all four Deployments are rolled out; starting the controller");
        Ok(())
    }

    /// With the controller running: waits for each outcome in turn, re-pushing the moving tag midway.
    pub async fn play(
        &self,
        registry: &DemoRegistry,
        narrator: &mut Narrator<'_>,
    ) -> anyhow::Result<()> {
        narrator
            .wait_until(
                "DEPLOYMENT_DETECTED for all four Deployments",
                STEP_TIMEOUT,
                |n| {
                    WORKLOADS
                        .iter()
                        .all(|w| n.webhook(w.name, "DEPLOYMENT_DETECTED").is_some())
                },
            )
            .await?;
        self.completed(narrator, "web", &self.pinned("demo/web", "1.2.0"))
            .await?;
        let moved = registry.push(MOVING.0, MOVING.1, "second").await?;
        let moved = format!("{}@{moved}", self.image(MOVING.0, MOVING.1));
        narrator.say(&format!(
            "re-pushed {}:{} (was {}); the controller should follow it",
            MOVING.0,
            MOVING.1,
            self.pinned(MOVING.0, MOVING.1)
                .rsplit('@')
                .next()
                .unwrap_or_default()
        ));
        self.completed(narrator, "worker", &self.pinned("demo/worker", "1.4.2"))
            .await?;
        self.completed(narrator, "cache", &moved).await?;
        self.rolled_back(narrator).await?;
        Ok(())
    }

    /// Waits until `name` runs `image` and its rollout is reported completed (webhook and Event).
    async fn completed(
        &self,
        narrator: &mut Narrator<'_>,
        name: &str,
        image: &str,
    ) -> Result<(), DemoError> {
        let what = format!("{name} updated to {image} and its rollout completed");
        narrator
            .wait_until(&what, STEP_TIMEOUT, |n| {
                n.cluster().image_of(name) == image
                    && n.webhook(name, "IMAGE_ROLLOUT_COMPLETED").is_some()
                    && has_event(n, name, "RolloutCompleted")
            })
            .await?;
        narrator.say(&format!("OK {name} runs {image}"));
        Ok(())
    }

    /// Waits until `api`'s broken rollout failed, was rolled back and its image quarantined.
    async fn rolled_back(&self, narrator: &mut Narrator<'_>) -> Result<(), DemoError> {
        let first = self.image("demo/api", "2.0.0");
        let bad = self.pinned(BROKEN.0, BROKEN.1);
        let what = format!("api's rollout of {bad} failed, rolled back to {first} and quarantined");
        narrator
            .wait_until(&what, STEP_TIMEOUT, |n| {
                let cluster = n.cluster();
                cluster.image_of("api") == first
                    && cluster
                        .annotation("api", "watch-cluster.io/quarantine")
                        .is_some_and(|q| q.contains(&bad))
                    && cluster
                        .annotation("api", "watch-cluster.io/rollout")
                        .is_none()
                    && n.webhook("api", "IMAGE_ROLLOUT_FAILED").is_some()
                    && has_event(n, "api", "RolledBack")
            })
            .await?;
        let quarantine = narrator
            .cluster()
            .annotation("api", "watch-cluster.io/quarantine")
            .unwrap_or_default();
        narrator.say(&format!(
            "OK api is back on {first}; watch-cluster.io/quarantine: {quarantine}"
        ));
        Ok(())
    }
}

fn has_event(narrator: &Narrator<'_>, name: &str, reason: &str) -> bool {
    narrator
        .cluster()
        .events()
        .iter()
        .any(|e| e.workload == name && e.reason == reason)
}
