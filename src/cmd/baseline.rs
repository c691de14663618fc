//! `baseline build`: readable cases → a redacted, versioned Parquet baseline.

use super::CmdResult;
use crate::diff::Ruleset;
use crate::record::Versions;
use crate::sink::redact::{KEY_ENV, Redactor};
use shadowgate_runtime::{WasmConfig, WasmRuntime};
use std::path::PathBuf;
use std::process::ExitCode;

/// Subcommands of `baseline`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Turn a folder of readable cases into a redacted, versioned Parquet baseline.
    Build {
        /// Folder (or file) of cases (.json / .jsonl).
        cases: PathBuf,
        /// Output folder; the table goes to `<out>/cases/date=…/`.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs a `baseline` subcommand.
pub fn run(c: Command) -> CmdResult {
    let Command::Build { cases, out } = c;
    let redactor = Redactor::from_env(&[]).unwrap_or_else(|_| {
        eprintln!("shadowgate: warning: {KEY_ENV} is not set; PII in these cases is hashed under a one-off key");
        Redactor::ephemeral(&[])
    });
    let wasm = WasmRuntime::embedded(WasmConfig::default())?;
    let versions = Versions::current(wasm.module_sha256(), "baseline");
    let ruleset = Ruleset::load(None)?.version();
    let built = crate::baseline::build(&cases, &out, &redactor, &versions, &ruleset)?;
    for f in &built.files {
        println!("{} cases → {}", built.cases, f.display());
    }
    Ok(ExitCode::SUCCESS)
}
