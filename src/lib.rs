//! # shadowgate
//!
//! The host of the shadow-traffic harness: everything with I/O. The binary
//! (`src/main.rs`) only parses flags and calls into these modules.
//!
//! - [`runtime`] — the native and wasm runtimes of the conversion core behind one trait.
//! - [`convert`] — the `convert` and `guest-info` commands.
//! - [`diff`] — the diff engine and versioned rulesets.
//! - [`proxy`] — the HTTP proxy, run modes and the shadow executor.
//! - [`sink`] — redaction, sampling and the Parquet `diffs`/`cases` tables.
//! - [`baseline`] — readable cases → a Parquet baseline.

pub mod baseline;
pub mod case;
pub mod convert;
pub mod demo;
pub mod diff;
pub mod diff_cmd;
pub mod gate;
pub mod mock;
pub mod noise_probe;
pub mod plan;
pub mod proxy;
pub mod replay;
pub mod report;
pub mod runtime;
pub mod sink;
mod toml_error;
