//! `baseline build`: readable cases → a redacted, versioned Parquet baseline.

use super::{CmdError, CmdResult};
use crate::diff::Ruleset;
use crate::record::Versions;
use crate::sink::redact::{KEY_ENV, Redactor};
use crate::sink::store::Location;
use crate::sink::upload::publish_table;
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
        /// Output folder, or `s3://bucket/prefix`; the table goes to `<out>/cases/date=…/`
        /// (in a bucket, the new files are put before the old ones are deleted).
        #[arg(long)]
        out: PathBuf,
    },
    /// Curate a stable baseline of N recorded production cases, stratified by model, protocols,
    /// tool use, streaming, route and outcome, de-duplicated; writes `<out>/manifest.json` too.
    Curate {
        /// Data dir or `s3://bucket/prefix` holding a `cases` table.
        source: PathBuf,
        /// Output folder (a baseline: `<out>/cases/date=…/`).
        #[arg(long)]
        out: PathBuf,
        /// Cases to take (1,000–5,000 is a usual baseline).
        #[arg(long, default_value_t = 2000)]
        size: usize,
        /// Seed of the order within strata (the same seed and inputs give the same baseline).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// Runs a `baseline` subcommand.
pub fn run(c: Command) -> CmdResult {
    let (cases, out) = match c {
        Command::Build { cases, out } => (cases, out),
        Command::Curate { source, out, size, seed } => {
            let m = crate::curate::curate(&source, &out, size, seed).map_err(CmdError::input)?;
            let covered = m.strata.iter().filter(|s| s.selected > 0).count();
            println!(
                "{} of {} recorded cases ({} duplicates dropped) → {}; {} of {} strata covered; manifest {}",
                m.selected,
                m.recorded,
                m.duplicates,
                out.display(),
                covered,
                m.strata.len(),
                out.join("manifest.json").display()
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    let redactor = Redactor::from_env(&[]).unwrap_or_else(|_| {
        eprintln!("shadowgate: warning: {KEY_ENV} is not set; PII in these cases is hashed under a one-off key");
        Redactor::ephemeral(&[])
    });
    let wasm = WasmRuntime::embedded(WasmConfig::default())?;
    let versions = Versions::current(wasm.module_sha256(), "baseline");
    let ruleset = Ruleset::load(None)?.version();
    let Location::Object { store, prefix, url } = Location::of_path(&out).map_err(CmdError::input)? else {
        let built = crate::baseline::build(&cases, &out, &redactor, &versions, &ruleset)?;
        for f in &built.files {
            println!("{} cases → {}", built.cases, f.display());
        }
        return Ok(ExitCode::SUCCESS);
    };
    // Built in a scratch folder, then published to the bucket.
    let scratch = std::env::temp_dir().join(format!("shadowgate-baseline-{}", std::process::id()));
    let built = crate::baseline::build(&cases, &scratch, &redactor, &versions, &ruleset);
    let published = built.map_err(CmdError::from).and_then(|b| {
        let keys = publish_table(store, &prefix, "cases", &scratch).map_err(CmdError::input)?;
        Ok((b, keys))
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let (built, keys) = published?;
    let bucket = url.strip_prefix("s3://").and_then(|r| r.split('/').next()).unwrap_or_default();
    for k in keys {
        println!("{} cases → s3://{bucket}/{k}", built.cases);
    }
    Ok(ExitCode::SUCCESS)
}
