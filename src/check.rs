//! `watch-cluster check IMAGE [--strategy S]` (docs/settings.md#commands): ask the registry what a strategy would choose.
//!
//! Input: an image reference, a strategy, and the registry settings the controller uses (flags mirroring
//! `INSECURE_REGISTRIES` and `REGISTRY_CA_FILE`) plus optional credentials. Output on stdout: the decision
//! (the image pinned as `repo:tag@sha256:…`, or that there is no update), the candidates considered and why
//! each other tag was ruled out. A registry or input error is one line on stderr and exit code 1 (via `main`).
//!
//! It runs the same resolution as the controller (`resolve`), with an empty quarantine and nothing pending:
//! what it prints is what a newly watched workload with this image (and the `--tag-filter`, `--skip` and
//! `--min-age` gates, mirroring the annotations) would get, including candidates held by `min-age`. With
//! `--verify cosign --verify-keys PATH` (the `verify` annotation and `VERIFY_KEYS`) the candidate is taken
//! only with a verified signature: the key is printed, and each candidate rejected with its reason.
//!
//! Tag names come from the registry, so every one printed goes through [`escape`]: a tag carrying ANSI
//! sequences or CR/LF must not repaint the terminal or forge a line of the report.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use chrono::{SecondsFormat, Utc};

use crate::gate::{SkipList, TagFilter};
use crate::image::ImageRef;
use crate::registry::{Credential, DockerConfig, RegistryClient, RegistryConfig};
use crate::resolve::{CandidateGates, RejectedCandidate, Resolution, Target, resolve_signed};
use crate::strategy::{Decision, Evaluation, Quarantine, Strategy};
use crate::untrusted::escape;
use crate::verify::{KeySet, Verifier};

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
    /// Candidate tags must match this regular expression, as the `tag-filter` annotation (version strategies).
    #[arg(long, value_name = "REGEX")]
    pub tag_filter: Option<String>,
    /// Tags or `tag@sha256:…` never to take, comma-separated, as the `skip` annotation.
    #[arg(long, value_name = "LIST")]
    pub skip: Option<String>,
    /// As the `min-age` annotation (`24h`): a new workload sees every candidate for the first time now,
    /// so the report shows when each would ripen.
    #[arg(long, value_name = "DURATION")]
    pub min_age: Option<String>,
    /// As the `verify` annotation: `cosign` takes a candidate only with a signature that verifies with
    /// `--verify-keys`.
    #[arg(long, value_name = "cosign", requires = "verify_keys")]
    pub verify: Option<String>,
    /// A PEM public key, or a directory of them, as `VERIFY_KEYS`.
    #[arg(long, value_name = "PATH", requires = "verify")]
    pub verify_keys: Option<PathBuf>,
}

/// Runs the check and prints the decision.
pub async fn report(args: CheckArgs) -> anyhow::Result<()> {
    let image = ImageRef::parse(args.image.trim())?;
    let strategy: Strategy = args.strategy.parse()?;
    strategy.check_image(&image)?;
    let tag_filter = match args.tag_filter.as_deref() {
        Some(_) if !strategy.is_version() => {
            anyhow::bail!("--tag-filter needs a version strategy: 'latest' follows one tag")
        }
        Some(pattern) => Some(TagFilter::parse(pattern).context("invalid --tag-filter")?),
        None => None,
    };
    let skip = match args.skip.as_deref() {
        Some(list) => SkipList::parse(list)?,
        None => SkipList::default(),
    };
    let min_age = args
        .min_age
        .as_deref()
        .map(crate::duration::parse)
        .transpose()?;
    let credential = credential(&args, image.registry())?;
    let client = RegistryClient::new(registry_config(&args), &mut Default::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let verifier = verifier(&args, &client)?;
    let target = Target {
        container: CONTAINER,
        image: &image,
        credential: credential.as_ref(),
        current_digest: None,
    };
    let gates = CandidateGates {
        tag_filter: tag_filter.as_ref(),
        skip: &skip,
        min_age,
        pending: &[],
        now: Utc::now(),
    };
    // The same resolution as the controller's, with an empty quarantine and nothing pending.
    let quarantine = Quarantine::default();
    let resolution = resolve_signed(
        &client,
        strategy,
        target,
        &quarantine,
        gates,
        verifier.as_ref(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    print!("{}", render(&image, strategy, &resolution));
    Ok(())
}

/// The whole report: the strategy's part, then the candidates waiting for `min-age`.
fn render(image: &ImageRef, strategy: Strategy, resolution: &Resolution) -> String {
    let mut out = match &resolution.evaluation {
        Some(evaluation) => {
            let listed = evaluation.accepted.len() + evaluation.rejected.len();
            let rejected = &resolution.signatures.rejected;
            render_version_signed(
                image,
                strategy,
                &resolution.decision,
                evaluation,
                listed,
                rejected,
            )
        }
        None => render_latest(image, resolution),
    };
    render_signatures(&mut out, resolution);
    for held in resolution.age.iter().flat_map(|age| &age.held) {
        let _ = writeln!(
            out,
            "held by min-age until {}: {}",
            held.ripens_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            escape(&held.image)
        );
    }
    out
}

fn render_latest(image: &ImageRef, resolution: &Resolution) -> String {
    let mut out = header(image, Strategy::Latest, &resolution.decision);
    if let (Some(tag), Some(found)) = (image.effective_tag(), resolution.resolved.first()) {
        let _ = writeln!(
            out,
            "registry digest of '{}': {}",
            escape(tag),
            escape(&found.digest)
        );
    }
    let current = image
        .digest()
        .unwrap_or("unknown (not pinned in the reference)");
    let _ = writeln!(out, "current digest: {current}");
    out
}

/// The verifier `--verify cosign --verify-keys PATH` asks for.
fn verifier(args: &CheckArgs, client: &RegistryClient) -> anyhow::Result<Option<Verifier>> {
    let (Some(kind), Some(path)) = (&args.verify, &args.verify_keys) else {
        return Ok(None);
    };
    if !kind.trim().eq_ignore_ascii_case("cosign") {
        anyhow::bail!(
            "--verify {kind:?} is not supported: the only verification is --verify cosign"
        );
    }
    let keys = KeySet::load(path).context("invalid --verify-keys")?;
    Ok(Some(Verifier::new(
        std::sync::Arc::new(keys),
        client.clone(),
        &mut Default::default(),
    )))
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

/// What signature verification found: the key of the candidate taken, and each candidate rejected.
fn render_signatures(out: &mut String, resolution: &Resolution) {
    if let Some(verified) = &resolution.signatures.verified {
        let _ = writeln!(
            out,
            "signature: verified with {} ({})",
            verified.key, verified.layout
        );
    }
    for rejected in &resolution.signatures.rejected {
        let _ = writeln!(
            out,
            "signature rejected: {}: {}",
            escape(&rejected.image),
            escape(&rejected.rejection.to_string())
        );
    }
}

/// The report of a version strategy without signature verification.
#[cfg(test)]
fn render_version(
    image: &ImageRef,
    strategy: Strategy,
    decision: &Decision,
    evaluation: &Evaluation,
    listed: usize,
) -> String {
    render_version_signed(image, strategy, decision, evaluation, listed, &[])
}

/// The report of a version strategy: decision, newer candidates (each signature rejected marked), then
/// ruled-out tags grouped by reason.
fn render_version_signed(
    image: &ImageRef,
    strategy: Strategy,
    decision: &Decision,
    evaluation: &Evaluation,
    listed: usize,
    rejected: &[RejectedCandidate],
) -> String {
    let mut out = header(image, strategy, decision);
    let chosen = match decision {
        Decision::Update { tag, .. } => Some(tag.as_str()),
        Decision::Keep(_) => None,
    };
    let _ = writeln!(out, "tags listed: {listed}");
    let _ = writeln!(out, "newer candidates ({}):", evaluation.accepted.len());
    for candidate in &evaluation.accepted {
        let signature_rejected = rejected.iter().find(|r| r.tag == candidate.as_str());
        let note = match (chosen, signature_rejected) {
            (_, Some(r)) => format!(
                "not chosen: signature rejected ({})",
                r.rejection.kind.as_str()
            ),
            (Some(c), None) if c == candidate.as_str() => "chosen".to_owned(),
            (Some(c), None) => format!("not chosen: {c} is higher"),
            (None, None) => "not chosen".to_owned(),
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
    use crate::resolve::{AgeOutcome, Held};
    use crate::strategy::{KeepReason, ResolvedCandidate, decide_version, rank_candidates};

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
            tag_filter: None,
            skip: None,
            min_age: None,
            verify: None,
            verify_keys: None,
        };
        assert_eq!(
            credential(&args, "registry:5000").unwrap(),
            Some(Credential::new("u", "p"))
        );
        assert_eq!(credential(&args, "docker.io").unwrap(), None);
        args.docker_config = None;
        assert_eq!(credential(&args, "registry:5000").unwrap(), None);
    }

    #[test]
    fn candidates_held_by_min_age_are_listed_with_their_ripening_time() {
        let image = ImageRef::parse("nginx:1.2.3").unwrap();
        let tags = strings(&["1.2.4"]);
        let evaluation = rank_candidates(Strategy::Version, "1.2.3", &tags).unwrap();
        let ripens_at = chrono::DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let held = format!("nginx:1.2.4@sha256:{}", "b".repeat(64));
        let resolution = Resolution {
            decision: Decision::Keep(KeepReason::HeldByMinAge {
                image: held.clone(),
                ripens_at,
            }),
            evaluation: Some(evaluation),
            resolved: Vec::new(),
            age: Some(AgeOutcome {
                pending: Vec::new(),
                held: vec![Held {
                    image: held.clone(),
                    first_seen: ripens_at - chrono::Duration::hours(24),
                    ripens_at,
                }],
            }),
            signatures: Default::default(),
        };
        let report = render(&image, Strategy::Version, &resolution);
        assert!(
            report.contains(&format!(
                "decision: no update ({held} is held by min-age until 2026-01-02T00:00:00Z)"
            )),
            "{report}"
        );
        assert!(
            report.ends_with(&format!(
                "held by min-age until 2026-01-02T00:00:00Z: {held}\n"
            )),
            "{report}"
        );
        assert!(report.contains("tags listed: 1"), "{report}");
    }

    #[test]
    fn a_candidate_whose_signature_was_rejected_is_marked_and_the_key_of_the_taken_one_printed() {
        use crate::resolve::Signatures;
        use crate::verify::{KeyName, Layout, Rejection, RejectionKind, Verified};
        let image = ImageRef::parse("registry:5000/app:1.0.0").unwrap();
        let tags = strings(&["1.1.0", "1.2.0"]);
        let evaluation = rank_candidates(Strategy::Version, "1.0.0", &tags).unwrap();
        let d1 = format!("sha256:{}", "1".repeat(64));
        let decision = Decision::Update {
            tag: "1.1.0".into(),
            digest: d1.clone(),
            reason: crate::strategy::UpdateReason::NewerVersion {
                tag: "1.1.0".into(),
            },
        };
        let rejected = RejectedCandidate {
            tag: "1.2.0".into(),
            image: format!("registry:5000/app:1.2.0@sha256:{}", "2".repeat(64)),
            rejection: Rejection {
                kind: RejectionKind::Unsigned,
                message: "no signature found".into(),
            },
        };
        let resolution = Resolution {
            decision,
            evaluation: Some(evaluation),
            resolved: Vec::new(),
            age: None,
            signatures: Signatures {
                verified: Some(Verified {
                    key: KeyName {
                        file: "release.pub".into(),
                        fingerprint: format!("SHA256:{}", "a".repeat(64)),
                    },
                    layout: Layout::SignatureTag,
                }),
                rejected: vec![rejected],
            },
        };
        let report = render(&image, Strategy::Version, &resolution);
        assert!(
            report.contains("1.2.0  not chosen: signature rejected (Unsigned)"),
            "{report}"
        );
        assert!(report.contains("1.1.0  chosen"), "{report}");
        assert!(
            report.contains(&format!(
                "signature: verified with release.pub (SHA256:{}) (cosign signature tag)",
                "a".repeat(64)
            )),
            "{report}"
        );
        assert!(
            report.contains("signature rejected: registry:5000/app:1.2.0@sha256:2222"),
            "{report}"
        );
    }
}
