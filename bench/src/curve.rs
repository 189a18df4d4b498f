//! `watch-cluster-bench curve`: the cost curve — what the controller costs as the cluster grows — from one
//! command (issue 16 item 4).
//!
//! Input: cluster sizes in Deployments (10 % of each watched) and a backend. For each size it runs this
//! same executable as a child process, the ordinary bench with `--json`, one size after the other (they
//! would measure each other if run together), keeping the child's printed table as `curve-<N>.md` and its
//! figures as `curve-<N>.json`. A run that fails leaves a `curve-<N>.json` that says so, so the curve shows
//! that size as missing instead of an older run's figures. Output: rendered from every `curve-<N>.json` in
//! the directory, the Markdown table `cost-curve.md` ([`table`]) and the PNG `cost-curve.png` ([`plot`]).
//! `--from DIR` renders again without running, so a point run by hand (50,000 Deployments) joins the
//! others. Figures are read by key ([`point`]): a missing or `null` figure is shown as missing, never as 0.

mod plot;
mod point;
mod table;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;

use anyhow::{Context as _, bail};

use point::Point;

/// Where the curve goes unless `--out` says otherwise (run from the repository's root).
const DEFAULT_OUT: &str = "docs/benchmarks";
/// The smallest size: 10 % of it is the bench's minimum of 10 watched workloads.
const MIN_SIZE: u64 = 100;
/// Above this a run takes long enough that it is made by hand, never in CI (BENCHMARKS.md).
const BY_HAND_ABOVE: u64 = 10_000;

/// The cluster the bench runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The simulated API server in this process (with the naive baseline).
    Sim,
    /// A real control plane started for the run (`testbed/up`, `TESTBED_PROFILE=bench`), stopped after.
    Real,
}

impl Backend {
    /// The name on the command line and in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Real => "real",
            Backend::Sim => "sim",
        }
    }
}

/// Cluster sizes in Deployments, ascending, each a multiple of 10 and at least [`MIN_SIZE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizes(pub Vec<u64>);

impl FromStr for Sizes {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut sizes = Vec::new();
        for part in text.split(',').map(str::trim) {
            let size: u64 = part.parse().map_err(|_| {
                format!(
                    "--sizes must be Deployment counts separated by commas, e.g. 1000,10000: `{part}` is not a \
                     whole number"
                )
            })?;
            if size < MIN_SIZE {
                return Err(format!(
                    "--sizes must be at least {MIN_SIZE} (10 % watched, and the bench watches at least 10): \
                     got {size}"
                ));
            }
            if !size.is_multiple_of(10) {
                return Err(format!(
                    "--sizes must be multiples of 10 (10 % of each is watched): got {size}"
                ));
            }
            if sizes.contains(&size) {
                return Err(format!(
                    "--sizes must not repeat a size: {size} is given twice"
                ));
            }
            sizes.push(size);
        }
        sizes.sort_unstable();
        Ok(Self(sizes))
    }
}

/// The `curve` subcommand's options.
#[derive(Debug, clap::Args)]
pub struct CurveArgs {
    /// Cluster sizes in Deployments, comma-separated; 10 % of each are watched. 50000 is run by hand
    /// (BENCHMARKS.md, "The cost curve").
    #[arg(long, default_value = "1000,10000")]
    sizes: Sizes,
    /// The cluster to run against.
    #[arg(long, value_enum, default_value_t = Backend::Real)]
    cluster: Backend,
    /// Measured check windows of each run (default: the bench's, 10, or 3 below 500 watched).
    #[arg(long)]
    windows: Option<usize>,
    /// The directory of the runs' files and the curve (default: docs/benchmarks, or --from's).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Render the curve from the curve-<N>.json in this directory without running anything.
    #[arg(long, conflicts_with_all = ["sizes", "cluster", "windows"])]
    from: Option<PathBuf>,
    /// The TrueType font of the plot (default: DejaVu Sans, Debian package fonts-dejavu-core).
    #[arg(long)]
    font: Option<PathBuf>,
}

/// What the children share with the parent's command line.
pub struct Inherited<'a> {
    /// `--controller`.
    pub controller: Option<&'a Path>,
    /// `--keep-logs`: each size's logs go to a directory `curve-<N>` in it.
    pub keep_logs: Option<&'a Path>,
}

/// Runs the sizes (unless `--from`) and renders the curve; returns the table, for the terminal.
pub fn run(args: &CurveArgs, inherited: &Inherited) -> anyhow::Result<String> {
    // Before hours of runs: the font the plot needs at the end.
    let font = plot::find_font(args.font.as_deref())?;
    if let Some(w) = args.windows
        && w < 2
    {
        bail!("--windows must be at least 2 (window 1 has updates due; the others are steady)");
    }
    let out = args
        .out
        .clone()
        .or_else(|| args.from.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_OUT));
    std::fs::create_dir_all(&out).with_context(|| format!("failed to create {}", out.display()))?;
    if args.from.is_none() {
        refuse_other_backend(&out, args)?;
    }
    let mut failures = Vec::new();
    if args.from.is_none() {
        for &size in &args.sizes.0 {
            if let Err(e) = run_size(args, inherited, &out, size) {
                eprintln!("curve: the run of {size} Deployments failed: {e:#}");
                let record = point::failed_record(args.cluster.as_str(), size, &format!("{e:#}"));
                crate::write_json(&out.join(point::file_name(size)), &record)?;
                failures.push(size);
            }
        }
    }
    let from = args.from.as_deref().unwrap_or(&out);
    let points = point::read_dir(from)?;
    let rendered = render(&points, from, &font, &out)?;
    if !failures.is_empty() {
        // The curve is drawn either way; the exit code says that some of it is missing.
        println!("{rendered}");
        bail!(
            "the runs of {} Deployments failed; the curve shows them as missing",
            failures
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(rendered)
}

/// Before hours of runs: the curve drawn at the end would mix backends with runs already in `out` (other
/// sizes than those about to run, which are replaced).
fn refuse_other_backend(out: &Path, args: &CurveArgs) -> anyhow::Result<()> {
    let Ok(saved) = point::read_dir(out) else {
        return Ok(());
    };
    let wanted = args.cluster.as_str();
    if let Some(other) = saved
        .iter()
        .find(|p| p.backend != wanted && !args.sizes.0.contains(&p.deployments))
    {
        bail!(
            "{} holds a run of {} Deployments on {}; this curve is on {wanted}: one curve is of one backend, \
             give another --out",
            out.display(),
            other.deployments,
            other.backend
        );
    }
    Ok(())
}

/// Writes `cost-curve.md` and `cost-curve.png` of `points` (read from `from`) into `out`; returns the table
/// and where it went.
fn render(points: &[Point], from: &Path, font: &Path, out: &Path) -> anyhow::Result<String> {
    if let Some(other) = points.iter().find(|p| p.backend != points[0].backend) {
        bail!(
            "{} holds runs of both backends ({} Deployments on {}, {} on {}): one curve is of one backend; \
             keep the runs in separate directories",
            from.display(),
            points[0].deployments,
            points[0].backend,
            other.deployments,
            other.backend
        );
    }
    let markdown = table::render(points);
    let md = out.join("cost-curve.md");
    std::fs::write(&md, &markdown).with_context(|| format!("failed to write {}", md.display()))?;
    let png = out.join("cost-curve.png");
    plot::render(points, font, &png)?;
    Ok(format!(
        "{markdown}\nwrote {} and {}",
        md.display(),
        png.display()
    ))
}

/// One size: the bench as a child process, its table into `curve-<N>.md`, its figures into `curve-<N>.json`.
fn run_size(args: &CurveArgs, inherited: &Inherited, out: &Path, size: u64) -> anyhow::Result<()> {
    let json = out.join(point::file_name(size));
    // An older run's figures must not stand in for this run's if it fails.
    match std::fs::remove_file(&json) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("failed to remove {}", json.display()));
        }
        _ => {}
    }
    let md = out.join(format!("curve-{size}.md"));
    let table =
        std::fs::File::create(&md).with_context(|| format!("failed to create {}", md.display()))?;
    let exe = std::env::current_exe().context("failed to locate the bench executable")?;
    let mut command = Command::new(exe);
    command.args(child_args(args, inherited, &json, size));
    if size > BY_HAND_ABOVE {
        eprintln!("curve: {size} Deployments is a by-hand point (never in CI); this takes a while");
    }
    eprintln!(
        "curve: {size} Deployments ({} watched) on {}",
        size / 10,
        args.cluster.as_str()
    );
    let mut child = command
        .stdout(table)
        .stderr(Stdio::piped())
        .spawn()
        .context("failed to start the bench")?;
    // The child's progress goes on to the terminal; its last line is the reason if it fails.
    let mut last = String::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            eprintln!("  {line}");
            if !line.trim().is_empty() {
                last = line;
            }
        }
    }
    let status = child.wait().context("failed to wait for the bench")?;
    if !status.success() {
        bail!("{status}: {}", last.trim().trim_start_matches("error: "));
    }
    if !json.is_file() {
        bail!("the bench exited 0 but wrote no {}", json.display());
    }
    Ok(())
}

/// The child's command line.
fn child_args(args: &CurveArgs, inherited: &Inherited, json: &Path, size: u64) -> Vec<String> {
    let mut out: Vec<String> = [
        "--cluster",
        args.cluster.as_str(),
        "--workloads",
        &(size / 10).to_string(),
        "--cluster-size",
        &size.to_string(),
        "--baseline-windows",
        "0",
        "--json",
        &json.to_string_lossy(),
    ]
    .map(str::to_owned)
    .into();
    if let Some(w) = args.windows {
        out.extend(["--windows".to_owned(), w.to_string()]);
    }
    if let Some(c) = inherited.controller {
        out.extend(["--controller".to_owned(), c.to_string_lossy().into_owned()]);
    }
    if let Some(logs) = inherited.keep_logs {
        let dir = logs.join(format!("curve-{size}"));
        out.extend(["--keep-logs".to_owned(), dir.to_string_lossy().into_owned()]);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        curve: CurveArgs,
    }

    #[test]
    fn sizes_are_whole_multiples_of_ten_from_a_hundred_sorted_and_distinct() {
        assert_eq!("10000,1000".parse(), Ok(Sizes(vec![1000, 10000])));
        assert_eq!(" 50000 ".parse(), Ok(Sizes(vec![50000])));
        let err = |s: &str| s.parse::<Sizes>().unwrap_err();
        assert_eq!(
            err("1,000"),
            "--sizes must be at least 100 (10 % watched, and the bench watches at least 10): got 1"
        );
        assert_eq!(
            err("1000,ten"),
            "--sizes must be Deployment counts separated by commas, e.g. 1000,10000: `ten` is not a whole number"
        );
        assert_eq!(
            err("1005"),
            "--sizes must be multiples of 10 (10 % of each is watched): got 1005"
        );
        assert_eq!(
            err("1000,1000"),
            "--sizes must not repeat a size: 1000 is given twice"
        );
        assert!(err("").contains("`` is not a whole number"));
        assert!(err("-100").contains("`-100` is not a whole number"));
    }

    #[test]
    fn each_size_runs_the_bench_with_a_tenth_watched_and_no_baseline() {
        let cli = Cli::parse_from(["c", "--cluster", "sim", "--windows", "4"]);
        let args = child_args(
            &cli.curve,
            &Inherited {
                controller: Some(Path::new("/bin/wc")),
                keep_logs: Some(Path::new("/tmp/logs")),
            },
            Path::new("out/curve-1000.json"),
            1000,
        );
        assert_eq!(
            args.join(" "),
            "--cluster sim --workloads 100 --cluster-size 1000 --baseline-windows 0 \
             --json out/curve-1000.json --windows 4 --controller /bin/wc --keep-logs /tmp/logs/curve-1000"
        );
        let cli = Cli::parse_from(["c"]);
        assert_eq!(cli.curve.sizes, Sizes(vec![1000, 10000]));
        assert_eq!(cli.curve.cluster, Backend::Real);
    }

    #[test]
    fn rendering_from_saved_runs_runs_nothing_else() {
        assert!(Cli::try_parse_from(["c", "--from", "d", "--sizes", "1000"]).is_err());
        assert!(Cli::try_parse_from(["c", "--from", "d", "--out", "e"]).is_ok());
    }

    #[test]
    fn one_curve_is_of_one_backend() {
        let dir = tempfile::tempdir().unwrap();
        let sim = point::failed_record("sim", 1000, "x");
        let real = point::failed_record("real", 10000, "y");
        let points = [
            Point::from_json(&sim, "a").unwrap(),
            Point::from_json(&real, "b").unwrap(),
        ];
        let e = render(&points, dir.path(), Path::new("/nonexistent"), dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("holds runs of both backends (1000 Deployments on sim, 10000 on real)"),
            "{e}"
        );
        // And a run is refused before it starts when the directory holds the other backend's runs.
        std::fs::write(dir.path().join("curve-1000.json"), sim.to_string()).unwrap();
        let real_args = Cli::parse_from(["c", "--sizes", "10000"]).curve;
        let e = refuse_other_backend(dir.path(), &real_args)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("holds a run of 1000 Deployments on sim; this curve is on real: one curve is of one backend, give another --out"), "{e}");
        let replacing = Cli::parse_from(["c", "--sizes", "1000"]).curve;
        assert!(
            refuse_other_backend(dir.path(), &replacing).is_ok(),
            "the run replaces it"
        );
    }
}
