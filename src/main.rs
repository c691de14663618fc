//! The `shadowgate` binary: parses flags and calls the library.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Shadow-traffic, dual-runtime migration harness for an LLM API conversion core.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the end-to-end demo (mock upstream, proxy, shadow diff, report).
    Demo,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Demo => {
            eprintln!("shadowgate demo: not available yet; the conversion core is in place (see README, `make test`).");
            ExitCode::from(2)
        }
    }
}
