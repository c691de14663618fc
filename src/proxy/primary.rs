//! The primary module calls of one request: each runs on the runtime its
//! mode picks; a wasm failure falls back to native explicitly (metric, log,
//! `primary_error` record, response header). What ran becomes the shadow job.

use super::app::AppState;
use super::metrics::{ModuleLabels, ModuleRuntimeLabels};
use super::mode::{self, Mode, Resolution};
use super::recorder::Exchange;
use super::shadow::{self, ShadowCall, ShadowJob};
use crate::diff::{DiffResult, Outcome};
use crate::plan::ModuleCall;
use crate::record::{DiffRecord, Dims};
use axum::http::HeaderValue;
use axum::response::Response;
use shadowgate_core::Module;
use shadowgate_runtime::{RuntimeError, RuntimeKind};
use std::sync::Arc;
use std::time::Instant;

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
    /// Some call fell back to native.
    pub fallback: bool,
    /// The runtime that served the conversion.
    pub runtime: RuntimeKind,
}

impl Served {
    /// Nothing served yet.
    pub fn new(sticky: String) -> Served {
        Served { sticky, calls: Vec::new(), fallback: false, runtime: RuntimeKind::Native }
    }

    /// Runs `call` on the primary runtime of `mode`; a wasm failure falls back to native, explicitly.
    pub fn call(&mut self, st: &AppState, dims: &Arc<Dims>, call: ModuleCall, mode: Mode) -> Vec<u8> {
        let rt = mode::runtimes(mode, &self.sticky);
        let start = Instant::now();
        let mut primary = rt.primary;
        let out = match st.rts.get(primary).call(call.call.op(), &call.input) {
            Ok(out) => out,
            Err(e) => {
                self.fall_back(st, dims, call.module(), &e);
                primary = RuntimeKind::Native;
                st.rts.native.call(call.call.op(), &call.input).unwrap_or_else(|e| {
                    shadowgate_core::dispatch::envelope(Err(shadowgate_core::CoreError::stream(e.to_string())))
                })
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

    /// Adds the calls that are not needed to serve but are compared (tools, tokenizer).
    pub fn extra(&mut self, st: &AppState, res: &Resolution, calls: Vec<ModuleCall>) {
        for call in calls {
            let rt = mode::runtimes(module_mode(st, res, call.module()), &self.sticky);
            if let Some(shadow) = rt.shadow {
                self.calls.push(ShadowCall { call, primary: rt.primary, shadow, primary_output: None, primary_us: 0 });
            }
        }
    }

    /// Adds the runtime headers to `resp` and hands the shadow job over.
    pub fn finish(
        mut self,
        st: &AppState,
        dims: &Arc<Dims>,
        res: &Resolution,
        extra: Vec<ModuleCall>,
        exchange: Exchange,
        mut resp: Response,
    ) -> Response {
        let h = resp.headers_mut();
        h.insert("x-shadowgate-runtime", HeaderValue::from_static(self.runtime.as_str()));
        if self.fallback {
            h.insert("x-shadowgate-fallback", HeaderValue::from_static("native"));
        }
        self.extra(st, res, extra);
        submit(st, dims, self.calls, Some(exchange));
        resp
    }
}

/// Microseconds since `start`.
fn elapsed_us(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Queues the shadow job; without calls only when the exchange may become a case.
pub fn submit(st: &AppState, dims: &Arc<Dims>, calls: Vec<ShadowCall>, exchange: Option<Exchange>) {
    if !calls.is_empty() || (exchange.is_some() && st.recorder.wants(dims)) {
        st.shadow.submit(ShadowJob { dims: dims.clone(), calls, exchange: exchange.map(Box::new) });
    }
}
