//! The CLI commands, one module each: `run(args) -> Result<ExitCode, CmdError>`.
//!
//! One exit policy for all of them: 0 when the command did its job and
//! everything agreed, 1 when it did its job and found a difference or a
//! threshold exceeded, 2 when it could not do its job (bad flags, bad input,
//! unreadable files) — then [`CmdError`] is one line on stderr naming what
//! and where.

pub mod baseline;
pub mod case;
pub mod convert;
pub mod demo;
pub mod diff;
pub mod gate;
pub mod guest_info;
pub mod mock;
pub mod noise_probe;
pub mod replay;
pub mod report;
pub mod serve;
pub mod show;

use std::fmt::Display;
use std::io::Write;
use std::process::ExitCode;

/// Output format of the commands that print text or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextOrJson {
    /// Readable text.
    Text,
    /// JSON.
    Json,
}

/// The result of a command.
pub type CmdResult = Result<ExitCode, CmdError>;

/// Why a command could not do its job.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CmdError {
    /// One line naming what and where.
    pub message: String,
    /// The exit code (2 unless the command says otherwise).
    pub code: u8,
}

impl CmdError {
    /// Bad input or a failure to run: exit 2.
    pub fn input(message: impl Display) -> CmdError {
        CmdError { message: message.to_string(), code: 2 }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

/// Adds what was being done to an error: `what: error`.
pub trait Context<T> {
    /// Maps the error to a [`CmdError`] prefixed with `what`.
    fn context(self, what: impl Display) -> Result<T, CmdError>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn context(self, what: impl Display) -> Result<T, CmdError> {
        self.map_err(|e| CmdError::input(format!("{what}: {e}")))
    }
}

macro_rules! input_errors {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for CmdError {
            fn from(e: $t) -> CmdError {
                CmdError::input(e)
            }
        })*
    };
}

input_errors!(
    std::io::Error,
    serde_json::Error,
    crate::proxy::config::ConfigError,
    crate::proxy::ServeError,
    crate::case::CaseError,
    crate::diff::RulesetError,
    crate::replay::InputError,
    crate::baseline::BaselineError,
    crate::gate::StateError,
    crate::report::ReadError,
    shadowgate_runtime::LoadError,
);

/// `0` when `ok`, else `1`.
pub fn agreed(ok: bool) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// Writes `text` to stdout; a closed stdout (`| head`) is not an error.
pub fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Writes `text` to `path`, or to stdout without one.
pub fn write_out(path: Option<&std::path::Path>, text: &str) -> Result<(), CmdError> {
    match path {
        Some(p) => std::fs::write(p, text).context(p.display()),
        None => {
            print(text);
            Ok(())
        }
    }
}

/// A multi-threaded tokio runtime for the commands that serve.
pub fn tokio_runtime() -> Result<tokio::runtime::Runtime, CmdError> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}
