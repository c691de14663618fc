//! `noise-probe`: learn noise and propose a new ruleset version.

use super::{CmdError, CmdResult, Context, agreed, print};
use crate::diff::Ruleset;
use crate::noise_probe::{ProbeReport, probe, proposal};
use shadowgate_runtime::{NativeRuntime, RuntimeKind};
use std::path::PathBuf;

/// Flags of `noise-probe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A case file or folder (readable case format), or a Parquet baseline.
    pub cases: PathBuf,
    /// Candidate guest compared with the native runtime (default: the embedded guest).
    #[arg(long)]
    pub guest: Option<PathBuf>,
    /// Ruleset the proposal starts from (default: rulesets/CURRENT).
    #[arg(long)]
    pub ruleset: Option<String>,
    /// Where to write the proposal (default: rulesets/proposed-vN+1.toml).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs the same runtime twice with different contexts over the cases and
/// proposes the paths that differ; exit 1 if some call is unstable under a
/// repeated context.
pub fn run(a: Args) -> CmdResult {
    // Readable cases or a Parquet baseline; a folder with neither is an error (exit 2).
    let cases: Vec<_> = crate::replay::load_input(&a.cases)?.into_iter().map(|c| c.case).collect();
    let rules = Ruleset::load(a.ruleset.as_deref())?;
    let candidate = super::convert::build_runtime(RuntimeKind::Wasm, a.guest.as_deref())?;
    let report = probe(&cases, &NativeRuntime::new(), candidate.as_ref(), &rules);
    let mut text = render(&report);
    match proposal(&report, &rules, &crate::clock::now_rfc3339()) {
        Some(proposal) => {
            let path =
                a.out.unwrap_or_else(|| PathBuf::from(format!("rulesets/proposed-v{}.toml", rules.file.version + 1)));
            let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            if name.starts_with("diff_ruleset_v") {
                return Err(CmdError::input(format!("refusing to write {name}: published rulesets are never edited")));
            }
            std::fs::write(&path, proposal).context(path.display())?;
            text += &format!("proposal written to {}\n", path.display());
        }
        None => text += "the current ruleset covers every noisy path; nothing to propose\n",
    }
    print(&text);
    Ok(agreed(report.unstable_calls == 0))
}

fn render(report: &ProbeReport) -> String {
    let mut text = format!(
        "probed {} cases, {} module calls; {} unstable under a repeated context\n",
        report.cases, report.calls, report.unstable_calls
    );
    for p in &report.paths {
        let note = match (p.noise > 0, p.covered) {
            (true, true) => "  (covered)",
            (true, false) => "  (proposed)",
            (false, _) => "",
        };
        text += &format!(
            "{:<10} {:<9} {:<19} {:<40} raw {:>3}  noise {:>3}{note}\n",
            p.module, p.kind, p.protocol, p.path, p.raw, p.noise
        );
    }
    text
}
