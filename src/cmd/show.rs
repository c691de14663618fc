//! `show`: one request's module calls, differences, versions and case; or,
//! without a request id, the request ids a filter picks.

use super::{CmdError, CmdResult, Context, TextOrJson, print};
use crate::owners::Owners;
use crate::proxy::config::Config;
use crate::show::{self, Filter};
use crate::sink::store::Location;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where the tables are: `--data-dir`, else the config's sink (its `url` or `data_dir`), else `./shadowgate-data`.
#[derive(Debug, Clone, clap::Args)]
pub struct Source {
    /// Data dir, or `s3://bucket/prefix` (the sink's `url`).
    #[arg(long, visible_alias = "url")]
    pub data_dir: Option<PathBuf>,
    /// Config: its sink says where the tables are; its `[owners]` are shown.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl Source {
    /// The tables' root and the owners.
    pub fn open(&self) -> Result<(PathBuf, Owners), CmdError> {
        let cfg = self.config.as_deref().map(Config::load).transpose()?;
        let root = self.data_dir.clone().unwrap_or_else(|| match &cfg {
            Some(c) => c.sink.url.as_ref().map_or_else(|| c.sink.data_dir.clone(), PathBuf::from),
            None => PathBuf::from("./shadowgate-data"),
        });
        Ok((root, cfg.map(|c| c.owners).unwrap_or_default()))
    }
}

/// Flags of `show`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Request ids to show (the `x-shadowgate-request-id` of a response); none: list the ids the filters pick.
    pub request_ids: Vec<String>,
    #[command(flatten)]
    pub source: Source,
    /// List: only this module.
    #[arg(long)]
    pub module: Option<shadowgate_core::Module>,
    /// List: only rows compared under this ruleset version (`v1`).
    #[arg(long)]
    pub ruleset: Option<String>,
    /// List: only this outcome (default: every outcome but `match`).
    #[arg(long)]
    pub outcome: Option<String>,
    /// Only rows newer than this (`30m`, `24h`, `7d`); for ids, only the date partitions it spans are read.
    #[arg(long)]
    pub since: Option<String>,
    /// List: at most this many rows, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextOrJson,
}

/// Prints the requests (exit 2 if one has no rows at all), or the list.
pub fn run(a: Args) -> CmdResult {
    let (root, owners) = a.source.open()?;
    if a.request_ids.is_empty() {
        return list(&a, &root);
    }
    let location = Location::of_path(&root).map_err(CmdError::input)?;
    let cut = a.since.as_deref().map(crate::report::cutoff_us).transpose().context("--since")?;
    let found =
        show::find(&location, &a.request_ids, cut.map(crate::sink::files::partition_date)).map_err(CmdError::input)?;
    if let Some(missing) = a.request_ids.iter().find(|id| !found.contains_key(*id)) {
        return Err(CmdError::input(format!("{}: no diff rows or case for request {missing}", root.display())));
    }
    let text = match a.format {
        TextOrJson::Text => {
            a.request_ids.iter().map(|id| show::render(id, &found[id], &owners)).collect::<Vec<_>>().join("\n")
        }
        TextOrJson::Json => {
            let views: Vec<_> = a.request_ids.iter().map(|id| show::view(id, &found[id], &owners)).collect();
            serde_json::to_string_pretty(&views)? + "\n"
        }
    };
    print(&text);
    Ok(ExitCode::SUCCESS)
}

fn list(a: &Args, root: &Path) -> CmdResult {
    let cut = a.since.as_deref().map(crate::report::cutoff_us).transpose().context("--since")?;
    let filter = Filter {
        module: a.module.map(|m| m.as_str().to_string()),
        ruleset: a.ruleset.clone(),
        outcome: a.outcome.clone(),
    };
    let (rows, total) = show::list(root, cut, &filter, a.limit).map_err(CmdError::input)?;
    let text = match a.format {
        TextOrJson::Json => serde_json::to_string_pretty(&serde_json::json!({"total": total, "rows": rows}))? + "\n",
        TextOrJson::Text => {
            let mut s = format!("{total} rows picked; the newest {}:\n", rows.len());
            for r in &rows {
                s += &format!(
                    "{}  {}  {:<10} {:<14} {:<16} {:<4} {}\n",
                    r.request_id,
                    crate::clock::rfc3339(r.timestamp_us),
                    r.module,
                    r.outcome,
                    r.diff_class.as_deref().unwrap_or("-"),
                    r.ruleset_version,
                    r.diff_paths.join(", ")
                );
            }
            s
        }
    };
    print(&text);
    Ok(ExitCode::SUCCESS)
}
