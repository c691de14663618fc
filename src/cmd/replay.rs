//! `replay`: re-check a baseline in both runtimes.

use super::{CmdError, CmdResult, Context, agreed, print};
use crate::diff::Ruleset;
use crate::replay::{self, Options};
use shadowgate_core::Module;
use std::path::PathBuf;

/// Flags of `replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Baseline folder (Parquet `cases` table) or folder of readable cases.
    pub input: PathBuf,
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

/// Replays; exit 0 within thresholds, 1 if one is exceeded, 2 on bad input.
pub fn run(a: Args) -> CmdResult {
    let rules = Ruleset::load(a.ruleset.as_deref())?;
    let cases = replay::load_input(&a.input)?;
    let candidate = replay::candidate(a.guest.as_ref())?;
    let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let opts = Options {
        module: a.module,
        max_diff_rate: a.max_diff_rate,
        max_error_rate: a.max_error_rate,
        jobs,
        progress_bar: true,
    };
    let report = replay::run(&a.input.display().to_string(), &cases, &candidate, rules, &opts);
    if let Some(p) = &a.report_json {
        std::fs::write(p, serde_json::to_string_pretty(&report)? + "\n").context(p.display())?;
    }
    if let Some(p) = &a.report_md {
        std::fs::write(p, replay::render_markdown(&report)).context(p.display())?;
    }
    print(&replay::render_text(&report));
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
