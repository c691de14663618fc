//! One interface over the two runtimes of the conversion core: native (the
//! core linked into the host) and wasm (the guest in wasmtime).
//!
//! Both take the same op names and input bytes and return the same envelope
//! bytes, so every later part (proxy, shadow, replay) can ask either one and
//! compare. A guest failure is a [`RuntimeError`] value, never a panic.
//!
//! This crate is the only one that links wasmtime; nothing in it knows the
//! proxy, the diff engine or the sink.

mod native;
mod wasm;

pub use native::NativeRuntime;
pub use wasm::{
    CANDIDATE_GUEST, EMBEDDED_GUEST, InstanceMode, LoadError, WasmConfig, WasmRuntime, WasmStats, load_guest_file,
};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shadowgate_core::CoreError;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Which runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// The core compiled into the host.
    Native,
    /// The guest running in wasmtime.
    Wasm,
}

impl RuntimeKind {
    /// `native` or `wasm`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Native => "native",
            RuntimeKind::Wasm => "wasm",
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call that did not produce an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The guest ran past its epoch deadline.
    #[error("guest exceeded its deadline of {0} ms")]
    Deadline(u64),
    /// The guest tried to grow its memory past the cap.
    #[error("guest hit its memory limit of {0} bytes")]
    MemoryLimit(usize),
    /// The guest (or the native core) panicked.
    #[error("core panicked: {0}")]
    Panic(String),
    /// The guest trapped for another reason.
    #[error("guest trapped: {0}")]
    Trap(String),
    /// The guest broke the ABI (bad pointers, malformed results).
    #[error("guest ABI violation: {0}")]
    Abi(String),
    /// The guest does not offer this op or feature.
    #[error("guest does not support {0}")]
    Unsupported(String),
    /// No instance could be created (pool exhausted, instantiation failed).
    #[error("no guest instance available: {0}")]
    Unavailable(String),
}

impl RuntimeError {
    /// A stable word for metrics and records: `deadline`, `memory`, `panic`, `trap`, `abi`, `unsupported`, `unavailable`.
    pub fn kind(&self) -> &'static str {
        match self {
            RuntimeError::Deadline(_) => "deadline",
            RuntimeError::MemoryLimit(_) => "memory",
            RuntimeError::Panic(_) => "panic",
            RuntimeError::Trap(_) => "trap",
            RuntimeError::Abi(_) => "abi",
            RuntimeError::Unsupported(_) => "unsupported",
            RuntimeError::Unavailable(_) => "unavailable",
        }
    }
}

/// What a core offers, as reported by `capabilities` / `sg_capabilities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Guest ABI version.
    pub abi: u32,
    /// Core crate version.
    pub core_version: String,
    /// Module name → version.
    pub modules: BTreeMap<String, String>,
    /// Compat profiles with versions.
    #[serde(default)]
    pub compat_profiles: Vec<ProfileVersion>,
    /// Canonical SSE schema version.
    pub sse_protocol: String,
    /// Protocol names.
    #[serde(default)]
    pub protocols: Vec<String>,
    /// Op names.
    pub ops: Vec<String>,
    /// Optional features (`streams`, `panic_message`).
    #[serde(default)]
    pub features: Vec<String>,
}

/// A compat profile's name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileVersion {
    /// Profile name.
    pub name: String,
    /// Profile version.
    pub version: String,
}

impl Capabilities {
    /// Whether the core offers `feature`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// Whether the core offers `op`.
    pub fn has_op(&self, op: &str) -> bool {
        self.ops.iter().any(|o| o == op)
    }
}

/// A stream session in a runtime.
pub trait Stream: Send {
    /// Feeds upstream bytes; returns the envelope with the client SSE text.
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<u8>, RuntimeError>;
    /// Ends the stream; returns the envelope with the last SSE text and the stream's error.
    fn close(self: Box<Self>) -> Result<Vec<u8>, RuntimeError>;
}

/// A runtime of the conversion core.
pub trait Runtime: Send + Sync {
    /// Native or wasm.
    fn kind(&self) -> RuntimeKind;
    /// What the core offers.
    fn capabilities(&self) -> &Capabilities;
    /// Runs one op; returns the envelope bytes.
    fn call(&self, op: &str, input: &[u8]) -> Result<Vec<u8>, RuntimeError>;
    /// Opens a stream session with JSON options `{"ctx", "from", "to", "include_usage"}`.
    fn open_stream(&self, options: &[u8]) -> Result<Box<dyn Stream>, RuntimeError>;
}

/// The two runtimes, by kind.
#[derive(Clone)]
pub struct Runtimes {
    /// The native core.
    pub native: Arc<dyn Runtime>,
    /// The wasm guest.
    pub wasm: Arc<dyn Runtime>,
}

impl Runtimes {
    /// The runtime of `kind`.
    pub fn get(&self, kind: RuntimeKind) -> &dyn Runtime {
        match kind {
            RuntimeKind::Native => self.native.as_ref(),
            RuntimeKind::Wasm => self.wasm.as_ref(),
        }
    }
}

/// Why a call produced no value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The core answered with an error envelope.
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// The message of a caught panic's payload (`"panic"` when it is not a string).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Runs `op` and opens the envelope: the `ok` value as raw JSON, or the error.
pub fn call_value(rt: &dyn Runtime, op: &str, input: &[u8]) -> Result<Box<RawValue>, CallError> {
    let env = rt.call(op, input)?;
    Ok(shadowgate_core::dispatch::open_envelope(&env)?)
}

/// Frames an op input: a one-line JSON header, `\n`, then the payload.
pub fn frame(header: &serde_json::Value, payload: &[u8]) -> Vec<u8> {
    let mut v = serde_json::to_vec(header).unwrap_or_default();
    v.push(b'\n');
    v.extend_from_slice(payload);
    v
}

/// A stream whose options were rejected: every call answers the same error envelope.
pub(crate) struct FailedStream {
    pub(crate) envelope: Vec<u8>,
}

impl Stream for FailedStream {
    fn feed(&mut self, _bytes: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        Ok(self.envelope.clone())
    }

    fn close(self: Box<Self>) -> Result<Vec<u8>, RuntimeError> {
        Ok(self.envelope)
    }
}
