//! `watch-cluster check IMAGE [--strategy S]` (docs/settings.md#commands): ask the registry what a strategy would choose.
//!
//! Input: an image reference, a strategy, and the registry settings the controller uses (flags mirroring
//! `INSECURE_REGISTRIES` and `REGISTRY_CA_FILE`) plus optional credentials. Output on stdout: the decision
//! (the image pinned as `repo:tag@sha256:…`, or that there is no update), the candidates considered and why
//! each other tag was ruled out. A registry or input error is one line on stderr and exit code 1 (via `main`).
//!
//! It runs the same pure strategy code as the controller, with an empty quarantine: what it prints is what
//! a newly watched workload with this image would get.
//!
//! Tag names come from the registry, so every one printed goes through [`escape`]: a tag carrying ANSI
//! sequences or CR/LF must not repaint the terminal or forge a line of the report.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::image::ImageRef;
use crate::registry::{Credential, DockerConfig, RegistryClient, RegistryConfig, Repository};
use crate::strategy::{
    Decision, Evaluation, Quarantine, ResolvedCandidate, Strategy, decide_latest, decide_version,
    rank_candidates,
};
use crate::untrusted::escape;

/// The container name the strategies see; the quarantine is empty, so it never matters.
const CONTAINER: &str = "check";

/// Arguments of `watch-cluster check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The image reference to check, e.g. `nginx:1.25.0` or `registry:5000/team/app:2.0.0`.
    pub image: String,
    /// Update strategy: version (alias semver), version-lock-major, version-lock-minor, latest.
    #[arg(long, default_value = "version")]
    pub strategy: String,
    /// Registries reached over plain HTTP, comma-separated `host[:port]`.
    #[arg(long, env = "INSECURE_REGISTRIES", value_delimiter = ',')]
    pub insecure_registries: Vec<String>,
    /// Extra CA certificates (PEM bundle) trusted for registries.
    #[arg(long, env = "REGISTRY_CA_FILE")]
    pub registry_ca_file: Option<PathBuf>,
    /// User name for the image's registry.
    #[arg(long, requires = "password", conflicts_with = "docker_config")]
    pub username: Option<String>,
    /// Password or token for the image's registry (prefer --docker-config: flags show up in process lists).
    #[arg(long, requires = "username")]
    pub password: Option<String>,
    /// A Docker `config.json` whose `auths` hold the registry's credentials (credential helpers are ignored).
    #[arg(long, value_name = "PATH")]
    pub docker_config: Option<PathBuf>,
}

/// Runs the check and prints the decision.
pub async fn report(args: CheckArgs) -> anyhow::Result<()> {
    let image = ImageRef::parse(args.image.trim())?;
    let strategy: Strategy = args.strategy.parse()?;
    let tag = strategy.check_image(&image)?.to_owned();
    let credential = credential(&args, image.registry())?;
    let client = RegistryClient::new(registry_config(&args), &mut Default::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let repo = Repository::new(image.registry(), image.repository());
    let report = if strategy.is_version() {
        check_version(&client, &repo, &image, strategy, &tag, credential.as_ref()).await?
    } else {
        check_latest(&client, &repo, &image, &tag, credential.as_ref()).await?
    };
    print!("{report}");
    Ok(())
}

fn registry_config(args: &CheckArgs) -> RegistryConfig {
    RegistryConfig {
        insecure_registries: args
            .insecure_registries
            .iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect(),
        ca_file: args
            .registry_ca_file
            .clone()
            .filter(|p| !p.as_os_str().is_empty()),
        ..RegistryConfig::default()
    }
}

fn credential(args: &CheckArgs, registry: &str) -> anyhow::Result<Option<Credential>> {
    if let (Some(user), Some(password)) = (&args.username, &args.password) {
        return Ok(Some(Credential::new(user.as_str(), password.as_str())));
    }
    let Some(path) = &args.docker_config else {
        return Ok(None);
    };
    let raw = std::fs::read(path)
        .with_context(|| format!("failed to read --docker-config {}", path.display()))?;
    let config =
        DockerConfig::from_config_json(&raw, &format!("docker config {}", path.display()))?;
    Ok(config.credential_for(registry).cloned())
}

async fn check_version(
    client: &RegistryClient,
    repo: &Repository,
    image: &ImageRef,
    strategy: Strategy,
    tag: &str,
    credential: Option<&Credential>,
) -> anyhow::Result<String> {
    let tags = client
        .list_tags(repo, credential)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let evaluation = rank_candidates(strategy, tag, &tags)?;
    // With an empty quarantine the best candidate is the decision: one HEAD is enough.
    let mut resolved = Vec::new();
    if let Some(best) = evaluation.best() {
        let digest = client
            .head_digest(repo, best.as_str(), credential)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        resolved.push(ResolvedCandidate {
            tag: best.as_str().to_owned(),
            digest,
        });
    }
    let decision = decide_version(
        image,
        CONTAINER,
        &evaluation,
        &resolved,
        &Quarantine::default(),
    );
    Ok(render_version(
        image,
        strategy,
        &decision,
        &evaluation,
        tags.len(),
    ))
}

async fn check_latest(
    client: &RegistryClient,
    repo: &Repository,
    image: &ImageRef,
    tag: &str,
    credential: Option<&Credential>,
) -> anyhow::Result<String> {
    let registry_digest = client
        .head_digest(repo, tag, credential)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let decision = decide_latest(
        image,
        CONTAINER,
        image.digest(),
        &registry_digest,
        &Quarantine::default(),
    );
    let mut out = header(image, Strategy::Latest, &decision);
    let _ = writeln!(out, "registry digest of '{tag}': {registry_digest}");
    let current = image
        .digest()
        .unwrap_or("unknown (not pinned in the reference)");
    let _ = writeln!(out, "current digest: {current}");
    Ok(out)
}

fn header(image: &ImageRef, strategy: Strategy, decision: &Decision) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "image: {image}");
    let _ = writeln!(out, "strategy: {strategy}");
    match decision.image_to_write(image) {
        Some(pinned) => {
            let _ = writeln!(
                out,
                "decision: update to {} ({})",
                escape(&pinned),
                escape(&decision.to_string())
            );
        }
        None => {
            let _ = writeln!(
                out,
                "decision: no update ({})",
                escape(&decision.to_string())
            );
        }
    }
    out
}

/// The report of a version strategy: decision, newer candidates, then ruled-out tags grouped by reason.
fn render_version(
    image: &ImageRef,
    strategy: Strategy,
    decision: &Decision,
    evaluation: &Evaluation,
    listed: usize,
) -> String {
    let mut out = header(image, strategy, decision);
    let chosen = match decision {
        Decision::Update { tag, .. } => Some(tag.as_str()),
        Decision::Keep(_) => None,
    };
    let _ = writeln!(out, "tags listed: {listed}");
    let _ = writeln!(out, "newer candidates ({}):", evaluation.accepted.len());
    for candidate in &evaluation.accepted {
        let note = match chosen {
            Some(c) if c == candidate.as_str() => "chosen".to_owned(),
            Some(c) => format!("not chosen: {c} is higher"),
            None => "not chosen".to_owned(),
        };
        let _ = writeln!(out, "  {}  {}", escape(candidate.as_str()), escape(&note));
    }
    let mut grouped: BTreeMap<String, Vec<Cow<'_, str>>> = BTreeMap::new();
    for (tag, rejection) in &evaluation.rejected {
        grouped
            .entry(rejection.to_string())
            .or_default()
            .push(escape(tag));
    }
    let _ = writeln!(out, "rejected ({}):", evaluation.rejected.len());
    for (why, tags) in grouped {
        let _ = writeln!(out, "  {why} ({}): {}", tags.len(), tags.join(", "));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn strings(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn the_report_names_the_pinned_choice_and_groups_rejections_by_reason() {
        let image = ImageRef::parse("registry:5000/team/app:1.2.3").unwrap();
        let tags = strings(&["1.2.3", "1.2.4", "1.3.0", "2.0.0-rc1", "latest", "1.1.0"]);
        let evaluation = rank_candidates(Strategy::Version, "1.2.3", &tags).unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        let resolved = [ResolvedCandidate {
            tag: "1.3.0".into(),
            digest: digest.clone(),
        }];
        let decision = decide_version(
            &image,
            CONTAINER,
            &evaluation,
            &resolved,
            &Quarantine::default(),
        );
        let report = render_version(
            &image,
            Strategy::Version,
            &decision,
            &evaluation,
            tags.len(),
        );
        assert!(
            report.contains(&format!(
                "decision: update to registry:5000/team/app:1.3.0@{digest}"
            )),
            "{report}"
        );
        assert!(report.contains("  1.3.0  chosen"), "{report}");
        assert!(
            report.contains("  1.2.4  not chosen: 1.3.0 is higher"),
            "{report}"
        );
        assert!(report.contains("pre-release (1): 2.0.0-rc1"), "{report}");
        assert!(
            report.contains("older than the current tag (1): 1.1.0"),
            "{report}"
        );
    }

    #[test]
    fn no_newer_version_is_reported_as_no_update() {
        let image = ImageRef::parse("nginx:1.25.0").unwrap();
        let tags = strings(&["1.24.0", "1.25.0"]);
        let evaluation = rank_candidates(Strategy::VersionLockMinor, "1.25.0", &tags).unwrap();
        let decision = decide_version(&image, CONTAINER, &evaluation, &[], &Quarantine::default());
        let report = render_version(
            &image,
            Strategy::VersionLockMinor,
            &decision,
            &evaluation,
            2,
        );
        assert!(report.contains("decision: no update ("), "{report}");
        assert!(report.contains("newer candidates (0):"), "{report}");
    }

    #[test]
    fn registry_supplied_tags_reach_the_terminal_with_control_characters_escaped() {
        let image = ImageRef::parse("registry:5000/team/app:1.2.3").unwrap();
        let hostile = "1.2.4\u{1b}[2J\r\nFAKE: decision: update to evil/backdoor:6.6.6";
        let tags = strings(&["1.2.3", hostile, "9.9.9-\u{1b}]0;owned\u{7}"]);
        let evaluation = rank_candidates(Strategy::Version, "1.2.3", &tags).unwrap();
        let decision = decide_version(&image, CONTAINER, &evaluation, &[], &Quarantine::default());
        let report = render_version(&image, Strategy::Version, &decision, &evaluation, 3);
        assert!(
            !report.contains(['\u{1b}', '\r', '\u{7}']),
            "raw control characters in {report:?}"
        );
        assert!(
            !report.lines().any(|l| l.starts_with("FAKE")),
            "a tag forged a line: {report:?}"
        );
        assert!(report.contains("1.2.4\\u{1b}[2J\\r\\nFAKE"), "{report:?}");
    }

    #[test]
    fn a_huge_bad_reference_is_echoed_cut_short_with_its_length() {
        let huge = format!("registry:5000/team/APP{}", "x".repeat(100_000));
        let error = ImageRef::parse(&huge).unwrap_err().to_string();
        assert!(error.len() < 1_000, "{} bytes echoed", error.len());
        assert!(
            error.contains(&format!("({} bytes)", huge.len())),
            "{error}"
        );
    }

    #[test]
    fn credentials_come_from_flags_or_a_docker_config_for_the_image_registry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://registry:5000":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        let mut args = CheckArgs {
            image: "registry:5000/a:1.0.0".into(),
            strategy: "version".into(),
            insecure_registries: vec![],
            registry_ca_file: None,
            username: None,
            password: None,
            docker_config: Some(path),
        };
        assert_eq!(
            credential(&args, "registry:5000").unwrap(),
            Some(Credential::new("u", "p"))
        );
        assert_eq!(credential(&args, "docker.io").unwrap(), None);
        args.docker_config = None;
        assert_eq!(credential(&args, "registry:5000").unwrap(), None);
    }
}
