//! The end of the demo: the Kubernetes Events the controller recorded, and a summary per workload.
//!
//! Input: the narrator (cluster state and the webhooks received). Output: two tables on stdout.

use super::{narrate::Narrator, scenario::Scenario, scenario::WORKLOADS};

/// Prints the Events of the demo namespace, oldest first.
pub fn events(narrator: &Narrator<'_>) {
    let events = narrator.cluster().events();
    println!(
        "\nKubernetes Events recorded by watch-cluster ({}):",
        events.len()
    );
    println!("  {:<8}{:<9}{:<18}MESSAGE", "OBJECT", "TYPE", "REASON");
    for e in events {
        println!(
            "  {:<8}{:<9}{:<18}{}",
            e.workload,
            e.event_type,
            e.reason,
            narrator.short(&e.message)
        );
    }
}

/// Prints what each workload runs now and how its update ended.
pub fn summary(narrator: &Narrator<'_>, scenario: &Scenario) {
    println!("\nSummary:");
    println!("  {:<8}{:<40}RESULT", "NAME", "NOW RUNNING");
    for w in WORKLOADS {
        // A moving tag is compared by digest: show the one it started on.
        let from = if w.strategy == "latest" {
            scenario.pinned(w.repo, w.tag)
        } else {
            scenario.image(w.repo, w.tag)
        };
        let from = narrator.short(&from);
        let now = narrator.short(&narrator.cluster().image_of(w.name));
        println!(
            "  {:<8}{now:<40}{}",
            w.name,
            outcome(narrator, w.name, &from)
        );
    }
    let started = narrator
        .webhooks()
        .iter()
        .filter(|w| w["deployment"]["name"] == "api" && w["eventType"] == "IMAGE_ROLLOUT_STARTED")
        .count();
    println!(
        "  {} webhooks received; api attempted {started} update: 2.1.0 stays quarantined, later checks skip it",
        narrator.webhooks().len(),
    );
}

fn outcome(narrator: &Narrator<'_>, name: &str, from: &str) -> String {
    if let Some(failed) = narrator.webhook(name, "IMAGE_ROLLOUT_FAILED") {
        let quarantine = narrator
            .cluster()
            .annotation(name, "watch-cluster.io/quarantine")
            .unwrap_or_default();
        let quarantined: Vec<String> = serde_json::from_str::<serde_json::Value>(&quarantine)
            .ok()
            .and_then(|q| q.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e["image"].as_str().map(|i| narrator.short(i)))
            .collect();
        return format!(
            "rollout of {} failed, rolled back; quarantined: {}",
            narrator.short(failed["deployment"]["image"].as_str().unwrap_or("?")),
            quarantined.join(", ")
        );
    }
    match narrator.webhook(name, "IMAGE_ROLLOUT_COMPLETED") {
        Some(done) => format!(
            "updated from {from}; rollout completed in {}",
            done["details"]["rolloutDuration"].as_str().unwrap_or("?")
        ),
        None => "no update".into(),
    }
}
