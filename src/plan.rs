//! The module calls one exchange makes, and how to run and compare them: the
//! same plan serves the shadow path, replay and the noise probe.

use crate::case::Case;
use crate::diff::{DiffResult, Differ, Scope};
use serde_json::{Value, json};
use shadowgate_core::{Context, Module, Protocol};
use shadowgate_runtime::{Runtime, RuntimeError, frame};

/// Which of a module's calls: the key of recorded outputs, the dispatch op and the module in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// `routing.resolve`: the attempt plan.
    RoutingResolve,
    /// `routing.next`: what follows a failed attempt.
    RoutingNext,
    /// `compat.request`: client request → upstream request.
    CompatRequest,
    /// `compat.response`: upstream response → client response.
    CompatResponse,
    /// `compat.error`: upstream error → client error.
    CompatError,
    /// `tools.canonicalize` of the client request.
    ToolsRequest,
    /// `tools.canonicalize` of the upstream response.
    ToolsResponse,
    /// A stream session over the whole upstream stream.
    Stream,
    /// `tokenizer.count`.
    TokenizerCount,
}

impl Call {
    /// The module it exercises.
    pub const fn module(self) -> Module {
        match self {
            Call::RoutingResolve | Call::RoutingNext => Module::Routing,
            Call::CompatRequest | Call::CompatResponse | Call::CompatError => Module::Compat,
            Call::ToolsRequest | Call::ToolsResponse => Module::Tools,
            Call::Stream => Module::Streaming,
            Call::TokenizerCount => Module::Tokenizer,
        }
    }

    /// The name recorded outputs are keyed by (`compat.request`, `tools.response`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Call::RoutingResolve => "routing.resolve",
            Call::RoutingNext => "routing.next",
            Call::CompatRequest => "compat.request",
            Call::CompatResponse => "compat.response",
            Call::CompatError => "compat.error",
            Call::ToolsRequest => "tools.request",
            Call::ToolsResponse => "tools.response",
            Call::Stream => "streaming.stream",
            Call::TokenizerCount => "tokenizer.count",
        }
    }

    /// The dispatch op, or `stream` for a stream session.
    pub const fn op(self) -> &'static str {
        match self {
            Call::ToolsRequest | Call::ToolsResponse => "tools.canonicalize",
            Call::Stream => "stream",
            other => other.name(),
        }
    }
}

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
    /// Which call.
    pub call: Call,
    /// Input bytes (for streams: the session options).
    pub input: bytes::Bytes,
    /// For streams: the upstream bytes to feed.
    pub stream: Option<bytes::Bytes>,
    /// Output shape.
    pub kind: OutputKind,
    /// Scope for the ruleset.
    pub scope: Scope,
}

impl ModuleCall {
    /// The module it exercises.
    pub fn module(&self) -> Module {
        self.call.module()
    }
}

fn scope(module: Module, protocol: Protocol, kind: &str) -> Scope {
    Scope { module, protocol, kind: kind.into() }
}

/// Appends the strings of `v` that carry text (see [`tokenizer_text`]).
fn walk_text(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(a) => a.iter().for_each(|x| walk_text(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                if matches!(k.as_str(), "content" | "text" | "system" | "output") || x.is_array() || x.is_object() {
                    walk_text(x, out);
                }
            }
        }
        _ => {}
    }
}

fn text_of(request: &Value) -> String {
    let mut out = String::new();
    // Chat and Messages requests, and Responses ones (`input`, `instructions`).
    for key in ["messages", "system", "input", "instructions"] {
        walk_text(&request[key], &mut out);
    }
    out
}

fn json_call(call: Call, header: Value, payload: &[u8], kind: &str, protocol: Protocol) -> ModuleCall {
    ModuleCall {
        call,
        input: frame(&header, payload).into(),
        stream: None,
        kind: OutputKind::Json,
        scope: scope(call.module(), protocol, kind),
    }
}

/// `routing.resolve` of a query (request, route table, health, seed: the
/// core's `RouteRequest`, serialized by the caller).
pub fn routing_call(client: Protocol, query: &[u8]) -> ModuleCall {
    json_call(Call::RoutingResolve, json!({}), query, "route", client)
}

/// `routing.next` of a query (plan, failed attempt, failure: the core's `NextRequest`).
pub fn next_call(client: Protocol, query: &[u8]) -> ModuleCall {
    json_call(Call::RoutingNext, json!({}), query, "route", client)
}

/// The key each call's output is recorded under: its name, and `#2`, `#3`, …
/// for later calls of the same name (a request may fail over more than once).
pub fn output_keys(calls: &[ModuleCall]) -> Vec<String> {
    let mut seen = std::collections::HashMap::new();
    calls
        .iter()
        .map(|c| {
            let n = seen.entry(c.call.name()).and_modify(|n| *n += 1).or_insert(1);
            if *n == 1 { c.call.name().to_string() } else { format!("{}#{n}", c.call.name()) }
        })
        .collect()
}

/// `compat.request`: client request → upstream request.
pub fn request_call(
    client: Protocol,
    upstream: Protocol,
    body: &[u8],
    profile: Option<&str>,
    model: Option<&str>,
    stream: bool,
) -> ModuleCall {
    let mut h = json!({"from": client.as_str(), "to": upstream.as_str(), "profile": profile, "model": model});
    // A Gemini body does not say whether it streams; its URL did.
    if client == Protocol::Gemini {
        h["stream"] = json!(stream);
    }
    json_call(Call::CompatRequest, h, body, "request", upstream)
}

/// `compat.response`: upstream response → client response.
pub fn response_call(
    ctx: &Context,
    upstream: Protocol,
    client: Protocol,
    body: &[u8],
    profile: Option<&str>,
) -> ModuleCall {
    let h = json!({"ctx": ctx, "from": upstream.as_str(), "to": client.as_str(), "profile": profile});
    json_call(Call::CompatResponse, h, body, "response", client)
}

/// `compat.error`: upstream error → client error.
pub fn error_call(
    upstream: Protocol,
    client: Protocol,
    status: u16,
    body: &str,
    retry_after: Option<&str>,
    retry_after_ms: Option<&str>,
) -> ModuleCall {
    let input = json!({"status": status, "body": body, "retry_after": retry_after, "retry_after_ms": retry_after_ms});
    let h = json!({"from": upstream.as_str(), "to": client.as_str()});
    json_call(Call::CompatError, h, input.to_string().as_bytes(), "error", client)
}

/// `tools.canonicalize` of a request (kind `request`) or a response (kind `response`, needs `ctx`).
pub fn tools_call(ctx: Option<&Context>, from: Protocol, client: Protocol, kind: &str, body: &[u8]) -> ModuleCall {
    let call = if kind == "response" { Call::ToolsResponse } else { Call::ToolsRequest };
    json_call(call, json!({"ctx": ctx, "from": from.as_str(), "kind": kind}), body, "tools", client)
}

/// `tokenizer.count` of a text.
pub fn tokenizer_call(client: Protocol, text: &str) -> ModuleCall {
    json_call(Call::TokenizerCount, json!({}), text.as_bytes(), "tokens", client)
}

/// The stream session options of a stream conversion.
pub fn stream_options(ctx: &Context, upstream: Protocol, client: Protocol, include_usage: bool) -> Vec<u8> {
    json!({"ctx": ctx, "from": upstream.as_str(), "to": client.as_str(), "include_usage": include_usage})
        .to_string()
        .into_bytes()
}

/// A stream conversion of recorded upstream bytes.
pub fn stream_call(
    ctx: &Context,
    upstream: Protocol,
    client: Protocol,
    include_usage: bool,
    upstream_bytes: bytes::Bytes,
) -> ModuleCall {
    ModuleCall {
        call: Call::Stream,
        input: stream_options(ctx, upstream, client, include_usage).into(),
        stream: Some(upstream_bytes),
        kind: OutputKind::Stream(client),
        scope: scope(Module::Streaming, client, "stream"),
    }
}

/// The text a request (and an answer) carries, for the tokenizer call.
pub fn tokenizer_text(request: &Value, answer: Option<&Value>) -> String {
    let mut text = text_of(request);
    if let Some(a) = answer {
        walk_text(a, &mut text);
    }
    text
}

/// A call compared but not needed to serve: planned on the request path from
/// cheap handles (the bodies are shared [`bytes::Bytes`]) and built by the
/// shadow worker, so a request whose module has no shadow pays nothing for it.
#[derive(Debug, Clone)]
pub enum Deferred {
    /// `tools.canonicalize` of the client request.
    ToolsRequest {
        /// Client protocol.
        client: Protocol,
        /// The client's request body.
        body: bytes::Bytes,
    },
    /// `tools.canonicalize` of the upstream response.
    ToolsResponse {
        /// The request's context.
        ctx: Context,
        /// Upstream protocol.
        upstream: Protocol,
        /// Client protocol.
        client: Protocol,
        /// The upstream response body.
        body: bytes::Bytes,
    },
    /// `tokenizer.count` of the request's text (and the answer's, if any).
    Tokens {
        /// Client protocol.
        client: Protocol,
        /// The client's request body.
        request: bytes::Bytes,
        /// The upstream response body, for a successful whole response.
        answer: Option<bytes::Bytes>,
    },
}

impl Deferred {
    /// The module it exercises.
    pub fn module(&self) -> Module {
        match self {
            Deferred::ToolsRequest { .. } | Deferred::ToolsResponse { .. } => Module::Tools,
            Deferred::Tokens { .. } => Module::Tokenizer,
        }
    }

    /// The call, exactly as the request path used to build it.
    pub fn build(&self) -> ModuleCall {
        match self {
            Deferred::ToolsRequest { client, body } => tools_call(None, *client, *client, "request", body),
            Deferred::ToolsResponse { ctx, upstream, client, body } => {
                tools_call(Some(ctx), *upstream, *client, "response", body)
            }
            Deferred::Tokens { client, request, answer } => {
                let request = serde_json::from_slice(request).unwrap_or(Value::Null);
                let answer: Option<Value> = answer.as_ref().and_then(|a| serde_json::from_slice(a).ok());
                tokenizer_call(*client, &tokenizer_text(&request, answer.as_ref()))
            }
        }
    }
}

/// Whether an OpenAI client asked for the final usage chunk.
pub fn include_usage(request: &Value) -> bool {
    request["stream_options"]["include_usage"].as_bool().unwrap_or(false)
}

/// The calls of one case, in module order: routing, compat, tools, streaming, tokenizer.
pub fn plan(case: &Case, ctx: &Context) -> Vec<ModuleCall> {
    let (client, upstream) = (case.client_protocol, case.upstream_protocol);
    let request = serde_json::to_vec(&case.request).unwrap_or_default();
    let model = case.request["model"].as_str().unwrap_or("");
    let mut calls = routing_calls(case, client, model);
    calls.extend([
        request_call(
            client,
            upstream,
            &request,
            case.profile.as_deref(),
            case.upstream_model.as_deref(),
            case.upstream_stream.is_some(),
        ),
        tools_call(None, client, client, "request", &request),
    ]);
    let mut answer = None;
    if let Some(r) = &case.upstream_response {
        let body = match &r.body {
            Value::String(s) => s.clone().into_bytes(),
            v => serde_json::to_vec(v).unwrap_or_default(),
        };
        if (200..300).contains(&r.status) {
            answer = Some(&r.body);
            calls.push(response_call(ctx, upstream, client, &body, case.profile.as_deref()));
            calls.push(tools_call(Some(ctx), upstream, client, "response", &body));
        } else {
            let h = |k: &str| r.headers.get(k).map(String::as_str);
            calls.push(error_call(
                upstream,
                client,
                r.status,
                &String::from_utf8_lossy(&body),
                h("retry-after"),
                h("retry-after-ms"),
            ));
        }
    }
    if let Some(s) = &case.upstream_stream {
        calls.push(stream_call(ctx, upstream, client, include_usage(&case.request), s.clone().into()));
    }
    calls.push(tokenizer_call(client, &tokenizer_text(&case.request, answer)));
    calls
}

/// The routing calls of a case: the recorded `routing.resolve` and
/// `routing.next` queries, or (for a case recorded without them) a one-route
/// table that sends the request where the case says it went.
fn routing_calls(case: &Case, client: Protocol, model: &str) -> Vec<ModuleCall> {
    if let Some(r) = &case.routing {
        let mut calls = vec![routing_call(client, r.resolve.to_string().as_bytes())];
        calls.extend(r.next.iter().map(|q| next_call(client, q.to_string().as_bytes())));
        return calls;
    }
    let ctx = case.context();
    let query = json!({
        "client_protocol": client.as_str(), "model": model, "tenant": case.tenant,
        "table": {
            "routes": [{"id": case.route.clone().unwrap_or_else(|| "case".into()), "model": model,
                        "targets": [{"provider": "recorded", "upstream_model": case.upstream_model}]}],
            "providers": [{"name": "recorded", "protocol": case.upstream_protocol.as_str(),
                           "keys": [{"name": shadowgate_core::routing::NO_KEY}]}],
            "retry": {"retry_on": [], "max_attempts": 1, "backoff_base_ms": 0, "backoff_max_ms": 0,
                      "retry_after_cap_ms": 0},
            "cooldown": {"rate_limited_ms": 0, "server_error_ms": 0, "server_errors": 1, "timeout_ms": 0,
                         "auth_ms": 0, "quota_ms": 0},
        },
        "health": {"now_ms": ctx.created.saturating_mul(1000)},
        "seed": ctx.id_seed,
    });
    vec![routing_call(client, query.to_string().as_bytes())]
}

/// What `rt` outputs for every call of `case` (under its context), by
/// [`output_keys`]: the recorded primary outputs of a case row. A runtime
/// error is kept as its message.
pub fn outputs(rt: &dyn Runtime, case: &Case) -> std::collections::BTreeMap<String, String> {
    let calls = plan(case, &case.context());
    output_keys(&calls)
        .into_iter()
        .zip(&calls)
        .map(|(key, call)| {
            let out = execute(rt, call).unwrap_or_else(|e| format!("runtime error: {e}").into_bytes());
            (key, String::from_utf8_lossy(&out).into_owned())
        })
        .collect()
}

/// Largest piece of a recorded stream fed in one call: re-chunking never
/// changes the output, so the shadow path feeds in large pieces.
pub const FEED_PIECE: usize = 64 << 10;

/// The client SSE text a stream envelope carries (`feed`: a string; `close`:
/// `{"out": …}`), or the error of an error envelope.
pub fn sse_text(envelope: &[u8]) -> Result<String, Value> {
    let v: Value = serde_json::from_slice(envelope).unwrap_or(Value::Null);
    match (&v["ok"], v.get("err")) {
        (Value::String(s), _) => Ok(s.clone()),
        (Value::Object(o), _) => Ok(o.get("out").and_then(Value::as_str).unwrap_or("").to_string()),
        (_, Some(e)) => Err(e.clone()),
        _ => Ok(String::new()),
    }
}

/// Runs one call; returns the bytes to compare (the SSE text for streams).
pub fn execute(rt: &dyn Runtime, call: &ModuleCall) -> Result<Vec<u8>, RuntimeError> {
    let Some(upstream) = &call.stream else { return rt.call(call.call.op(), &call.input) };
    let mut session = rt.open_stream(&call.input)?;
    let mut out = Vec::new();
    let mut push = |env: &[u8]| match sse_text(env) {
        Ok(text) => out.extend_from_slice(text.as_bytes()),
        Err(e) => out.extend_from_slice(format!(": shadowgate-error {e}\n\n").as_bytes()),
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
