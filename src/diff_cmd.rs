//! The `diff` command: compare two captured outputs the way the shadow path does.

use crate::diff::{DiffResult, Differ, Ruleset, Scope};
use serde_json::Value;
use shadowgate_core::Protocol;
use std::fmt::Write as _;
use std::path::Path;

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
pub fn run(
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
        DiffKindArg::Response => ("compat", "response"),
        DiffKindArg::Stream => ("streaming", "stream"),
    };
    let scope = Scope { module: module.into(), protocol: protocol.as_str().into(), kind: kind_name.into() };
    let res = match kind {
        DiffKindArg::Response => differ.compare_json(&scope, &left, &right),
        DiffKindArg::Stream => differ.compare_sse(&scope, protocol, &left, &right),
    };
    if res.rule.as_deref() == Some("parse") {
        let side = |k: &str| res.summary[k].as_str().map(str::to_string);
        let (l, r) = (side("left_error"), side("right_error"));
        let msg = [(a, l), (b, r)]
            .into_iter()
            .filter_map(|(p, e)| e.map(|e| format!("{}: {e}", p.display())))
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
    let s = &r.summary;
    if s.get("left_events").is_some() {
        let _ = writeln!(out, "events:  left {} / right {}", s["left_events"], s["right_events"]);
        if s.get("added").is_some() {
            let _ = writeln!(
                out,
                "         added {}, removed {}, mismatched {}",
                s["added"], s["removed"], s["mismatched"]
            );
        }
    }
    let show = |v: &Value| if v.is_null() { "-".to_string() } else { v.to_string() };
    if let Some(f) = s.get("first_divergence").filter(|f| !f.is_null()) {
        let _ = writeln!(
            out,
            "first divergence: event {} ({}, {}) at {}",
            f["index"],
            f["event_type"].as_str().unwrap_or("?"),
            f["kind"].as_str().unwrap_or("?"),
            f["path"].as_str().unwrap_or("-")
        );
        let _ = writeln!(out, "  left:  {}\n  right: {}", show(&f["left"]), show(&f["right"]));
        if let Some(t) = f["text_diff"].as_str() {
            let _ = writeln!(out, "  text:  {t}");
        }
    }
    for e in s["entries"].as_array().into_iter().flatten().take(10) {
        let _ = writeln!(
            out,
            "  {} {}: {} -> {}",
            e["kind"].as_str().unwrap_or("?"),
            e["path"].as_str().unwrap_or(""),
            show(&e["left"]),
            show(&e["right"])
        );
        if let Some(t) = e["text_diff"].as_str() {
            let _ = writeln!(out, "    text: {t}");
        }
    }
    out
}
