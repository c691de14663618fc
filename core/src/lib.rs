//! # shadowgate-core
//!
//! The pure conversion core that shadowgate migrates, runs twice (natively
//! and as wasm32) and diffs: OpenAI Chat Completions ⇄ Anthropic Messages
//! requests, responses, streams and errors.
//!
//! Invariants:
//! - no I/O, no clock, no randomness, no global state: ids and timestamps
//!   come from the [`Context`] the host passes in, so identical inputs give
//!   byte-identical outputs in every runtime;
//! - bad input is a [`CoreError`] naming the JSON path, never a panic;
//! - builds for `wasm32-unknown-unknown`; no `unsafe`.
//!
//! Five modules are migrated and promoted one by one, each with a version:
//! [`routing`], [`tools`], [`compat`], [`streaming`], [`tokenizer`]. Both
//! runtimes reach them through one entry point, [`dispatch::dispatch`]; the
//! catalog is [`Module`].

#![forbid(unsafe_code)]

pub mod canonical;
pub mod compat;
pub mod context;
pub mod dispatch;
pub mod error;
pub mod json;
pub mod module;
pub mod protocol;
pub mod routing;
pub mod streaming;
pub mod tokenizer;
pub mod tools;

pub use context::Context;
pub use dispatch::dispatch;
pub use error::{CoreError, ErrorKind};
pub use module::Module;
pub use protocol::Protocol;
