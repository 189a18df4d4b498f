//! Resolving against a fake registry: which candidate the gates let through, and which requests it costs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use watch_cluster_testkit::FakeRegistry;

use super::*;
use crate::registry::RegistryConfig;

const HOUR: Duration = Duration::from_secs(3600);
const REPO: &str = "team/app";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn setup() -> (FakeRegistry, RegistryClient) {
    crate::install_crypto_provider();
    let fake = FakeRegistry::start().await.unwrap();
    let config = RegistryConfig {
        insecure_registries: vec![fake.host()],
        sharing: false,
        ..RegistryConfig::default()
    };
    let client = RegistryClient::new(
        config,
        &mut prometheus_client::registry::Registry::default(),
    )
    .unwrap();
    (fake, client)
}

/// Tags `1.1.0`, `1.2.0`… each pointing at a digest of its own letter.
fn publish(fake: &FakeRegistry, versions: &[(&str, char)]) {
    fake.set_tags(
        REPO,
        versions.iter().map(|(t, _)| (*t).to_owned()).collect(),
    );
    for (tag, d) in versions {
        fake.set_digest(REPO, tag, &digest(*d));
    }
}

fn entry(image: String, hours_ago: i64) -> PendingEntry {
    PendingEntry {
        image,
        first_seen: now() - chrono::Duration::hours(hours_ago),
    }
}

async fn run(
    client: &RegistryClient,
    strategy: Strategy,
    image: &ImageRef,
    current_digest: Option<&str>,
    gates: CandidateGates<'_>,
) -> Resolution {
    let target = Target {
        container: "app",
        image,
        credential: None,
        current_digest,
    };
    resolve(client, strategy, target, &Quarantine::default(), gates)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_highest_old_enough_version_is_taken_while_a_newer_one_ages() {
    let (fake, client) = setup().await;
    publish(&fake, &[("1.1.0", 'a'), ("1.2.0", 'b'), ("1.3.0", 'c')]);
    let image = ImageRef::parse(&format!("{}/{REPO}:1.0.0", fake.host())).unwrap();
    let pending = [entry(image.with_tag_and_digest("1.2.0", &digest('b')), 2)];
    let gates = CandidateGates {
        min_age: Some(HOUR),
        pending: &pending,
        ..CandidateGates::open(now())
    };
    let r = run(&client, Strategy::Version, &image, None, gates).await;
    assert_eq!(r.decision.to_string(), "Found newer version: 1.2.0");
    let age = r.age.unwrap();
    let newest = image.with_tag_and_digest("1.3.0", &digest('c'));
    assert_eq!(
        age.held,
        [Held {
            image: newest.clone(),
            first_seen: now(),
            ripens_at: now() + chrono::Duration::hours(1),
        }]
    );
    assert_eq!(age.pending, [pending[0].clone(), entry(newest, 0)]);
    // 1.3.0 and 1.2.0 were HEADed; 1.1.0, below the choice, was not.
    assert_eq!(fake.count(http::Method::HEAD, "/v2/team/app/manifests/"), 2);
}

#[tokio::test]
async fn when_nothing_is_old_enough_the_heads_stop_after_the_pending_limit_plus_one() {
    let (fake, client) = setup().await;
    let tags: Vec<String> = (1..=15).map(|minor| format!("1.{minor}.0")).collect();
    fake.set_tags(REPO, tags.clone());
    for tag in &tags {
        fake.set_digest(REPO, tag, &digest('e'));
    }
    let image = ImageRef::parse(&format!("{}/{REPO}:1.0.0", fake.host())).unwrap();
    let gates = CandidateGates {
        min_age: Some(24 * HOUR),
        ..CandidateGates::open(now())
    };
    let r = run(&client, Strategy::Version, &image, None, gates).await;
    assert_eq!(r.decision.reason(), "HeldByMinAge");
    assert!(
        r.decision
            .to_string()
            .ends_with("held by min-age until 2026-01-02T12:00:00Z"),
        "{}",
        r.decision
    );
    assert_eq!(
        fake.count(http::Method::HEAD, "/v2/team/app/manifests/"),
        crate::gate::PENDING_LIMIT + 1
    );
    assert_eq!(r.age.unwrap().pending.len(), crate::gate::PENDING_LIMIT);
}

#[tokio::test]
async fn the_tag_filter_and_skip_shape_the_candidates_before_any_age() {
    let (fake, client) = setup().await;
    publish(&fake, &[("1.2.1", 'a'), ("1.2.2", 'b'), ("1.3.0", 'c')]);
    let image = ImageRef::parse(&format!("{}/{REPO}:1.2.0", fake.host())).unwrap();
    let filter = TagFilter::parse(r"1\.2\.[0-9]+").unwrap();
    let skip = SkipList::parse("1.2.2").unwrap();
    let gates = CandidateGates {
        tag_filter: Some(&filter),
        skip: &skip,
        ..CandidateGates::open(now())
    };
    let r = run(&client, Strategy::Version, &image, None, gates).await;
    assert_eq!(r.decision.to_string(), "Found newer version: 1.2.1");
    assert!(r.age.is_none());
    // 1.3.0 never reached the registry: filtered before ranking.
    assert_eq!(
        fake.count(http::Method::HEAD, "/v2/team/app/manifests/1.3.0"),
        0
    );
}

#[tokio::test]
async fn latest_pins_the_newest_old_enough_digest_that_is_still_served() {
    let (fake, client) = setup().await;
    let older = fake.set_manifest(
        REPO,
        None,
        watch_cluster_testkit::registry::OCI_INDEX,
        b"{}",
    );
    fake.set_digest(REPO, "stable", &digest('b'));
    let image = ImageRef::parse(&format!("{}/{REPO}:stable@{}", fake.host(), digest('a'))).unwrap();
    let pending = [entry(image.with_tag_and_digest("stable", &older), 3)];
    let gates = CandidateGates {
        min_age: Some(HOUR),
        pending: &pending,
        ..CandidateGates::open(now())
    };
    let r = run(&client, Strategy::Latest, &image, image.digest(), gates).await;
    assert_eq!(r.decision.reason(), "NewDigest");
    assert_eq!(
        r.decision.image_to_write(&image).unwrap(),
        image.with_tag_and_digest("stable", &older)
    );
    let age = r.age.unwrap();
    let newest = image.with_tag_and_digest("stable", &digest('b'));
    assert_eq!(age.held.len(), 1);
    assert_eq!(age.held[0].image, newest);
    assert_eq!(age.pending, [pending[0].clone(), entry(newest, 0)]);
}

#[tokio::test]
async fn latest_forgets_a_digest_no_longer_served_and_waits_for_the_new_one() {
    let (fake, client) = setup().await;
    fake.set_digest(REPO, "stable", &digest('b'));
    let image = ImageRef::parse(&format!("{}/{REPO}:stable", fake.host())).unwrap();
    let gone = image.with_tag_and_digest("stable", &digest('9'));
    let pending = [entry(gone, 3)];
    let gates = CandidateGates {
        min_age: Some(HOUR),
        pending: &pending,
        ..CandidateGates::open(now())
    };
    // Unknown current digest: the first pin obeys min-age too.
    let r = run(&client, Strategy::Latest, &image, None, gates).await;
    assert_eq!(r.decision.reason(), "HeldByMinAge");
    let age = r.age.unwrap();
    assert_eq!(
        age.pending,
        [entry(image.with_tag_and_digest("stable", &digest('b')), 0)]
    );
}

#[tokio::test]
async fn latest_running_the_tags_digest_clears_its_pending_entries() {
    let (fake, client) = setup().await;
    fake.set_digest(REPO, "stable", &digest('b'));
    let image = ImageRef::parse(&format!("{}/{REPO}:stable@{}", fake.host(), digest('b'))).unwrap();
    let pending = [
        entry(image.with_tag_and_digest("stable", &digest('b')), 5),
        entry(image.with_tag_and_digest("stable", &digest('a')), 9),
    ];
    let gates = CandidateGates {
        min_age: Some(HOUR),
        pending: &pending,
        ..CandidateGates::open(now())
    };
    let r = run(&client, Strategy::Latest, &image, image.digest(), gates).await;
    assert_eq!(r.decision.reason(), "DigestUnchanged");
    let age = r.age.unwrap();
    assert!(age.pending.is_empty() && age.held.is_empty());
}

#[tokio::test]
async fn latest_never_pins_a_skipped_digest() {
    let (fake, client) = setup().await;
    fake.set_digest(REPO, "stable", &digest('b'));
    let image = ImageRef::parse(&format!("{}/{REPO}:stable", fake.host())).unwrap();
    let skip = SkipList::parse(&format!("stable@{}", digest('b'))).unwrap();
    let gates = CandidateGates {
        skip: &skip,
        ..CandidateGates::open(now())
    };
    let r = run(&client, Strategy::Latest, &image, None, gates).await;
    assert_eq!(r.decision.reason(), "DigestSkipped");
}
