//! `mock-upstream`: an OpenAI- and Anthropic-compatible fake provider.

use super::{CmdResult, tokio_runtime};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `mock-upstream`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Answer `x-mock-case: <id>` from this case folder.
    #[arg(long)]
    pub cases: Option<PathBuf>,
}

/// Serves until SIGTERM or SIGINT.
pub fn run(a: Args) -> CmdResult {
    let cases = match &a.cases {
        Some(dir) => crate::case::load(dir)?,
        None => Vec::new(),
    };
    tokio_runtime()?.block_on(crate::mock::serve(a.listen, cases))?;
    Ok(ExitCode::SUCCESS)
}
