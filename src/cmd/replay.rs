//! `replay`: re-check a baseline in both runtimes (or one shard of it);
//! `replay merge`: add shard reports up into one verdict.

use super::{CmdError, CmdResult, Context, agreed, print};
use crate::diff::Ruleset;
use crate::replay::{self, Options};
use shadowgate_core::Module;
use std::path::PathBuf;

/// Flags of `replay`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    /// `merge`: add up the JSON reports of a sharded replay.
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// Baseline folder (Parquet `cases` table), `s3://bucket/prefix` holding one, or a folder of readable cases.
    pub input: Option<PathBuf>,
    /// Replay only shard K of N (cases by a hash of their id; N shards cover each case once).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<replay::Shard>,
    /// Candidate guest (default: the embedded one).
    #[arg(long)]
    pub guest: Option<PathBuf>,
    /// Ruleset: a file or a published version such as `v1` (default: rulesets/CURRENT).
    #[arg(long)]
    pub ruleset: Option<String>,
    /// Only this module.
    #[arg(long)]
    pub module: Option<Module>,
    /// Write the JSON report here.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// Write the Markdown report here.
    #[arg(long)]
    pub report_md: Option<PathBuf>,
    /// Write the HTML page here.
    #[arg(long)]
    pub report_html: Option<PathBuf>,
    /// Highest diff (and regression) rate per module.
    #[arg(long, default_value_t = 0.0)]
    pub max_diff_rate: f64,
    /// Highest error rate per module.
    #[arg(long, default_value_t = 0.0)]
    pub max_error_rate: f64,
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
}

/// What follows `replay`.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Add up the JSON reports of a sharded replay (every shard once) into one report and verdict.
    Merge(MergeArgs),
}

/// Flags of `replay merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The shards' `--report-json` files.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// Write the merged JSON report here.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// Write the merged Markdown report here.
    #[arg(long)]
    pub report_md: Option<PathBuf>,
    /// Write the merged HTML page here.
    #[arg(long)]
    pub report_html: Option<PathBuf>,
}

/// Replays; exit 0 within thresholds, 1 if one is exceeded, 2 on bad input.
pub fn run(a: Args) -> CmdResult {
    if let Some(Sub::Merge(m)) = a.command {
        return merge(m);
    }
    let input = a.input.ok_or_else(|| CmdError::input("replay needs a baseline folder or case files"))?;
    let rules = Ruleset::load(a.ruleset.as_deref())?;
    let mut cases = replay::load_input(&input)?;
    if let Some(shard) = a.shard {
        cases.retain(|c| shard.holds(&c.case.id));
    }
    let candidate = replay::candidate(a.guest.as_ref())?;
    let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let opts = Options {
        module: a.module,
        max_diff_rate: a.max_diff_rate,
        max_error_rate: a.max_error_rate,
        jobs,
        progress_bar: true,
    };
    let mut report = replay::run(&input.display().to_string(), &cases, &candidate, rules, &opts);
    report.shard = a.shard;
    write(&report, &Outputs { json: a.report_json, md: a.report_md, html: a.report_html })?;
    verdict(&report)
}

/// Where the report goes besides stdout.
struct Outputs {
    json: Option<PathBuf>,
    md: Option<PathBuf>,
    html: Option<PathBuf>,
}

fn write(report: &replay::Report, out: &Outputs) -> Result<(), CmdError> {
    if let Some(p) = &out.json {
        std::fs::write(p, serde_json::to_string_pretty(report)? + "\n").context(p.display())?;
    }
    if let Some(p) = &out.md {
        std::fs::write(p, replay::render_markdown(report)).context(p.display())?;
    }
    if let Some(p) = &out.html {
        std::fs::write(p, crate::page::replay(report)).context(p.display())?;
    }
    print(&replay::render_text(report));
    Ok(())
}

/// `replay merge`: the shards' reports as one; exit as a whole replay would.
fn merge(m: MergeArgs) -> CmdResult {
    let mut reports = Vec::new();
    for p in &m.reports {
        let text = std::fs::read_to_string(p).context(p.display())?;
        let r: replay::Report = serde_json::from_str(&text)
            .map_err(|e| CmdError::input(format!("{}: not a replay JSON report: {e}", p.display())))?;
        reports.push(r);
    }
    let report = replay::merge(reports).map_err(CmdError::input)?;
    write(&report, &Outputs { json: m.report_json, md: m.report_md, html: m.report_html })?;
    verdict(&report)
}

/// Exit 2 naming the first case whose replay did not finish, else 0 or 1 by the thresholds.
pub fn verdict(report: &replay::Report) -> CmdResult {
    if let Some(f) = report.failed.first() {
        return Err(CmdError::input(format!(
            "replay of case {} failed ({} of {} cases replayed): {}",
            f.id, report.replayed, report.cases, f.error
        )));
    }
    Ok(agreed(report.exceeded.is_empty()))
}
