//! OpenAI chat completion chunk streams ⇄ canonical stream events.

use super::event::{BlockKind, Delta, StreamEvent};
use crate::canonical::{StopReason, Usage};
use crate::compat::{decode_openai_usage, encode_openai_usage};
use crate::context::Context;
use crate::error::{CoreError, Result};
use crate::json;
use crate::protocol::Protocol;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool(u64),
}

/// Decoder state for one choice of an OpenAI chunk stream (choice 0 by default).
#[derive(Debug, Default)]
pub struct Decoder {
    /// The choice (`choices[].index`) this decoder follows.
    choice: u64,
    /// Other choices seen and not yet reported (choice 0's decoder only).
    new_choices: Vec<u64>,
    known_choices: std::collections::BTreeSet<u64>,
    started: bool,
    finished: bool,
    next_block: usize,
    open: Option<(Open, usize)>,
    /// OpenAI tool-call index → whether its block is still open.
    tools_seen: BTreeMap<u64, bool>,
    stop: Option<StopReason>,
    usage: Option<Usage>,
}

impl Decoder {
    /// A decoder that follows choice `index` of a stream with several (`n > 1`).
    pub fn for_choice(index: u64) -> Decoder {
        Decoder { choice: index, ..Decoder::default() }
    }

    /// Choices other than this decoder's seen since the last call (in order of appearance).
    pub fn take_new_choices(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.new_choices)
    }

    /// Decodes one SSE `data` payload.
    pub fn decode(&mut self, data: &str, ctx: &Context, out: &mut Vec<StreamEvent>) -> Result<()> {
        if data.trim() == "[DONE]" {
            return self.done(out);
        }
        let v = json::parse(data.as_bytes())?;
        let o = json::as_object(&v, "")?;
        if let Some(e) = json::field(o, "error") {
            let get = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            out.push(StreamEvent::Error { kind: get("type"), message: get("message") });
            return Ok(());
        }
        if let Some(u) = json::opt_object(o, "usage", "")? {
            self.usage = Some(decode_openai_usage(u, "/usage")?);
        }
        let choices = json::opt_array(o, "choices", "")?.map(Vec::as_slice).unwrap_or(&[]);
        let mut mine = None;
        for (i, c) in choices.iter().enumerate() {
            let index = match c.as_object() {
                Some(c) => json::opt_u64(c, "index", &format!("/choices/{i}"))?.unwrap_or(0),
                None => 0,
            };
            if index == self.choice {
                mine = mine.or(Some(c));
            } else if self.choice == 0 && self.known_choices.insert(index) {
                self.new_choices.push(index);
            }
        }
        // Chunks with none of this choice carry usage, provider annotations (Azure
        // prompt filters) or other choices.
        let Some(choice) = mine else { return Ok(()) };
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                model: json::opt_str(o, "model", "")?.unwrap_or("").to_string(),
                usage: None,
            });
        }
        let c = json::as_object(choice, "/choices/0")?;
        if let Some(d) = json::opt_object(c, "delta", "/choices/0")? {
            self.decode_delta(d, ctx, out)?;
        }
        if let Some(f) = json::opt_str(c, "finish_reason", "/choices/0")? {
            self.close(out);
            self.stop = Some(StopReason::from_openai(f));
        }
        Ok(())
    }

    fn decode_delta(&mut self, d: &Map<String, Value>, ctx: &Context, out: &mut Vec<StreamEvent>) -> Result<()> {
        const P: &str = "/choices/0/delta";
        for key in ["reasoning_content", "reasoning"] {
            if let Some(t) = json::opt_str(d, key, P)?.filter(|t| !t.is_empty()) {
                let index = self.ensure(Open::Thinking, BlockKind::Thinking, out);
                out.push(StreamEvent::Delta { index, delta: Delta::Thinking(t.to_string()) });
                break;
            }
        }
        if let Some(blocks) = json::opt_array(d, "thinking_blocks", P)? {
            for b in blocks {
                if let Some(s) = b.get("signature").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                    let index = self.ensure(Open::Thinking, BlockKind::Thinking, out);
                    out.push(StreamEvent::Delta { index, delta: Delta::Signature(s.to_string()) });
                } else if let Some(data) = b.get("data").and_then(Value::as_str) {
                    self.close(out);
                    let index = self.next_block;
                    self.next_block += 1;
                    out.push(StreamEvent::BlockStart {
                        index,
                        kind: BlockKind::RedactedThinking { data: data.to_string() },
                    });
                    out.push(StreamEvent::BlockStop { index });
                }
            }
        }
        for key in ["content", "refusal"] {
            if let Some(t) = json::opt_str(d, key, P)?.filter(|t| !t.is_empty()) {
                let index = self.ensure(Open::Text, BlockKind::Text, out);
                out.push(StreamEvent::Delta { index, delta: Delta::Text(t.to_string()) });
            }
        }
        if let Some(calls) = json::opt_array(d, "tool_calls", P)? {
            for (i, call) in calls.iter().enumerate() {
                let cp = format!("{P}/tool_calls/{i}");
                let c = json::as_object(call, &cp)?;
                let tool_index = json::opt_u64(c, "index", &cp)?.unwrap_or(i as u64);
                let f = json::opt_object(c, "function", &cp)?;
                let index = match self.tools_seen.get(&tool_index) {
                    None => {
                        let id = match json::opt_str(c, "id", &cp)? {
                            Some(id) if !id.is_empty() => id.to_string(),
                            _ => ctx.tool_call_id(tool_index),
                        };
                        let name = match f {
                            Some(f) => json::opt_str(f, "name", &format!("{cp}/function"))?.unwrap_or("").to_string(),
                            None => String::new(),
                        };
                        self.close(out);
                        self.tools_seen.insert(tool_index, true);
                        self.ensure(Open::Tool(tool_index), BlockKind::ToolUse { id, name, extra: Map::new() }, out)
                    }
                    Some(_) => match self.open {
                        Some((Open::Tool(t), index)) if t == tool_index => index,
                        _ => {
                            return Err(CoreError::stream(format!(
                                "arguments for tool call {tool_index} arrived after another block started (interleaved tool calls)"
                            )));
                        }
                    },
                };
                if let Some(args) = f.and_then(|f| f.get("arguments")).and_then(Value::as_str).filter(|a| !a.is_empty())
                {
                    out.push(StreamEvent::Delta { index, delta: Delta::ToolArgs(args.to_string()) });
                }
            }
        }
        Ok(())
    }

    /// The open block of `want`, opening it (and closing any other) if needed.
    fn ensure(&mut self, want: Open, kind: BlockKind, out: &mut Vec<StreamEvent>) -> usize {
        if let Some((open, index)) = self.open
            && open == want
        {
            return index;
        }
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((want, index));
        out.push(StreamEvent::BlockStart { index, kind });
        index
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((_, index)) = self.open.take() {
            out.push(StreamEvent::BlockStop { index });
        }
    }

    fn done(&mut self, out: &mut Vec<StreamEvent>) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start { model: String::new(), usage: None });
        }
        self.close(out);
        self.finished = true;
        out.push(StreamEvent::Finish {
            stop_reason: self.stop.take(),
            stop_sequence: None,
            usage: self.usage.take(),
            extra: Map::new(),
        });
        out.push(StreamEvent::Done);
        Ok(())
    }
}

/// A raw block being collected for `provider_content`.
#[derive(Debug)]
struct RawBlock {
    block: Value,
    input_json: String,
}

/// Encoder state for one OpenAI client stream.
#[derive(Debug)]
pub struct Encoder {
    source: Protocol,
    include_usage: bool,
    /// The completion id, derived once per stream.
    id: String,
    /// The choice index the chunks carry.
    choice: u64,
    model: String,
    next_tool: u64,
    /// Canonical block index → OpenAI tool-call index.
    tools: BTreeMap<usize, u64>,
    raw: BTreeMap<usize, RawBlock>,
}

impl Encoder {
    /// An encoder for events decoded from `source`; `include_usage` is the client's `stream_options.include_usage`.
    pub fn new(source: Protocol, include_usage: bool, ctx: &Context) -> Encoder {
        Encoder {
            source,
            include_usage,
            id: ctx.openai_completion_id(),
            choice: 0,
            model: String::new(),
            next_tool: 0,
            tools: BTreeMap::new(),
            raw: BTreeMap::new(),
        }
    }

    /// An encoder for choice `index` of a stream with several; it never sends usage.
    pub fn for_choice(source: Protocol, ctx: &Context, index: u64) -> Encoder {
        Encoder { choice: index, ..Encoder::new(source, false, ctx) }
    }

    fn chunk(&self, ctx: &Context, delta: &impl Serialize, finish: Option<&str>, out: &mut String) {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: ctx.created,
            model: &self.model,
            choices: [ChunkChoice { index: self.choice, delta, logprobs: (), finish_reason: finish }],
        };
        data(out, &chunk);
    }

    /// Encodes one event as SSE text.
    pub fn encode(&mut self, ev: &StreamEvent, ctx: &Context, out: &mut String) {
        match ev {
            StreamEvent::Start { model, .. } => {
                self.model = model.clone();
                self.chunk(ctx, &RoleDelta { role: "assistant", content: "" }, None, out);
            }
            StreamEvent::BlockStart { index, kind } => match kind {
                BlockKind::Text | BlockKind::Thinking => {}
                BlockKind::ToolUse { id, name, .. } => {
                    let t = self.next_tool;
                    self.next_tool += 1;
                    self.tools.insert(*index, t);
                    let call =
                        json!({"index": t, "id": id, "type": "function", "function": {"name": name, "arguments": ""}});
                    self.chunk(ctx, &json!({"tool_calls": [call]}), None, out);
                }
                BlockKind::RedactedThinking { data } => self.chunk(
                    ctx,
                    &json!({"thinking_blocks": [{"type": "redacted_thinking", "data": data}]}),
                    None,
                    out,
                ),
                BlockKind::Raw(v) => {
                    self.raw.insert(*index, RawBlock { block: v.clone(), input_json: String::new() });
                }
            },
            StreamEvent::Delta { index, delta } => {
                if let Some(raw) = self.raw.get_mut(index) {
                    match delta {
                        Delta::ToolArgs(a) => raw.input_json.push_str(a),
                        Delta::Raw(d) => fold_raw_delta(&mut raw.block, d),
                        _ => {}
                    }
                    return;
                }
                match delta {
                    Delta::Text(t) => self.chunk(ctx, &ContentDelta { content: t }, None, out),
                    Delta::Thinking(t) => self.chunk(ctx, &ReasoningDelta { reasoning_content: t }, None, out),
                    Delta::Signature(s) => self.chunk(
                        ctx,
                        &json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": s}]}),
                        None,
                        out,
                    ),
                    Delta::ToolArgs(a) if a.is_empty() => {}
                    Delta::ToolArgs(arguments) => {
                        let index = self.tools.get(index).copied().unwrap_or(0);
                        let call = ArgsCall { index, function: Arguments { arguments } };
                        self.chunk(ctx, &ToolCallsDelta { tool_calls: [call] }, None, out);
                    }
                    // Citations and other Anthropic-only deltas have no chunk form.
                    Delta::Raw(_) => {}
                }
            }
            StreamEvent::BlockStop { index } => {
                if let Some(mut raw) = self.raw.remove(index) {
                    if !raw.input_json.is_empty() {
                        raw.block["input"] =
                            serde_json::from_str(&raw.input_json).unwrap_or(Value::String(raw.input_json));
                    }
                    self.chunk(ctx, &json!({"provider_content": [raw.block]}), None, out);
                }
            }
            StreamEvent::Finish { stop_reason, usage, .. } => {
                let finish = stop_reason.as_ref().map(|s| s.to_openai().to_string()).unwrap_or_else(|| "stop".into());
                self.chunk(ctx, &Empty {}, Some(&finish), out);
                if self.include_usage {
                    let usage =
                        encode_openai_usage(&usage.clone().unwrap_or_default(), self.source == Protocol::OpenAiChat);
                    let chunk = json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": ctx.created,
                        "model": self.model, "choices": [], "usage": usage,
                    });
                    data(out, &chunk);
                }
            }
            StreamEvent::Done => out.push_str("data: [DONE]\n\n"),
            StreamEvent::Ping => out.push_str(": ping\n\n"),
            StreamEvent::Error { kind, message } => {
                let kind = if kind.is_empty() { "server_error" } else { kind };
                data(out, &json!({"error": {"message": message, "type": kind, "param": null, "code": null}}));
            }
        }
    }
}

/// Folds an Anthropic-only delta into the raw block it belongs to.
fn fold_raw_delta(block: &mut Value, d: &Value) {
    match (d.get("type").and_then(Value::as_str), d.get("content")) {
        (Some("compaction_delta"), Some(Value::String(c))) => {
            let prev = block.get("content").and_then(Value::as_str).unwrap_or("").to_string();
            block["content"] = json!(prev + c);
        }
        _ => {
            if let Some(obj) = block.as_object_mut() {
                let deltas = obj.entry("deltas").or_insert_with(|| json!([]));
                if let Some(a) = deltas.as_array_mut() {
                    a.push(d.clone());
                }
            }
        }
    }
}

fn data(out: &mut String, v: &impl Serialize) {
    out.push_str("data: ");
    super::write_json(out, v);
    out.push_str("\n\n");
}

/// One `chat.completion.chunk` with one choice.
#[derive(Serialize)]
struct Chunk<'a, D: Serialize> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: [ChunkChoice<'a, D>; 1],
}

#[derive(Serialize)]
struct ChunkChoice<'a, D: Serialize> {
    index: u64,
    delta: &'a D,
    /// Always `null`.
    logprobs: (),
    finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct RoleDelta<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct ContentDelta<'a> {
    content: &'a str,
}

#[derive(Serialize)]
struct ReasoningDelta<'a> {
    reasoning_content: &'a str,
}

#[derive(Serialize)]
struct ToolCallsDelta<'a> {
    tool_calls: [ArgsCall<'a>; 1],
}

#[derive(Serialize)]
struct ArgsCall<'a> {
    index: u64,
    function: Arguments<'a>,
}

#[derive(Serialize)]
struct Arguments<'a> {
    arguments: &'a str,
}

/// `{}`.
#[derive(Serialize)]
struct Empty {}
