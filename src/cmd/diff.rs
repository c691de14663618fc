//! `diff`: compare two captured outputs the way the shadow path does.

use super::{CmdResult, TextOrJson, agreed, print};
use crate::diff::{DiffResult, Differ, Ruleset, Scope, Summary};
use serde_json::Value;
use shadowgate_core::{Module, Protocol};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Flags of `diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Protocol of both outputs.
    #[arg(long)]
    pub protocol: Protocol,
    /// What the files hold.
    #[arg(long, value_enum)]
    pub kind: DiffKindArg,
    /// Left (primary) output.
    pub a: PathBuf,
    /// Right (shadow) output.
    pub b: PathBuf,
    /// Ruleset: a file, or a published version such as `v1` (default: rulesets/CURRENT).
    #[arg(long)]
    pub ruleset: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextOrJson,
}

/// Compares the two files; exit 0 on match or ignored, 1 on mismatch, 2 on bad input.
pub fn run(a: Args) -> CmdResult {
    let res = compare(a.protocol, a.kind, &a.a, &a.b, a.ruleset.as_deref()).map_err(super::CmdError::input)?;
    print(&match a.format {
        TextOrJson::Text => render_text(&res),
        TextOrJson::Json => serde_json::to_string_pretty(&res)? + "\n",
    });
    Ok(agreed(res.agrees()))
}

/// What the two files hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffKindArg {
    /// JSON response bodies.
    Response,
    /// Raw client SSE streams.
    Stream,
}

/// Why the comparison could not be made (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum DiffCmdError {
    /// A file could not be read.
    #[error("{0}: {1}")]
    Read(String, std::io::Error),
    /// The ruleset is bad.
    #[error(transparent)]
    Ruleset(#[from] crate::diff::RulesetError),
    /// An input is not valid JSON / SSE.
    #[error("{0}")]
    Parse(String),
}

/// Compares files `a` and `b`.
pub fn compare(
    protocol: Protocol,
    kind: DiffKindArg,
    a: &Path,
    b: &Path,
    ruleset: Option<&str>,
) -> Result<DiffResult, DiffCmdError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| DiffCmdError::Read(p.display().to_string(), e));
    let (left, right) = (read(a)?, read(b)?);
    let differ = Differ::new(Ruleset::load(ruleset)?);
    let (module, kind_name) = match kind {
        DiffKindArg::Response => (Module::Compat, "response"),
        DiffKindArg::Stream => (Module::Streaming, "stream"),
    };
    let scope = Scope { module, protocol, kind: kind_name.into() };
    let res = match kind {
        DiffKindArg::Response => differ.compare_json(&scope, &left, &right),
        DiffKindArg::Stream => differ.compare_sse(&scope, protocol, &left, &right),
    };
    if let Summary::Unparsable { left_error, right_error } = &res.summary {
        let msg = [(a, left_error), (b, right_error)]
            .into_iter()
            .filter_map(|(p, e)| e.as_ref().map(|e| format!("{}: {e}", p.display())))
            .collect::<Vec<_>>();
        return Err(DiffCmdError::Parse(msg.join("; ")));
    }
    Ok(res)
}

/// The human-readable report.
pub fn render_text(r: &DiffResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "outcome: {}", r.outcome.as_str());
    if let Some(c) = r.class {
        let _ = writeln!(out, "class:   {} (rule {})", c.as_str(), r.rule.as_deref().unwrap_or("-"));
    }
    let _ = writeln!(
        out,
        "module:  {}   ruleset: {}{}",
        r.module,
        r.ruleset_version,
        if r.truncated { "   (compared by digest)" } else { "" }
    );
    if r.diff_count > 0 {
        let _ = writeln!(out, "diffs:   {}   paths: {}", r.diff_count, r.paths.join(", "));
    }
    let show = |v: &Option<Value>| v.as_ref().map_or_else(|| "-".to_string(), Value::to_string);
    match &r.summary {
        Summary::Events(e) => {
            let _ = writeln!(out, "events:  left {} / right {}", e.left_events, e.right_events);
            if let Some(d) = &e.divergence {
                let _ = writeln!(out, "         added {}, removed {}, mismatched {}", d.added, d.removed, d.mismatched);
                if let Some(f) = &d.first_divergence {
                    let kind = serde_json::to_value(f.kind).ok();
                    let _ = writeln!(
                        out,
                        "first divergence: event {} ({}, {}) at {}",
                        f.index,
                        f.event_type,
                        kind.as_ref().and_then(Value::as_str).unwrap_or("?"),
                        f.path.as_deref().unwrap_or("-")
                    );
                    let _ = writeln!(out, "  left:  {}\n  right: {}", show(&f.left), show(&f.right));
                    if let Some(t) = &f.text_diff {
                        let _ = writeln!(out, "  text:  {t}");
                    }
                }
            }
        }
        Summary::Entries { entries, .. } => {
            for e in entries.iter().take(10) {
                let kind = serde_json::to_value(e.kind).ok();
                let kind = kind.as_ref().and_then(Value::as_str).unwrap_or("?");
                let _ = writeln!(out, "  {kind} {}: {} -> {}", e.path, show(&e.left), show(&e.right));
                if let Some(t) = &e.text_diff {
                    let _ = writeln!(out, "    text: {t}");
                }
            }
        }
        _ => {}
    }
    out
}
