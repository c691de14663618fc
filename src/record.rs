//! The record types every later layer shares: what one request looked like
//! ([`Dims`]), one module comparison ([`DiffRecord`]), one sampled case
//! ([`CaseRow`]) and the versions rows are written under ([`Versions`]).
//!
//! They sit below both the proxy (which makes them) and the sink, report,
//! gate and replay (which write and read them), so neither side imports the
//! other.

use crate::case::Case;
use crate::diff::DiffResult;
use serde::Serialize;
use shadowgate_core::Protocol;
use shadowgate_runtime::RuntimeKind;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a record says about the request it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dims {
    /// Request id.
    pub request_id: String,
    /// When the request arrived (UTC, µs since the epoch).
    pub timestamp_us: i64,
    /// Tenant.
    pub tenant: String,
    /// Route id.
    pub route: String,
    /// Endpoint path.
    pub endpoint: String,
    /// Client protocol.
    pub client_protocol: Protocol,
    /// Upstream protocol; `None` before routing decided it.
    pub upstream_protocol: Option<Protocol>,
    /// Requested model.
    pub model: String,
    /// Streaming request.
    pub stream: bool,
    /// Resolved mode.
    pub mode: String,
    /// Compat profile version of the upstream (`openai/1`, …).
    pub compat_profile: String,
    /// The provider and key that served (`anthropic/ANTHROPIC_KEY_B`; never the key itself).
    pub upstream: String,
    /// Upstream attempts made (1 without retries or failover).
    pub attempts: u32,
}

impl Dims {
    /// The version (`openai/1`, …) of the compat profile `profile` (default: the upstream's).
    pub fn profile_version(profile: Option<&str>, upstream: Protocol) -> String {
        shadowgate_core::compat::profile(profile, upstream).map(|p| p.version).unwrap_or("").into()
    }
}

/// One module comparison, ready for the sink.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffRecord {
    /// The request.
    pub dims: Arc<Dims>,
    /// The comparison.
    pub result: DiffResult,
    /// Runtime that served.
    pub runtime_main: RuntimeKind,
    /// Runtime that shadowed.
    pub runtime_shadow: RuntimeKind,
    /// Primary latency of the call (µs).
    pub latency_main_us: u64,
    /// Shadow latency of the call (µs).
    pub latency_shadow_us: u64,
}

/// A sampled request, redacted, with what the primary produced for it.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRow {
    /// Request dimensions.
    pub dims: Dims,
    /// The replayable case (redacted; carries its context).
    pub case: Case,
    /// Runtime whose outputs are recorded.
    pub primary_runtime: String,
    /// Output per call name, from the redacted case.
    pub outputs: BTreeMap<String, String>,
    /// Why it was kept (`mismatch`, `new_version`, `rate`, `baseline`).
    pub sampling_reason: String,
    /// Ruleset version in force.
    pub ruleset_version: String,
}

/// The versions every row is written under (the per-row ruleset and compat
/// profile versions come with the row).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Versions {
    /// Native core version.
    pub core: String,
    /// Wasm guest module SHA-256.
    pub guest_sha256: String,
    /// Canonical SSE schema version.
    pub sse_protocol: String,
    /// shadowgate build version.
    pub build: String,
    /// Writing instance.
    pub instance: String,
}

impl Versions {
    /// The versions of this process with `guest_sha256` as the wasm guest.
    pub fn current(guest_sha256: &str, instance: &str) -> Versions {
        Versions {
            core: shadowgate_core::dispatch::CORE_VERSION.into(),
            guest_sha256: guest_sha256.into(),
            sse_protocol: shadowgate_core::streaming::SSE_PROTOCOL_VERSION.into(),
            build: env!("CARGO_PKG_VERSION").into(),
            instance: instance.into(),
        }
    }
}
