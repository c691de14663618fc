//! OpenAI Responses event streams ⇄ canonical stream events.
//!
//! The decoder follows output items by `output_index` (and text parts by
//! `content_index`); built-in tool items have no canonical events and are
//! skipped (a same-protocol stream is passed through whole by the session).
//! The encoder writes the real event family with `sequence_number`s from 0,
//! ids derived from the context, and exactly one terminal event.

use super::event::{BlockKind, Delta, StreamEvent};
use crate::canonical::{StopReason, Usage};
use crate::compat::{
    ANTHROPIC_REDACTED, ANTHROPIC_SIGNATURE, decode_responses_usage, encode_responses_usage, responses_reasoning_item,
    responses_status, responses_stop_reason,
};
use crate::context::Context;
use crate::error::Result;
use crate::json;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Tool { args_seen: bool },
    Thinking { parts: u64 },
}

/// Decoder state of one Responses stream.
#[derive(Debug, Default)]
pub struct Decoder {
    started: bool,
    error_pending: bool,
    next_block: usize,
    /// (output_index, content_index) → (canonical block, kind); items other than messages use content index 0.
    open: BTreeMap<(u64, u64), (usize, Open)>,
    has_calls: bool,
    /// The last `sequence_number` seen, and the upstream's response id and model.
    last_seq: Option<u64>,
    response_id: Option<String>,
    model: String,
}

fn index_of(o: &Map<String, Value>, key: &str) -> Result<u64> {
    Ok(json::opt_u64(o, key, "")?.unwrap_or(0))
}

impl Decoder {
    /// The last sequence number, response id and model the upstream sent.
    pub fn position(&self) -> (Option<u64>, Option<&str>, &str) {
        (self.last_seq, self.response_id.as_deref(), &self.model)
    }

    fn open_block(&mut self, key: (u64, u64), kind: Open, block: BlockKind, out: &mut Vec<StreamEvent>) -> usize {
        let index = self.next_block;
        self.next_block = self.next_block.saturating_add(1);
        self.open.insert(key, (index, kind));
        out.push(StreamEvent::BlockStart { index, kind: block });
        index
    }

    fn close(&mut self, key: (u64, u64), out: &mut Vec<StreamEvent>) {
        if let Some((index, _)) = self.open.remove(&key) {
            out.push(StreamEvent::BlockStop { index });
        }
    }

    /// A text block for (output, content), opened if the upstream skipped `content_part.added`.
    fn text_block(&mut self, key: (u64, u64), out: &mut Vec<StreamEvent>) -> usize {
        match self.open.get(&key) {
            Some((i, _)) => *i,
            None => self.open_block(key, Open::Text, BlockKind::Text, out),
        }
    }

    /// Decodes one SSE `data` payload.
    pub fn decode(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<()> {
        let v = json::parse(data.as_bytes())?;
        let o = json::as_object(&v, "")?;
        if let Some(n) = json::opt_u64(o, "sequence_number", "")? {
            self.last_seq = Some(n);
        }
        let ty = json::req_str(o, "type", "")?;
        self.error_pending = ty == "error";
        match ty {
            "response.created" | "response.in_progress" | "response.queued" => {
                let r = json::opt_object(o, "response", "")?;
                if let Some(r) = r {
                    if let Some(id) = json::opt_str(r, "id", "/response")? {
                        self.response_id = Some(id.to_string());
                    }
                    if let Some(m) = json::opt_str(r, "model", "/response")? {
                        self.model = m.to_string();
                    }
                }
                if !self.started {
                    self.started = true;
                    out.push(StreamEvent::Start { model: self.model.clone(), usage: None });
                }
            }
            "response.output_item.added" => {
                self.ensure_started(out);
                let oi = index_of(o, "output_index")?;
                let item = json::as_object(json::required(o, "item", "")?, "/item")?;
                match json::req_str(item, "type", "/item")? {
                    "function_call" => {
                        self.has_calls = true;
                        let block = BlockKind::ToolUse {
                            id: json::req_str(item, "call_id", "/item")?.to_string(),
                            name: json::req_str(item, "name", "/item")?.to_string(),
                            extra: Map::new(),
                        };
                        let index = self.open_block((oi, 0), Open::Tool { args_seen: false }, block, out);
                        if let Some(a) = json::opt_str(item, "arguments", "/item")?.filter(|a| !a.is_empty()) {
                            self.open.insert((oi, 0), (index, Open::Tool { args_seen: true }));
                            out.push(StreamEvent::Delta { index, delta: Delta::ToolArgs(a.to_string()) });
                        }
                    }
                    "reasoning" => {
                        self.open_block((oi, 0), Open::Thinking { parts: 0 }, BlockKind::Thinking, out);
                    }
                    _ => {}
                }
            }
            "response.content_part.added" => {
                self.ensure_started(out);
                let key = (index_of(o, "output_index")?, index_of(o, "content_index")?);
                self.text_block(key, out);
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                self.ensure_started(out);
                let key = (index_of(o, "output_index")?, index_of(o, "content_index")?);
                let delta = json::req_str(o, "delta", "")?;
                let index = self.text_block(key, out);
                if !delta.is_empty() {
                    out.push(StreamEvent::Delta { index, delta: Delta::Text(delta.to_string()) });
                }
            }
            "response.content_part.done" => {
                let key = (index_of(o, "output_index")?, index_of(o, "content_index")?);
                self.close(key, out);
            }
            "response.function_call_arguments.delta" => {
                let key = (index_of(o, "output_index")?, 0);
                let delta = json::req_str(o, "delta", "")?;
                if let Some((index, Open::Tool { args_seen })) = self.open.get_mut(&key) {
                    *args_seen = true;
                    if !delta.is_empty() {
                        out.push(StreamEvent::Delta { index: *index, delta: Delta::ToolArgs(delta.to_string()) });
                    }
                }
            }
            "response.function_call_arguments.done" => {
                let key = (index_of(o, "output_index")?, 0);
                if let Some((index, Open::Tool { args_seen: args_seen @ false })) = self.open.get_mut(&key) {
                    *args_seen = true;
                    let a = json::opt_str(o, "arguments", "")?.unwrap_or("");
                    if !a.is_empty() {
                        out.push(StreamEvent::Delta { index: *index, delta: Delta::ToolArgs(a.to_string()) });
                    }
                }
            }
            "response.reasoning_summary_part.added" => {
                let key = (index_of(o, "output_index")?, 0);
                if let Some((index, Open::Thinking { parts })) = self.open.get_mut(&key) {
                    // Summaries are joined by a blank line, as the non-streaming decode joins them.
                    if *parts > 0 {
                        out.push(StreamEvent::Delta { index: *index, delta: Delta::Thinking("\n\n".into()) });
                    }
                    *parts = parts.saturating_add(1);
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let key = (index_of(o, "output_index")?, 0);
                let delta = json::req_str(o, "delta", "")?;
                if let Some((index, Open::Thinking { .. })) = self.open.get(&key)
                    && !delta.is_empty()
                {
                    out.push(StreamEvent::Delta { index: *index, delta: Delta::Thinking(delta.to_string()) });
                }
            }
            "response.output_item.done" => self.item_done(o, out)?,
            "response.completed" | "response.incomplete" => {
                self.ensure_started(out);
                let keys: Vec<(u64, u64)> = self.open.keys().copied().collect();
                for k in keys {
                    self.close(k, out);
                }
                let r = json::as_object(json::required(o, "response", "")?, "/response")?;
                let reason = match json::opt_object(r, "incomplete_details", "/response")? {
                    Some(d) => json::opt_str(d, "reason", "/response/incomplete_details")?,
                    None => None,
                };
                let status = json::opt_str(r, "status", "/response")?;
                let usage: Option<Usage> = json::opt_object(r, "usage", "/response")?
                    .map(|u| decode_responses_usage(u, "/response/usage"))
                    .transpose()?;
                out.push(StreamEvent::Finish {
                    stop_reason: Some(responses_stop_reason(status, reason, self.has_calls)),
                    stop_sequence: None,
                    usage,
                    extra: Map::new(),
                });
                out.push(StreamEvent::Done);
            }
            "response.failed" => {
                let r = json::opt_object(o, "response", "")?;
                let e = r.and_then(|r| r.get("error")).and_then(Value::as_object);
                let get = |k: &str| e.and_then(|e| e.get(k)).and_then(Value::as_str).unwrap_or("").to_string();
                out.push(StreamEvent::Error { kind: get("code"), message: get("message") });
            }
            "error" => {
                // The error's fields sit at the top level (or, in older streams, under `error`).
                let e = json::opt_object(o, "error", "")?.unwrap_or(o);
                let get = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let kind = if get("code").is_empty() { get("type") } else { get("code") };
                out.push(StreamEvent::Error { kind, message: get("message") });
            }
            // Built-in tool progress, annotations, `*.done` repeats of what the deltas said.
            _ => {}
        }
        Ok(())
    }

    fn ensure_started(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start { model: self.model.clone(), usage: None });
        }
    }

    fn item_done(&mut self, o: &Map<String, Value>, out: &mut Vec<StreamEvent>) -> Result<()> {
        let oi = index_of(o, "output_index")?;
        let item = json::as_object(json::required(o, "item", "")?, "/item")?;
        match (json::req_str(item, "type", "/item")?, self.open.get(&(oi, 0)).copied()) {
            ("function_call", Some((index, Open::Tool { args_seen: false }))) => {
                if let Some(a) = json::opt_str(item, "arguments", "/item")?.filter(|a| !a.is_empty()) {
                    out.push(StreamEvent::Delta { index, delta: Delta::ToolArgs(a.to_string()) });
                }
            }
            ("reasoning", Some((index, Open::Thinking { .. }))) => {
                if let Some(e) = json::opt_str(item, "encrypted_content", "/item")? {
                    if let Some(sig) = e.strip_prefix(ANTHROPIC_SIGNATURE) {
                        out.push(StreamEvent::Delta { index, delta: Delta::Signature(sig.to_string()) });
                    } else if let Some(data) = e.strip_prefix(ANTHROPIC_REDACTED) {
                        // Redacted thinking arrives whole: it replaces the open block.
                        self.open.remove(&(oi, 0));
                        out.push(StreamEvent::BlockStop { index });
                        let index = self.next_block;
                        self.next_block = self.next_block.saturating_add(1);
                        out.push(StreamEvent::BlockStart {
                            index,
                            kind: BlockKind::RedactedThinking { data: data.to_string() },
                        });
                        out.push(StreamEvent::BlockStop { index });
                    }
                }
            }
            _ => {}
        }
        let keys: Vec<(u64, u64)> = self.open.range((oi, 0)..=(oi, u64::MAX)).map(|(k, _)| *k).collect();
        for k in keys {
            self.close(k, out);
        }
        Ok(())
    }

    /// Whether the last event was an `error` with no terminal event after it yet.
    pub fn error_pending(&self) -> bool {
        self.error_pending
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Tool,
    Thinking,
    Redacted,
    /// A block with no Responses form (another protocol's server tools).
    Skip,
}

#[derive(Debug)]
struct Block {
    output_index: u64,
    item_id: String,
    kind: Kind,
    /// Text, arguments or reasoning so far.
    text: String,
    call_id: String,
    name: String,
    /// An Anthropic signature, or redacted data.
    secret: Option<String>,
}

/// Encoder state of one Responses client stream.
#[derive(Debug)]
pub struct Encoder {
    seq: u64,
    response_id: String,
    model: String,
    created: i64,
    started: bool,
    ended: bool,
    next_item: u64,
    blocks: BTreeMap<usize, Block>,
    /// Finished output items by `output_index`.
    output: BTreeMap<u64, Value>,
    stop: Option<StopReason>,
    usage: Option<Usage>,
}

impl Encoder {
    /// A new encoder; ids derive from `ctx`.
    pub fn new(ctx: &Context) -> Encoder {
        Encoder {
            seq: 0,
            response_id: ctx.response_id(),
            model: String::new(),
            created: ctx.created,
            started: false,
            ended: false,
            next_item: 0,
            blocks: BTreeMap::new(),
            output: BTreeMap::new(),
            stop: None,
            usage: None,
        }
    }

    /// Continues a stream the upstream began (same-protocol passthrough):
    /// later events follow its sequence numbers, response id and model.
    pub fn follow(&mut self, last_seq: Option<u64>, response_id: Option<&str>, model: &str) {
        self.started = true;
        self.seq = last_seq.map_or(0, |s| s.saturating_add(1));
        if let Some(id) = response_id {
            self.response_id = id.to_string();
        }
        self.model = model.to_string();
    }

    fn emit(&mut self, out: &mut String, ty: &str, mut body: Map<String, Value>) {
        let mut o = Map::with_capacity(body.len() + 2);
        o.insert("type".into(), json!(ty));
        o.insert("sequence_number".into(), json!(self.seq));
        o.append(&mut body);
        self.seq = self.seq.saturating_add(1);
        out.push_str("event: ");
        out.push_str(ty);
        out.push_str("\ndata: ");
        super::write_json(out, &o);
        out.push_str("\n\n");
    }

    fn response(&self, status: &str, incomplete: Value, error: Value) -> Value {
        json!({
            "id": self.response_id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": error,
            "incomplete_details": incomplete,
            "model": self.model,
            "output": self.output.values().cloned().collect::<Vec<_>>(),
            "usage": self.usage.as_ref().map(encode_responses_usage),
        })
    }

    fn start(&mut self, out: &mut String) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self.response("in_progress", Value::Null, Value::Null);
        self.emit(out, "response.created", obj([("response", r.clone())]));
        self.emit(out, "response.in_progress", obj([("response", r)]));
    }

    /// Encodes one canonical event.
    pub fn encode(&mut self, ev: &StreamEvent, ctx: &Context, out: &mut String) {
        if self.ended {
            return;
        }
        match ev {
            StreamEvent::Start { model, .. } => {
                if !self.started {
                    self.model = model.clone();
                }
                self.start(out);
            }
            StreamEvent::BlockStart { index, kind } => {
                self.start(out);
                self.block_start(*index, kind, ctx, out);
            }
            StreamEvent::Delta { index, delta } => self.delta(*index, delta, out),
            StreamEvent::BlockStop { index } => self.block_stop(*index, out),
            StreamEvent::Finish { stop_reason, usage, .. } => {
                self.stop = stop_reason.clone();
                if usage.is_some() {
                    self.usage = usage.clone();
                }
            }
            StreamEvent::Done => {
                self.start(out);
                let open: Vec<usize> = self.blocks.keys().copied().collect();
                for i in open {
                    self.block_stop(i, out);
                }
                let (status, incomplete) = responses_status(self.stop.as_ref());
                let r = self.response(status, incomplete, Value::Null);
                let ty = if status == "completed" { "response.completed" } else { "response.incomplete" };
                self.emit(out, ty, obj([("response", r)]));
                self.ended = true;
            }
            StreamEvent::Ping => {}
            StreamEvent::Error { kind, message } => {
                self.start(out);
                let code = if kind.is_empty() { Value::Null } else { json!(kind) };
                self.emit(
                    out,
                    "error",
                    obj([("code", code.clone()), ("message", json!(message)), ("param", Value::Null)]),
                );
                self.failed(kind, message, out);
            }
        }
    }

    /// The terminal `response.failed` event.
    pub fn failed(&mut self, kind: &str, message: &str, out: &mut String) {
        let error = json!({"code": if kind.is_empty() { "server_error" } else { kind }, "message": message});
        let r = self.response("failed", Value::Null, error);
        self.emit(out, "response.failed", obj([("response", r)]));
        self.ended = true;
    }

    fn block_start(&mut self, index: usize, bk: &BlockKind, ctx: &Context, out: &mut String) {
        let (kind, prefix) = match bk {
            BlockKind::Text => (Kind::Text, "msg"),
            BlockKind::ToolUse { .. } => (Kind::Tool, "fc"),
            BlockKind::Thinking => (Kind::Thinking, "rs"),
            BlockKind::RedactedThinking { .. } => (Kind::Redacted, "rs"),
            BlockKind::Raw(_) => (Kind::Skip, ""),
        };
        let mut block = Block {
            output_index: self.next_item,
            item_id: String::new(),
            kind,
            text: String::new(),
            call_id: String::new(),
            name: String::new(),
            secret: None,
        };
        if kind == Kind::Skip {
            self.blocks.insert(index, block);
            return;
        }
        block.item_id = ctx.item_id(prefix, self.next_item);
        self.next_item = self.next_item.saturating_add(1);
        let (oi, id) = (json!(block.output_index), json!(block.item_id));
        let item = match bk {
            BlockKind::Text => {
                json!({"id": id, "type": "message", "status": "in_progress", "role": "assistant", "content": []})
            }
            BlockKind::ToolUse { id: call_id, name, .. } => {
                block.call_id = call_id.clone();
                block.name = name.clone();
                json!({"id": id, "type": "function_call", "status": "in_progress", "arguments": "",
                    "call_id": call_id, "name": name})
            }
            BlockKind::RedactedThinking { data } => {
                block.secret = Some(data.clone());
                json!({"id": id, "type": "reasoning", "summary": []})
            }
            _ => json!({"id": id, "type": "reasoning", "summary": []}),
        };
        self.emit(out, "response.output_item.added", obj([("output_index", oi.clone()), ("item", item)]));
        match kind {
            Kind::Text => self.emit(
                out,
                "response.content_part.added",
                obj([
                    ("item_id", id),
                    ("output_index", oi),
                    ("content_index", json!(0)),
                    ("part", json!({"type": "output_text", "annotations": [], "text": ""})),
                ]),
            ),
            Kind::Thinking => self.emit(
                out,
                "response.reasoning_summary_part.added",
                obj([
                    ("item_id", id),
                    ("output_index", oi),
                    ("summary_index", json!(0)),
                    ("part", json!({"type": "summary_text", "text": ""})),
                ]),
            ),
            _ => {}
        }
        self.blocks.insert(index, block);
    }

    fn delta(&mut self, index: usize, delta: &Delta, out: &mut String) {
        let Some(block) = self.blocks.get_mut(&index) else { return };
        let (oi, id) = (json!(block.output_index), json!(block.item_id));
        let (ty, fields) = match (block.kind, delta) {
            (Kind::Text, Delta::Text(t)) if !t.is_empty() => {
                block.text.push_str(t);
                (
                    "response.output_text.delta",
                    obj([
                        ("item_id", id),
                        ("output_index", oi),
                        ("content_index", json!(0)),
                        ("delta", json!(t)),
                        ("logprobs", json!([])),
                    ]),
                )
            }
            (Kind::Tool, Delta::ToolArgs(a)) if !a.is_empty() => {
                block.text.push_str(a);
                (
                    "response.function_call_arguments.delta",
                    obj([("item_id", id), ("output_index", oi), ("delta", json!(a))]),
                )
            }
            (Kind::Thinking, Delta::Thinking(t)) if !t.is_empty() => {
                block.text.push_str(t);
                (
                    "response.reasoning_summary_text.delta",
                    obj([("item_id", id), ("output_index", oi), ("summary_index", json!(0)), ("delta", json!(t))]),
                )
            }
            (Kind::Thinking, Delta::Signature(s)) => {
                block.secret.get_or_insert_with(String::new).push_str(s);
                return;
            }
            _ => return,
        };
        self.emit(out, ty, fields);
    }

    fn block_stop(&mut self, index: usize, out: &mut String) {
        let Some(block) = self.blocks.remove(&index) else { return };
        let (oi, id) = (json!(block.output_index), json!(block.item_id));
        let item = match block.kind {
            Kind::Skip => return,
            Kind::Text => {
                let part = json!({"type": "output_text", "annotations": [], "text": block.text});
                self.emit(
                    out,
                    "response.output_text.done",
                    obj([
                        ("item_id", id.clone()),
                        ("output_index", oi.clone()),
                        ("content_index", json!(0)),
                        ("text", json!(block.text)),
                        ("logprobs", json!([])),
                    ]),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    obj([
                        ("item_id", id.clone()),
                        ("output_index", oi.clone()),
                        ("content_index", json!(0)),
                        ("part", part.clone()),
                    ]),
                );
                json!({"id": id, "type": "message", "status": "completed", "role": "assistant", "content": [part]})
            }
            Kind::Tool => {
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    obj([("item_id", id.clone()), ("output_index", oi.clone()), ("arguments", json!(block.text))]),
                );
                json!({"id": id, "type": "function_call", "status": "completed", "arguments": block.text,
                    "call_id": block.call_id, "name": block.name})
            }
            Kind::Thinking => {
                let part = json!({"type": "summary_text", "text": block.text});
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    obj([
                        ("item_id", id.clone()),
                        ("output_index", oi.clone()),
                        ("summary_index", json!(0)),
                        ("text", json!(block.text)),
                    ]),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.done",
                    obj([("item_id", id), ("output_index", oi.clone()), ("summary_index", json!(0)), ("part", part)]),
                );
                let secret = block.secret.as_deref().map(|s| (ANTHROPIC_SIGNATURE, s));
                responses_reasoning_item(block.item_id, &block.text, secret)
            }
            Kind::Redacted => {
                let secret = block.secret.as_deref().map(|s| (ANTHROPIC_REDACTED, s));
                responses_reasoning_item(block.item_id, "", secret)
            }
        };
        self.emit(out, "response.output_item.done", obj([("output_index", oi), ("item", item.clone())]));
        self.output.insert(block.output_index, item);
    }
}

fn obj<const N: usize>(fields: [(&str, Value); N]) -> Map<String, Value> {
    fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
