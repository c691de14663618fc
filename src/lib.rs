//! # shadowgate
//!
//! The host of the shadow-traffic harness: everything with I/O. The layers,
//! each using only those before it (ARCHITECTURE.md states the rules and
//! `tests/layers.rs` checks them):
//!
//! 1. vocabulary — [`clock`], [`signal`], [`stage`], [`case`] (the readable case format);
//!    the runtimes are the `shadowgate-runtime` crate.
//! 2. [`diff`] (rulesets, JSON and SSE diffs) and [`plan`] (the module calls
//!    of one exchange, run and compared).
//! 3. [`record`] — the diff-record and case-row types.
//! 4. [`sink`], [`report`], [`gate`], [`replay`], [`baseline`],
//!    [`noise_probe`], [`mock`].
//! 5. [`proxy`] — the HTTP proxy, run modes and the shadow executor.
//! 6. [`cmd`] — one module per CLI command; the binary only parses flags.

pub mod baseline;
pub mod case;
pub mod clock;
pub mod cmd;
pub mod curate;
pub mod diff;
pub mod gate;
pub mod mock;
pub mod noise_probe;
pub mod owners;
pub mod page;
pub mod plan;
pub mod proxy;
pub mod record;
pub mod replay;
pub mod report;
pub mod show;
pub mod signal;
pub mod sink;
pub mod stage;
mod toml_error;
