//! `case export`: recorded (already redacted) cases as readable fixtures,
//! described by what diverged, for `replay/cases/` and `baseline build`.

use super::show::Source;
use super::{CmdError, CmdResult, Context};
use crate::show;
use crate::sink::store::Location;
use std::path::PathBuf;
use std::process::ExitCode;

/// Subcommands of `case`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write the recorded cases of request ids as readable case files (`<out>/<request_id>.json`).
    Export {
        /// Request ids (their cases must have been recorded).
        #[arg(required = true)]
        request_ids: Vec<String>,
        #[command(flatten)]
        source: Source,
        /// Folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs a `case` subcommand: exit 2 naming the first request without a recorded case.
pub fn run(c: Command) -> CmdResult {
    let Command::Export { request_ids, source, out } = c;
    let (root, _) = source.open()?;
    let location = Location::of_path(&root).map_err(CmdError::input)?;
    let found = show::find(&location, &request_ids, None).map_err(CmdError::input)?;
    let mut cases = Vec::new();
    for id in &request_ids {
        let case = found.get(id).and_then(|r| show::fixture(id, r)).ok_or_else(|| {
            CmdError::input(format!("{}: no recorded case for request {id} (it was not sampled)", root.display()))
        })?;
        cases.push(case);
    }
    std::fs::create_dir_all(&out).context(out.display())?;
    for case in cases {
        // Request ids are ours (`[A-Za-z0-9_-]`); anything else is replaced in the file name.
        let name: String =
            case.id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let path = out.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&case)? + "\n").context(path.display())?;
        println!("{} → {}", case.id, path.display());
    }
    Ok(ExitCode::SUCCESS)
}
