//! The `shadowgate` binary: parses flags and calls the command.

use clap::{Parser, Subcommand, ValueEnum};
use shadowgate::cmd;
use std::io::IsTerminal;
use std::process::ExitCode;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Shadow-traffic, dual-runtime migration harness for an LLM API conversion core.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log lines as text (coloured on a terminal only) or as JSON objects.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a request, response or stream read from stdin; write the result to stdout.
    Convert(cmd::convert::Args),
    /// Print the capabilities of the wasm guest (embedded, or --guest).
    GuestInfo(cmd::guest_info::Args),
    /// Compare two captured outputs (JSON bodies or raw SSE) as the shadow path does.
    /// Exit 0 on match or ignored, 1 on mismatch, 2 on bad input.
    Diff(cmd::diff::Args),
    /// Learn noise: run the same runtime twice with different contexts over
    /// cases and propose the paths that differ as a new ruleset version.
    NoiseProbe(cmd::noise_probe::Args),
    /// Run the proxy in front of the configured upstreams.
    Serve(cmd::serve::Args),
    /// Baselines: replayable Parquet `cases` tables.
    Baseline {
        #[command(subcommand)]
        command: cmd::baseline::Command,
    },
    /// Replay a baseline (Parquet, or a folder of readable cases) in both runtimes.
    /// Exit 0 within thresholds, 1 if one is exceeded, 2 on bad arguments or input.
    Replay(cmd::replay::Args),
    /// Diff-rate report from the `diffs` table of a data dir.
    Report(cmd::report::Args),
    /// Per-module verdicts (pass: may promote, fail: roll back, inconclusive). Exit 1 if any fails.
    Gate(cmd::gate::Args),
    /// One request: every module call's outcome and differences, versions, and whether its
    /// case was recorded; without ids, the request ids the filters pick.
    Show(cmd::show::Args),
    /// Recorded cases as readable fixtures (`case export ID… --out replay/cases/`).
    Case {
        #[command(subcommand)]
        command: cmd::case::Command,
    },
    /// Run an OpenAI- and Anthropic-compatible fake provider.
    MockUpstream(cmd::mock::Args),
    /// The whole loop on loopback: mock upstream, proxy in shadow mode, a mixed
    /// workload, Parquet tables, report, gate verdicts, and a candidate caught diverging.
    Demo(cmd::demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
    let result = match cli.command {
        Command::Convert(a) => cmd::convert::run(a),
        Command::GuestInfo(a) => cmd::guest_info::run(a),
        Command::Diff(a) => cmd::diff::run(a),
        Command::NoiseProbe(a) => cmd::noise_probe::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Baseline { command } => cmd::baseline::run(command),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Gate(a) => cmd::gate::run(a),
        Command::Show(a) => cmd::show::run(a),
        Command::Case { command } => cmd::case::run(command),
        Command::MockUpstream(a) => cmd::mock::run(a),
        Command::Demo(a) => cmd::demo::run(a),
    };
    result.unwrap_or_else(|e| {
        eprintln!("shadowgate: {e}");
        e.exit_code()
    })
}
