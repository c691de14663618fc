//! The app state and the router: `app(state)` is what both `serve` and the
//! `oneshot` tests drive.

use super::admin;
use super::breaker::{BreakerConfig, Breakers};
use super::config::Config;
use super::metrics::Metrics;
use super::offload::Offload;
use super::pipeline;
use super::recorder::Recorder;
use super::routing::UpstreamHealth;
use super::shadow::Shadow;
use super::stages::ModuleStages;
use super::upstream::Upstream;
use super::{Recording, ServeError};
use crate::diff::Differ;
use crate::sink::sampling::Sampler;
use crate::sink::{SinkSender, SinkStats};
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shadowgate_core::Protocol;
use shadowgate_runtime::{NativeRuntime, Runtime, Runtimes, WasmRuntime};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Everything a request needs.
pub struct AppState {
    /// The config.
    pub config: Config,
    /// Both runtimes (the wasm one with the shadow deadline).
    pub rts: Runtimes,
    /// The wasm runtime with the primary deadline.
    pub primary_wasm: Arc<WasmRuntime>,
    /// Runs wasm primary calls off the executor.
    pub offload: Offload,
    /// Circuit breakers of the wasm primary, per module.
    pub breakers: Breakers,
    /// The wasm runtime, for its stats.
    pub wasm: Arc<WasmRuntime>,
    /// Upstream client.
    pub upstream: Upstream,
    /// Shadow executor.
    pub shadow: Shadow,
    /// Where diff records and cases go.
    pub records: SinkSender,
    /// Samples and records cases.
    pub recorder: Arc<Recorder>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Module stages, changeable while serving.
    pub modules: Arc<ModuleStages>,
    /// The sink's counters and health.
    pub sink: SinkStats,
    /// The route table as the routing call embeds it, serialized at load.
    pub route_table: Box<serde_json::value::RawValue>,
    /// Upstream keys: slots, streaks and cooldowns.
    pub health: UpstreamHealth,
    pub(super) admin_token: Option<String>,
    seq: AtomicU64,
    streams: AtomicUsize,
}

impl AppState {
    /// Builds the state: runtimes (the guest loaded and checked), upstream
    /// client, shadow workers. Records and cases go to `rec`.
    pub fn new(
        config: Config,
        wasm: Arc<WasmRuntime>,
        differ: Arc<Differ>,
        rec: Recording,
        metrics: Arc<Metrics>,
    ) -> Result<AppState, ServeError> {
        let records = rec.sink;
        let sink = rec.stats.clone();
        let recorder = Arc::new(Recorder::new(
            Sampler::new(&config.sampling, rec.new_version),
            rec.redactor,
            rec.stats,
            differ.ruleset().version(),
        ));
        let upstream = Upstream::new(&config)?;
        let admin_token = match &config.admin_token_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                ServeError::config("admin_token_env", format!("environment variable {var} is not set"))
            })?),
            None => None,
        };
        let rts = Runtimes { native: Arc::new(NativeRuntime::new()), wasm: wasm.clone() };
        let p = &config.primary;
        let primary_wasm = Arc::new(wasm.with_deadline(Duration::from_millis(p.deadline_ms)));
        let offload = Offload::start(p.workers(), p.queue_size)
            .map_err(|e| ServeError::config("primary.workers", format!("cannot start the primary pool: {e}")))?;
        let breakers = Breakers::new(
            BreakerConfig {
                failures: p.breaker.breaker_failures,
                window: Duration::from_millis(p.breaker.breaker_window_ms),
                cooldown: Duration::from_millis(p.breaker.breaker_cooldown_ms),
            },
            metrics.clone(),
        );
        let modules = Arc::new(ModuleStages::new(&config, metrics.clone())?);
        let shadow = Shadow::start(
            &config.shadow,
            rts.clone(),
            differ,
            records.clone(),
            recorder.clone(),
            modules.clone(),
            metrics.clone(),
        );
        metrics.observe_wasm(&wasm.stats());
        Ok(AppState {
            route_table: config.route_table(),
            health: UpstreamHealth::new(
                &config,
                config.sink.data_dir.join("state/upstreams.json"),
                super::routing::now_ms(),
            ),
            config,
            rts,
            primary_wasm,
            offload,
            breakers,
            wasm,
            upstream,
            shadow,
            records,
            recorder,
            metrics,
            modules,
            sink,
            admin_token,
            seq: AtomicU64::new(0),
            streams: AtomicUsize::new(0),
        })
    }

    /// Waits (up to `limit`) until no stream is being pumped.
    pub async fn streams_done(&self, limit: Duration) {
        let start = Instant::now();
        while self.streams.load(Ordering::Acquire) > 0 && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Counts a stream as in flight until the returned guard drops (also when its task panics).
    pub fn stream_started(self: &Arc<Self>) -> InFlight {
        self.streams.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Streams being pumped.
    pub fn streams_in_flight(&self) -> usize {
        self.streams.load(Ordering::Acquire)
    }

    /// A new request id and its sequence number (the `id_seed` of its context).
    pub(super) fn request_id(&self) -> (String, u64) {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let d = Sha256::digest(format!("{}-{n}-{}", crate::clock::now_nanos(), std::process::id()));
        (format!("req_{}", shadowgate_core::context::hex(&d[..12])), n)
    }
}

/// A stream in flight; dropping it (normally or while unwinding) ends it.
pub struct InFlight(Arc<AppState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The app's router.
pub fn app(state: Arc<AppState>) -> Router {
    let client = |protocol: Protocol| {
        post(move |s: State<Arc<AppState>>, h: axum::http::HeaderMap, b: axum::body::Body| {
            pipeline::serve(s.0, protocol, None, h, b)
        })
    };
    let mut router = Router::new();
    for p in Protocol::ALL.into_iter().filter(|p| *p != Protocol::Gemini) {
        router = router.route(p.endpoint(), client(p));
    }
    router
        .route("/v1beta/models/{target}", post(gemini))
        .route("/v1/models/{target}", post(gemini))
        .route("/v1/models", get(models))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/admin/modes", get(admin::modes))
        .route("/admin/modules", get(admin::modules))
        .route("/admin/upstreams", get(admin::upstreams))
        .route("/admin/modules/{module}", post(admin::set_module))
        .with_state(state)
}

/// `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`
/// (and the same under `/v1`, where the SDKs' stable API version points):
/// the model and streaming come from the path; a `?key=` is the client's API
/// key, treated like `x-goog-api-key` (it identifies the tenant, it is never
/// logged or recorded).
async fn gemini(
    State(st): State<Arc<AppState>>,
    axum::extract::Path(target): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    mut headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    let path = match target.rsplit_once(':') {
        Some((model, "generateContent")) => pipeline::PathTarget { model: model.to_string(), stream: false },
        Some((model, "streamGenerateContent")) => pipeline::PathTarget { model: model.to_string(), stream: true },
        _ => {
            let msg =
                format!("unknown method in {target:?}: expected {{model}}:generateContent or :streamGenerateContent");
            return crate::proxy::error::ApiError::new(Protocol::Gemini, axum::http::StatusCode::NOT_FOUND, msg)
                .into_response();
        }
    };
    let key = query.as_deref().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("key=")));
    if let (Some(k), false) = (key, headers.contains_key("x-goog-api-key"))
        && let Ok(v) = axum::http::HeaderValue::from_str(k)
    {
        headers.insert("x-goog-api-key", v);
    }
    pipeline::serve(st, Protocol::Gemini, Some(path), headers, body).await
}

async fn models(State(st): State<Arc<AppState>>) -> Response {
    let data: Vec<Value> = st
        .config
        .routes
        .iter()
        .filter(|r| !r.model.contains('*'))
        .map(|r| json!({"id": r.model, "object": "model", "created": 0, "owned_by": r.provider}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    // The state exists only once the guest is loaded and its ABI and capabilities checked.
    let abi = st.wasm.capabilities().abi;
    let body = json!({"ready": true, "guest_sha256": st.wasm.module_sha256(), "abi": abi});
    if st.sink.writer_down.load(Ordering::Acquire) {
        let body = json!({"ready": false, "reason": "the sink writer stopped: records are not written"});
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    axum::Json(body).into_response()
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    st.metrics.observe_wasm(&st.wasm.stats());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], st.metrics.render()).into_response()
}
