//! One client request: read and check the body, identify the tenant, resolve
//! the mode, route, convert the request, call the upstream, convert the
//! answer (or hand the stream to the pump), and queue the shadow job.

use super::app::AppState;
use super::error::ApiError;
use super::head::RequestHead;
use super::metrics::{RequestLabels, RuntimeLabels};
use super::mode::Mode;
use super::primary::{Served, module_mode};
use super::recorder::{Answer, Exchange};
use super::stream;
use super::tenant;
use super::upstream::without_url;
use crate::plan::{self, Deferred};
use crate::record::Dims;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use shadowgate_core::dispatch::open_envelope;
use shadowgate_core::{Context, Module, Protocol};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

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
    };
    let sticky = cfg
        .split_key_header
        .as_deref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| request_id.to_string(), |v| format!("key:{v}"));
    let mut served = Served::new(sticky);

    // Routing, under the mode known before the route is.
    let pre = Arc::new(dims.clone());
    let routing = served
        .call(
            st,
            &pre,
            plan::routing_call(client, &model, Some(&tenant.name), &st.route_table),
            module_mode(st, &base, Module::Routing),
        )
        .await;
    let target: Target = match open_envelope(&routing) {
        Ok(raw) => serde_json::from_str(raw.get()).unwrap_or_default(),
        Err(e) => return Err(err(StatusCode::NOT_FOUND, &e.message)),
    };
    let route_id = target.route_id;
    let route =
        cfg.routes.iter().find(|r| r.id == route_id).ok_or_else(|| err(StatusCode::NOT_FOUND, "route vanished"))?;
    let provider = cfg.provider(&route.provider).ok_or_else(|| err(StatusCode::BAD_GATEWAY, "provider vanished"))?;
    let upstream = provider.protocol;
    let res = tenant::resolve(cfg, &tenant, Some(route), header_mode)
        .map_err(|e| err(StatusCode::FORBIDDEN, &e.to_string()))?;
    label.mode = res.mode.map(|m| m.to_string()).unwrap_or_else(|| "stages".into());
    dims.route = route_id;
    dims.upstream_protocol = Some(upstream);
    dims.mode = label.mode.clone();
    dims.compat_profile = Dims::profile_version(provider.profile.as_deref(), upstream);
    let dims = Arc::new(dims);

    // A Gemini body has no model: the core gets the URL's.
    let upstream_model = target.upstream_model.or_else(|| (client == Protocol::Gemini).then(|| model.clone()));
    let converted = served
        .call(
            st,
            &dims,
            plan::request_call(
                client,
                upstream,
                &bytes,
                provider.profile.as_deref(),
                upstream_model.as_deref(),
                stream,
            ),
            module_mode(st, &res, Module::Compat),
        )
        .await;
    let upstream_body = match open_envelope(&converted) {
        Ok(raw) => ok_bytes(raw),
        Err(e) => return Err(err(StatusCode::BAD_REQUEST, &e.to_string())),
    };
    label.runtime = served.runtime.as_str().into();

    let mut pass = HeaderMap::new();
    for name in &cfg.pass_headers {
        if let (Ok(k), Some(v)) = (name.parse::<HeaderName>(), headers.get(name.as_str())) {
            pass.insert(k, v.clone());
        }
    }
    let up_start = Instant::now();
    let up = st
        .upstream
        .send(provider, upstream, upstream_model.as_deref().unwrap_or(&model), upstream_body, &pass, stream)
        .await
        .map_err(|e| err(StatusCode::BAD_GATEWAY, &e.to_string()))?;
    st.metrics.upstream_seconds.observe(up_start.elapsed().as_secs_f64());
    let status = up.status().as_u16();
    let retry = |k: &str| up.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (retry_after, retry_after_ms) = (retry("retry-after"), retry("retry-after-ms"));
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
    };

    if (200..300).contains(&status) && stream {
        extra.push(Deferred::Tokens { client, request: bytes.clone(), answer: None });
        let ex = exchange(Answer::Stream(Bytes::new()));
        return Ok(stream::respond(st.clone(), dims, res, served, extra, ex, head.include_usage, up));
    }
    let body = up.bytes().await.map_err(|e| {
        err(StatusCode::BAD_GATEWAY, &format!("upstream {} broke off its response: {}", provider.name, without_url(&e)))
    })?;
    let resp = if (200..300).contains(&status) {
        let out = served
            .call(
                st,
                &dims,
                plan::response_call(&ctx, upstream, client, &body, provider.profile.as_deref()),
                module_mode(st, &res, Module::Compat),
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
                module_mode(st, &res, Module::Compat),
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
    Ok(served.finish(st, &dims, &res, extra, ex, resp))
}

/// What the routing call answered (the fields the host uses).
#[derive(Debug, Default, serde::Deserialize)]
struct Target {
    #[serde(default)]
    route_id: String,
    #[serde(default)]
    upstream_model: Option<String>,
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
