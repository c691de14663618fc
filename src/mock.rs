//! `mock-upstream`: a fake provider speaking OpenAI Chat, OpenAI Responses,
//! Anthropic Messages and Gemini, for tests, benchmarks and the demo. Written against the protocols directly,
//! not through the core, so it cannot hide the core's mistakes.
//!
//! Scripts, chosen by the request header `x-mock-script` (default `text`):
//!
//! | script | answer |
//! | --- | --- |
//! | `text` | a short text answer |
//! | `tools` | two parallel tool calls, arguments streamed in fragments |
//! | `thinking` | reasoning (signed, for Anthropic) then text |
//! | `refusal` | a refusal |
//! | `max_tokens` | text cut off at the token limit |
//! | `rate_limit` | 429 with `retry-after: 2` |
//! | `server_error` | 500 |
//! | `slow` | the text answer, streamed with 40 ms between chunks |
//! | `disconnect` | a stream that breaks off mid-message |
//! | `cut` | a stream that breaks off before its first byte |
//! | `hold:<ms>` | the text answer after `<ms>` ms (for concurrency caps) |
//! | `fail:<s1>,<s2>,…[#tag]` | a sequence: the n-th request with this exact header gets `sn` (a status, `cut`, or `ok` for the text answer), whichever key it carries; the last repeats |
//!
//! Per-key behaviour: a key (bearer token, `x-api-key` or `x-goog-api-key`)
//! that contains `fail-<status>` always answers that status. `GET
//! /mock/stats` shows per key the requests seen and the most in flight at
//! once (until the response head; the whole answer for `hold`).
//!
//! With `--cases DIR`, the header `x-mock-case: <id>` answers with that
//! case's recorded `upstream_response` or `upstream_stream`.

use crate::case::Case;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    OpenAi,
    Anthropic,
    Responses,
    Gemini,
}

/// One scripted answer, protocol-neutral.
struct Script {
    thinking: Option<&'static str>,
    text: Option<&'static str>,
    tools: Vec<(&'static str, &'static str)>,
    stop: &'static str,
    output_tokens: u64,
}

fn script(name: &str) -> Option<Script> {
    let text = |t, stop, n| Script { thinking: None, text: Some(t), tools: vec![], stop, output_tokens: n };
    Some(match name {
        "text" | "slow" | "disconnect" | "cut" => {
            text("Shadow traffic lets you compare two runtimes on real requests without risk.", "end_turn", 14)
        }
        "max_tokens" => text("The migration has three phases. First, the shadow phase runs both", "max_tokens", 16),
        "refusal" => text("I can't help with that request.", "refusal", 8),
        "tools" => Script {
            thinking: None,
            text: Some("Checking both cities."),
            tools: vec![
                ("get_weather", r#"{"city": "Paris", "unit": "celsius"}"#),
                ("get_weather", r#"{"city": "Tokyo", "unit": "celsius"}"#),
            ],
            stop: "tool_use",
            output_tokens: 48,
        },
        "thinking" => Script {
            thinking: Some("1009 is not divisible by any prime up to 31, and 32 squared is 1024."),
            text: Some("Yes, 1009 is prime."),
            tools: vec![],
            stop: "end_turn",
            output_tokens: 60,
        },
        _ => return None,
    })
}

fn openai_finish(stop: &str) -> &'static str {
    match stop {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

fn rid(body: &[u8], n: u64) -> String {
    let d = Sha256::digest(body);
    format!("{}{n}", shadowgate_core::context::hex(&d[..8]))
}

fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c == ' ' && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn fragments(s: &str) -> Vec<String> {
    s.chars().collect::<Vec<_>>().chunks(9).map(|c| c.iter().collect()).collect()
}

fn input_tokens(req: &Value) -> u64 {
    (req.to_string().len() as u64 / 4).max(1)
}

fn non_streaming(wire: Wire, s: &Script, req: &Value, id: &str) -> Value {
    let model = req["model"].as_str().unwrap_or("mock-model");
    match wire {
        Wire::Anthropic => {
            let mut content = Vec::new();
            if let Some(t) = s.thinking {
                content.push(json!({"type": "thinking", "thinking": t, "signature": format!("sig-{id}")}));
            }
            if let Some(t) = s.text.filter(|_| s.stop != "refusal") {
                content.push(json!({"type": "text", "text": t}));
            }
            for (i, (name, args)) in s.tools.iter().enumerate() {
                let input: Value = serde_json::from_str(args).unwrap_or(json!({}));
                content.push(json!({"type": "tool_use", "id": format!("toolu_{id}{i}"), "name": name, "input": input}));
            }
            json!({"id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": model, "content": content,
                   "stop_reason": s.stop, "stop_sequence": null,
                   "usage": {"input_tokens": input_tokens(req), "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": s.output_tokens}})
        }
        Wire::Responses => responses_body(s, req, id, "completed", responses_output(s, id), true),
        Wire::Gemini => gemini_body(s, req, id, gemini_parts(s, id), true),
        Wire::OpenAi => {
            let mut msg =
                json!({"role": "assistant", "content": s.text.filter(|_| s.stop != "refusal"), "refusal": null});
            if s.stop == "refusal" {
                msg["refusal"] = json!(s.text);
            }
            if let Some(t) = s.thinking {
                msg["reasoning_content"] = json!(t);
            }
            if !s.tools.is_empty() {
                msg["tool_calls"] = s
                    .tools
                    .iter()
                    .enumerate()
                    .map(|(i, (name, args))| json!({"id": format!("call_{id}{i}"), "type": "function", "function": {"name": name, "arguments": args}}))
                    .collect();
            }
            let prompt = input_tokens(req);
            json!({"id": format!("chatcmpl-{id}"), "object": "chat.completion", "created": 1_763_800_000, "model": model,
                   "choices": [{"index": 0, "message": msg, "logprobs": null, "finish_reason": if s.stop == "refusal" { "stop" } else { openai_finish(s.stop) }}],
                   "usage": {"prompt_tokens": prompt, "completion_tokens": s.output_tokens, "total_tokens": prompt + s.output_tokens}})
        }
    }
}

/// The Gemini parts of a script (a signature on the first call, as Gemini 3 sends it).
fn gemini_parts(s: &Script, id: &str) -> Vec<Value> {
    let mut parts = Vec::new();
    if let Some(t) = s.thinking {
        parts.push(json!({"text": t, "thought": true}));
    }
    if let Some(t) = s.text.filter(|_| s.stop != "refusal") {
        parts.push(json!({"text": t}));
    }
    for (i, (name, args)) in s.tools.iter().enumerate() {
        let args: Value = serde_json::from_str(args).unwrap_or(json!({}));
        let mut p = json!({"functionCall": {"name": name, "args": args}});
        if i == 0 {
            p["thoughtSignature"] = json!(format!("c2lnLW{id}"));
        }
        parts.push(p);
    }
    parts
}

fn gemini_finish(stop: &str) -> &'static str {
    match stop {
        "max_tokens" => "MAX_TOKENS",
        "refusal" => "SAFETY",
        _ => "STOP",
    }
}

fn gemini_body(s: &Script, req: &Value, id: &str, parts: Vec<Value>, finish: bool) -> Value {
    let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    let mut v = json!({"candidates": [cand.clone()], "modelVersion": "mock-gemini", "responseId": format!("mock{id}")});
    if finish {
        cand["finishReason"] = json!(gemini_finish(s.stop));
        let prompt = input_tokens(req);
        v["candidates"] = json!([cand]);
        v["usageMetadata"] = json!({"promptTokenCount": prompt, "candidatesTokenCount": s.output_tokens,
                                    "totalTokenCount": prompt + s.output_tokens});
    }
    v
}

/// A Gemini stream: text in pieces, calls whole, the finish with usage; Gemini's framing.
fn gemini_events(s: &Script, req: &Value, id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let frame = |v: Value| format!("data: {v}\r\n\r\n");
    if let Some(t) = s.thinking {
        for w in words(t) {
            out.push(frame(gemini_body(s, req, id, vec![json!({"text": w, "thought": true})], false)));
        }
    }
    if let Some(t) = s.text.filter(|_| s.stop != "refusal") {
        for w in words(t) {
            out.push(frame(gemini_body(s, req, id, vec![json!({"text": w})], false)));
        }
    }
    let calls: Vec<Value> = gemini_parts(s, id).into_iter().filter(|p| p.get("functionCall").is_some()).collect();
    out.push(frame(gemini_body(s, req, id, calls, true)));
    out
}

/// The Responses output items of a script.
fn responses_output(s: &Script, id: &str) -> Vec<Value> {
    let mut output = Vec::new();
    if let Some(t) = s.thinking {
        output.push(
            json!({"id": format!("rs_{id}"), "type": "reasoning", "summary": [{"type": "summary_text", "text": t}]}),
        );
    }
    if let Some(t) = s.text {
        let part = if s.stop == "refusal" {
            json!({"type": "refusal", "refusal": t})
        } else {
            json!({"type": "output_text", "text": t, "annotations": [], "logprobs": []})
        };
        let status = if s.stop == "max_tokens" { "incomplete" } else { "completed" };
        output.push(json!({"id": format!("msg_{id}"), "type": "message", "status": status, "role": "assistant", "content": [part]}));
    }
    for (i, (name, args)) in s.tools.iter().enumerate() {
        output.push(json!({"id": format!("fc_{id}{i}"), "type": "function_call", "status": "completed",
                           "arguments": args, "call_id": format!("call_{id}{i}"), "name": name}));
    }
    output
}

fn responses_body(s: &Script, req: &Value, id: &str, status: &str, output: Vec<Value>, usage: bool) -> Value {
    let input = input_tokens(req);
    let (status, incomplete) = match (status, s.stop) {
        ("completed", "max_tokens") => ("incomplete", json!({"reason": "max_output_tokens"})),
        (st, _) => (st, Value::Null),
    };
    json!({"id": format!("resp_{id}"), "object": "response", "created_at": 1_763_800_000, "status": status,
           "error": null, "incomplete_details": incomplete, "model": req["model"].as_str().unwrap_or("mock-model"),
           "output": output, "parallel_tool_calls": true, "store": req["store"].as_bool().unwrap_or(true),
           "usage": if usage { json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": 0},
                                      "output_tokens": s.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                                      "total_tokens": input + s.output_tokens}) } else { Value::Null }})
}

/// A Responses stream: the event family with sequence numbers, as OpenAI sends it.
fn responses_events(s: &Script, req: &Value, id: &str) -> Vec<String> {
    let mut seq = 0u64;
    let mut out = Vec::new();
    let mut ev = |mut v: Value| {
        v["sequence_number"] = json!(seq);
        seq += 1;
        out.push(format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or("")));
    };
    let created = responses_body(s, req, id, "in_progress", vec![], false);
    ev(json!({"type": "response.created", "response": created}));
    ev(json!({"type": "response.in_progress", "response": created}));
    let items = responses_output(s, id);
    for (oi, item) in items.iter().enumerate() {
        let item_id = item["id"].clone();
        match item["type"].as_str() {
            Some("reasoning") => {
                ev(
                    json!({"type": "response.output_item.added", "output_index": oi, "item": {"id": item_id, "type": "reasoning", "summary": []}}),
                );
                ev(
                    json!({"type": "response.reasoning_summary_part.added", "item_id": item_id, "output_index": oi, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
                );
                let text = item["summary"][0]["text"].as_str().unwrap_or("");
                for w in words(text) {
                    ev(
                        json!({"type": "response.reasoning_summary_text.delta", "item_id": item_id, "output_index": oi, "summary_index": 0, "delta": w}),
                    );
                }
                ev(
                    json!({"type": "response.reasoning_summary_text.done", "item_id": item_id, "output_index": oi, "summary_index": 0, "text": text}),
                );
                ev(
                    json!({"type": "response.reasoning_summary_part.done", "item_id": item_id, "output_index": oi, "summary_index": 0, "part": item["summary"][0]}),
                );
            }
            Some("message") => {
                let part = &item["content"][0];
                let refusal = part["type"] == "refusal";
                ev(
                    json!({"type": "response.output_item.added", "output_index": oi, "item": {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
                );
                let empty = if refusal {
                    json!({"type": "refusal", "refusal": ""})
                } else {
                    json!({"type": "output_text", "text": "", "annotations": []})
                };
                ev(
                    json!({"type": "response.content_part.added", "item_id": item_id, "output_index": oi, "content_index": 0, "part": empty}),
                );
                let text = part[if refusal { "refusal" } else { "text" }].as_str().unwrap_or("");
                let kind = if refusal { "response.refusal" } else { "response.output_text" };
                for w in words(text) {
                    ev(
                        json!({"type": format!("{kind}.delta"), "item_id": item_id, "output_index": oi, "content_index": 0, "delta": w, "logprobs": []}),
                    );
                }
                let field = if refusal { "refusal" } else { "text" };
                ev(
                    json!({"type": format!("{kind}.done"), "item_id": item_id, "output_index": oi, "content_index": 0, field: text}),
                );
                ev(
                    json!({"type": "response.content_part.done", "item_id": item_id, "output_index": oi, "content_index": 0, "part": part}),
                );
            }
            _ => {
                let args = item["arguments"].as_str().unwrap_or("");
                let mut added = item.clone();
                added["arguments"] = json!("");
                added["status"] = json!("in_progress");
                ev(json!({"type": "response.output_item.added", "output_index": oi, "item": added}));
                for f in fragments(args) {
                    ev(
                        json!({"type": "response.function_call_arguments.delta", "item_id": item_id, "output_index": oi, "delta": f}),
                    );
                }
                ev(
                    json!({"type": "response.function_call_arguments.done", "item_id": item_id, "output_index": oi, "arguments": args}),
                );
            }
        }
        ev(json!({"type": "response.output_item.done", "output_index": oi, "item": item}));
    }
    let done = responses_body(s, req, id, "completed", items, true);
    let ty = if done["status"] == "incomplete" { "response.incomplete" } else { "response.completed" };
    ev(json!({"type": ty, "response": done}));
    out
}

fn anthropic_events(s: &Script, req: &Value, id: &str) -> Vec<String> {
    let ev = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or(""));
    let model = req["model"].as_str().unwrap_or("mock-model");
    let mut out = vec![ev(
        json!({"type": "message_start", "message": {"id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input_tokens(req), "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}}}),
    )];
    let mut index = 0;
    if let Some(t) = s.thinking {
        out.push(ev(json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": ""}})));
        for w in words(t) {
            out.push(ev(json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": w}})));
        }
        out.push(ev(json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": format!("sig-{id}")}})));
        out.push(ev(json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    if let Some(t) = s.text.filter(|_| s.stop != "refusal") {
        out.push(ev(
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        ));
        out.push(ev(json!({"type": "ping"})));
        for w in words(t) {
            out.push(ev(
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": w}}),
            ));
        }
        out.push(ev(json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    for (i, (name, args)) in s.tools.iter().enumerate() {
        out.push(ev(json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": format!("toolu_{id}{i}"), "name": name, "input": {}}})));
        for f in fragments(args) {
            out.push(ev(json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": f}})));
        }
        out.push(ev(json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    out.push(ev(json!({"type": "message_delta", "delta": {"stop_reason": s.stop, "stop_sequence": null}, "usage": {"output_tokens": s.output_tokens}})));
    out.push(ev(json!({"type": "message_stop"})));
    out
}

fn openai_events(s: &Script, req: &Value, id: &str) -> Vec<String> {
    let model = req["model"].as_str().unwrap_or("mock-model").to_string();
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": format!("chatcmpl-{id}"), "object": "chat.completion.chunk", "created": 1_763_800_000, "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        )
    };
    let mut out = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    if let Some(t) = s.thinking {
        out.extend(words(t).into_iter().map(|w| chunk(json!({"reasoning_content": w}), Value::Null)));
    }
    if let Some(t) = s.text {
        let field = if s.stop == "refusal" { "refusal" } else { "content" };
        out.extend(words(t).into_iter().map(|w| chunk(json!({field: w}), Value::Null)));
    }
    for (i, (name, args)) in s.tools.iter().enumerate() {
        out.push(chunk(json!({"tool_calls": [{"index": i, "id": format!("call_{id}{i}"), "type": "function", "function": {"name": name, "arguments": ""}}]}), Value::Null));
        for f in fragments(args) {
            out.push(chunk(json!({"tool_calls": [{"index": i, "function": {"arguments": f}}]}), Value::Null));
        }
    }
    out.push(chunk(json!({}), json!(if s.stop == "refusal" { "stop" } else { openai_finish(s.stop) })));
    if req["stream_options"]["include_usage"].as_bool() == Some(true) {
        let prompt = input_tokens(req);
        out.push(format!("data: {}\n\n", json!({"id": format!("chatcmpl-{id}"), "object": "chat.completion.chunk", "created": 1_763_800_000, "model": model, "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": s.output_tokens, "total_tokens": prompt + s.output_tokens}})));
    }
    out.push("data: [DONE]\n\n".into());
    out
}

fn error(wire: Wire, status: StatusCode, kind: &str, message: &str) -> Response {
    let body = match wire {
        Wire::OpenAi | Wire::Responses => {
            json!({"error": {"message": message, "type": kind, "param": null, "code": kind}})
        }
        Wire::Gemini => {
            let status_name = match status.as_u16() {
                400 => "INVALID_ARGUMENT",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                _ => "INTERNAL",
            };
            let mut e = json!({"error": {"code": status.as_u16(), "message": message, "status": status_name}});
            if status == StatusCode::TOO_MANY_REQUESTS {
                e["error"]["details"] =
                    json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]);
            }
            e
        }
        Wire::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
    };
    let mut r = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    // Gemini says when to retry in the body (RetryInfo), not in a header.
    if status == StatusCode::TOO_MANY_REQUESTS && wire != Wire::Gemini {
        r.headers_mut().insert("retry-after", "2".parse().expect("static header"));
    }
    r
}

fn sse(chunks: Vec<String>, delay: Duration, break_after: Option<usize>) -> Response {
    let stream = futures_util::stream::unfold(
        (chunks.into_iter().enumerate(), delay, break_after),
        |(mut it, delay, brk)| async move {
            let (i, c) = it.next()?;
            if !delay.is_zero() && i > 0 {
                tokio::time::sleep(delay).await;
            }
            if brk == Some(i) {
                return Some((Err(std::io::Error::other("mock upstream disconnect")), (it, delay, brk)));
            }
            Some((Ok::<Bytes, std::io::Error>(Bytes::from(c)), (it, delay, brk)))
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .expect("static response")
}

/// Per key: requests seen, in flight now, most in flight at once.
#[derive(Debug, Default, Clone, Copy)]
struct KeyStats {
    requests: u64,
    inflight: u64,
    max_inflight: u64,
}

/// Mock state: the recorded cases by id, script positions and key stats.
#[derive(Default)]
pub struct Mock {
    cases: HashMap<String, Case>,
    /// Position in each `fail:` sequence, by header value.
    positions: std::sync::Mutex<HashMap<String, usize>>,
    stats: std::sync::Mutex<std::collections::BTreeMap<String, KeyStats>>,
}

impl Mock {
    /// A mock answering with `cases` on `x-mock-case`.
    pub fn new(cases: Vec<Case>) -> Mock {
        Mock { cases: cases.into_iter().map(|c| (c.id.clone(), c)).collect(), ..Mock::default() }
    }

    /// The next entry of the `fail:` sequence `script`.
    fn step(&self, script: &str, steps: &[&str]) -> String {
        let mut p = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        let n = p.entry(script.to_string()).or_insert(0);
        let step = steps.get(*n).or(steps.last()).copied().unwrap_or("ok");
        *n += 1;
        step.trim().to_string()
    }

    fn enter(&self, key: &str) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let k = stats.entry(key.to_string()).or_default();
        k.requests += 1;
        k.inflight += 1;
        k.max_inflight = k.max_inflight.max(k.inflight);
    }

    fn leave(&self, key: &str) {
        if let Some(k) = self.stats.lock().unwrap_or_else(|e| e.into_inner()).get_mut(key) {
            k.inflight = k.inflight.saturating_sub(1);
        }
    }

    fn stats_json(&self) -> Value {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats
            .iter()
            .map(|(k, s)| (k.clone(), json!({"requests": s.requests, "max_inflight": s.max_inflight})))
            .collect::<serde_json::Map<String, Value>>()
            .into()
    }
}

/// The key a request carries (`-` for none).
fn credential(headers: &HeaderMap) -> String {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    h("x-api-key")
        .or_else(|| h("x-goog-api-key"))
        .or_else(|| h("authorization").map(|a| a.strip_prefix("Bearer ").unwrap_or(a)))
        .unwrap_or("-")
        .to_string()
}

/// An error of `status` in the wire's shape (a 429 asks to retry after 1 s).
fn status_error(wire: Wire, status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = match (wire, status) {
        (Wire::Anthropic, 429) => "rate_limit_error",
        (Wire::Anthropic, 401) => "authentication_error",
        (Wire::Anthropic, 529) => "overloaded_error",
        (Wire::Anthropic, 500..) => "api_error",
        (Wire::Anthropic, _) => "invalid_request_error",
        (_, 429) => "rate_limit_exceeded",
        (_, 401) => "invalid_api_key",
        (_, 500..) => "server_error",
        _ => "invalid_request_error",
    };
    let mut r = error(wire, code, kind, &format!("The mock upstream answered {status}."));
    if status == 429 {
        r.headers_mut().insert("retry-after", "1".parse().expect("static header"));
    }
    r
}

/// Answers one request, counting it in flight on its key.
async fn counted(wire: Wire, mock: Arc<Mock>, headers: HeaderMap, body: Bytes, path_stream: Option<bool>) -> Response {
    let key = credential(&headers);
    mock.enter(&key);
    let resp = answer(wire, mock.clone(), &key, headers, body, path_stream).await;
    mock.leave(&key);
    resp
}

/// Answers one request; `path_stream` is what a Gemini URL says of streaming.
async fn answer(
    wire: Wire,
    mock: Arc<Mock>,
    key: &str,
    headers: HeaderMap,
    body: Bytes,
    path_stream: Option<bool>,
) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(wire, StatusCode::BAD_REQUEST, "invalid_request_error", "request body is not JSON");
    };
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(id) = header("x-mock-case") {
        let Some(case) = mock.cases.get(&id) else {
            return error(wire, StatusCode::NOT_FOUND, "not_found_error", &format!("no recorded case {id:?}"));
        };
        if let Some(s) = &case.upstream_stream {
            return sse(s.split_inclusive("\n\n").map(str::to_string).collect(), Duration::ZERO, None);
        }
        if let Some(r) = &case.upstream_response {
            let body = match &r.body {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let mut resp = (StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK), body).into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("static header"));
            for (k, v) in &r.headers {
                if let (Ok(k), Ok(v)) = (k.parse::<header::HeaderName>(), v.parse()) {
                    resp.headers_mut().insert(k, v);
                }
            }
            return resp;
        }
    }
    if let Some(status) = key.split("fail-").nth(1).and_then(|s| s.get(..3)).and_then(|s| s.parse::<u16>().ok()) {
        return status_error(wire, status);
    }
    let mut name = header("x-mock-script").unwrap_or_else(|| "text".into());
    if let Some(steps) = name.strip_prefix("fail:") {
        let steps: Vec<&str> = steps.split('#').next().unwrap_or("").split(',').collect();
        match mock.step(&name, &steps).as_str() {
            "ok" => name = "text".into(),
            "cut" => name = "cut".into(),
            other => match other.parse::<u16>() {
                Ok(status) => return status_error(wire, status),
                Err(_) => {
                    let msg = format!("bad x-mock-script step {other:?}");
                    return error(wire, StatusCode::BAD_REQUEST, "invalid_request_error", &msg);
                }
            },
        }
    }
    if let Some(ms) = name.strip_prefix("hold:") {
        let Ok(ms) = ms.parse::<u64>() else {
            return error(wire, StatusCode::BAD_REQUEST, "invalid_request_error", "hold:<ms> needs a number");
        };
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
        name = "text".into();
    }
    match name.as_str() {
        "rate_limit" => {
            return error(
                wire,
                StatusCode::TOO_MANY_REQUESTS,
                if wire == Wire::Anthropic { "rate_limit_error" } else { "rate_limit_exceeded" },
                "Rate limit reached; retry after 2 seconds.",
            );
        }
        "server_error" => {
            return error(
                wire,
                StatusCode::INTERNAL_SERVER_ERROR,
                if wire == Wire::Anthropic { "api_error" } else { "server_error" },
                "The mock upstream failed.",
            );
        }
        _ => {}
    }
    let Some(s) = script(&name) else {
        return error(
            wire,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("unknown x-mock-script {name:?}"),
        );
    };
    let id = rid(&body, 0);
    if !path_stream.unwrap_or(req["stream"].as_bool() == Some(true)) {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            non_streaming(wire, &s, &req, &id).to_string(),
        )
            .into_response();
    }
    let chunks = match wire {
        Wire::Anthropic => anthropic_events(&s, &req, &id),
        Wire::OpenAi => openai_events(&s, &req, &id),
        Wire::Responses => responses_events(&s, &req, &id),
        Wire::Gemini => gemini_events(&s, &req, &id),
    };
    let (delay, brk) = match name.as_str() {
        "slow" => (Duration::from_millis(40), None),
        // Paced so the first half reaches the client before the break.
        "disconnect" => (Duration::from_millis(5), Some(chunks.len() / 2)),
        "cut" => (Duration::ZERO, Some(0)),
        _ => (Duration::ZERO, None),
    };
    sse(chunks, delay, brk)
}

/// The mock's router.
pub fn app(mock: Arc<Mock>) -> Router {
    Router::new()
        .route(
            "/mock/stats",
            axum::routing::get(|State(m): State<Arc<Mock>>| async move { axum::Json(m.stats_json()) }),
        )
        .route(
            "/v1/chat/completions",
            post(|State(m): State<Arc<Mock>>, h: HeaderMap, b: Bytes| counted(Wire::OpenAi, m, h, b, None)),
        )
        .route(
            "/v1/messages",
            post(|State(m): State<Arc<Mock>>, h: HeaderMap, b: Bytes| counted(Wire::Anthropic, m, h, b, None)),
        )
        .route(
            "/v1/responses",
            post(|State(m): State<Arc<Mock>>, h: HeaderMap, b: Bytes| counted(Wire::Responses, m, h, b, None)),
        )
        .route(
            "/v1beta/models/{target}",
            post(|State(m): State<Arc<Mock>>, Path(target): Path<String>, h: HeaderMap, b: Bytes| async move {
                match target.rsplit_once(':').map(|(_, method)| method) {
                    Some("generateContent") => counted(Wire::Gemini, m, h, b, Some(false)).await,
                    Some("streamGenerateContent") => counted(Wire::Gemini, m, h, b, Some(true)).await,
                    _ => error(Wire::Gemini, StatusCode::NOT_FOUND, "not_found", &format!("no method in {target:?}")),
                }
            }),
        )
        .route(
            "/v1/models/{target}",
            post(|State(m): State<Arc<Mock>>, Path(target): Path<String>, h: HeaderMap, b: Bytes| async move {
                match target.rsplit_once(':').map(|(_, method)| method) {
                    Some("generateContent") => counted(Wire::Gemini, m, h, b, Some(false)).await,
                    Some("streamGenerateContent") => counted(Wire::Gemini, m, h, b, Some(true)).await,
                    _ => error(Wire::Gemini, StatusCode::NOT_FOUND, "not_found", &format!("no method in {target:?}")),
                }
            }),
        )
        .with_state(mock)
}

/// Serves the mock upstream with `cases` on `addr` in a background task; returns the bound address.
pub async fn spawn(cases: Vec<Case>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app(Arc::new(Mock::new(cases)))).await });
    Ok(bound)
}

/// Serves the mock upstream with `cases` on `addr` until SIGTERM or SIGINT.
pub async fn serve(addr: SocketAddr, cases: Vec<Case>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("listening on {addr}: {e}")))?;
    tracing::info!(addr = %listener.local_addr()?, cases = cases.len(), "mock upstream serving");
    axum::serve(listener, app(Arc::new(Mock::new(cases)))).with_graceful_shutdown(crate::signal::shutdown()).await
}
