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
}

/// Prints (or writes) the report.
pub fn run(a: Args) -> CmdResult {
    let cut = a.since.as_deref().map(report::cutoff_us).transpose().context("--since")?;
    let rows = report::load(&a.data_dir, cut)?;
    let r = report::build(&rows, &a.by);
    let text = match a.format {
        Format::Table => report::render_table(&r),
        Format::Json => serde_json::to_string_pretty(&r)? + "\n",
        Format::Md => report::render_markdown(&r),
        Format::Html => report::render_html(&r),
    };
    write_out(a.out.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}
