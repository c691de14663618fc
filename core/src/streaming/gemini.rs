//! Gemini `streamGenerateContent?alt=sse` streams ⇄ canonical stream events.
//!
//! Each upstream chunk is a whole `GenerateContentResponse` whose candidate 0
//! carries the new parts: text and thought text arrive as pieces, function
//! calls whole — or, from Vertex, as `partialArgs` (JSON paths with values)
//! until `willContinue` stops, assembled here into one arguments text. The
//! stream ends with the chunk that has a `finishReason` (usage is cumulative,
//! the last one counts); there is no `[DONE]`.

use super::event::{BlockKind, Delta, StreamEvent};
use crate::canonical::Part;
use crate::canonical::{StopReason, Usage};
use crate::compat::{
    GEMINI_SIGNATURE, decode_gemini_usage, encode_gemini_usage, gemini_finish_reason, gemini_response_parts,
    gemini_stop_reason,
};
use crate::context::Context;
use crate::error::{CoreError, Result};
use crate::json;
use crate::tools;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
}

/// A Vertex function call whose arguments are still streaming.
#[derive(Debug)]
struct Partial {
    index: usize,
    args: Value,
    /// The call's thought signature, sent once the call is complete.
    sig: Option<String>,
}

/// Decoder state of one Gemini stream.
#[derive(Debug, Default)]
pub struct Decoder {
    started: bool,
    next_block: usize,
    open: Option<(Open, usize)>,
    partial: Option<Partial>,
    calls: u64,
    has_calls: bool,
    usage: Option<Usage>,
}

/// The canonical signature of a Gemini `thoughtSignature` (as the body decoder makes it).
fn signature(sig: &str) -> String {
    if let Ok(bytes) = STANDARD.decode(sig)
        && let Ok(text) = std::str::from_utf8(&bytes)
        && let Some(a) = text.strip_prefix(crate::compat::ANTHROPIC_SIGNATURE)
    {
        return a.to_string();
    }
    format!("{GEMINI_SIGNATURE}{sig}")
}

impl Decoder {
    fn block(&mut self, kind: BlockKind, out: &mut Vec<StreamEvent>) -> usize {
        let index = self.next_block;
        self.next_block = self.next_block.saturating_add(1);
        out.push(StreamEvent::BlockStart { index, kind });
        index
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((_, index)) = self.open.take() {
            out.push(StreamEvent::BlockStop { index });
        }
    }

    fn open_as(&mut self, want: Open, out: &mut Vec<StreamEvent>) -> usize {
        match self.open {
            Some((k, i)) if k == want => i,
            _ => {
                self.close(out);
                let kind = if want == Open::Text { BlockKind::Text } else { BlockKind::Thinking };
                let i = self.block(kind, out);
                self.open = Some((want, i));
                i
            }
        }
    }

    fn finish_partial(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(p) = self.partial.take() {
            out.push(StreamEvent::Delta {
                index: p.index,
                delta: Delta::ToolArgs(tools::stringify_arguments(&p.args)),
            });
            out.push(StreamEvent::BlockStop { index: p.index });
            if let Some(s) = p.sig {
                self.signed_after(s, out);
            }
        }
    }

    /// Decodes one SSE `data` payload.
    pub fn decode(&mut self, data: &str, ctx: &Context, out: &mut Vec<StreamEvent>) -> Result<()> {
        let v = json::parse(data.as_bytes())?;
        let o = json::as_object(&v, "")?;
        if let Some(e) = json::opt_object(o, "error", "")? {
            let get = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            out.push(StreamEvent::Error { kind: get("status"), message: get("message") });
            return Ok(());
        }
        if !self.started {
            self.started = true;
            let model = json::opt_str(o, "modelVersion", "")?.unwrap_or("").to_string();
            out.push(StreamEvent::Start { model, usage: None });
        }
        if let Some(u) = json::opt_object(o, "usageMetadata", "")?
            && (u.contains_key("promptTokenCount") || u.contains_key("candidatesTokenCount"))
        {
            self.usage = Some(decode_gemini_usage(u, "/usageMetadata")?);
        }
        let candidates = json::opt_array(o, "candidates", "")?.map(Vec::as_slice).unwrap_or(&[]);
        let Some(c) = candidates.first() else { return Ok(()) };
        let c = json::as_object(c, "/candidates/0")?;
        let parts = match json::opt_object(c, "content", "/candidates/0")? {
            Some(content) => {
                json::opt_array(content, "parts", "/candidates/0/content")?.map(Vec::as_slice).unwrap_or(&[])
            }
            None => &[],
        };
        for (i, part) in parts.iter().enumerate() {
            let p = format!("/candidates/0/content/parts/{i}");
            let part = json::as_object(part, &p)?;
            self.part(part, &p, ctx, out)?;
        }
        if let Some(f) = json::opt_str(c, "finishReason", "/candidates/0")? {
            self.finish_partial(out);
            self.close(out);
            out.push(StreamEvent::Finish {
                stop_reason: Some(gemini_stop_reason(f, self.has_calls)),
                stop_sequence: None,
                usage: self.usage.clone(),
                extra: Map::new(),
            });
            out.push(StreamEvent::Done);
        }
        Ok(())
    }

    fn part(&mut self, part: &Map<String, Value>, p: &str, ctx: &Context, out: &mut Vec<StreamEvent>) -> Result<()> {
        let sig = json::opt_str(part, "thoughtSignature", p)?.map(signature);
        if let Some(f) = json::opt_object(part, "functionCall", p)? {
            return self.function_call(f, sig, &json::join(p, "functionCall"), ctx, out);
        }
        self.finish_partial(out);
        if let Some(t) = json::opt_str(part, "text", p)? {
            let thought = json::opt_bool(part, "thought", p)? == Some(true);
            if thought || (t.is_empty() && sig.is_some()) {
                let index = self.open_as(Open::Thinking, out);
                if !t.is_empty() {
                    out.push(StreamEvent::Delta { index, delta: Delta::Thinking(t.to_string()) });
                }
                if let Some(s) = sig {
                    out.push(StreamEvent::Delta { index, delta: Delta::Signature(s) });
                }
            } else {
                let index = self.open_as(Open::Text, out);
                if !t.is_empty() {
                    out.push(StreamEvent::Delta { index, delta: Delta::Text(t.to_string()) });
                }
                if let Some(s) = sig {
                    self.signed_after(s, out);
                }
            }
        }
        // Inline data, code execution parts, …: no stream form in the other protocols.
        Ok(())
    }

    /// A signature on a non-thought part: a thinking block of its own, after the part.
    fn signed_after(&mut self, sig: String, out: &mut Vec<StreamEvent>) {
        self.close(out);
        let index = self.block(BlockKind::Thinking, out);
        out.push(StreamEvent::Delta { index, delta: Delta::Signature(sig) });
        out.push(StreamEvent::BlockStop { index });
    }

    fn function_call(
        &mut self,
        f: &Map<String, Value>,
        sig: Option<String>,
        p: &str,
        ctx: &Context,
        out: &mut Vec<StreamEvent>,
    ) -> Result<()> {
        let more = json::opt_bool(f, "willContinue", p)? == Some(true);
        let name = json::opt_str(f, "name", p)?;
        if let (Some(partial), None) = (&mut self.partial, name) {
            // A continuation of the call in progress.
            if let Some(args) = json::opt_array(f, "partialArgs", p)? {
                for (i, a) in args.iter().enumerate() {
                    apply_partial(
                        &mut partial.args,
                        json::as_object(a, &json::join(&json::join(p, "partialArgs"), i))?,
                    )?;
                }
            }
            if !more {
                self.finish_partial(out);
            }
            return Ok(());
        }
        self.finish_partial(out);
        self.close(out);
        let name = name.ok_or_else(|| CoreError::invalid(json::join(p, "name"), "missing required field"))?;
        self.has_calls = true;
        let id = match json::opt_str(f, "id", p)? {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => ctx.tool_call_id(self.calls),
        };
        self.calls = self.calls.saturating_add(1);
        let index = self.block(BlockKind::ToolUse { id, name: name.to_string(), extra: Map::new() }, out);
        let mut args = json::field(f, "args").cloned().unwrap_or_else(|| json!({}));
        if let Some(parts) = json::opt_array(f, "partialArgs", p)? {
            for (i, a) in parts.iter().enumerate() {
                apply_partial(&mut args, json::as_object(a, &json::join(&json::join(p, "partialArgs"), i))?)?;
            }
        }
        if more {
            self.partial = Some(Partial { index, args, sig });
        } else {
            out.push(StreamEvent::Delta { index, delta: Delta::ToolArgs(tools::stringify_arguments(&args)) });
            out.push(StreamEvent::BlockStop { index });
            if let Some(s) = sig {
                self.signed_after(s, out);
            }
        }
        Ok(())
    }
}

/// One Vertex `partialArgs` entry: a value (or a piece of a string) at a JSON path.
fn apply_partial(args: &mut Value, a: &Map<String, Value>) -> Result<()> {
    let path = json::req_str(a, "jsonPath", "/partialArgs")?;
    let slot = slot(args, path)?;
    if let Some(s) = json::opt_str(a, "stringValue", "/partialArgs")? {
        match slot {
            Value::String(existing) => existing.push_str(s),
            other => *other = json!(s),
        }
    } else if let Some(n) = json::field(a, "numberValue") {
        *slot = n.clone();
    } else if let Some(b) = json::field(a, "boolValue") {
        *slot = b.clone();
    } else if a.contains_key("nullValue") {
        *slot = Value::Null;
    }
    Ok(())
}

/// The value at `$.a.b[2].c` in `root`, made (objects and arrays) as needed.
fn slot<'a>(root: &'a mut Value, path: &str) -> Result<&'a mut Value> {
    let bad = || CoreError::invalid("/partialArgs/jsonPath", format!("unsupported JSON path {path:?}"));
    let rest = path.strip_prefix('$').ok_or_else(bad)?;
    let mut cur = root;
    let mut s = rest;
    while !s.is_empty() {
        if let Some(r) = s.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() {
                return Err(bad());
            }
            if !cur.is_object() {
                *cur = json!({});
            }
            cur = cur.as_object_mut().ok_or_else(bad)?.entry(key.to_string()).or_insert(Value::Null);
            s = &r[end..];
        } else if let Some(r) = s.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            let i: usize = r[..end].parse().map_err(|_| bad())?;
            // Indices only grow one at a time in a stream; anything further is hostile.
            if !cur.is_array() {
                *cur = json!([]);
            }
            let arr = cur.as_array_mut().ok_or_else(bad)?;
            if i > arr.len() {
                return Err(bad());
            }
            if i == arr.len() {
                arr.push(Value::Null);
            }
            cur = &mut arr[i];
            s = &r[end + 1..];
        } else {
            return Err(bad());
        }
    }
    Ok(cur)
}

/// Encoder state of one Gemini client stream: text and thoughts go out as
/// they come, a function call once its arguments are complete.
#[derive(Debug)]
pub struct Encoder {
    model: String,
    response_id: String,
    /// Open blocks: index → (kind, call id, name, arguments so far).
    tools: std::collections::BTreeMap<usize, (String, String, String)>,
    thinking: std::collections::BTreeSet<usize>,
    stop: Option<StopReason>,
    usage: Option<Usage>,
    ended: bool,
}

impl Encoder {
    /// A new encoder; the response id derives from `ctx`.
    pub fn new(ctx: &Context) -> Encoder {
        Encoder {
            model: String::new(),
            response_id: ctx.derive_id("response", 0),
            tools: Default::default(),
            thinking: Default::default(),
            stop: None,
            usage: None,
            ended: false,
        }
    }

    fn chunk(&self, parts: Vec<Value>, finish: Option<&str>, out: &mut String) {
        let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(f) = finish {
            cand["finishReason"] = json!(f);
        }
        let mut v = json!({"candidates": [cand]});
        if finish.is_some() {
            v["usageMetadata"] = encode_gemini_usage(&self.usage.clone().unwrap_or_default());
        }
        v["modelVersion"] = json!(self.model);
        v["responseId"] = json!(self.response_id);
        out.push_str("data: ");
        super::write_json(out, &v);
        out.push_str("\r\n\r\n");
    }

    /// Encodes one canonical event.
    pub fn encode(&mut self, ev: &StreamEvent, _ctx: &Context, out: &mut String) {
        if self.ended {
            return;
        }
        match ev {
            StreamEvent::Start { model, .. } => self.model = model.clone(),
            StreamEvent::BlockStart { index, kind } => match kind {
                BlockKind::ToolUse { id, name, .. } => {
                    self.tools.insert(*index, (id.clone(), name.clone(), String::new()));
                }
                BlockKind::Thinking => {
                    self.thinking.insert(*index);
                }
                _ => {}
            },
            StreamEvent::Delta { index, delta } => match delta {
                Delta::Text(t) if !t.is_empty() && !self.thinking.contains(index) => {
                    self.chunk(vec![json!({"text": t})], None, out)
                }
                Delta::Thinking(t) if !t.is_empty() => self.chunk(vec![json!({"text": t, "thought": true})], None, out),
                Delta::Signature(s) => {
                    let parts =
                        gemini_response_parts(&[Part::Thinking { text: String::new(), signature: Some(s.clone()) }]);
                    self.chunk(parts, None, out)
                }
                Delta::ToolArgs(a) => {
                    if let Some(t) = self.tools.get_mut(index) {
                        t.2.push_str(a);
                    }
                }
                _ => {}
            },
            StreamEvent::BlockStop { index } => {
                self.thinking.remove(index);
                if let Some((id, name, arguments)) = self.tools.remove(index) {
                    let call = Part::ToolUse { id, name, arguments, cache_control: None, extra: Map::new() };
                    self.chunk(gemini_response_parts(&[call]), None, out);
                }
            }
            StreamEvent::Finish { stop_reason, usage, .. } => {
                self.stop = stop_reason.clone();
                if usage.is_some() {
                    self.usage = usage.clone();
                }
            }
            StreamEvent::Done => {
                let finish = gemini_finish_reason(self.stop.as_ref()).to_string();
                self.chunk(Vec::new(), Some(&finish), out);
                self.ended = true;
            }
            StreamEvent::Ping => {}
            StreamEvent::Error { kind, message } => {
                // A gRPC status name passes; another protocol's error type does not.
                let grpc = !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
                let status = if grpc { kind.as_str() } else { "INTERNAL" };
                let v = json!({"error": {"code": 500, "message": message, "status": status}});
                out.push_str("data: ");
                super::write_json(out, &v);
                out.push_str("\r\n\r\n");
                self.ended = true;
            }
        }
    }
}
