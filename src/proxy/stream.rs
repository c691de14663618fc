//! The stream pump: upstream SSE in, converted client SSE out, one chunk at
//! a time through a stream session of the primary runtime. A wasm session
//! that fails mid-stream is replaced by a native one that replays the bytes
//! so far (explicit fallback). The whole upstream stream, up to
//! `max_stream_bytes`, becomes the shadow's input.

use super::app::AppState;
use super::metrics::ModuleRuntimeLabels;
use super::metrics::UpstreamLabels;
use super::mode::{self, Resolution};
use super::primary::{Served, module_mode, on_pool};
use super::recorder::{Answer, Exchange};
use super::routing::Slot;
use super::shadow::ShadowCall;
use super::upstream::without_url;
use crate::plan::{self, Deferred};
use crate::record::Dims;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use shadowgate_core::Module;
use shadowgate_core::routing::FailureClass;
use shadowgate_runtime::{RuntimeError, RuntimeKind, Stream};
use std::sync::Arc;
use std::time::Instant;

/// The SSE text of a stream envelope (errors carry none: the session turns them into events).
fn sse_text(envelope: &[u8]) -> String {
    plan::sse_text(envelope).unwrap_or_default()
}

/// What a stream keeps for its shadow: the upstream bytes and the client
/// output, up to `cap` upstream bytes. Past the cap the stream is not
/// shadowed, so both copies are dropped and nothing more is kept.
#[derive(Debug)]
pub struct StreamCopy {
    cap: usize,
    upstream: Vec<u8>,
    output: String,
    over_cap: bool,
}

impl StreamCopy {
    /// An empty copy that keeps up to `cap` upstream bytes.
    pub fn new(cap: usize) -> StreamCopy {
        StreamCopy { cap, upstream: Vec::new(), output: String::new(), over_cap: false }
    }

    /// Keeps an upstream chunk; false once the cap is passed.
    pub fn upstream(&mut self, chunk: &[u8]) -> bool {
        if !self.over_cap && self.upstream.len().saturating_add(chunk.len()) > self.cap {
            self.over_cap = true;
            self.upstream = Vec::new();
            self.output = String::new();
        }
        if !self.over_cap {
            self.upstream.extend_from_slice(chunk);
        }
        !self.over_cap
    }

    /// Keeps client output (nothing once the cap is passed).
    pub fn output(&mut self, text: &str) {
        if !self.over_cap {
            self.output.push_str(text);
        }
    }

    /// The upstream bytes before the last chunk kept (for a native session to replay).
    pub fn before_last(&self, last: usize) -> &[u8] {
        &self.upstream[..self.upstream.len().saturating_sub(last)]
    }

    /// Whether the cap was passed.
    #[cfg(test)]
    fn over_cap(&self) -> bool {
        self.over_cap
    }

    /// Bytes held.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.upstream.capacity() + self.output.capacity()
    }

    /// The upstream bytes and the client output, if the cap was never passed.
    pub fn into_parts(self) -> Option<(Vec<u8>, String)> {
        (!self.over_cap).then_some((self.upstream, self.output))
    }
}

/// A success stream from the upstream: its first chunk (already read, so a
/// failure before it could still be retried), the rest, and the key's slot,
/// held until the stream ends.
pub struct Upstream {
    /// The first chunk; none when the stream ended at once.
    pub first: Option<Bytes>,
    /// The chunks after it.
    pub rest: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    /// The key's slot.
    pub slot: Slot,
    /// Provider name.
    pub provider: String,
    /// Key name.
    pub key: String,
}

/// The primary's stream session: a wasm one is fed on the primary pool, a native one inline.
struct Session {
    inner: Box<dyn Stream>,
    on_pool: bool,
}

impl Session {
    /// Feeds `chunk`: the session back with the envelope, or the failure (the
    /// session is then spent: failed, or lost by a busy pool).
    async fn feed(self, st: &AppState, chunk: Bytes) -> Result<(Session, Vec<u8>), RuntimeError> {
        let on_pool = self.on_pool;
        let feed = move || {
            let mut s = self;
            s.inner.feed(&chunk).map(|env| (s, env))
        };
        if !on_pool {
            return feed();
        }
        st.offload.run(feed).await.unwrap_or_else(|busy| Err(RuntimeError::Unavailable(busy.to_string())))
    }

    /// Ends the session.
    async fn close(self, st: &AppState) -> Result<Vec<u8>, RuntimeError> {
        if !self.on_pool {
            return self.inner.close();
        }
        let inner = self.inner;
        st.offload
            .run(move || inner.close())
            .await
            .unwrap_or_else(|busy| Err(RuntimeError::Unavailable(busy.to_string())))
    }
}

/// Answers with an event stream fed by a task that pumps `up` through a stream session.
#[allow(clippy::too_many_arguments)]
pub fn respond(
    st: Arc<AppState>,
    dims: Arc<Dims>,
    res: Resolution,
    mut served: Served,
    extra: Vec<Deferred>,
    mut exchange: Exchange,
    include_usage: bool,
    up: Upstream,
) -> Response {
    let (ctx, upstream, client) = (exchange.ctx.clone(), exchange.upstream, exchange.client);
    let mode = module_mode(&st, &res, Module::Streaming);
    let rt = mode::runtimes(mode, &served.sticky);
    let options = plan::stream_options(&ctx, upstream, client, include_usage);
    let runtime = served.runtime;
    let fallback = served.fallback;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let task_st = st.clone();
    let in_flight = st.stream_started();
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let st = task_st;
        let mut copy = StreamCopy::new(st.config.shadow.max_stream_bytes);
        let mut primary = rt.primary;
        if primary == RuntimeKind::Wasm && !st.breakers.allow(Module::Streaming) {
            let open = RuntimeError::Unavailable("circuit open for streaming".into());
            served.fall_back(&st, &dims, Module::Streaming, &open);
            primary = RuntimeKind::Native;
        }
        // The primary's own conversion time: the session calls, not the waits for upstream bytes.
        let mut conversion = std::time::Duration::ZERO;
        let start = Instant::now();
        let native = |st: &AppState| Session {
            inner: st.rts.native.open_stream(&options).expect("the native runtime opens streams"),
            on_pool: false,
        };
        let mut session = match primary {
            RuntimeKind::Native => native(&st),
            RuntimeKind::Wasm => {
                let opts = options.clone();
                match on_pool(&st, move |rt| rt.open_stream(&opts)).await {
                    Ok(inner) => Session { inner, on_pool: true },
                    Err(e) => {
                        st.breakers.failure(Module::Streaming, &e);
                        served.fall_back(&st, &dims, Module::Streaming, &e);
                        primary = RuntimeKind::Native;
                        native(&st)
                    }
                }
            }
        };
        conversion += start.elapsed();
        let Upstream { first, rest, slot, provider, key } = up;
        let mut body = futures_util::stream::iter(first.map(Ok)).chain(rest);
        let mut client_gone = false;
        let mut failed = None;
        loop {
            let chunk = match body.next().await {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    // Bytes reached the client: never retried; the session's close says why.
                    tracing::warn!(request_id = %dims.request_id, error = %without_url(&e), "upstream stream broke off");
                    failed = Some(FailureClass::MidStream);
                    break;
                }
                None => break,
            };
            let kept = copy.upstream(&chunk);
            let fed = Instant::now();
            let env = match session.feed(&st, chunk.clone()).await {
                Ok((s, env)) => {
                    session = s;
                    env
                }
                Err(e) => {
                    // Explicit fallback: a native session replays what came so far, and
                    // only its output for the new bytes goes to the client.
                    st.breakers.failure(Module::Streaming, &e);
                    served.fall_back(&st, &dims, Module::Streaming, &e);
                    primary = RuntimeKind::Native;
                    session = native(&st);
                    if !kept {
                        break;
                    }
                    let _ = session.inner.feed(copy.before_last(chunk.len()));
                    session.inner.feed(&chunk).unwrap_or_default()
                }
            };
            conversion += fed.elapsed();
            let text = sse_text(&env);
            copy.output(&text);
            if !text.is_empty() && tx.send(Ok(Bytes::from(text))).await.is_err() {
                client_gone = true;
                break;
            }
        }
        drop(body);
        drop(slot);
        st.health.outcome(&provider, &key, failed);
        let class = failed.map_or("ok", FailureClass::as_str).into();
        st.metrics.upstream_attempts.get_or_create(&UpstreamLabels { provider, key, class }).inc();
        let closed = Instant::now();
        let on_pool = session.on_pool;
        let last = match session.close(&st).await {
            Ok(env) => {
                if on_pool {
                    st.breakers.success(Module::Streaming);
                }
                sse_text(&env)
            }
            Err(e) => {
                st.breakers.failure(Module::Streaming, &e);
                String::new()
            }
        };
        conversion += closed.elapsed();
        copy.output(&last);
        if !client_gone && !last.is_empty() {
            let _ = tx.send(Ok(Bytes::from(last))).await;
        }
        drop(tx);
        let us = u64::try_from(conversion.as_micros()).unwrap_or(u64::MAX);
        st.metrics
            .module_seconds
            .get_or_create(&ModuleRuntimeLabels {
                module: Module::Streaming.as_str().into(),
                runtime: primary.as_str().into(),
            })
            .observe(us as f64 / 1e6);
        let mut whole = None;
        match copy.into_parts().filter(|_| !client_gone) {
            // Without the whole upstream stream there is nothing to replay faithfully.
            None => {
                st.metrics.shadow_dropped.inc();
            }
            Some((recorded, output)) => {
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
        }
        served.extra(&st, &res, extra);
        served.submit(&st, &dims, whole);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_over_the_cap_keeps_nothing_more() {
        let mut c = StreamCopy::new(100);
        assert!(c.upstream(&[b'a'; 60]));
        c.output(&"x".repeat(500));
        assert_eq!(c.before_last(60).len(), 0);
        assert!(!c.upstream(&[b'b'; 60]), "120 bytes are over the cap");
        assert!(c.over_cap());
        for _ in 0..1000 {
            c.upstream(&[b'c'; 1000]);
            c.output(&"y".repeat(1000));
        }
        assert_eq!(c.held(), 0, "neither the upstream bytes nor the client output are kept past the cap");
        assert!(c.into_parts().is_none());
    }

    #[test]
    fn a_stream_under_the_cap_keeps_both_sides() {
        let mut c = StreamCopy::new(100);
        assert!(c.upstream(b"event: a\n\n") && c.upstream(b"event: b\n\n"));
        c.output("data: 1\n\n");
        assert_eq!(c.before_last(10), b"event: a\n\n");
        let (up, out) = c.into_parts().unwrap();
        assert_eq!((up.as_slice(), out.as_str()), (&b"event: a\n\nevent: b\n\n"[..], "data: 1\n\n"));
    }
}
