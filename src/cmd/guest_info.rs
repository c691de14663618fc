//! `guest-info`: what a wasm guest offers.

use super::{CmdResult, print};
use serde_json::{Value, json};
use shadowgate_runtime::{Runtime, WasmConfig, WasmRuntime};
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `guest-info`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A wasm guest to inspect instead of the embedded one.
    #[arg(long)]
    pub guest: Option<PathBuf>,
}

/// Prints the guest's source, hash and capabilities as JSON.
pub fn run(a: Args) -> CmdResult {
    let rt = match a.guest {
        Some(p) => WasmRuntime::from_file(&p, WasmConfig::default())?,
        None => WasmRuntime::embedded(WasmConfig::default())?,
    };
    print(&(serde_json::to_string_pretty(&guest_info(&rt))? + "\n"));
    Ok(ExitCode::SUCCESS)
}

/// What `guest-info` prints: where the guest came from, its hash and capabilities.
pub fn guest_info(rt: &WasmRuntime) -> Value {
    let stats = rt.stats();
    json!({
        "source": rt.source(),
        "module_sha256": rt.module_sha256(),
        "load_us": stats.load_us,
        "from_cache": stats.from_cache,
        "capabilities": rt.capabilities(),
    })
}
