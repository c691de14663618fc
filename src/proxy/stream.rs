//! The stream pump: upstream SSE in, converted client SSE out, one chunk at
//! a time through a stream session of the primary runtime. A wasm session
//! that fails mid-stream is replaced by a native one that replays the bytes
//! so far (explicit fallback). The whole upstream stream, up to
//! `max_stream_bytes`, becomes the shadow's input.

use super::app::AppState;
use super::metrics::ModuleRuntimeLabels;
use super::mode::{self, Resolution};
use super::primary::{Served, elapsed_us, module_mode, submit};
use super::recorder::{Answer, Exchange};
use super::shadow::ShadowCall;
use super::upstream::without_url;
use crate::plan::{self, ModuleCall};
use crate::record::Dims;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use shadowgate_core::Module;
use shadowgate_runtime::RuntimeKind;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The SSE text of a stream envelope (errors carry none: the session turns them into events).
fn sse_text(envelope: &[u8]) -> String {
    plan::sse_text(envelope).unwrap_or_default()
}

/// Answers with an event stream fed by a task that pumps `up` through a stream session.
#[allow(clippy::too_many_arguments)]
pub fn respond(
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
    let mode = module_mode(&st, &res, Module::Streaming);
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
                served.fall_back(&st, &dims, Module::Streaming, &e);
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
                    served.fall_back(&st, &dims, Module::Streaming, &e);
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
        let us = elapsed_us(start);
        st.metrics
            .module_seconds
            .get_or_create(&ModuleRuntimeLabels {
                module: Module::Streaming.as_str().into(),
                runtime: primary.as_str().into(),
            })
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
