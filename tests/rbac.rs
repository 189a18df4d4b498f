#![allow(clippy::unwrap_used, clippy::expect_used)]
//! RBAC proven exact: every grant of `k8s/` was used by some test on kube-apiserver, or the README keeps it
//! on purpose with its reason. Each test of the real tier already fails on a request the authorizer refused
//! (from the audit log) and records what its controller used in `rbac-used.tsv`; this compares that with
//! the rules. It runs after the whole suite (`.ci/test` runs it last), hence `#[ignore]` in the main run.
//!
//! A ClusterRole rule counts as used only by a controller in the default, cluster-wide mode (the only one
//! bound to it in a user's cluster), the namespaced overlay's Role only by a controller of that overlay, the
//! leader-election Role by any.

use std::{collections::BTreeSet, path::PathBuf};

use k8s_openapi::api::rbac::v1::PolicyRule;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rules(file: &str) -> Vec<PolicyRule> {
    let text = std::fs::read_to_string(workspace().join(file)).unwrap();
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    serde_json::from_value(documents[0]["rules"].clone()).unwrap()
}

/// `(verb, group, resource)` granted by `file`, one per combination.
fn grants(file: &str) -> BTreeSet<(String, String, String)> {
    let mut grants = BTreeSet::new();
    for rule in rules(file) {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    grants.insert((verb.clone(), group.clone(), resource.clone()));
                }
            }
        }
    }
    grants
}

/// The grants the README keeps without a test: lines `- kept: \`VERB GROUP/RESOURCE\`: reason`.
fn kept() -> BTreeSet<(String, String, String)> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    readme
        .lines()
        .filter_map(|l| l.strip_prefix("- kept: `"))
        .filter_map(|l| l.split_once('`').map(|(grant, _)| grant.to_owned()))
        .filter_map(|grant| {
            let (verb, rest) = grant.split_once(' ')?;
            let (group, resource) = rest.rsplit_once('/').unwrap_or(("", rest));
            Some((verb.to_owned(), group.to_owned(), resource.to_owned()))
        })
        .collect()
}

#[test]
#[ignore = "run by .ci/test after the whole suite: it reads what every test on kube-apiserver used"]
fn every_grant_of_k8s_is_used_by_a_test_or_kept_on_purpose() {
    let state = std::env::var("WATCH_CLUSTER_TESTBED").expect("run through .ci/test");
    let used = std::fs::read_to_string(PathBuf::from(state).join("rbac-used.tsv"))
        .expect("rbac-used.tsv: the tests on kube-apiserver ran");
    // (verb, group, resource, scope, mode, test)
    let used: Vec<Vec<&str>> = used
        .lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f.len() == 6)
        .collect();
    let kept = kept();
    let roles: [(&str, Option<&str>); 5] = [
        ("k8s/base/clusterrole.yaml", Some("cluster-wide")),
        ("k8s/base/leader-election-role.yaml", None),
        ("k8s/base/quarantine-role.yaml", None),
        // The push-events component: the leader labels its Pod.
        ("k8s/components/events/leader-label-role.yaml", None),
        (
            "k8s/namespaced/watched-namespace-role.yaml",
            Some("namespaced-overlay"),
        ),
    ];
    let mut unused = Vec::new();
    let mut kept_but_used = Vec::new();
    println!("{:<72} {:<20} tests", "grant", "counted from");
    for (file, mode) in roles {
        for (verb, group, resource) in grants(file) {
            let users: BTreeSet<&str> = used
                .iter()
                .filter(|f| f[0] == verb && f[1] == group && f[2] == resource)
                .filter(|f| mode.is_none_or(|m| f[4] == m))
                .map(|f| f[5])
                .collect();
            let grant = format!("{verb} {group}/{resource} ({file})");
            let key = (verb.clone(), group.clone(), resource.clone());
            println!(
                "{grant:<72} {:<20} {}",
                mode.unwrap_or("any mode"),
                if users.is_empty() {
                    if kept.contains(&key) {
                        "none (kept, README)".to_owned()
                    } else {
                        "NONE".to_owned()
                    }
                } else {
                    users.len().to_string()
                }
            );
            match (users.is_empty(), kept.contains(&key)) {
                (true, false) => unused.push(grant),
                (false, true) if mode.is_some() => kept_but_used.push(grant),
                _ => {}
            }
        }
    }
    assert!(
        unused.is_empty(),
        "grants no test used; remove them or keep them in the README with the reason: {unused:#?}"
    );
    // Not a failure: whether a kept grant is used can depend on timing (an Event that recurs is patched).
    for grant in kept_but_used {
        println!("note: {grant} is kept in the README as unused, and a test used it this run");
    }
}
