//! The narration: waits for what the demo expects and prints webhooks as they arrive.
//!
//! Input: the simulated cluster's change stream and the webhook receiver. Output: lines on stdout, each
//! with the time since the controller started; every webhook is printed once, as a human-readable line
//! followed by its exact compact JSON body. Waiting is event-driven: a wait wakes on every change of the
//! cluster and on every webhook, re-checks its condition, and gives up at its deadline with an error that
//! names what did not happen.

use std::time::Duration;

use serde_json::Value;
use tokio::{sync::broadcast, time::Instant};
use watch_cluster_sim::Change;
use watch_cluster_testkit::WebhookReceiver;

use super::{DemoError, cluster::DemoCluster};

/// How many hex digits of a digest the narration shows.
const DIGEST_SHOWN: usize = 12;

/// Prints the demo's story and waits for its milestones.
pub struct Narrator<'a> {
    cluster: &'a DemoCluster,
    webhook: &'a WebhookReceiver,
    changes: broadcast::Receiver<Change>,
    received: Vec<Value>,
    started: Instant,
    host: String,
}

impl<'a> Narrator<'a> {
    /// Starts the clock; `host` (the registry) is left out of printed image references.
    pub fn new(cluster: &'a DemoCluster, webhook: &'a WebhookReceiver, host: &str) -> Self {
        Self {
            changes: cluster.store().subscribe(),
            cluster,
            webhook,
            received: Vec::new(),
            started: Instant::now(),
            host: host.to_owned(),
        }
    }

    /// The cluster.
    pub fn cluster(&self) -> &DemoCluster {
        self.cluster
    }

    /// Prints `text` with the time since the start.
    pub fn say(&self, text: &str) {
        println!(
            "[{:>5.1}s] {}",
            self.started.elapsed().as_secs_f64(),
            self.short(text)
        );
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Every webhook body received so far, parsed.
    pub fn webhooks(&self) -> &[Value] {
        &self.received
    }

    /// The first webhook of `event_type` about the workload `name`.
    pub fn webhook(&self, name: &str, event_type: &str) -> Option<&Value> {
        self.received
            .iter()
            .find(|w| w["deployment"]["name"] == name && w["eventType"] == event_type)
    }

    /// `text` without the registry host, with digests cut to their first hex digits.
    pub fn short(&self, text: &str) -> String {
        shorten(&text.replace(&format!("{}/", self.host), ""))
    }

    /// Prints the webhooks that arrived since the last call.
    pub fn drain(&mut self) {
        for request in self.webhook.requests().iter().skip(self.received.len()) {
            let body = request.json();
            self.say(&format!("webhook {}", describe(&body)));
            println!("         {}", request.body_text());
            self.received.push(body);
        }
    }

    /// Waits until `check` holds, printing webhooks meanwhile; fails after `timeout` naming `what`.
    pub async fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Self) -> bool,
    ) -> Result<(), DemoError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if check(self) {
                return Ok(());
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(DemoError::Timeout {
                    what: what.to_owned(),
                    waited: timeout,
                });
            }
            let next_webhook = self.received.len() + 1;
            tokio::select! {
                change = self.changes.recv() => match change {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Err(DemoError::ClusterStopped),
                },
                // Times out at the deadline at the latest; the loop then reports the timeout.
                _ = self.webhook.wait_for_requests(next_webhook, remaining) => {}
            }
        }
    }
}

/// One line about a webhook body: event type, workload, and what happened.
fn describe(body: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    let event_type = text(&body["eventType"]);
    let name = text(&body["deployment"]["name"]);
    let image = text(&body["deployment"]["image"]);
    let details = &body["details"];
    let what = match event_type.as_str() {
        "DEPLOYMENT_DETECTED" => format!(
            "now watched: strategy {}, cron \"{}\"",
            text(&details["updateStrategy"]),
            text(&details["cronExpression"])
        ),
        "IMAGE_ROLLOUT_STARTED" => {
            format!("update {} -> {image}", text(&details["previousImage"]))
        }
        "IMAGE_ROLLOUT_COMPLETED" => format!(
            "rollout of {image} completed in {}",
            text(&details["rolloutDuration"])
        ),
        "IMAGE_ROLLOUT_FAILED" => match details["rolledBackTo"].as_str() {
            Some(back) => format!(
                "rollout of {image} FAILED ({}); rolled back to {back}",
                text(&details["error"])
            ),
            None => format!("rollout of {image} FAILED ({})", text(&details["error"])),
        },
        _ => String::new(),
    };
    format!("{event_type} {name}: {what}")
}

/// Cuts every `sha256:<64 hex>` to `sha256:<first DIGEST_SHOWN hex>`.
pub fn shorten(text: &str) -> String {
    const PREFIX: &str = "sha256:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let hex = &from[PREFIX.len()..];
        let digits = hex.chars().take_while(char::is_ascii_hexdigit).count();
        if digits == 64 {
            out.push_str(PREFIX);
            out.push_str(&hex[..DIGEST_SHOWN]);
            rest = &hex[digits..];
        } else {
            out.push_str(PREFIX);
            rest = hex;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn full_digests_are_cut_and_other_text_is_kept() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            shorten(&format!("web:1.2.0@{digest} and sha256:xyz")),
            "web:1.2.0@sha256:abababababab and sha256:xyz"
        );
        assert_eq!(shorten("no digest"), "no digest");
    }

    #[test]
    fn a_failed_rollout_is_described_with_its_reason_and_rollback() {
        let body = json!({"eventType": "IMAGE_ROLLOUT_FAILED",
            "deployment": {"namespace": "demo", "name": "api", "image": "api:2.1.0"},
            "details": {"error": "progress deadline exceeded", "rolledBackTo": "api:2.0.0"}});
        assert_eq!(
            describe(&body),
            "IMAGE_ROLLOUT_FAILED api: rollout of api:2.1.0 FAILED \
             (progress deadline exceeded); rolled back to api:2.0.0"
        );
    }
}
