//! Anthropic Messages streams ⇄ canonical stream events.

use super::event::{BlockKind, Delta, StreamEvent};
use crate::canonical::{StopReason, Usage};
use crate::compat::TOOL_USE_FIELDS;
use crate::compat::{decode_anthropic_usage, encode_anthropic_usage};
use crate::context::Context;
use crate::error::{CoreError, ErrorKind, Result};
use crate::json;
use crate::protocol::Protocol;
use crate::tools;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The fields of the common events, borrowed from the payload; an event that
/// does not fit (another shape, a wrong type, a duplicate key) fails to
/// parse here and takes the general path.
#[derive(Deserialize)]
struct Common<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<CommonDelta<'a>>,
}

#[derive(Deserialize)]
struct CommonDelta<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow)]
    signature: Option<Cow<'a, str>>,
}

/// Decoder state for one Anthropic stream.
#[derive(Debug, Default)]
pub struct Decoder {
    started: bool,
    any_block: bool,
    /// Blocks pre-filled in message_start; streamed block indices follow them.
    prefilled: usize,
    /// Open blocks: index → whether it is a raw block.
    open: BTreeMap<usize, bool>,
    usage: Option<Usage>,
}

impl Decoder {
    /// Decodes one SSE `data` payload.
    pub fn decode(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<()> {
        if let Ok(ev) = serde_json::from_str::<Common>(data)
            && self.decode_common(&ev, out)?
        {
            return Ok(());
        }
        self.decode_general(data, out)
    }

    /// The common events (deltas of the four canonical kinds, block stops,
    /// pings) read without a tree. `false`: not one of them as such, and the
    /// general path decides (it also owns every error message).
    fn decode_common(&mut self, ev: &Common<'_>, out: &mut Vec<StreamEvent>) -> Result<bool> {
        match (&*ev.ty, ev.index, &ev.delta) {
            ("content_block_delta", Some(i), Some(d)) => {
                let delta = match (&*d.ty, &d.text, &d.partial_json, &d.thinking, &d.signature) {
                    ("text_delta", Some(t), ..) => Delta::Text(t.to_string()),
                    ("input_json_delta", _, Some(a), ..) => Delta::ToolArgs(a.to_string()),
                    ("thinking_delta", _, _, Some(t), _) => Delta::Thinking(t.to_string()),
                    ("signature_delta", _, _, _, Some(sig)) => Delta::Signature(sig.to_string()),
                    _ => return Ok(false),
                };
                let index = block_index(i, self.prefilled)?;
                if !self.open.contains_key(&index) {
                    return Err(CoreError::stream(format!("delta for content block {index}, which is not open")));
                }
                out.push(StreamEvent::Delta { index, delta });
            }
            ("content_block_stop", Some(i), _) => {
                let index = block_index(i, self.prefilled)?;
                if self.open.remove(&index).is_none() {
                    return Err(CoreError::stream(format!("stop for content block {index}, which is not open")));
                }
                out.push(StreamEvent::BlockStop { index });
            }
            ("ping", ..) => out.push(StreamEvent::Ping),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn decode_general(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<()> {
        let v = json::parse(data.as_bytes())?;
        let o = json::as_object(&v, "")?;
        match json::req_str(o, "type", "")? {
            "message_start" => {
                if self.started {
                    if !self.any_block {
                        return Ok(()); // A duplicate start before any content changes nothing.
                    }
                    return Err(CoreError::new(
                        ErrorKind::Stream,
                        "/type",
                        "upstream restarted the message mid-stream (spliced message_start); the partial output is incomplete",
                    ));
                }
                self.started = true;
                let m = json::as_object(json::required(o, "message", "")?, "/message")?;
                let usage = json::opt_object(m, "usage", "/message")?
                    .map(|u| decode_anthropic_usage(u, "/message/usage"))
                    .transpose()?;
                self.usage = usage.clone();
                out.push(StreamEvent::Start {
                    model: json::opt_str(m, "model", "/message")?.unwrap_or("").to_string(),
                    usage,
                });
                // Blocks the upstream pre-filled in message_start (programmatic tool
                // calls) become complete blocks of their own.
                let prefilled = json::opt_array(m, "content", "/message")?.map(Vec::as_slice).unwrap_or(&[]);
                for (i, b) in prefilled.iter().enumerate() {
                    let p = format!("/message/content/{i}");
                    let (kind, input) = block_kind(json::as_object(b, &p)?, &p)?;
                    let index = i;
                    self.any_block = true;
                    out.push(StreamEvent::BlockStart { index, kind });
                    match (input, b.get("type").and_then(Value::as_str)) {
                        (Some(args), _) => out.push(StreamEvent::Delta { index, delta: Delta::ToolArgs(args) }),
                        (None, Some("text")) => {
                            let text = b.get("text").and_then(Value::as_str).unwrap_or("");
                            if !text.is_empty() {
                                out.push(StreamEvent::Delta { index, delta: Delta::Text(text.to_string()) });
                            }
                        }
                        _ => {}
                    }
                    out.push(StreamEvent::BlockStop { index });
                }
                self.prefilled = prefilled.len();
            }
            "content_block_start" => {
                self.require_started()?;
                let index = index_of(o, self.prefilled)?;
                let b = json::as_object(json::required(o, "content_block", "")?, "/content_block")?;
                let (kind, input) = block_kind(b, "/content_block")?;
                if self.open.insert(index, matches!(kind, BlockKind::Raw(_))).is_some() {
                    return Err(CoreError::stream(format!("content block {index} started twice")));
                }
                self.any_block = true;
                out.push(StreamEvent::BlockStart { index, kind });
                if let Some(args) = input {
                    out.push(StreamEvent::Delta { index, delta: Delta::ToolArgs(args) });
                }
            }
            "content_block_delta" => {
                let index = index_of(o, self.prefilled)?;
                if !self.open.contains_key(&index) {
                    return Err(CoreError::stream(format!("delta for content block {index}, which is not open")));
                }
                let d = json::as_object(json::required(o, "delta", "")?, "/delta")?;
                let delta = match json::req_str(d, "type", "/delta")? {
                    "text_delta" => Delta::Text(json::req_str(d, "text", "/delta")?.to_string()),
                    "input_json_delta" => Delta::ToolArgs(json::req_str(d, "partial_json", "/delta")?.to_string()),
                    "thinking_delta" => Delta::Thinking(json::req_str(d, "thinking", "/delta")?.to_string()),
                    "signature_delta" => Delta::Signature(json::req_str(d, "signature", "/delta")?.to_string()),
                    _ => Delta::Raw(Value::Object(d.clone())),
                };
                out.push(StreamEvent::Delta { index, delta });
            }
            "content_block_stop" => {
                let index = index_of(o, self.prefilled)?;
                if self.open.remove(&index).is_none() {
                    return Err(CoreError::stream(format!("stop for content block {index}, which is not open")));
                }
                out.push(StreamEvent::BlockStop { index });
            }
            "message_delta" => {
                self.require_started()?;
                let d = json::opt_object(o, "delta", "")?;
                let empty = Map::new();
                let d = d.unwrap_or(&empty);
                if let Some(u) = json::opt_object(o, "usage", "")? {
                    let late = decode_anthropic_usage(u, "/usage")?;
                    let merged = self.usage.get_or_insert_with(Usage::default);
                    merged.output_tokens = late.output_tokens;
                    for (key, field) in [
                        ("input_tokens", &mut merged.input_tokens),
                        ("cache_creation_input_tokens", &mut merged.cache_creation_input_tokens),
                        ("cache_read_input_tokens", &mut merged.cache_read_input_tokens),
                    ] {
                        if let Some(n) = u.get(key).and_then(Value::as_u64) {
                            *field = n;
                        }
                    }
                    for (k, v) in late.extra {
                        merged.extra.insert(k, v);
                    }
                }
                out.push(StreamEvent::Finish {
                    stop_reason: json::opt_str(d, "stop_reason", "/delta")?.map(StopReason::from_anthropic),
                    stop_sequence: json::opt_str(d, "stop_sequence", "/delta")?.map(str::to_string),
                    usage: self.usage.clone(),
                    extra: json::extras(d, &["stop_reason", "stop_sequence"]),
                });
            }
            "message_stop" => out.push(StreamEvent::Done),
            "ping" => out.push(StreamEvent::Ping),
            "error" => {
                let e = json::opt_object(o, "error", "")?;
                let get = |k: &str| e.and_then(|e| e.get(k)).and_then(Value::as_str).unwrap_or("");
                out.push(StreamEvent::Error { kind: get("type").to_string(), message: get("message").to_string() });
            }
            other => return Err(CoreError::stream(format!("unknown anthropic stream event type {other:?}"))),
        }
        Ok(())
    }

    fn require_started(&self) -> Result<()> {
        if self.started { Ok(()) } else { Err(CoreError::stream("content before message_start")) }
    }
}

/// The kind of a started block, and the tool input it already carries (as
/// JSON text) when that input is not empty.
fn block_kind(b: &Map<String, Value>, p: &str) -> Result<(BlockKind, Option<String>)> {
    Ok(match json::req_str(b, "type", p)? {
        "text" => (BlockKind::Text, None),
        "thinking" => (BlockKind::Thinking, None),
        "tool_use" => {
            let input =
                b.get("input").filter(|i| i.as_object().is_some_and(|o| !o.is_empty())).map(tools::stringify_arguments);
            let kind = BlockKind::ToolUse {
                id: json::req_str(b, "id", p)?.to_string(),
                name: json::req_str(b, "name", p)?.to_string(),
                extra: json::extras(b, TOOL_USE_FIELDS),
            };
            (kind, input)
        }
        "redacted_thinking" => (BlockKind::RedactedThinking { data: json::req_str(b, "data", p)?.to_string() }, None),
        _ => (BlockKind::Raw(Value::Object(b.clone())), None),
    })
}

/// Largest content block index accepted. Indices are compared in `u32` range
/// so that every runtime (usize is 32 bits on wasm32) decides the same.
const MAX_BLOCK_INDEX: u64 = u32::MAX as u64;

/// The block index of an event, after the blocks `prefilled` in `message_start`.
fn index_of(o: &Map<String, Value>, prefilled: usize) -> Result<usize> {
    let i = json::opt_u64(o, "index", "")?.ok_or_else(|| CoreError::invalid("/index", "missing required field"))?;
    block_index(i, prefilled)
}

/// Stream index `i` after the blocks `prefilled` in `message_start`, in range.
fn block_index(i: u64, prefilled: usize) -> Result<usize> {
    let prefilled = u64::try_from(prefilled).unwrap_or(u64::MAX);
    i.checked_add(prefilled)
        .filter(|&i| i <= MAX_BLOCK_INDEX)
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(|| CoreError::stream(format!("content block index {i} is out of range")))
}

/// Error types an Anthropic client knows; others become `api_error`.
const ANTHROPIC_ERROR_TYPES: &[&str] = &[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
];

/// Encoder state for one Anthropic client stream.
#[derive(Debug)]
pub struct Encoder {
    source: Protocol,
    next_index: usize,
    /// Canonical block index → output index.
    indices: BTreeMap<usize, usize>,
}

impl Encoder {
    /// An encoder for events decoded from `source`.
    pub fn new(source: Protocol) -> Encoder {
        Encoder { source, next_index: 0, indices: BTreeMap::new() }
    }

    /// Encodes one event as SSE text.
    pub fn encode(&mut self, ev: &StreamEvent, ctx: &Context, out: &mut String) {
        let same = self.source == Protocol::AnthropicMessages;
        match ev {
            StreamEvent::Start { model, usage } => {
                let usage = encode_anthropic_usage(&usage.clone().unwrap_or_default(), same);
                let message = json!({
                    "id": ctx.anthropic_message_id(), "type": "message", "role": "assistant", "model": model,
                    "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage,
                });
                emit(out, "message_start", &json!({"type": "message_start", "message": message}));
            }
            StreamEvent::BlockStart { index, kind } => {
                let out_index = self.next_index;
                self.next_index += 1;
                self.indices.insert(*index, out_index);
                let block = match kind {
                    BlockKind::Text => json!({"type": "text", "text": ""}),
                    BlockKind::Thinking => json!({"type": "thinking", "thinking": ""}),
                    BlockKind::ToolUse { id, name, extra } => {
                        let mut b = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
                        if same {
                            for (k, v) in extra {
                                b[k] = v.clone();
                            }
                        }
                        b
                    }
                    BlockKind::RedactedThinking { data } => json!({"type": "redacted_thinking", "data": data}),
                    BlockKind::Raw(v) => v.clone(),
                };
                emit(
                    out,
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": out_index, "content_block": block}),
                );
            }
            StreamEvent::Delta { index, delta } => {
                let piece = |ty, key, value| Piece { ty, key, value };
                let index = self.indices.get(index).copied().unwrap_or(*index);
                let ty = "content_block_delta";
                match delta {
                    Delta::Text(t) => emit(out, ty, &Indexed { ty, index, delta: piece("text_delta", "text", t) }),
                    Delta::ToolArgs(a) => {
                        emit(out, ty, &Indexed { ty, index, delta: piece("input_json_delta", "partial_json", a) })
                    }
                    Delta::Thinking(t) => {
                        emit(out, ty, &Indexed { ty, index, delta: piece("thinking_delta", "thinking", t) })
                    }
                    Delta::Signature(s) => {
                        emit(out, ty, &Indexed { ty, index, delta: piece("signature_delta", "signature", s) })
                    }
                    Delta::Raw(v) => emit(out, ty, &Indexed { ty, index, delta: v }),
                }
            }
            StreamEvent::BlockStop { index } => {
                let index = self.indices.get(index).copied().unwrap_or(*index);
                emit(out, "content_block_stop", &Stop { ty: "content_block_stop", index });
            }
            StreamEvent::Finish { stop_reason, stop_sequence, usage, extra } => {
                let mut delta = json!({
                    "stop_reason": stop_reason.as_ref().map(|s| s.to_anthropic().to_string()),
                    "stop_sequence": stop_sequence,
                });
                if same {
                    for (k, v) in extra {
                        delta[k] = v.clone();
                    }
                }
                let usage = encode_anthropic_usage(&usage.clone().unwrap_or_default(), same);
                emit(out, "message_delta", &json!({"type": "message_delta", "delta": delta, "usage": usage}));
            }
            StreamEvent::Done => emit(out, "message_stop", &json!({"type": "message_stop"})),
            StreamEvent::Ping => out.push_str("event: ping\ndata: {\"type\":\"ping\"}\n\n"),
            StreamEvent::Error { kind, message } => {
                let kind = if (same && !kind.is_empty()) || ANTHROPIC_ERROR_TYPES.contains(&kind.as_str()) {
                    kind
                } else {
                    "api_error"
                };
                emit(out, "error", &json!({"type": "error", "error": {"type": kind, "message": message}}));
            }
        }
    }
}

/// An event with a block index and a delta.
#[derive(Serialize)]
struct Indexed<'a, D: Serialize> {
    #[serde(rename = "type")]
    ty: &'a str,
    index: usize,
    delta: D,
}

/// `content_block_stop`.
#[derive(Serialize)]
struct Stop<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    index: usize,
}

/// A canonical delta: `{"type": ty, key: value}`.
struct Piece<'a> {
    ty: &'static str,
    key: &'static str,
    value: &'a str,
}

impl Serialize for Piece<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("type", self.ty)?;
        m.serialize_entry(self.key, self.value)?;
        m.end()
    }
}

fn emit(out: &mut String, event: &str, data: &impl Serialize) {
    out.push_str("event: ");
    out.push_str(event);
    out.push_str("\ndata: ");
    super::write_json(out, data);
    out.push_str("\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoder with blocks 0 (text) and 1 (tool) open.
    fn open_decoder() -> Decoder {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        let start = r#"{"type":"message_start","message":{"model":"m","content":[],"usage":{"input_tokens":1}}}"#;
        d.decode(start, &mut out).unwrap();
        d.decode(r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#, &mut out)
            .unwrap();
        let tool = r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#;
        d.decode(tool, &mut out).unwrap();
        d
    }

    #[test]
    fn the_common_path_decides_exactly_as_the_general_one() {
        let events = [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \"there\" \u00e9"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"c2ln"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"x":1}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":null}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":7}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","text":"b"}}"#,
            r#"{"type":"content_block_delta","index":0,"index":1,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":"0","delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":-1,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":1.0,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":7,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":99999999999,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":null}"#,
            r#"{"type":"content_block_delta","index":0,"delta":"text"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"text":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"},"extra":[1,{"b":2}]}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"content_block_stop","index":5}"#,
            r#"{"type":"content_block_stop"}"#,
            r#"{"type":"content_block_stop","index":0,"delta":5}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"ping","index":"x"}"#,
            r#"{"type":7,"index":0}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}"#,
            r#"[1,2]"#,
        ];
        for ev in events {
            let (mut fast, mut general) = (open_decoder(), open_decoder());
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let ra = fast.decode(ev, &mut a);
            let rb = general.decode_general(ev, &mut b);
            assert_eq!(ra, rb, "{ev}");
            assert_eq!(a, b, "{ev}");
            assert_eq!(fast.open, general.open, "{ev}");
        }
    }
}
