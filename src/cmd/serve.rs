//! `serve`: the proxy in front of the configured upstreams.

use super::{CmdResult, tokio_runtime};
use crate::proxy::{self, config::Config};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config file (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Listen address (overrides the config).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

/// Serves until SIGTERM or SIGINT, then drains.
pub fn run(a: Args) -> CmdResult {
    let config = Config::load(&a.config)?;
    tokio_runtime()?.block_on(proxy::serve(config, a.listen))?;
    Ok(ExitCode::SUCCESS)
}
