//! The module calls one exchange makes, and how to run and compare them: the
//! same plan serves the shadow path, replay and the noise probe.

use crate::case::Case;
use crate::diff::{DiffResult, Differ, Scope};
use crate::runtime::{Runtime, RuntimeError, frame};
use serde_json::{Value, json};
use shadowgate_core::{Context, Protocol};

/// How a call's output is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// A JSON envelope.
    Json,
    /// Client SSE text of this protocol.
    Stream(Protocol),
}

/// One module call.
#[derive(Debug, Clone)]
pub struct ModuleCall {
    /// The module it exercises.
    pub module: &'static str,
    /// Dispatch op, or `stream` for a stream session.
    pub op: &'static str,
    /// Input bytes (for streams: the session options).
    pub input: Vec<u8>,
    /// For streams: the upstream bytes to feed.
    pub stream: Option<Vec<u8>>,
    /// Output shape.
    pub kind: OutputKind,
    /// Scope for the ruleset.
    pub scope: Scope,
}

fn scope(module: &str, protocol: Protocol, kind: &str) -> Scope {
    Scope { module: module.into(), protocol: protocol.as_str().into(), kind: kind.into() }
}

fn text_of(request: &Value) -> String {
    let mut out = String::new();
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => {
                for (k, x) in o {
                    if matches!(k.as_str(), "content" | "text" | "system") || x.is_array() || x.is_object() {
                        walk(x, out);
                    }
                }
            }
            _ => {}
        }
    }
    walk(&request["messages"], &mut out);
    walk(&request["system"], &mut out);
    out
}

/// The calls of one case, in module order: routing, compat, tools, streaming, tokenizer.
pub fn plan(case: &Case, ctx: &Context) -> Vec<ModuleCall> {
    let (client, upstream) = (case.client(), case.upstream());
    let (c, u) = (client.as_str(), upstream.as_str());
    let request = serde_json::to_vec(&case.request).unwrap_or_default();
    let model = case.request["model"].as_str().unwrap_or("").to_string();
    let mut calls = Vec::new();
    let routes = json!({
        "client_protocol": c, "model": model, "tenant": case.tenant,
        "routes": [{"id": case.route.clone().unwrap_or_else(|| "case".into()), "model": model, "provider": "recorded",
                    "upstream_protocol": u, "upstream_model": case.upstream_model}],
    });
    calls.push(ModuleCall {
        module: "routing",
        op: "routing.resolve",
        input: frame(&json!({}), routes.to_string().as_bytes()),
        stream: None,
        kind: OutputKind::Json,
        scope: scope("routing", client, "route"),
    });
    calls.push(ModuleCall {
        module: "compat",
        op: "compat.request",
        input: frame(&json!({"from": c, "to": u, "model": case.upstream_model}), &request),
        stream: None,
        kind: OutputKind::Json,
        scope: scope("compat", upstream, "request"),
    });
    calls.push(ModuleCall {
        module: "tools",
        op: "tools.canonicalize",
        input: frame(&json!({"from": c, "kind": "request"}), &request),
        stream: None,
        kind: OutputKind::Json,
        scope: scope("tools", client, "tools"),
    });
    let mut answer_text = String::new();
    if let Some(r) = &case.upstream_response {
        let body = match &r.body {
            Value::String(s) => s.clone().into_bytes(),
            v => serde_json::to_vec(v).unwrap_or_default(),
        };
        if (200..300).contains(&r.status) {
            answer_text = text_of(&json!({"messages": r.body}));
            calls.push(ModuleCall {
                module: "compat",
                op: "compat.response",
                input: frame(&json!({"ctx": ctx, "from": u, "to": c}), &body),
                stream: None,
                kind: OutputKind::Json,
                scope: scope("compat", client, "response"),
            });
            calls.push(ModuleCall {
                module: "tools",
                op: "tools.canonicalize",
                input: frame(&json!({"ctx": ctx, "from": u, "kind": "response"}), &body),
                stream: None,
                kind: OutputKind::Json,
                scope: scope("tools", client, "tools"),
            });
        } else {
            let input = json!({
                "status": r.status, "body": String::from_utf8_lossy(&body),
                "retry_after": r.headers.get("retry-after"), "retry_after_ms": r.headers.get("retry-after-ms"),
            });
            calls.push(ModuleCall {
                module: "compat",
                op: "compat.error",
                input: frame(&json!({"from": u, "to": c}), input.to_string().as_bytes()),
                stream: None,
                kind: OutputKind::Json,
                scope: scope("compat", client, "error"),
            });
        }
    }
    if let Some(s) = &case.upstream_stream {
        let include_usage = case.request["stream_options"]["include_usage"].as_bool().unwrap_or(false);
        calls.push(ModuleCall {
            module: "streaming",
            op: "stream",
            input: json!({"ctx": ctx, "from": u, "to": c, "include_usage": include_usage}).to_string().into_bytes(),
            stream: Some(s.clone().into_bytes()),
            kind: OutputKind::Stream(client),
            scope: scope("streaming", client, "stream"),
        });
    }
    let tokens = text_of(&case.request) + &answer_text;
    calls.push(ModuleCall {
        module: "tokenizer",
        op: "tokenizer.count",
        input: frame(&json!({}), tokens.as_bytes()),
        stream: None,
        kind: OutputKind::Json,
        scope: scope("tokenizer", client, "tokens"),
    });
    calls
}

/// Largest piece of a recorded stream fed in one call: re-chunking never
/// changes the output, so the shadow path feeds in large pieces.
pub const FEED_PIECE: usize = 64 << 10;

/// Runs one call; returns the bytes to compare (the SSE text for streams).
pub fn execute(rt: &dyn Runtime, call: &ModuleCall) -> Result<Vec<u8>, RuntimeError> {
    let Some(upstream) = &call.stream else { return rt.call(call.op, &call.input) };
    let mut session = rt.open_stream(&call.input)?;
    let mut out = Vec::new();
    let mut push = |env: &[u8]| {
        let v: Value = serde_json::from_slice(env).unwrap_or(Value::Null);
        match (&v["ok"], v.get("err")) {
            (Value::String(s), _) => out.extend_from_slice(s.as_bytes()),
            (Value::Object(o), _) => {
                out.extend_from_slice(o.get("out").and_then(Value::as_str).unwrap_or("").as_bytes())
            }
            (_, Some(e)) => out.extend_from_slice(format!(": shadowgate-error {e}\n\n").as_bytes()),
            _ => {}
        }
    };
    for piece in upstream.chunks(FEED_PIECE) {
        push(&session.feed(piece)?);
    }
    push(&session.close()?);
    Ok(out)
}

/// The `ok` value of an envelope, or the whole envelope for an error.
fn comparable(envelope: &[u8]) -> &[u8] {
    const PREFIX: &[u8] = b"{\"ok\":";
    if envelope.starts_with(PREFIX) && envelope.ends_with(b"}") {
        &envelope[PREFIX.len()..envelope.len() - 1]
    } else {
        envelope
    }
}

/// Compares two outputs of `call`.
pub fn compare(differ: &Differ, call: &ModuleCall, left: &[u8], right: &[u8]) -> DiffResult {
    match call.kind {
        OutputKind::Json => differ.compare_json(&call.scope, comparable(left), comparable(right)),
        OutputKind::Stream(p) => differ.compare_sse(&call.scope, p, left, right),
    }
}
