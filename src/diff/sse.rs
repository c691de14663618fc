//! Client SSE output → canonical events, with adjacent deltas of one block
//! merged, so that chunking is never a difference but content is.

use serde::Serialize;
use serde_json::{Value, json};
use shadowgate_core::Protocol;
use shadowgate_core::streaming::SseParser;
use shadowgate_core::tokenizer;
use std::borrow::Cow;

/// One canonical event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanonEvent {
    /// Event type, e.g. `content_block_delta:text_delta`, `content`, `finish`.
    pub event_type: String,
    /// Position in the canonical sequence.
    pub ordinal_index: usize,
    /// The event's JSON (merged, for deltas).
    pub normalized_payload: Value,
    /// SHA-256 of the token sequence, for text-bearing events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_digest: Option<String>,
}

/// A stream in canonical form.
#[derive(Debug, Clone, Default)]
pub struct CanonStream {
    /// The events.
    pub events: Vec<CanonEvent>,
    /// All generated text, in order (for the stream's token digest).
    pub text: String,
}

/// A mergeable piece: (kind, block key, text).
struct Atom {
    kind: String,
    key: u64,
    text: String,
}

enum Item {
    Event(String, Value),
    Atom(Atom),
}

/// Client SSE that does not parse as events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SseError(pub String);

/// Parses `text` (the client SSE of `protocol`) into canonical events.
pub fn canonical_events(protocol: Protocol, text: &[u8], merge: bool) -> Result<CanonStream, SseError> {
    let mut parser = SseParser::new(usize::MAX);
    let mut raw = Vec::new();
    parser.feed(text, &mut raw).and_then(|_| parser.finish(&mut raw)).map_err(|e| SseError(e.message))?;
    let mut items = Vec::new();
    for (i, ev) in raw.iter().enumerate() {
        if ev.data.trim() == "[DONE]" {
            items.push(Item::Event("done".into(), Value::Null));
            continue;
        }
        // Most events are plain deltas: read those without building a Value tree.
        let fast = match protocol {
            Protocol::AnthropicMessages => fast_anthropic(&ev.data),
            Protocol::OpenAiChat => fast_openai(&ev.data),
            Protocol::OpenAiResponses => fast_responses(&ev.data),
            Protocol::Gemini => None,
        };
        if let Some(atoms) = fast {
            items.extend(atoms.into_iter().map(Item::Atom));
            continue;
        }
        let v: Value = serde_json::from_str(&ev.data).map_err(|e| SseError(format!("event {i} is not JSON: {e}")))?;
        match protocol {
            Protocol::AnthropicMessages => anthropic_items(v, &mut items),
            Protocol::OpenAiChat => openai_items(v, &mut items),
            Protocol::OpenAiResponses => {
                items.push(Item::Event(v["type"].as_str().unwrap_or("unknown").to_string(), v))
            }
            Protocol::Gemini => gemini_items(v, &mut items),
        }
    }
    let mut stream = CanonStream::default();
    let mut pending: Option<Atom> = None;
    let flush = |pending: &mut Option<Atom>, stream: &mut CanonStream| {
        if let Some(a) = pending.take() {
            stream.text.push_str(&a.text);
            let payload = json!({"type": a.kind, "index": a.key, "text": a.text});
            let n = stream.events.len();
            stream.events.push(CanonEvent {
                event_type: a.kind,
                ordinal_index: n,
                token_digest: Some(tokenizer::digest(&a.text)),
                normalized_payload: payload,
            });
        }
    };
    for item in items {
        match item {
            Item::Atom(a) => match &mut pending {
                Some(p) if merge && p.kind == a.kind && p.key == a.key => p.text.push_str(&a.text),
                _ => {
                    flush(&mut pending, &mut stream);
                    pending = Some(a);
                }
            },
            Item::Event(t, payload) => {
                flush(&mut pending, &mut stream);
                let n = stream.events.len();
                stream.events.push(CanonEvent {
                    event_type: t,
                    ordinal_index: n,
                    normalized_payload: payload,
                    token_digest: None,
                });
            }
        }
    }
    flush(&mut pending, &mut stream);
    Ok(stream)
}

#[derive(serde::Deserialize)]
struct FastAnthropic<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: u64,
    #[serde(borrow)]
    delta: Option<FastAnthropicDelta<'a>>,
}

#[derive(serde::Deserialize)]
struct FastAnthropicDelta<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow)]
    signature: Option<Cow<'a, str>>,
}

/// A `content_block_delta` with a mergeable delta, read without a Value tree.
fn fast_anthropic(data: &str) -> Option<Vec<Atom>> {
    let e: FastAnthropic = serde_json::from_str(data).ok()?;
    let d = e.delta.filter(|_| e.kind == "content_block_delta")?;
    let text = match d.kind.as_ref() {
        "text_delta" => d.text,
        "input_json_delta" => d.partial_json,
        "thinking_delta" => d.thinking,
        "signature_delta" => d.signature,
        _ => None,
    }?;
    Some(vec![Atom { kind: format!("content_block_delta:{}", d.kind), key: e.index, text: text.into_owned() }])
}

#[derive(serde::Deserialize)]
struct FastChunk<'a> {
    #[serde(borrow)]
    choices: Vec<FastChoice<'a>>,
    #[serde(default)]
    usage: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct FastChoice<'a> {
    #[serde(borrow)]
    delta: FastDelta<'a>,
    #[serde(default)]
    finish_reason: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct FastDelta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<FastCall<'a>>>,
    role: Option<serde::de::IgnoredAny>,
    refusal: Option<serde::de::IgnoredAny>,
    thinking_blocks: Option<serde::de::IgnoredAny>,
    provider_content: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct FastCall<'a> {
    index: u64,
    id: Option<serde::de::IgnoredAny>,
    #[serde(borrow)]
    function: FastFunction<'a>,
}

#[derive(serde::Deserialize)]
struct FastFunction<'a> {
    name: Option<serde::de::IgnoredAny>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

/// A chunk that only carries content, reasoning or argument fragments, read
/// without a Value tree; anything else takes the full path.
fn fast_openai(data: &str) -> Option<Vec<Atom>> {
    let c: FastChunk = serde_json::from_str(data).ok()?;
    if c.usage.is_some() || c.error.is_some() || c.choices.len() != 1 {
        return None;
    }
    let choice = c.choices.into_iter().next()?;
    let d = choice.delta;
    if choice.finish_reason.is_some()
        || d.role.is_some()
        || d.refusal.is_some()
        || d.thinking_blocks.is_some()
        || d.provider_content.is_some()
    {
        return None;
    }
    let mut atoms = Vec::new();
    if let Some(t) = d.reasoning_content.filter(|t| !t.is_empty()) {
        atoms.push(Atom { kind: "reasoning".into(), key: 0, text: t.into_owned() });
    }
    if let Some(t) = d.content.filter(|t| !t.is_empty()) {
        atoms.push(Atom { kind: "content".into(), key: 0, text: t.into_owned() });
    }
    for call in d.tool_calls.unwrap_or_default() {
        if call.id.is_some() || call.function.name.is_some() {
            return None;
        }
        if let Some(a) = call.function.arguments.filter(|a| !a.is_empty()) {
            atoms.push(Atom { kind: "tool_arguments".into(), key: call.index, text: a.into_owned() });
        }
    }
    Some(atoms)
}

#[derive(serde::Deserialize)]
struct FastResponses<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(default)]
    output_index: u64,
    #[serde(default)]
    content_index: u64,
    #[serde(default)]
    summary_index: u64,
    #[serde(borrow)]
    delta: Option<Cow<'a, str>>,
}

/// A Responses `*.delta` event with a text delta (output text, arguments,
/// reasoning, built-in tool progress), keyed by its item and part; these
/// carry nothing else worth comparing but their sequence numbers.
fn fast_responses(data: &str) -> Option<Vec<Atom>> {
    let e: FastResponses = serde_json::from_str(data).ok()?;
    let delta = e.delta.filter(|_| e.kind.ends_with(".delta"))?;
    let part = e.content_index.max(e.summary_index).min(u64::from(u16::MAX));
    let key = e.output_index.min(u64::from(u32::MAX)) << 16 | part;
    Some(vec![Atom { kind: e.kind.into_owned(), key, text: delta.into_owned() }])
}

/// A Gemini chunk: text and thought pieces merge; calls, signatures and the
/// finish (with the final usage and envelope) are events. Usage repeats in
/// every chunk, cumulatively: only the finishing chunk's counts.
fn gemini_items(v: Value, items: &mut Vec<Item>) {
    if v.get("error").is_some() {
        items.push(Item::Event("error".into(), v));
        return;
    }
    let cand = &v["candidates"][0];
    for part in cand["content"]["parts"].as_array().into_iter().flatten() {
        if let Some(t) = part["text"].as_str().filter(|t| !t.is_empty()) {
            let kind = if part["thought"] == true { "thought" } else { "text" };
            items.push(Item::Atom(Atom { kind: kind.into(), key: 0, text: t.to_string() }));
        }
        if let Some(f) = part.get("functionCall") {
            items.push(Item::Event("functionCall".into(), json!({"functionCall": f})));
        }
        if let Some(s) = part.get("thoughtSignature") {
            items.push(Item::Event("thoughtSignature".into(), json!({"thoughtSignature": s})));
        }
    }
    if let Some(f) = cand.get("finishReason") {
        items.push(Item::Event(
            "finish".into(),
            json!({"finishReason": f, "usageMetadata": v["usageMetadata"], "modelVersion": v["modelVersion"],
                   "responseId": v["responseId"]}),
        ));
    }
}

fn anthropic_items(v: Value, items: &mut Vec<Item>) {
    let t = v["type"].as_str().unwrap_or("unknown").to_string();
    match t.as_str() {
        "ping" => {}
        "content_block_delta" => {
            let d = &v["delta"];
            let dt = d["type"].as_str().unwrap_or("unknown");
            let field = match dt {
                "text_delta" => "text",
                "input_json_delta" => "partial_json",
                "thinking_delta" => "thinking",
                "signature_delta" => "signature",
                _ => "",
            };
            match d.get(field).and_then(Value::as_str) {
                Some(text) => items.push(Item::Atom(Atom {
                    kind: format!("content_block_delta:{dt}"),
                    key: v["index"].as_u64().unwrap_or(0),
                    text: text.to_string(),
                })),
                None => items.push(Item::Event(format!("content_block_delta:{dt}"), v)),
            }
        }
        _ => items.push(Item::Event(t, v)),
    }
}

fn openai_items(v: Value, items: &mut Vec<Item>) {
    if v.get("error").is_some() {
        items.push(Item::Event("error".into(), v));
        return;
    }
    let Some(choice) = v["choices"].get(0) else {
        if !v["usage"].is_null() {
            items.push(Item::Event("usage".into(), json!({"usage": v["usage"]})));
        }
        return;
    };
    let d = &choice["delta"];
    if let Some(role) = d.get("role") {
        // The first chunk carries the envelope: id, created, model.
        items.push(Item::Event(
            "role".into(),
            json!({"id": v["id"], "created": v["created"], "model": v["model"], "role": role}),
        ));
    }
    for (field, kind) in [("reasoning_content", "reasoning"), ("content", "content"), ("refusal", "refusal")] {
        if let Some(t) = d.get(field).and_then(Value::as_str).filter(|t| !t.is_empty()) {
            items.push(Item::Atom(Atom { kind: kind.into(), key: 0, text: t.to_string() }));
        }
    }
    for key in ["thinking_blocks", "provider_content"] {
        if let Some(x) = d.get(key) {
            items.push(Item::Event(key.into(), json!({key: x})));
        }
    }
    for call in d["tool_calls"].as_array().into_iter().flatten() {
        let index = call["index"].as_u64().unwrap_or(0);
        if call.get("id").is_some() || call["function"].get("name").is_some() {
            items.push(Item::Event(
                "tool_call".into(),
                json!({"index": index, "id": call["id"], "name": call["function"]["name"]}),
            ));
        }
        if let Some(a) = call["function"]["arguments"].as_str().filter(|a| !a.is_empty()) {
            items.push(Item::Atom(Atom { kind: "tool_arguments".into(), key: index, text: a.to_string() }));
        }
    }
    if let Some(f) = choice.get("finish_reason").filter(|f| !f.is_null()) {
        items.push(Item::Event("finish".into(), json!({"finish_reason": f})));
    }
    if !v["usage"].is_null() && v.get("usage").is_some() {
        items.push(Item::Event("usage".into(), json!({"usage": v["usage"]})));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_deltas_merge_and_keepalives_drop() {
        let a = b"event: ping\ndata: {\"type\":\"ping\"}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n";
        let s = canonical_events(Protocol::AnthropicMessages, a, true).unwrap();
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.events[0].normalized_payload["text"], "Hello");
        assert_eq!(s.text, "Hello");
        assert_eq!(canonical_events(Protocol::AnthropicMessages, a, false).unwrap().events.len(), 2);
    }
}
