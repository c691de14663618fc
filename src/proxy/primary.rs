//! The primary module calls of one request: each runs on the runtime its
//! mode picks; a wasm failure falls back to native explicitly (metric, log,
//! `primary_error` record, response header). What ran becomes the shadow job.
//!
//! Wasm calls run on the [`Offload`](super::offload::Offload) pool with the
//! primary deadline (`[primary] deadline_ms`), never on the executor; a
//! module whose breaker is open is served natively. Native calls are
//! microseconds and run inline.

use super::app::AppState;
use super::breaker::BreakerKeys;
use super::metrics::{ModuleLabels, ModuleRuntimeLabels};
use super::mode::{self, Mode, Resolution};
use super::recorder::Exchange;
use super::shadow::{self, DeferredCall, ShadowCall, ShadowJob};
use crate::diff::{DiffResult, Outcome};
use crate::plan::{Deferred, ModuleCall};
use crate::record::{DiffRecord, Dims};
use axum::http::HeaderValue;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use shadowgate_core::Module;
use shadowgate_runtime::{Runtime, RuntimeError, RuntimeKind};
use std::sync::Arc;
use std::time::Instant;

fn d_deadline() -> u64 {
    50
}
fn d_queue() -> usize {
    256
}

/// The `[primary]` config section: the pool that runs wasm primary calls and
/// the breakers that take a failing module off the guest.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrimaryConfig {
    /// Deadline of one primary guest call (the shadow has its own, `shadow.deadline_ms`).
    #[serde(default = "d_deadline")]
    pub deadline_ms: u64,
    /// Threads running primary guest calls (default: the number of cores).
    #[serde(default)]
    pub workers: Option<usize>,
    /// Calls waiting for a thread; past that a call is served natively (counted as a fallback).
    #[serde(default = "d_queue")]
    pub queue_size: usize,
    /// Circuit breaker settings.
    #[serde(flatten)]
    pub breaker: BreakerKeys,
}

impl Default for PrimaryConfig {
    fn default() -> Self {
        toml::from_str("").expect("the primary defaults parse")
    }
}

impl PrimaryConfig {
    /// Pool threads: the configured number, else one per core.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())).max(1)
    }

    /// Checks the sizes.
    pub fn validate(&self) -> Result<(), crate::toml_error::Invalid> {
        if self.workers == Some(0) || self.queue_size == 0 || self.deadline_ms == 0 {
            return Err(crate::toml_error::Invalid::new(
                "primary",
                "workers, queue_size and deadline_ms must be at least 1",
            ));
        }
        Ok(())
    }
}

/// A wasm primary call: on the pool, with the primary deadline; `Busy` is an `Unavailable` error.
pub async fn on_pool<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&dyn Runtime) -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    let wasm = st.primary_wasm.clone();
    st.offload.run(move || f(wasm.as_ref())).await.unwrap_or_else(|e| Err(RuntimeError::Unavailable(e.to_string())))
}

/// The per-module mode: the resolved one, or the module's stage.
pub fn module_mode(st: &AppState, res: &Resolution, module: Module) -> Mode {
    res.mode.unwrap_or_else(|| Mode::of_stage(st.modules.get(module), st.config.modules.canary_percent))
}

/// What the primary path did, for headers, metrics and the shadow job.
pub struct Served {
    /// What `split:P` hashes: the configured header's value, else the request id.
    pub sticky: String,
    /// The calls to shadow.
    pub calls: Vec<ShadowCall>,
    /// The calls to shadow that the worker builds (not needed to serve).
    pub deferred: Vec<DeferredCall>,
    /// Some call fell back to native.
    pub fallback: bool,
    /// The runtime that served the conversion.
    pub runtime: RuntimeKind,
}

impl Served {
    /// Nothing served yet.
    pub fn new(sticky: String) -> Served {
        Served { sticky, calls: Vec::new(), deferred: Vec::new(), fallback: false, runtime: RuntimeKind::Native }
    }

    /// Runs `call` on the primary runtime of `mode`; a wasm failure (or an open
    /// breaker) falls back to native, explicitly.
    pub async fn call(&mut self, st: &AppState, dims: &Arc<Dims>, call: ModuleCall, mode: Mode) -> Vec<u8> {
        let rt = mode::runtimes(mode, &self.sticky);
        let module = call.module();
        let mut primary = rt.primary;
        if primary == RuntimeKind::Wasm && !st.breakers.allow(module) {
            self.fall_back(st, dims, module, &RuntimeError::Unavailable(format!("circuit open for {module}")));
            primary = RuntimeKind::Native;
        }
        let start = Instant::now();
        let result = match primary {
            RuntimeKind::Native => st.rts.native.call(call.call.op(), &call.input),
            RuntimeKind::Wasm => {
                let (op, input) = (call.call.op(), call.input.clone());
                on_pool(st, move |rt| rt.call(op, &input)).await
            }
        };
        let out = match result {
            Ok(out) => {
                if primary == RuntimeKind::Wasm {
                    st.breakers.success(module);
                }
                out
            }
            Err(e) => {
                st.breakers.failure(module, &e);
                self.fall_back(st, dims, module, &e);
                primary = RuntimeKind::Native;
                native(st, &call)
            }
        };
        let us = elapsed_us(start);
        st.metrics
            .module_seconds
            .get_or_create(&ModuleRuntimeLabels {
                module: call.module().as_str().into(),
                runtime: primary.as_str().into(),
            })
            .observe(us as f64 / 1e6);
        if call.module() == Module::Compat {
            self.runtime = primary;
        }
        if let Some(shadow) = rt.shadow.filter(|_| primary == rt.primary) {
            self.calls.push(ShadowCall { call, primary, shadow, primary_output: Some(out.clone()), primary_us: us });
        }
        out
    }

    /// Records a wasm primary failure of `module` and marks the request as fallen back.
    pub fn fall_back(&mut self, st: &AppState, dims: &Arc<Dims>, module: Module, e: &RuntimeError) {
        self.fallback = true;
        st.metrics.fallbacks.get_or_create(&ModuleLabels { module: module.as_str().into() }).inc();
        tracing::warn!(request_id = %dims.request_id, module = %module, error = %e, "wasm primary failed; serving from native");
        let result = DiffResult::failed(module, Outcome::PrimaryError, &e.to_string(), "");
        let record = DiffRecord {
            dims: dims.clone(),
            result,
            runtime_main: RuntimeKind::Wasm,
            runtime_shadow: RuntimeKind::Native,
            latency_main_us: 0,
            latency_shadow_us: 0,
        };
        shadow::emit(&st.records, &st.metrics, record);
    }

    /// Adds the calls that are not needed to serve but are compared (tools,
    /// tokenizer), for the modules that have a shadow; the others cost nothing.
    pub fn extra(&mut self, st: &AppState, res: &Resolution, calls: Vec<Deferred>) {
        for call in calls {
            let rt = mode::runtimes(module_mode(st, res, call.module()), &self.sticky);
            if let Some(shadow) = rt.shadow {
                self.deferred.push(DeferredCall { call, primary: rt.primary, shadow });
            }
        }
    }

    /// Queues the shadow job; without calls only when the exchange may become a case.
    pub fn submit(self, st: &AppState, dims: &Arc<Dims>, exchange: Option<Exchange>) {
        let idle = self.calls.is_empty() && self.deferred.is_empty();
        if !idle || (exchange.is_some() && st.recorder.wants(dims)) {
            st.shadow.submit(ShadowJob {
                dims: dims.clone(),
                calls: self.calls,
                deferred: self.deferred,
                exchange: exchange.map(Box::new),
            });
        }
    }

    /// Adds the runtime headers to `resp` and hands the shadow job over.
    pub fn finish(
        mut self,
        st: &AppState,
        dims: &Arc<Dims>,
        res: &Resolution,
        extra: Vec<Deferred>,
        exchange: Exchange,
        mut resp: Response,
    ) -> Response {
        let h = resp.headers_mut();
        h.insert("x-shadowgate-runtime", HeaderValue::from_static(self.runtime.as_str()));
        if self.fallback {
            h.insert("x-shadowgate-fallback", HeaderValue::from_static("native"));
        }
        self.extra(st, res, extra);
        self.submit(st, dims, Some(exchange));
        resp
    }
}

/// `call` in the native core; a failure (a core panic) becomes an error envelope.
fn native(st: &AppState, call: &ModuleCall) -> Vec<u8> {
    st.rts
        .native
        .call(call.call.op(), &call.input)
        .unwrap_or_else(|e| shadowgate_core::dispatch::envelope(Err(shadowgate_core::CoreError::stream(e.to_string()))))
}

/// Microseconds since `start`.
fn elapsed_us(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}
