//! The chat services' own libraries as judges of our bodies (docs/testbed.md#npmcheck): Microsoft's
//! `adaptivecards` for Teams, discord.js's `@discordjs/builders` for Discord, and `@slack/types` through `tsc`
//! for Slack, installed by `testbed/npmcheck/build` and run by the `check-*.cjs` scripts beside it.
//!
//! Input: named bodies as JSON values. Output: `Ok(())` when the library accepts every one, else `Err` with
//! the library's own messages, one line per problem, each prefixed by the body's name. One Node process per
//! call, however many bodies (tsc alone takes seconds to start). A missing install is an error naming the build
//! script, never a skip: a check that silently does not run would pass anything.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

/// How long one validator may run; tsc over a few dozen bodies takes about 10 s on two busy cores.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(180);

/// Validates Slack bodies: they must type-check as `{ text: string; blocks: KnownBlock[]; username?: string }`.
pub fn check_slack(bodies: &[(&str, Value)]) -> Result<(), String> {
    run("check-slack.cjs", bodies)
}

/// Validates Discord bodies: one embed the builders accept with validators on, within every limit.
pub fn check_discord(bodies: &[(&str, Value)]) -> Result<(), String> {
    run("check-discord.cjs", bodies)
}

/// Validates Teams bodies: the Workflows envelope with one Adaptive Card 1.4 that parses and validates clean.
pub fn check_teams(bodies: &[(&str, Value)]) -> Result<(), String> {
    run("check-teams.cjs", bodies)
}

/// `testbed/npmcheck` of the workspace.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testbed/npmcheck")
}

fn run(script: &str, bodies: &[(&str, Value)]) -> Result<(), String> {
    let dir = dir();
    if !dir.join("node_modules/adaptivecards").is_dir() {
        return Err(format!(
            "{} has no node_modules: run testbed/npmcheck/build (the test command .ci/test does)",
            dir.display()
        ));
    }
    let input = tempfile::Builder::new()
        .prefix("npmcheck-")
        .suffix(".json")
        .tempfile()
        .map_err(|e| format!("cannot create the input file: {e}"))?;
    let payloads: Vec<Value> = bodies
        .iter()
        .map(|(name, body)| json!({"name": name, "body": body}))
        .collect();
    std::fs::write(input.path(), Value::Array(payloads).to_string())
        .map_err(|e| format!("cannot write {}: {e}", input.path().display()))?;
    let mut child = std::process::Command::new("node")
        .arg(dir.join(script))
        .arg(input.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run node {script}: {e} (node 20 is what testbed/npmcheck uses)")
        })?;
    // Read both pipes while waiting, so a chatty validator cannot fill one and stall.
    let readers = [
        child.stdout.take().map(reader),
        child.stderr.take().map(reader),
    ];
    let deadline = std::time::Instant::now() + CHECK_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(None) => {
                let _ = child.kill();
                return Err(format!("node {script} did not finish in {CHECK_TIMEOUT:?}"));
            }
            Err(e) => return Err(format!("cannot wait for node {script}: {e}")),
        }
    };
    let text: String = readers
        .into_iter()
        .flatten()
        .map(|r| r.join().unwrap_or_default())
        .collect();
    if status.success() {
        Ok(())
    } else {
        Err(format!("node {script} ({status}):\n{text}"))
    }
}

fn reader(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}
