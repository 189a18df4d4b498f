//! The storm: a burst of pushes of new tags of one repository used by K Deployments, and the wait until they
//! all run the highest tag (or stopped short).
//!
//! Input: the running bench and its settings. Output: a [`StormReport`]: how long the pushes took, when the
//! last Deployment reached the highest tag, where each ended, and the controller's counters over the storm.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use watch_cluster_sim::Kind;
use watch_cluster_testkit::ImageKind;

use super::{
    Bench, NAMESPACE, PushSettings, STILL, STORM_LIMIT, STORM_REPO, StormReport, image_of,
    is_quiet, read_counts, settle,
};
use crate::counts::Counts;

/// The tags each of `tasks` concurrent pushers pushes, in order: task `t` takes `t+1`, `t+1+tasks`, … so
/// the versions go up roughly together and the highest is among the last.
pub fn assignments(pushes: usize, tasks: usize) -> Vec<Vec<usize>> {
    let tasks = tasks.clamp(1, pushes.max(1));
    (0..tasks)
        .map(|t| (1..=pushes).skip(t).step_by(tasks).collect())
        .filter(|tags: &Vec<usize>| !tags.is_empty())
        .collect()
}

/// The storm: `storm_pushes` new tags of the storm repository from concurrent tasks, then the wait.
pub(super) async fn storm(
    bench: &mut Bench,
    settings: &PushSettings,
    names: &[String],
) -> anyhow::Result<StormReport> {
    // Blobs and platform manifests first (their events are ignored): the storm itself is the tag PUTs.
    // With `whole`, each task pushes whole images instead, as CI jobs pushing at once do.
    let staging = Instant::now();
    let mut staged = Vec::with_capacity(settings.storm_pushes);
    for j in (1..=settings.storm_pushes).filter(|_| !settings.storm_whole) {
        let tag = format!("1.1.{j}");
        let image = bench
            .registry
            .stage(STORM_REPO, &tag, ImageKind::OciIndex, "storm")
            .await
            .with_context(|| format!("failed to stage {STORM_REPO}:{tag}"))?;
        staged.push(image);
    }
    let staging = staging.elapsed();
    let before = settle(&bench.admin, &mut bench.controller).await?;
    let started = Instant::now();
    let tasks = assignments(settings.storm_pushes, settings.storm_tasks);
    let (staged, registry) = (&staged, &bench.registry);
    let pushers = tasks.iter().map(|tags| async move {
        for j in tags {
            let tag = format!("1.1.{j}");
            let pushed = match staged.get(j - 1) {
                Some(image) => image.tag().await,
                None => {
                    registry
                        .push(STORM_REPO, &tag, ImageKind::OciIndex, "storm")
                        .await
                }
            };
            pushed.with_context(|| format!("failed to push {STORM_REPO}:{tag}"))?;
        }
        anyhow::Ok(())
    });
    for result in futures::future::join_all(pushers).await {
        result?;
    }
    let push_time = started.elapsed();
    let highest = format!("{}/{STORM_REPO}:1.1.{}@", bench.host, settings.storm_pushes);
    let all_patched = wait_storm(bench, names, &highest, started).await?;
    let after = settle(&bench.admin, &mut bench.controller).await?;
    let mut final_tags = BTreeMap::new();
    for name in names {
        let tag = bench
            .sim
            .store()
            .get_arc(Kind::Deployment, Some(NAMESPACE), name)
            .and_then(|d| image_of(&d).map(tag_of))
            .unwrap_or_else(|| "?".into());
        *final_tags.entry(tag).or_insert(0) += 1;
    }
    Ok(StormReport {
        staging,
        push_time,
        all_patched,
        final_tags,
        counts: after.since(&before),
    })
}

/// Waits until every storm workload runs `highest…` and is quiet: the time from `started` to the last of
/// them being patched. `None` when they stopped short (every one quiet and the controller's counters still
/// for [`STILL`]) or [`STORM_LIMIT`] passed.
async fn wait_storm(
    bench: &mut Bench,
    names: &[String],
    highest: &str,
    started: Instant,
) -> anyhow::Result<Option<Duration>> {
    let deadline = Instant::now() + STORM_LIMIT;
    let mut patched: BTreeMap<&str, Duration> = BTreeMap::new();
    let mut still: Option<(Counts, Instant)> = None;
    let mut looked_at = Instant::now();
    loop {
        let mut all_quiet = true;
        for name in names {
            let Some(d) = bench
                .sim
                .store()
                .get_arc(Kind::Deployment, Some(NAMESPACE), name)
            else {
                bail!("Deployment {name} disappeared");
            };
            if image_of(&d).is_some_and(|i| i.starts_with(highest)) {
                patched
                    .entry(name.as_str())
                    .or_insert_with(|| started.elapsed());
            }
            all_quiet &= is_quiet(&d, false);
        }
        if all_quiet && patched.len() == names.len() {
            return Ok(patched.values().max().copied());
        }
        if Instant::now() > deadline {
            return Ok(None);
        }
        if looked_at.elapsed() >= Duration::from_secs(1) {
            looked_at = Instant::now();
            bench.controller.ensure_alive()?;
            let now = read_counts(&bench.admin).await?;
            still = match still {
                Some((counts, since)) if all_quiet && counts == now => {
                    if since.elapsed() >= STILL {
                        return Ok(None);
                    }
                    Some((counts, since))
                }
                _ => Some((now, Instant::now())),
            };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `1.1.7` of `host/repo:1.1.7@sha256:…`.
fn tag_of(image: &str) -> String {
    let named = image.split_once('@').map_or(image, |(n, _)| n);
    let name = named.rsplit_once('/').map_or(named, |(_, n)| n);
    name.split_once(':').map_or("(none)", |(_, t)| t).to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tasks_share_the_tags_in_rising_order_and_push_each_once() {
        let a = assignments(100, 10);
        assert_eq!(a.len(), 10);
        assert_eq!(a[0][..3], [1, 11, 21]);
        assert_eq!(a[9].last(), Some(&100));
        let mut all: Vec<usize> = a.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (1..=100).collect::<Vec<_>>());
        assert_eq!(assignments(3, 10), vec![vec![1], vec![2], vec![3]]);
        assert_eq!(assignments(5, 0), vec![vec![1, 2, 3, 4, 5]]);
    }

    #[test]
    fn the_tag_is_read_from_a_pinned_reference() {
        assert_eq!(
            tag_of("127.0.0.1:5000/bench/storm:1.1.7@sha256:ab"),
            "1.1.7"
        );
        assert_eq!(tag_of("127.0.0.1:5000/bench/storm:1.0.0"), "1.0.0");
        assert_eq!(tag_of("127.0.0.1:5000/bench/storm"), "(none)");
    }
}
