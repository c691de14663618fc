//! The axum app: endpoints, the primary path with explicit fallback, and the
//! hand-off to the shadow executor.
//!
//! Primary conversions run inline on the request task: each is a few to a
//! few hundred microseconds of CPU, bounded by the guest deadline, which is
//! cheaper than a hop to a blocking thread. Shadow work runs on its own
//! threads and never delays the client.

use super::config::{Config, RouteConfig};
use super::metrics::{Metrics, ModuleLabels, ModuleRuntimeLabels, RequestLabels, RuntimeLabels};
use super::mode::{self, Mode, Resolution, Setting, Stage};
use super::record::{Answer, Exchange, Recorder};
use super::shadow::{self, DiffRecord, Dims, Runtimes, Shadow, ShadowCall, ShadowJob};
use super::stages::ModuleStages;
use super::upstream::{Upstream, without_url};
use crate::diff::{DiffResult, Differ, Outcome};
use crate::plan::{self, ModuleCall};
use crate::runtime::{RuntimeError, RuntimeKind, WasmRuntime};
use crate::sink::SinkSender;
use crate::sink::sampling::Sampler;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shadowgate_core::dispatch::open_envelope;
use shadowgate_core::{Context, Protocol};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Everything a request needs.
pub struct AppState {
    /// The config.
    pub config: Config,
    /// Both runtimes.
    pub rts: Runtimes,
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
    admin_token: Option<String>,
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
        rec: super::Recording,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<AppState> {
        let records = rec.sink;
        let recorder = Arc::new(Recorder::new(
            Sampler::new(&config.sampling, rec.new_version),
            rec.redactor,
            rec.stats,
            differ.ruleset().version(),
        ));
        let upstream = Upstream::new(&config)?;
        let admin_token = match &config.admin_token_env {
            Some(var) => Some(
                std::env::var(var)
                    .map_err(|_| anyhow::anyhow!("admin_token_env: environment variable {var} is not set"))?,
            ),
            None => None,
        };
        let rts = Runtimes { native: Arc::new(crate::runtime::NativeRuntime::new()), wasm: wasm.clone() };
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
            config,
            rts,
            wasm,
            upstream,
            shadow,
            records,
            recorder,
            metrics,
            modules,
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

    fn stage(&self, module: &str) -> Stage {
        self.modules.get(module)
    }

    fn request_id(&self) -> (String, u64) {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let d = Sha256::digest(format!("{nanos}-{n}-{}", std::process::id()));
        (format!("req_{}", shadowgate_core::context::hex(&d[..12])), n)
    }
}

/// The app's router.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/v1/chat/completions",
            post(|s: State<Arc<AppState>>, h: HeaderMap, b: Body| serve(s.0, Protocol::OpenAiChat, h, b)),
        )
        .route(
            "/v1/messages",
            post(|s: State<Arc<AppState>>, h: HeaderMap, b: Body| serve(s.0, Protocol::AnthropicMessages, h, b)),
        )
        .route("/v1/models", get(models))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/admin/modes", get(admin_modes))
        .route("/admin/modules", get(admin_modules))
        .route("/admin/modules/{module}", post(set_module))
        .with_state(state)
}

/// An error in the client's own protocol.
pub fn client_error(protocol: Protocol, status: StatusCode, kind: &str, message: &str) -> Response {
    let body = match protocol {
        Protocol::OpenAiChat => json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
        Protocol::AnthropicMessages => json!({"type": "error", "error": {"type": kind, "message": message}}),
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn kind_for(protocol: Protocol, status: StatusCode) -> &'static str {
    match (protocol, status.as_u16()) {
        (Protocol::AnthropicMessages, 413) => "request_too_large",
        (_, 400 | 404 | 413) => "invalid_request_error",
        (_, 403) => "permission_error",
        (Protocol::OpenAiChat, _) => "server_error",
        (Protocol::AnthropicMessages, _) => "api_error",
    }
}

struct Tenant {
    name: String,
    setting: Option<Setting>,
    allow_header: bool,
}

fn identify_tenant(cfg: &Config, headers: &HeaderMap) -> Tenant {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let by_header = header(&cfg.tenant_header)
        .and_then(|v| cfg.tenants.iter().find(|t| t.header_value.as_deref() == Some(v) || t.name == v));
    let by_key = || {
        let key = header("x-api-key").or_else(|| header("authorization").and_then(|a| a.strip_prefix("Bearer ")))?;
        let digest = shadowgate_core::context::hex(&Sha256::digest(key.as_bytes()));
        cfg.tenants.iter().find(|t| t.api_key_sha256.iter().any(|h| h.eq_ignore_ascii_case(&digest)))
    };
    // Unidentified requests belong to the tenant named "default", if the config has one.
    match by_header.or_else(by_key).or_else(|| cfg.tenants.iter().find(|t| t.name == "default")) {
        Some(t) => Tenant {
            name: t.name.clone(),
            setting: t.mode.map(|m| Setting { mode: m, locked: t.mode_locked }),
            allow_header: t.allow_mode_header,
        },
        None => Tenant { name: "default".into(), setting: None, allow_header: false },
    }
}

/// Resolves the mode for `tenant` on `route` (none: before routing) with the request's header.
fn resolve(
    cfg: &Config,
    tenant: &Tenant,
    route: Option<&RouteConfig>,
    header: Option<Mode>,
) -> Result<Resolution, mode::Forbidden> {
    let global = cfg.mode.map(|m| Setting { mode: m, locked: cfg.mode_locked });
    let route = route.and_then(|r| r.mode.map(|m| Setting { mode: m, locked: r.mode_locked }));
    mode::resolve(global, tenant.setting, route, header, tenant.allow_header, &tenant.name)
}

/// What the primary path did, for headers, metrics and the shadow job.
struct Served {
    /// What `split:P` hashes: the configured header's value, else the request id.
    sticky: String,
    calls: Vec<ShadowCall>,
    fallback: bool,
    runtime: RuntimeKind,
}

/// The per-module mode: the resolved one, or the module's stage.
fn module_mode(st: &AppState, res: &Resolution, module: &str) -> Mode {
    res.mode.unwrap_or_else(|| st.stage(module).mode(st.config.modules.canary_percent))
}

impl Served {
    /// Runs `call` on the primary runtime of `mode`; a wasm failure falls back to native, explicitly.
    fn call(&mut self, st: &AppState, dims: &Arc<Dims>, call: ModuleCall, mode: Mode) -> Vec<u8> {
        let rt = mode::runtimes(mode, &self.sticky);
        let start = Instant::now();
        let mut primary = rt.primary;
        let out = match st.rts.get(primary).call(call.op, &call.input) {
            Ok(out) => out,
            Err(e) => {
                self.fall_back(st, dims, call.module, &e);
                primary = RuntimeKind::Native;
                st.rts.native.call(call.op, &call.input).unwrap_or_else(|e| {
                    shadowgate_core::dispatch::envelope(Err(shadowgate_core::CoreError::stream(e.to_string())))
                })
            }
        };
        let us = start.elapsed().as_micros() as u64;
        st.metrics
            .module_seconds
            .get_or_create(&ModuleRuntimeLabels { module: call.module.into(), runtime: primary.as_str().into() })
            .observe(us as f64 / 1e6);
        if call.module == "compat" {
            self.runtime = primary;
        }
        if let Some(shadow) = rt.shadow.filter(|_| primary == rt.primary) {
            self.calls.push(ShadowCall { call, primary, shadow, primary_output: Some(out.clone()), primary_us: us });
        }
        out
    }

    fn fall_back(&mut self, st: &AppState, dims: &Arc<Dims>, module: &str, e: &RuntimeError) {
        self.fallback = true;
        st.metrics.fallbacks.get_or_create(&ModuleLabels { module: module.into() }).inc();
        tracing::warn!(request_id = %dims.request_id, module, error = %e, "wasm primary failed; serving from native");
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
    fn extra(&mut self, st: &AppState, res: &Resolution, calls: Vec<ModuleCall>) {
        for call in calls {
            let rt = mode::runtimes(module_mode(st, res, call.module), &self.sticky);
            if let Some(shadow) = rt.shadow {
                self.calls.push(ShadowCall { call, primary: rt.primary, shadow, primary_output: None, primary_us: 0 });
            }
        }
    }
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

async fn serve(st: Arc<AppState>, client: Protocol, headers: HeaderMap, body: Body) -> Response {
    let start = Instant::now();
    let (request_id, seq) = st.request_id();
    let mut label =
        RequestLabels { endpoint: client.as_str().into(), mode: "-".into(), runtime: "native".into(), status: 0 };
    let mut resp = handle(&st, client, &headers, body, &request_id, seq, &mut label).await;
    label.status = resp.status().as_u16();
    st.metrics.requests.get_or_create(&label).inc();
    st.metrics
        .request_seconds
        .get_or_create(&RuntimeLabels { runtime: label.runtime.clone() })
        .observe(start.elapsed().as_secs_f64());
    let h = resp.headers_mut();
    h.insert("x-shadowgate-request-id", HeaderValue::from_str(&request_id).unwrap_or(HeaderValue::from_static("-")));
    if !h.contains_key("x-shadowgate-mode") {
        h.insert("x-shadowgate-mode", HeaderValue::from_str(&label.mode).unwrap_or(HeaderValue::from_static("-")));
    }
    resp
}

async fn handle(
    st: &Arc<AppState>,
    client: Protocol,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
    seq: u64,
    label: &mut RequestLabels,
) -> Response {
    let cfg = &st.config;
    let err = |status: StatusCode, msg: &str| client_error(client, status, kind_for(client, status), msg);
    let Ok(bytes) = axum::body::to_bytes(body, cfg.max_body_bytes).await else {
        return err(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body is larger than the {} byte limit", cfg.max_body_bytes),
        );
    };
    let req: Value = match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return err(StatusCode::BAD_REQUEST, "request body must be a JSON object"),
        Err(e) => return err(StatusCode::BAD_REQUEST, &format!("malformed JSON: {e}")),
    };
    let Some(model) = req["model"].as_str().map(str::to_string) else {
        return err(StatusCode::BAD_REQUEST, "missing required field: model");
    };
    let stream = req["stream"].as_bool().unwrap_or(false);
    let tenant = identify_tenant(cfg, headers);
    let header_mode = match headers.get("x-shadowgate-mode").map(|v| v.to_str().unwrap_or("").parse::<Mode>()) {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => return err(StatusCode::BAD_REQUEST, &format!("x-shadowgate-mode: {e}")),
    };
    let base = match resolve(cfg, &tenant, None, header_mode) {
        Ok(r) => r,
        Err(e) => return err(StatusCode::FORBIDDEN, &e.to_string()),
    };
    let created = (now_us() / 1_000_000).max(0);
    let ctx = Context { request_id: request_id.into(), created, id_seed: seq };
    let mut dims = Dims {
        request_id: request_id.into(),
        timestamp_us: now_us(),
        tenant: tenant.name.clone(),
        route: String::new(),
        endpoint: Dims::endpoint(client).into(),
        client_protocol: client.as_str().into(),
        upstream_protocol: String::new(),
        model: model.clone(),
        stream,
        mode: String::new(),
        compat_profile: String::new(),
    };
    let sticky = cfg
        .split_key_header
        .as_deref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| request_id.to_string(), |v| format!("key:{v}"));
    let mut served = Served { sticky, calls: Vec::new(), fallback: false, runtime: RuntimeKind::Native };

    // Routing, under the mode known before the route is.
    let pre = Arc::new(dims.clone());
    let routing = served.call(
        st,
        &pre,
        plan::routing_call(client, &model, Some(&tenant.name), &cfg.route_table()),
        module_mode(st, &base, "routing"),
    );
    let target: Value = match open_envelope(&routing) {
        Ok(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
        Err(e) => return err(StatusCode::NOT_FOUND, &e.message),
    };
    let route_id = target["route_id"].as_str().unwrap_or("").to_string();
    let Some(route) = cfg.routes.iter().find(|r| r.id == route_id) else {
        return err(StatusCode::NOT_FOUND, "route vanished");
    };
    let Some(provider) = cfg.provider(&route.provider) else {
        return err(StatusCode::BAD_GATEWAY, "provider vanished");
    };
    let upstream = Protocol::parse(&provider.protocol, "").unwrap_or(Protocol::OpenAiChat);
    let res = match resolve(cfg, &tenant, Some(route), header_mode) {
        Ok(r) => r,
        Err(e) => return err(StatusCode::FORBIDDEN, &e.to_string()),
    };
    label.mode = res.mode.map(|m| m.to_string()).unwrap_or_else(|| "stages".into());
    dims.route = route_id;
    dims.upstream_protocol = upstream.as_str().into();
    dims.mode = label.mode.clone();
    dims.compat_profile = Dims::profile_version(provider.profile.as_deref(), upstream);
    let dims = Arc::new(dims);

    let upstream_model = target["upstream_model"].as_str().map(str::to_string);
    let converted = served.call(
        st,
        &dims,
        plan::request_call(client, upstream, &bytes, provider.profile.as_deref(), upstream_model.as_deref()),
        module_mode(st, &res, "compat"),
    );
    let upstream_body = match open_envelope(&converted) {
        Ok(raw) => Bytes::from(raw.get().to_string()),
        Err(e) => return err(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    label.runtime = served.runtime.as_str().into();

    let mut pass = HeaderMap::new();
    for name in &cfg.pass_headers {
        if let (Ok(k), Some(v)) = (name.parse::<HeaderName>(), headers.get(name.as_str())) {
            pass.insert(k, v.clone());
        }
    }
    let up_start = Instant::now();
    let up = match st.upstream.send(provider, upstream, upstream_body, &pass, stream).await {
        Ok(r) => r,
        Err(e) => return err(StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    st.metrics.upstream_seconds.observe(up_start.elapsed().as_secs_f64());
    let status = up.status().as_u16();
    let retry = |k: &str| up.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (retry_after, retry_after_ms) = (retry("retry-after"), retry("retry-after-ms"));
    let mut extra = vec![plan::tools_call(None, client, client, "request", &bytes)];
    let mut case_headers = BTreeMap::new();
    for name in cfg.pass_headers.iter().chain([&cfg.tenant_header]) {
        if let Some(v) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            case_headers.insert(name.to_ascii_lowercase(), v.to_string());
        }
    }
    let exchange = |answer: Answer| Exchange {
        client,
        upstream,
        request: bytes.clone(),
        headers: case_headers.clone(),
        upstream_model: upstream_model.clone(),
        profile: provider.profile.clone(),
        ctx: ctx.clone(),
        answer,
    };

    if !(200..300).contains(&status) || !stream {
        let body = match up.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return err(
                    StatusCode::BAD_GATEWAY,
                    &format!("upstream {} broke off its response: {}", provider.name, without_url(&e)),
                );
            }
        };
        let resp = if (200..300).contains(&status) {
            let out = served.call(
                st,
                &dims,
                plan::response_call(&ctx, upstream, client, &body, provider.profile.as_deref()),
                module_mode(st, &res, "compat"),
            );
            extra.push(plan::tools_call(Some(&ctx), upstream, client, "response", &body));
            let answer: Option<Value> = serde_json::from_slice(&body).ok();
            extra.push(plan::tokenizer_call(client, &plan::tokenizer_text(&req, answer.as_ref())));
            match open_envelope(&out) {
                Ok(raw) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], raw.get().to_string())
                    .into_response(),
                Err(e) => err(
                    StatusCode::BAD_GATEWAY,
                    &format!("upstream {} sent a response that cannot be converted: {e}", provider.name),
                ),
            }
        } else {
            let out = served.call(
                st,
                &dims,
                plan::error_call(
                    upstream,
                    client,
                    status,
                    &String::from_utf8_lossy(&body),
                    retry_after.as_deref(),
                    retry_after_ms.as_deref(),
                ),
                module_mode(st, &res, "compat"),
            );
            extra.push(plan::tokenizer_call(client, &plan::tokenizer_text(&req, None)));
            error_from(client, &out)
        };
        let mut kept = BTreeMap::new();
        for (k, v) in [("retry-after", &retry_after), ("retry-after-ms", &retry_after_ms)] {
            if let Some(v) = v {
                kept.insert(k.to_string(), v.clone());
            }
        }
        let ex = exchange(Answer::Response { status, body: body.clone(), headers: kept });
        finish(st, &dims, &res, served, extra, ex, resp)
    } else {
        extra.push(plan::tokenizer_call(client, &plan::tokenizer_text(&req, None)));
        let ex = exchange(Answer::Stream(Bytes::new()));
        stream_response(st.clone(), dims, res, served, extra, ex, plan::include_usage(&req), up)
    }
}

/// The converted upstream error, with status and retry-after.
fn error_from(client: Protocol, envelope: &[u8]) -> Response {
    let v: Value =
        open_envelope(envelope).ok().and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or(Value::Null);
    let status =
        v["status"].as_u64().and_then(|s| StatusCode::from_u16(s as u16).ok()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], v["body"].to_string()).into_response();
    if let Some(r) = v["retry_after"].as_str().and_then(|r| HeaderValue::from_str(r).ok()) {
        resp.headers_mut().insert("retry-after", r);
    }
    if v.is_null() {
        return client_error(
            client,
            StatusCode::BAD_GATEWAY,
            kind_for(client, StatusCode::BAD_GATEWAY),
            "upstream error could not be converted",
        );
    }
    resp
}

/// Adds the headers and hands the shadow job over.
fn finish(
    st: &AppState,
    dims: &Arc<Dims>,
    res: &Resolution,
    mut served: Served,
    extra: Vec<ModuleCall>,
    exchange: Exchange,
    mut resp: Response,
) -> Response {
    let h = resp.headers_mut();
    h.insert("x-shadowgate-runtime", HeaderValue::from_static(served.runtime.as_str()));
    if served.fallback {
        h.insert("x-shadowgate-fallback", HeaderValue::from_static("native"));
    }
    served.extra(st, res, extra);
    submit(st, dims, served.calls, Some(exchange));
    resp
}

/// Queues the shadow job; without calls only when the exchange may become a case.
fn submit(st: &AppState, dims: &Arc<Dims>, calls: Vec<ShadowCall>, exchange: Option<Exchange>) {
    if !calls.is_empty() || (exchange.is_some() && st.recorder.wants(dims)) {
        st.shadow.submit(ShadowJob { dims: dims.clone(), calls, exchange: exchange.map(Box::new) });
    }
}

/// The SSE text of a stream envelope (errors carry none: the session turns them into events).
fn sse_text(envelope: &[u8]) -> String {
    plan::sse_text(envelope).unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
fn stream_response(
    st: Arc<AppState>,
    dims: Arc<Dims>,
    res: Resolution,
    mut served: Served,
    extra: Vec<ModuleCall>,
    mut exchange: Exchange,
    include_usage: bool,
    up: reqwest::Response,
) -> Response {
    let (ctx, upstream, client) = (exchange.ctx.clone(), exchange.upstream, exchange.client);
    let mode = module_mode(&st, &res, "streaming");
    let rt = mode::runtimes(mode, &served.sticky);
    let options = plan::stream_options(&ctx, upstream, client, include_usage);
    let runtime = served.runtime;
    let fallback = served.fallback;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let task_st = st.clone();
    st.streams.fetch_add(1, Ordering::AcqRel);
    tokio::spawn(async move {
        let st = task_st;
        let cap = st.config.shadow.max_stream_bytes;
        let mut recorded: Vec<u8> = Vec::new();
        let mut over_cap = false;
        let mut primary = rt.primary;
        let mut output = String::new();
        let start = Instant::now();
        let mut session = match st.rts.get(primary).open_stream(&options) {
            Ok(s) => s,
            Err(e) => {
                served.fall_back(&st, &dims, "streaming", &e);
                primary = RuntimeKind::Native;
                st.rts.native.open_stream(&options).expect("the native runtime opens streams")
            }
        };
        let mut body = up.bytes_stream();
        let mut client_gone = false;
        loop {
            let chunk = match body.next().await {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    tracing::warn!(request_id = %dims.request_id, error = %without_url(&e), "upstream stream broke off");
                    break;
                }
                None => break,
            };
            if !over_cap && recorded.len() + chunk.len() <= cap {
                recorded.extend_from_slice(&chunk);
            } else {
                over_cap = true;
            }
            let env = match session.feed(&chunk) {
                Ok(env) => env,
                Err(e) => {
                    // Explicit fallback: a native session replays what came so far, and
                    // only its output for the new bytes goes to the client.
                    served.fall_back(&st, &dims, "streaming", &e);
                    primary = RuntimeKind::Native;
                    session = st.rts.native.open_stream(&options).expect("the native runtime opens streams");
                    if over_cap {
                        break;
                    }
                    let before = recorded.len() - chunk.len();
                    let _ = session.feed(&recorded[..before]);
                    session.feed(&chunk).unwrap_or_default()
                }
            };
            let text = sse_text(&env);
            output.push_str(&text);
            if !text.is_empty() && tx.send(Ok(Bytes::from(text))).await.is_err() {
                client_gone = true;
                break;
            }
        }
        let last = session.close().map(|env| sse_text(&env)).unwrap_or_default();
        output.push_str(&last);
        if !client_gone && !last.is_empty() {
            let _ = tx.send(Ok(Bytes::from(last))).await;
        }
        drop(tx);
        let us = start.elapsed().as_micros() as u64;
        st.metrics
            .module_seconds
            .get_or_create(&ModuleRuntimeLabels { module: "streaming".into(), runtime: primary.as_str().into() })
            .observe(us as f64 / 1e6);
        let mut whole = None;
        if over_cap || client_gone {
            // Without the whole upstream stream there is nothing to replay faithfully.
            st.metrics.shadow_dropped.inc();
        } else {
            let recorded = Bytes::from(recorded);
            if let Some(shadow) = rt.shadow.filter(|_| primary == rt.primary) {
                let call = plan::stream_call(&ctx, upstream, client, include_usage, recorded.clone());
                served.calls.push(ShadowCall {
                    call,
                    primary,
                    shadow,
                    primary_output: Some(output.into_bytes()),
                    primary_us: us,
                });
            }
            exchange.answer = Answer::Stream(recorded);
            whole = Some(exchange);
        }
        served.extra(&st, &res, extra);
        submit(&st, &dims, served.calls, whole);
        st.streams.fetch_sub(1, Ordering::AcqRel);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut resp = Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-shadowgate-runtime", runtime.as_str())
        .header("x-shadowgate-mode", mode.to_string())
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    if fallback {
        resp.headers_mut().insert("x-shadowgate-fallback", HeaderValue::from_static("native"));
    }
    resp
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
    axum::Json(json!({"ready": true, "guest_sha256": st.wasm.module_sha256(), "abi": st.wasm_abi()})).into_response()
}

impl AppState {
    fn wasm_abi(&self) -> u32 {
        use crate::runtime::Runtime;
        self.wasm.capabilities().abi
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    st.metrics.observe_wasm(&st.wasm.stats());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], st.metrics.render()).into_response()
}

/// Checks `authorization: Bearer <admin token>` in constant time.
pub fn admin_ok(st: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = &st.admin_token else { return false };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let (a, b) = (Sha256::digest(given.as_bytes()), Sha256::digest(token.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn admin_modes(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !admin_ok(&st, &headers) {
        return forbidden();
    }
    let cfg = &st.config;
    let mut h = HeaderMap::new();
    if let Some(t) = q.get("tenant").and_then(|t| HeaderValue::from_str(t).ok()) {
        h.insert(
            HeaderName::from_bytes(cfg.tenant_header.as_bytes())
                .unwrap_or(HeaderName::from_static("x-shadowgate-tenant")),
            t,
        );
    }
    let tenant = identify_tenant(cfg, &h);
    let route = q.get("route").and_then(|id| cfg.routes.iter().find(|r| &r.id == id));
    let header_mode = q.get("mode").and_then(|m| m.parse().ok());
    let res = resolve(cfg, &tenant, route, header_mode);
    let body = match res {
        Ok(r) => {
            let modules: BTreeMap<&str, String> =
                crate::proxy::config::MODULES.iter().map(|m| (*m, module_mode(&st, &r, m).to_string())).collect();
            json!({"tenant": tenant.name, "route": route.map(|r| r.id.clone()), "resolution": r, "modules": modules,
                   "stages": st.modules.all()})
        }
        Err(e) => json!({"tenant": tenant.name, "error": e.to_string()}),
    };
    axum::Json(body).into_response()
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, axum::Json(json!({"error": "admin token required (authorization: Bearer …)"})))
        .into_response()
}

async fn admin_modules(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !admin_ok(&st, &headers) {
        return forbidden();
    }
    let thresholds: BTreeMap<&str, crate::gate::Thresholds> =
        crate::proxy::config::MODULES.iter().map(|m| (*m, st.modules.thresholds(m))).collect();
    axum::Json(json!({"stages": st.modules.all(), "windows": st.modules.windows(), "thresholds": thresholds,
                      "history": st.modules.history(50)}))
    .into_response()
}

/// `POST /admin/modules/<module>` with `{"stage": "canary"}` or `{"action": "promote" | "rollback"}`.
async fn set_module(
    State(st): State<Arc<AppState>>,
    axum::extract::Path(module): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !admin_ok(&st, &headers) {
        return forbidden();
    }
    let bad = |status: StatusCode, msg: String| (status, axum::Json(json!({"error": msg}))).into_response();
    if !crate::proxy::config::MODULES.contains(&module.as_str()) {
        return bad(StatusCode::NOT_FOUND, format!("unknown module {module:?}"));
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let current = st.modules.get(&module);
    let to = match (req["stage"].as_str(), req["action"].as_str()) {
        (Some(s), None) => match serde_json::from_value::<Stage>(json!(s)) {
            Ok(s) => s,
            Err(_) => return bad(StatusCode::BAD_REQUEST, format!("unknown stage {s:?}")),
        },
        (None, Some("promote")) => current.promote(),
        (None, Some("rollback")) => current.rollback(),
        _ => {
            return bad(
                StatusCode::BAD_REQUEST,
                "body must be {\"stage\": …} or {\"action\": \"promote\"|\"rollback\"}".into(),
            );
        }
    };
    let reason = req["reason"].as_str().unwrap_or("admin request").to_string();
    match st.modules.set(&module, to, "admin", &reason) {
        Ok(from) => {
            tracing::info!(module = %module, from = ?from, to = ?to, "stage set by the admin API");
            axum::Json(json!({"module": module, "from": from, "stage": to})).into_response()
        }
        Err(e) => bad(StatusCode::INTERNAL_SERVER_ERROR, format!("writing the state file: {e}")),
    }
}
