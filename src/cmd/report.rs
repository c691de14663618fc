//! `report`: diff-rate reports from the `diffs` table.

use super::{CmdResult, Context, write_out};
use crate::report::{self, Dim};
use std::path::PathBuf;
use std::process::ExitCode;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text.
    Table,
    /// JSON (what `gate` reads).
    Json,
    /// Markdown.
    Md,
    /// One self-contained HTML page.
    Html,
}

/// Flags of `report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data dir (the sink's `data_dir`), or `s3://bucket/prefix` (the sink's `url`).
    pub data_dir: PathBuf,
    /// Only rows newer than this (`30m`, `24h`, `7d`).
    #[arg(long)]
    pub since: Option<String>,
    /// Dimensions to group by.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "module")]
    pub by: Vec<Dim>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Config: its `[owners]` are shown; its `[gate]` thresholds and stages judge the HTML page's verdicts.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// State file for the HTML page's verdicts (as `gate --state`).
    #[arg(long)]
    pub state: Option<PathBuf>,
}

/// Prints (or writes) the report.
pub fn run(a: Args) -> CmdResult {
    let cut = a.since.as_deref().map(report::cutoff_us).transpose().context("--since")?;
    // The page shows the gate's verdicts too: judged over the same rows, in the same pass
    // (over --since, else the gate's own window), so only the page reads the state file.
    let (owners, mut judging) = match a.format {
        Format::Html => {
            let setup = super::gate::Setup::load(&a.data_dir, true, a.config.as_deref(), a.state)?;
            let window = report::cutoff_us(&setup.gate.window).context("gate.window")?;
            let tally = crate::gate::Tally::new(cut.unwrap_or(window), &setup.state, &setup.stages);
            (setup.cfg.map(|c| c.owners).unwrap_or_default(), Some((tally, setup.gate)))
        }
        _ => {
            let cfg = a.config.as_deref().map(crate::proxy::config::Config::load).transpose()?;
            (cfg.map(|c| c.owners).unwrap_or_default(), None)
        }
    };
    let mut figures = report::Aggregator::new(&a.by);
    report::scan(&a.data_dir, cut, &mut |r| {
        figures.push(r);
        if let Some((t, _)) = judging.as_mut() {
            t.push(r);
        }
    })?;
    let mut r = figures.finish();
    r.owners = owners;
    let text = match (a.format, judging) {
        (Format::Json, _) => serde_json::to_string_pretty(&r)? + "\n",
        (Format::Md, _) => report::render_markdown(&r),
        (Format::Html, Some((t, gate))) => {
            let mut verdicts = t.verdicts(crate::clock::now_us(), &gate);
            crate::gate::assign_owners(&mut verdicts, &r.owners);
            crate::page::data(&r, &a.data_dir.display().to_string(), &verdicts)
        }
        (Format::Table, _) | (Format::Html, None) => report::render_table(&r),
    };
    write_out(a.out.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}
