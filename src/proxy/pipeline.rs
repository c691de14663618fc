//! One client request: read and check the body, identify the tenant, resolve
//! the mode, route, convert the request, call the upstream, convert the
//! answer (or hand the stream to the pump), and queue the shadow job.

use super::app::AppState;
use super::error::ApiError;
use super::head::RequestHead;
use super::metrics::UpstreamLabels;
use super::metrics::{RequestLabels, RuntimeLabels};
use super::mode::Mode;
use super::primary::{Served, module_mode};
use super::recorder::{Answer, Exchange, RoutingTrace};
use super::routing;
use super::stream;
use super::tenant;
use super::upstream::ProviderConfig;
use super::upstream::without_url;
use crate::plan::{self, Deferred};
use crate::record::Dims;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::Value;
use serde_json::value::RawValue;
use shadowgate_core::dispatch::open_envelope;
use shadowgate_core::routing::{Attempt, CooldownPolicy, Decision, KeyRef, Phase, Plan, RetryPolicy, Step};
use shadowgate_core::{Context, Module, Protocol};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a Gemini URL says of a request: the model and whether to stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTarget {
    /// The model segment (`models/{model}:…`).
    pub model: String,
    /// `:streamGenerateContent` rather than `:generateContent`.
    pub stream: bool,
}

/// Serves one request of a `client` protocol client (`path`: what its URL
/// says, for Gemini); adds the request id and mode headers and counts it.
pub async fn serve(
    st: Arc<AppState>,
    client: Protocol,
    path: Option<PathTarget>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let start = Instant::now();
    let (request_id, seq) = st.request_id();
    let mut label =
        RequestLabels { endpoint: client.as_str().into(), mode: "-".into(), runtime: "native".into(), status: 0 };
    let mut resp = handle(&st, client, path, &headers, body, &request_id, seq, &mut label).await.into_response();
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

#[allow(clippy::too_many_arguments)]
async fn handle(
    st: &Arc<AppState>,
    client: Protocol,
    path: Option<PathTarget>,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
    seq: u64,
    label: &mut RequestLabels,
) -> Result<Response, ApiError> {
    let cfg = &st.config;
    let err = |status: StatusCode, msg: &str| ApiError::new(client, status, msg);
    let bytes = axum::body::to_bytes(body, cfg.max_body_bytes).await.map_err(|_| {
        err(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body is larger than the {} byte limit", cfg.max_body_bytes),
        )
    })?;
    let head = RequestHead::parse(&bytes).map_err(|e| err(StatusCode::BAD_REQUEST, &e.to_string()))?;
    let (model, stream) = match path {
        Some(t) => (t.model, t.stream),
        None => (head.model.ok_or_else(|| err(StatusCode::BAD_REQUEST, "missing required field: model"))?, head.stream),
    };
    let tenant = tenant::identify(cfg, headers);
    let header_mode = match headers.get("x-shadowgate-mode").map(|v| v.to_str().unwrap_or("").parse::<Mode>()) {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => return Err(err(StatusCode::BAD_REQUEST, &format!("x-shadowgate-mode: {e}"))),
    };
    let base =
        tenant::resolve(cfg, &tenant, None, header_mode).map_err(|e| err(StatusCode::FORBIDDEN, &e.to_string()))?;
    let timestamp_us = crate::clock::now_us();
    let ctx = Context { request_id: request_id.into(), created: timestamp_us / 1_000_000, id_seed: seq };
    let mut dims = Dims {
        request_id: request_id.into(),
        timestamp_us,
        tenant: tenant.name.clone(),
        route: String::new(),
        endpoint: client.endpoint().into(),
        client_protocol: client,
        upstream_protocol: None,
        model: model.clone(),
        stream,
        mode: String::new(),
        compat_profile: String::new(),
        upstream: String::new(),
        attempts: 0,
    };
    let sticky = cfg
        .split_key_header
        .as_deref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| request_id.to_string(), |v| format!("key:{v}"));
    let mut served = Served::new(sticky);

    // Routing: the attempt plan, under the mode known before the route is.
    let routing_mode = module_mode(st, &base, Module::Routing);
    let pre = Arc::new(dims.clone());
    let query = serde_json::to_vec(&ResolveQuery {
        client_protocol: client,
        model: &model,
        tenant: Some(&tenant.name),
        table: &st.route_table,
        health: st.health.snapshot(routing::now_ms()),
        seed: ctx.id_seed,
    })
    .expect("a routing query serializes");
    let out = served.call(st, &pre, plan::routing_call(client, &query), routing_mode).await;
    let mut trace = RoutingTrace { resolve: Bytes::from(query), next: Vec::new() };
    let plan: Plan = match open_envelope(&out) {
        Ok(raw) => serde_json::from_str(raw.get())
            .map_err(|e| err(StatusCode::BAD_GATEWAY, &format!("routing answered an unreadable plan: {e}")))?,
        Err(e) => return Err(err(StatusCode::NOT_FOUND, &e.message)),
    };
    let route = cfg
        .routes
        .iter()
        .find(|r| r.id == plan.route_id)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "route vanished"))?;
    let res = tenant::resolve(cfg, &tenant, Some(route), header_mode)
        .map_err(|e| err(StatusCode::FORBIDDEN, &e.to_string()))?;
    label.mode = res.mode.map(|m| m.to_string()).unwrap_or_else(|| "stages".into());
    dims.route = plan.route_id.clone();
    dims.mode = label.mode.clone();
    let compat_mode = module_mode(st, &res, Module::Compat);
    if let Some(u) = &plan.unavailable {
        served.submit(st, &Arc::new(dims), None);
        return Ok(unavailable(client, u));
    }

    let mut pass = HeaderMap::new();
    for name in &cfg.pass_headers {
        if let (Ok(k), Some(v)) = (name.parse::<HeaderName>(), headers.get(name.as_str())) {
            pass.insert(k, v.clone());
        }
    }
    let retry_policy = cfg.routing.retry_policy();
    let cooldown_policy = cfg.routing.cooldown.policy();
    let slot_wait = Duration::from_millis(cfg.routing.slot_timeout_ms);
    let (mut at, mut made, mut cooled) = (0usize, 0u32, Vec::<KeyRef>::new());
    // The converted request, kept while later attempts need the same one.
    let mut converted: Option<(Protocol, String, Option<String>, Bytes)> = None;
    // The last failed attempt: what answers if no later target can take the request.
    let mut last: Option<(Attempt, Option<Got>, Failure, Arc<Dims>)> = None;
    let (attempt, got, dims) = loop {
        let a =
            plan.attempts.get(at).cloned().ok_or_else(|| err(StatusCode::BAD_GATEWAY, "routing planned no attempt"))?;
        let provider = cfg.provider(&a.provider).ok_or_else(|| err(StatusCode::BAD_GATEWAY, "provider vanished"))?;
        made = made.saturating_add(1);
        let mut now = dims.clone();
        now.upstream_protocol = Some(a.upstream_protocol);
        now.compat_profile = Dims::profile_version(provider.profile.as_deref(), a.upstream_protocol);
        now.upstream = format!("{}/{}", a.provider, a.key);
        now.attempts = made;
        let now = Arc::new(now);
        // A Gemini body has no model: the core gets the URL's.
        let upstream_model =
            (a.upstream_model != model || client == Protocol::Gemini).then(|| a.upstream_model.clone());
        let body = match &converted {
            Some((p, m, prof, b)) if (*p, m, prof) == (a.upstream_protocol, &a.upstream_model, &provider.profile) => {
                b.clone()
            }
            _ => {
                let call = plan::request_call(
                    client,
                    a.upstream_protocol,
                    &bytes,
                    provider.profile.as_deref(),
                    upstream_model.as_deref(),
                    stream,
                );
                let out = served.call(st, &now, call, compat_mode).await;
                let b = match (open_envelope(&out), last.take()) {
                    (Ok(raw), _) => ok_bytes(raw),
                    // The first target's conversion failing is the client's error.
                    (Err(e), None) => return Err(err(StatusCode::BAD_REQUEST, &e.to_string())),
                    // A failover target the request cannot be converted to is skipped (no
                    // upstream call was made); with none left, the last failure answers.
                    (Err(e), Some(prev)) => {
                        made = made.saturating_sub(1);
                        st.metrics.upstream_attempts.get_or_create(&upstream_label(&a, "unconvertible")).inc();
                        tracing::info!(request_id, upstream = %now.upstream, error = %e, "failover target skipped: the request cannot be converted to it");
                        let same = |x: &Attempt| {
                            let profile = cfg.provider(&x.provider).and_then(|p| p.profile.as_ref());
                            (x.upstream_protocol, &x.upstream_model, profile)
                                == (a.upstream_protocol, &a.upstream_model, provider.profile.as_ref())
                        };
                        match plan.attempts.iter().enumerate().skip(at + 1).find(|(_, x)| !same(x)) {
                            Some((next, _)) => {
                                at = next;
                                last = Some(prev);
                                continue;
                            }
                            None => {
                                let (a, got, failure, now) = prev;
                                match give_up(a, got, failure, now) {
                                    Ok(answer) => break answer,
                                    Err((now, msg)) => {
                                        return Ok(bad_gateway(st, served, &now, err(StatusCode::BAD_GATEWAY, &msg)));
                                    }
                                }
                            }
                        }
                    }
                };
                converted = Some((a.upstream_protocol, a.upstream_model.clone(), provider.profile.clone(), b.clone()));
                b
            }
        };
        label.runtime = served.runtime.as_str().into();
        let (failure, got) = attempt_once(st, provider, &a, body, &pass, stream, slot_wait).await;
        let Some(failure) = failure else {
            if !stream {
                st.health.outcome(&a.provider, &a.key, None);
                st.metrics.upstream_attempts.get_or_create(&upstream_label(&a, "ok")).inc();
            }
            break (a, got.expect("a success has an answer"), now);
        };
        // A failed attempt: the core says what next.
        let next = serde_json::to_vec(&NextQuery {
            plan: &plan,
            failed: u32::try_from(at).unwrap_or(u32::MAX),
            status: failure.status,
            body: &failure.body,
            phase: failure.phase,
            retry_after_ms: failure.retry_after_ms,
            attempts_made: made,
            cooled: &cooled,
            recent_failures: st.health.streak(&a.provider, &a.key),
            retry: &retry_policy,
            cooldown: &cooldown_policy,
            now_ms: routing::now_ms(),
            seed: ctx.id_seed,
        })
        .expect("a routing.next query serializes");
        let out = served.call(st, &now, plan::next_call(client, &next), routing_mode).await;
        trace.next.push(Bytes::from(next));
        let decision: Option<Decision> = open_envelope(&out).ok().and_then(|raw| serde_json::from_str(raw.get()).ok());
        let class = decision.as_ref().map_or("unknown", |d| d.class.as_str());
        st.metrics.upstream_attempts.get_or_create(&upstream_label(&a, class)).inc();
        let step = match decision {
            None => Step::Stop,
            Some(d) => {
                st.health.outcome(&a.provider, &a.key, Some(d.class));
                if let Some(c) = &d.cooldown {
                    st.health.cool(c);
                    cooled.push(KeyRef { provider: c.provider.clone(), key: c.key.clone() });
                    st.metrics.upstream_cooldowns.get_or_create(&upstream_label(&a, class)).inc();
                }
                tracing::info!(request_id, upstream = %now.upstream, class, reason = %d.reason, "upstream attempt failed");
                d.next
            }
        };
        match step {
            Step::Retry { attempt, delay_ms, .. } if plan.attempts.get(attempt as usize).is_some() => {
                st.metrics.upstream_retries.get_or_create(&upstream_label(&a, class)).inc();
                if plan.attempts[attempt as usize].target != a.target {
                    st.metrics.upstream_failovers.get_or_create(&upstream_label(&a, class)).inc();
                }
                if delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                }
                at = attempt as usize;
                last = Some((a, got, failure, now));
            }
            _ => match give_up(a, got, failure, now) {
                Ok(answer) => break answer,
                Err((now, msg)) => return Ok(bad_gateway(st, served, &now, err(StatusCode::BAD_GATEWAY, &msg))),
            },
        }
    };
    let provider = cfg.provider(&attempt.provider).ok_or_else(|| err(StatusCode::BAD_GATEWAY, "provider vanished"))?;
    let upstream = attempt.upstream_protocol;
    let upstream_model =
        (attempt.upstream_model != model || client == Protocol::Gemini).then_some(attempt.upstream_model);
    let mut extra = vec![Deferred::ToolsRequest { client, body: bytes.clone() }];
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
        routing: trace.clone(),
    };

    let (status, body, retry_after, retry_after_ms) = match got {
        Got::Stream(up) => {
            extra.push(Deferred::Tokens { client, request: bytes.clone(), answer: None });
            let ex = exchange(Answer::Stream(Bytes::new()));
            let mut resp = stream::respond(st.clone(), dims.clone(), res, served, extra, ex, head.include_usage, up);
            attempt_headers(&mut resp, &dims);
            return Ok(resp);
        }
        Got::Body { status, body, retry_after, retry_after_ms } => (status, body, retry_after, retry_after_ms),
    };
    let resp = if (200..300).contains(&status) {
        let out = served
            .call(
                st,
                &dims,
                plan::response_call(&ctx, upstream, client, &body, provider.profile.as_deref()),
                compat_mode,
            )
            .await;
        extra.push(Deferred::ToolsResponse { ctx: ctx.clone(), upstream, client, body: body.clone() });
        extra.push(Deferred::Tokens { client, request: bytes.clone(), answer: Some(body.clone()) });
        match open_envelope(&out) {
            Ok(raw) => {
                let json = ok_bytes(raw);
                (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], json).into_response()
            }
            Err(e) => err(
                StatusCode::BAD_GATEWAY,
                &format!("upstream {} sent a response that cannot be converted: {e}", provider.name),
            )
            .into_response(),
        }
    } else {
        let out = served
            .call(
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
                compat_mode,
            )
            .await;
        extra.push(Deferred::Tokens { client, request: bytes.clone(), answer: None });
        upstream_error(client, &out)
    };
    let mut kept = BTreeMap::new();
    for (k, v) in [("retry-after", &retry_after), ("retry-after-ms", &retry_after_ms)] {
        if let Some(v) = v {
            kept.insert(k.to_string(), v.clone());
        }
    }
    let ex = exchange(Answer::Response { status, body: body.clone(), headers: kept });
    let mut resp = served.finish(st, &dims, &res, extra, ex, resp);
    attempt_headers(&mut resp, &dims);
    Ok(resp)
}

/// The `routing.resolve` query, with the table as serialized at load.
#[derive(serde::Serialize)]
struct ResolveQuery<'a> {
    client_protocol: Protocol,
    model: &'a str,
    tenant: Option<&'a str>,
    table: &'a RawValue,
    health: shadowgate_core::routing::Health,
    seed: u64,
}

/// The `routing.next` query (the core's `NextRequest`, borrowed).
#[derive(serde::Serialize)]
struct NextQuery<'a> {
    plan: &'a Plan,
    failed: u32,
    status: Option<u16>,
    body: &'a str,
    phase: Phase,
    retry_after_ms: Option<u64>,
    attempts_made: u32,
    cooled: &'a [KeyRef],
    recent_failures: u32,
    retry: &'a RetryPolicy,
    cooldown: &'a CooldownPolicy,
    now_ms: u64,
    seed: u64,
}

/// How one attempt failed.
struct Failure {
    status: Option<u16>,
    /// The head of the error body, or the transport error.
    body: String,
    phase: Phase,
    retry_after_ms: Option<u64>,
}

/// What an attempt brought back.
enum Got {
    /// A whole answer (success or error).
    Body { status: u16, body: Bytes, retry_after: Option<String>, retry_after_ms: Option<String> },
    /// A success stream whose first bytes came (or that ended at once), on its key's slot.
    Stream(stream::Upstream),
}

/// The attempt that answers, what it brought back, and the request's dims as served.
type Answered = (Attempt, Got, Arc<Dims>);

/// No further attempt: the upstream's own error answer goes back (converted,
/// `Ok`), or, without one, the words of a 502 naming the failure.
fn give_up(a: Attempt, got: Option<Got>, failure: Failure, now: Arc<Dims>) -> Result<Answered, (Arc<Dims>, String)> {
    match got {
        Some(got @ Got::Body { .. }) => Ok((a, got, now)),
        _ => Err((
            now,
            match failure.phase {
                Phase::FirstByte => format!("upstream {} broke off its response: {}", a.provider, failure.body),
                _ => failure.body,
            },
        )),
    }
}

/// The request ends in `error` without an upstream answer; its dims are recorded.
fn bad_gateway(st: &AppState, served: Served, dims: &Arc<Dims>, error: ApiError) -> Response {
    served.submit(st, dims, None);
    let mut resp = error.into_response();
    attempt_headers(&mut resp, dims);
    resp
}

/// Longest head of an error body the core classifies.
const FAILURE_BODY: usize = 4096;

/// One upstream attempt on its key's slot: the failure (if any) and what came back.
async fn attempt_once(
    st: &AppState,
    provider: &ProviderConfig,
    a: &Attempt,
    body: Bytes,
    pass: &HeaderMap,
    stream: bool,
    slot_wait: Duration,
) -> (Option<Failure>, Option<Got>) {
    let connect = |body: String| Failure { status: None, body, phase: Phase::Connect, retry_after_ms: None };
    let Some(slot) = st.health.acquire(&a.provider, &a.key, slot_wait).await else {
        let msg = format!("no free slot on key {} within {} ms", a.key, slot_wait.as_millis());
        return (Some(connect(msg)), None);
    };
    let up_start = Instant::now();
    let up = match st.upstream.send(provider, &a.key, a.upstream_protocol, &a.upstream_model, body, pass, stream).await
    {
        Ok(up) => up,
        Err(e) => return (Some(connect(e.to_string())), None),
    };
    st.metrics.upstream_seconds.observe(up_start.elapsed().as_secs_f64());
    let status = up.status().as_u16();
    let header = |k: &str| up.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (retry_after, retry_after_ms) = (header("retry-after"), header("retry-after-ms"));
    let ok = (200..300).contains(&status);
    if ok && stream {
        let mut rest = up.bytes_stream().boxed();
        return match rest.next().await {
            Some(Err(e)) => {
                let f = Failure {
                    status: Some(status),
                    body: without_url(&e),
                    phase: Phase::FirstByte,
                    retry_after_ms: None,
                };
                (Some(f), None)
            }
            first => {
                let up = stream::Upstream {
                    first: first.and_then(Result::ok),
                    rest,
                    slot,
                    provider: a.provider.clone(),
                    key: a.key.clone(),
                };
                (None, Some(Got::Stream(up)))
            }
        };
    }
    let bytes = up.bytes().await;
    drop(slot);
    match bytes {
        Err(e) => {
            let phase = if ok { Phase::FirstByte } else { Phase::Response };
            let f = Failure { status: Some(status), body: without_url(&e), phase, retry_after_ms: None };
            (Some(f), None)
        }
        Ok(body) if ok => (None, Some(Got::Body { status, body, retry_after, retry_after_ms })),
        Ok(body) => {
            let head = String::from_utf8_lossy(&body[..body.len().min(FAILURE_BODY)]).into_owned();
            let wait = retry_after_ms
                .as_deref()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .or_else(|| retry_after.as_deref().and_then(retry_after_to_ms));
            let f = Failure { status: Some(status), body: head, phase: Phase::Response, retry_after_ms: wait };
            (Some(f), Some(Got::Body { status, body, retry_after, retry_after_ms }))
        }
    }
}

/// `retry-after` in ms: delay-seconds (fractions allowed), or an HTTP date from now.
fn retry_after_to_ms(v: &str) -> Option<u64> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).min(u64::MAX as f64) as u64);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now()).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    )
}

fn upstream_label(a: &Attempt, class: &str) -> UpstreamLabels {
    UpstreamLabels { provider: a.provider.clone(), key: a.key.clone(), class: class.into() }
}

/// `x-shadowgate-attempts` and `x-shadowgate-upstream` (provider and key name, never the key).
fn attempt_headers(resp: &mut Response, dims: &Dims) {
    let h = resp.headers_mut();
    h.insert("x-shadowgate-attempts", HeaderValue::from(dims.attempts));
    if let Ok(v) = HeaderValue::from_str(&dims.upstream) {
        h.insert("x-shadowgate-upstream", v);
    }
}

/// Every key of the route rests: 429 (or 503) with `retry-after`, in the client's protocol.
fn unavailable(client: Protocol, u: &shadowgate_core::routing::Unavailable) -> Response {
    let status = StatusCode::from_u16(u.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut resp = ApiError::new(client, status, &u.message).into_response();
    let secs = u.retry_after_ms.div_ceil(1000).max(1);
    resp.headers_mut().insert("retry-after", HeaderValue::from(secs));
    resp.headers_mut().insert("x-shadowgate-attempts", HeaderValue::from_static("0"));
    resp
}

/// The `ok` value of an envelope as bytes, without another copy.
fn ok_bytes(raw: Box<serde_json::value::RawValue>) -> Bytes {
    Bytes::from(Box::<str>::from(raw).into_boxed_bytes())
}

/// The converted upstream error, with status and retry-after.
fn upstream_error(client: Protocol, envelope: &[u8]) -> Response {
    let v: Value =
        open_envelope(envelope).ok().and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or(Value::Null);
    if v.is_null() {
        return ApiError::new(client, StatusCode::BAD_GATEWAY, "upstream error could not be converted").into_response();
    }
    let status = v["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], v["body"].to_string()).into_response();
    if let Some(r) = v["retry_after"].as_str().and_then(|r| HeaderValue::from_str(r).ok()) {
        resp.headers_mut().insert("retry-after", r);
    }
    resp
}
