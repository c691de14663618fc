//! OpenAI Responses bodies ⇄ the canonical model.
//!
//! Same protocol on both ends: the body goes on as the client sent it (every
//! input item, tool and field, only the model replaced), and the upstream's
//! response comes back as it was (its ids included, so `previous_response_id`
//! keeps working); the canonical decode still validates both and feeds the
//! other modules. Across protocols everything goes through the canonical
//! model. Stateful features and built-in tools have no counterpart in the
//! other protocols and are refused with an error naming the field or type.
//!
//! Reasoning: a thinking block signed by Anthropic rides through a Responses
//! client as a reasoning item whose `encrypted_content` is the signature behind
//! [`ANTHROPIC_SIGNATURE`] (redacted thinking behind [`ANTHROPIC_REDACTED`]), so
//! the client's next turn gives Anthropic its thinking back. Reasoning of one
//! vendor is never sent to another vendor's upstream.

use super::{CompatProfile, reasoning_to_effort};
use crate::canonical::{
    ImageSource, Message, OutputFormat, Part, Reasoning, Request, Response, Role, StopReason, Usage,
};
use crate::context::Context;
use crate::error::{CoreError, ErrorKind, Result};
use crate::json::{self, join};
use crate::protocol::Protocol;
use crate::tools;
use serde_json::{Map, Value, json};

/// `encrypted_content` prefix of an Anthropic thinking signature.
pub const ANTHROPIC_SIGNATURE: &str = "shadowgate.anthropic.signature.v1:";
/// `encrypted_content` prefix of Anthropic redacted thinking.
pub const ANTHROPIC_REDACTED: &str = "shadowgate.anthropic.redacted.v1:";

const REQUEST_FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "user",
    "stream",
    "reasoning",
    "text",
];

/// Request fields that need OpenAI's stored state; refused across protocols.
const STATEFUL_FIELDS: &[&str] = &["previous_response_id", "conversation", "prompt"];

/// Decodes an OpenAI Responses request.
pub fn decode_request(body: &Value) -> Result<Request> {
    let obj = json::as_object(body, "")?;
    let mut messages: Vec<Message> = Vec::new();
    match json::field(obj, "instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(Message { role: Role::System, content: vec![text(s)], name: None }),
        Some(Value::Array(items)) => decode_items(items, "/instructions", &mut messages)?,
        Some(v) => {
            return Err(CoreError::invalid(
                "/instructions",
                format!("expected a string or an array, got {}", json::type_name(v)),
            ));
        }
    }
    match json::field(obj, "input") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(Message { role: Role::User, content: vec![text(s)], name: None }),
        Some(Value::Array(items)) => decode_items(items, "/input", &mut messages)?,
        Some(v) => {
            return Err(CoreError::invalid(
                "/input",
                format!("expected a string or an array, got {}", json::type_name(v)),
            ));
        }
    }
    let tools = match json::opt_array(obj, "tools", "")? {
        Some(t) => tools::decode_responses_tools(t, "/tools")?,
        None => Vec::new(),
    };
    let mut extra = json::extras(obj, REQUEST_FIELDS);
    let tool_choice = match json::field(obj, "tool_choice").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => {
            let c = tools::decode_responses_tool_choice(v, "/tool_choice")?;
            if c.is_none() {
                extra.insert("tool_choice".into(), v.clone());
            }
            c
        }
    };
    let reasoning = match json::opt_object(obj, "reasoning", "")? {
        Some(r) => json::opt_str(r, "effort", "/reasoning")?.map(|e| Reasoning::Effort(e.to_string())),
        None => None,
    };
    let output_format = match json::opt_object(obj, "text", "")? {
        Some(t) => match json::opt_object(t, "format", "/text")? {
            Some(f) => decode_text_format(f, "/text/format")?,
            None => None,
        },
        None => None,
    };
    Ok(Request {
        source: Protocol::OpenAiResponses,
        model: json::req_str(obj, "model", "")?.to_string(),
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: json::opt_bool(obj, "parallel_tool_calls", "")?,
        max_tokens: json::opt_u64(obj, "max_output_tokens", "")?,
        temperature: json::opt_f64(obj, "temperature", "")?,
        top_p: json::opt_f64(obj, "top_p", "")?,
        top_k: None,
        stop: Vec::new(),
        user: json::opt_str(obj, "user", "")?.map(str::to_string),
        stream: json::opt_bool(obj, "stream", "")?.unwrap_or(false),
        include_usage: None,
        reasoning,
        output_format,
        extra,
    })
}

fn text(s: &str) -> Part {
    Part::Text { text: s.to_string(), cache_control: None, citations: None }
}

/// `text.format`: `text` (none), `json_object`, or `json_schema` (flat).
fn decode_text_format(f: &Map<String, Value>, p: &str) -> Result<Option<OutputFormat>> {
    match json::req_str(f, "type", p)? {
        "text" => Ok(None),
        "json_object" => Ok(Some(OutputFormat::JsonObject)),
        "json_schema" => Ok(Some(OutputFormat::JsonSchema {
            name: json::opt_str(f, "name", p)?.unwrap_or("output").to_string(),
            schema: json::required(f, "schema", p)?.clone(),
            strict: json::opt_bool(f, "strict", p)?,
            description: json::opt_str(f, "description", p)?.map(str::to_string),
        })),
        other => Err(CoreError::unsupported(join(p, "type"), format!("text format type {other:?} is not supported"))),
    }
}

fn encode_text_format(f: &OutputFormat) -> Value {
    match f {
        OutputFormat::JsonObject => json!({"type": "json_object"}),
        OutputFormat::JsonSchema { name, schema, strict, description } => {
            let mut o = Map::new();
            o.insert("type".into(), json!("json_schema"));
            o.insert("name".into(), json!(name));
            if let Some(d) = description {
                o.insert("description".into(), json!(d));
            }
            o.insert("schema".into(), schema.clone());
            if let Some(s) = strict {
                o.insert("strict".into(), json!(s));
            }
            Value::Object(o)
        }
    }
}

/// Appends `part` to the conversation as `role` speaks it: an assistant's
/// items (text, reasoning, calls) form one turn, and consecutive tool
/// outputs form one user turn, as the other protocols need.
fn push(messages: &mut Vec<Message>, role: Role, part: Part) {
    let tool_result = matches!(part, Part::ToolResult { .. });
    if let Some(last) = messages.last_mut()
        && last.role == role
        && (role == Role::Assistant
            || (tool_result && last.content.iter().all(|c| matches!(c, Part::ToolResult { .. }))))
    {
        last.content.push(part);
        return;
    }
    messages.push(Message { role, content: vec![part], name: None });
}

fn decode_items(items: &[Value], path: &str, messages: &mut Vec<Message>) -> Result<()> {
    for (i, item) in items.iter().enumerate() {
        let p = join(path, i);
        let o = json::as_object(item, &p)?;
        // An item with a role and no type is a message (the SDKs' "easy" input form).
        match json::opt_str(o, "type", &p)?.unwrap_or("message") {
            "message" => {
                let role = match json::req_str(o, "role", &p)? {
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    "system" => Role::System,
                    "developer" => Role::Developer,
                    other => return Err(CoreError::invalid(join(&p, "role"), format!("unknown role {other:?}"))),
                };
                let content = decode_content(json::field(o, "content"), &join(&p, "content"))?;
                if role == Role::Assistant {
                    for part in content {
                        push(messages, role, part);
                    }
                } else {
                    messages.push(Message { role, content, name: None });
                }
            }
            "function_call" => push(
                messages,
                Role::Assistant,
                Part::ToolUse {
                    id: json::req_str(o, "call_id", &p)?.to_string(),
                    name: json::req_str(o, "name", &p)?.to_string(),
                    arguments: json::opt_str(o, "arguments", &p)?.unwrap_or("").to_string(),
                    cache_control: None,
                    extra: Map::new(),
                },
            ),
            "function_call_output" => {
                let op = join(&p, "output");
                let content = match json::required(o, "output", &p)? {
                    Value::String(s) => vec![text(s)],
                    v @ Value::Array(_) => decode_content(Some(v), &op)?,
                    v => {
                        return Err(CoreError::invalid(
                            op,
                            format!("expected a string or an array, got {}", json::type_name(v)),
                        ));
                    }
                };
                push(
                    messages,
                    Role::User,
                    Part::ToolResult {
                        tool_use_id: json::req_str(o, "call_id", &p)?.to_string(),
                        content,
                        is_error: false,
                        cache_control: None,
                    },
                );
            }
            "reasoning" => push(messages, Role::Assistant, decode_reasoning(o, &p)?),
            // `item_reference`, built-in tool calls and their outputs: same protocol only.
            _ => push(messages, Role::Assistant, Part::Raw(item.clone())),
        }
    }
    Ok(())
}

/// A reasoning item: its summaries (or reasoning text) as thinking, with an
/// Anthropic signature recovered from `encrypted_content` when it carries one.
fn decode_reasoning(o: &Map<String, Value>, p: &str) -> Result<Part> {
    let mut texts = Vec::new();
    for key in ["summary", "content"] {
        if let Some(parts) = json::opt_array(o, key, p)? {
            for (j, s) in parts.iter().enumerate() {
                let sp = join(&join(p, key), j);
                texts.push(json::req_str(json::as_object(s, &sp)?, "text", &sp)?);
            }
        }
        if !texts.is_empty() {
            break;
        }
    }
    let encrypted = json::opt_str(o, "encrypted_content", p)?;
    if let Some(data) = encrypted.and_then(|e| e.strip_prefix(ANTHROPIC_REDACTED)) {
        return Ok(Part::RedactedThinking { data: data.to_string() });
    }
    Ok(Part::Thinking {
        text: texts.join("\n\n"),
        signature: encrypted.and_then(|e| e.strip_prefix(ANTHROPIC_SIGNATURE)).map(str::to_string),
    })
}

fn decode_content(v: Option<&Value>, p: &str) -> Result<Vec<Part>> {
    let parts = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(vec![text(s)]),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(CoreError::invalid(
                p,
                format!("expected a string or an array, got {}", json::type_name(other)),
            ));
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let pp = join(p, i);
        let o = json::as_object(part, &pp)?;
        match json::req_str(o, "type", &pp)? {
            "input_text" | "output_text" | "text" => out.push(text(json::req_str(o, "text", &pp)?)),
            "refusal" => out.push(text(json::req_str(o, "refusal", &pp)?)),
            "input_image" => match json::opt_str(o, "image_url", &pp)? {
                Some(url) => out.push(Part::Image {
                    source: image_source(url),
                    detail: json::opt_str(o, "detail", &pp)?.filter(|d| *d != "auto").map(str::to_string),
                    cache_control: None,
                }),
                // An uploaded file id means nothing to another vendor.
                None => out.push(Part::Raw(part.clone())),
            },
            // Files and audio have no canonical part: same protocol only.
            _ => out.push(Part::Raw(part.clone())),
        }
    }
    Ok(out)
}

/// A `data:` URL becomes inline base64; anything else stays a URL (never fetched).
fn image_source(url: &str) -> ImageSource {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((meta, data)) = rest.split_once(',')
        && let Some(media_type) = meta.strip_suffix(";base64")
    {
        return ImageSource::Base64 { media_type: media_type.to_string(), data: data.to_string() };
    }
    ImageSource::Url(url.to_string())
}

fn image_url(source: &ImageSource) -> String {
    match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url(u) => u.clone(),
    }
}

/// What a request of another protocol cannot carry from a Responses client:
/// OpenAI's stored state, and tool choices with no canonical meaning.
pub fn check_portable(req: &Request, to: Protocol) -> Result<()> {
    for field in STATEFUL_FIELDS {
        if req.extra.get(*field).is_some_and(|v| !v.is_null()) {
            return Err(CoreError::invalid(
                format!("/{field}"),
                format!(
                    "{field} needs state stored at OpenAI, which the {to} upstream does not have: send the whole \
                     conversation in input, or use an openai-responses route"
                ),
            ));
        }
    }
    for (field, on) in [("store", Value::Bool(true)), ("background", Value::Bool(true))] {
        if req.extra.get(field) == Some(&on) {
            return Err(CoreError::invalid(
                format!("/{field}"),
                format!("{field}: true needs state stored at OpenAI, which the {to} upstream does not have"),
            ));
        }
    }
    if let Some(c) = req.extra.get("tool_choice") {
        let kind = c.get("type").and_then(Value::as_str).unwrap_or("?");
        return Err(CoreError::unsupported(
            "/tool_choice",
            format!("tool_choice of type {kind:?} has no {to} counterpart"),
        ));
    }
    Ok(())
}

/// A same-protocol request: the client's body with only the model replaced.
pub fn passthrough_request(mut body: Value, model: Option<&str>) -> Value {
    if let (Some(m), Some(o)) = (model, body.as_object_mut()) {
        o.insert("model".into(), json!(m));
    }
    body
}

/// Encodes a canonical request of another protocol as a Responses request.
/// Nothing is stored upstream (`store: false`): the client's protocol is stateless.
pub fn encode_request(req: &Request, _profile: &CompatProfile) -> Result<Value> {
    let mut out = Map::new();
    out.insert("model".into(), json!(req.model));
    let mut input = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        encode_message(m, &format!("/messages/{i}"), &mut input)?;
    }
    out.insert("input".into(), Value::Array(input));
    if !req.tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools::encode_responses_tools(&req.tools, req.source)?));
        if let Some(p) = req.parallel_tool_calls {
            out.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    if let Some(c) = &req.tool_choice {
        out.insert("tool_choice".into(), tools::encode_responses_tool_choice(c));
    }
    if let Some(n) = req.max_tokens {
        out.insert("max_output_tokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        out.insert("temperature".into(), json!(t));
    }
    if let Some(t) = req.top_p {
        out.insert("top_p".into(), json!(t));
    }
    if !req.stop.is_empty() {
        return Err(CoreError::unsupported(
            "/stop",
            "stop sequences have no openai-responses counterpart: remove them or use another route",
        ));
    }
    if let Some(u) = &req.user {
        out.insert("user".into(), json!(u));
    }
    match &req.reasoning {
        Some(Reasoning::Effort(e)) => {
            out.insert("reasoning".into(), json!({"effort": e}));
        }
        Some(Reasoning::Budget(b)) => {
            out.insert("reasoning".into(), json!({"effort": reasoning_to_effort(*b)}));
        }
        Some(Reasoning::Disabled) | None => {}
    }
    if let Some(f) = &req.output_format {
        out.insert("text".into(), json!({"format": encode_text_format(f)}));
    }
    if req.stream {
        out.insert("stream".into(), json!(true));
    }
    out.insert("store".into(), json!(false));
    Ok(Value::Object(out))
}

fn content_parts(parts: &[&Part], p: &str) -> Result<Value> {
    if let [Part::Text { text, .. }] = parts {
        return Ok(json!(text));
    }
    parts
        .iter()
        .map(|part| match part {
            Part::Text { text, .. } => Ok(json!({"type": "input_text", "text": text})),
            Part::Image { source, detail, .. } => Ok(json!({
                "type": "input_image",
                "image_url": image_url(source),
                "detail": detail.as_deref().unwrap_or("auto"),
            })),
            other => Err(CoreError::unsupported(
                p,
                format!("{} has no openai-responses counterpart here", super::openai::part_name(other)),
            )),
        })
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}

fn encode_message(m: &Message, p: &str, out: &mut Vec<Value>) -> Result<()> {
    match m.role {
        Role::System | Role::Developer => {
            let role = if m.role == Role::Developer { "developer" } else { "system" };
            let parts: Vec<&Part> = m.content.iter().collect();
            out.push(json!({"type": "message", "role": role, "content": content_parts(&parts, p)?}));
        }
        Role::User => {
            let mut rest: Vec<&Part> = Vec::new();
            for part in &m.content {
                match part {
                    Part::ToolResult { tool_use_id, content, .. } => {
                        let output = if content.iter().all(|c| matches!(c, Part::Text { .. })) {
                            let texts: Vec<&str> = content
                                .iter()
                                .filter_map(
                                    |c| if let Part::Text { text, .. } = c { Some(text.as_str()) } else { None },
                                )
                                .collect();
                            json!(texts.join("\n"))
                        } else {
                            let parts: Vec<&Part> = content.iter().collect();
                            content_parts(&parts, p)?
                        };
                        out.push(json!({"type": "function_call_output", "call_id": tool_use_id, "output": output}));
                    }
                    Part::Text { .. } | Part::Image { .. } => rest.push(part),
                    other => {
                        return Err(CoreError::unsupported(
                            p,
                            format!(
                                "{} in a user message has no openai-responses counterpart",
                                super::openai::part_name(other)
                            ),
                        ));
                    }
                }
            }
            if !rest.is_empty() {
                out.push(json!({"type": "message", "role": "user", "content": content_parts(&rest, p)?}));
            }
        }
        Role::Assistant => {
            let texts: Vec<&str> = m
                .content
                .iter()
                .filter_map(|c| if let Part::Text { text, .. } = c { Some(text.as_str()) } else { None })
                .collect();
            if !texts.is_empty() {
                out.push(json!({"type": "message", "role": "assistant", "content": texts.concat()}));
            }
            for part in &m.content {
                match part {
                    Part::ToolUse { id, name, arguments, .. } => out.push(json!({
                        "type": "function_call",
                        "call_id": id,
                        "name": name,
                        "arguments": arguments,
                    })),
                    // Another vendor's reasoning cannot be verified by OpenAI: left out.
                    Part::Text { .. } | Part::Thinking { .. } | Part::RedactedThinking { .. } => {}
                    other => {
                        return Err(CoreError::unsupported(
                            p,
                            format!(
                                "{} in an assistant message has no openai-responses counterpart",
                                super::openai::part_name(other)
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Decodes a non-streaming Responses response. Output items with no
/// canonical meaning (built-in tool calls, compaction, MCP listings) are left
/// out for clients of other protocols; a same-protocol client gets the body as
/// it came (kept whole in `extra`).
pub fn decode_response(body: &Value) -> Result<Response> {
    let obj = json::as_object(body, "")?;
    let status = json::opt_str(obj, "status", "")?;
    if status == Some("failed") {
        let e = json::opt_object(obj, "error", "")?;
        let get = |k: &str| e.and_then(|e| e.get(k)).and_then(Value::as_str).unwrap_or("");
        return Err(CoreError::new(
            ErrorKind::Upstream,
            "/error",
            format!("upstream response failed: {} {}", get("code"), get("message")),
        ));
    }
    let items =
        json::opt_array(obj, "output", "")?.ok_or_else(|| CoreError::invalid("/output", "missing required field"))?;
    let mut content = Vec::new();
    let mut refusal: Option<String> = None;
    for (i, item) in items.iter().enumerate() {
        let p = join("/output", i);
        let o = json::as_object(item, &p)?;
        match json::req_str(o, "type", &p)? {
            "message" => {
                for (j, part) in json::opt_array(o, "content", &p)?.map(Vec::as_slice).unwrap_or(&[]).iter().enumerate()
                {
                    let pp = join(&join(&p, "content"), j);
                    let c = json::as_object(part, &pp)?;
                    match json::req_str(c, "type", &pp)? {
                        "output_text" => content.push(text(json::req_str(c, "text", &pp)?)),
                        "refusal" => {
                            refusal.get_or_insert_with(String::new).push_str(json::req_str(c, "refusal", &pp)?)
                        }
                        _ => {}
                    }
                }
            }
            "function_call" => content.push(Part::ToolUse {
                id: json::req_str(o, "call_id", &p)?.to_string(),
                name: json::req_str(o, "name", &p)?.to_string(),
                arguments: json::opt_str(o, "arguments", &p)?.unwrap_or("").to_string(),
                cache_control: None,
                extra: Map::new(),
            }),
            "reasoning" => content.push(decode_reasoning(o, &p)?),
            _ => {}
        }
    }
    let has_calls = content.iter().any(|c| matches!(c, Part::ToolUse { .. }));
    let reason = match json::opt_object(obj, "incomplete_details", "")? {
        Some(d) => json::opt_str(d, "reason", "/incomplete_details")?,
        None => None,
    };
    let stop_reason = Some(stop_reason(status, reason, has_calls));
    Ok(Response {
        source: Protocol::OpenAiResponses,
        model: json::opt_str(obj, "model", "")?.unwrap_or("").to_string(),
        content,
        refusal,
        stop_reason,
        stop_sequence: None,
        usage: json::opt_object(obj, "usage", "")?.map(|u| decode_usage(u, "/usage")).transpose()?,
        extra: obj.clone(),
        message_extra: Map::new(),
    })
}

/// A response's `status` and `incomplete_details.reason` as a stop reason.
pub fn stop_reason(status: Option<&str>, reason: Option<&str>, has_calls: bool) -> StopReason {
    match (status, reason) {
        (Some("incomplete"), Some("max_output_tokens")) => StopReason::MaxTokens,
        (Some("incomplete"), Some("content_filter")) => StopReason::Refusal,
        (Some("incomplete"), Some(r)) => StopReason::Other(r.to_string()),
        (Some("completed") | None, _) if has_calls => StopReason::ToolUse,
        (Some("completed") | None, _) => StopReason::EndTurn,
        (Some(other), _) => StopReason::Other(other.to_string()),
    }
}

/// Decodes a Responses `usage` object (cached tokens split out of `input_tokens`).
pub fn decode_usage(u: &Map<String, Value>, p: &str) -> Result<Usage> {
    let input = json::opt_u64(u, "input_tokens", p)?.unwrap_or(0);
    let cached = match json::opt_object(u, "input_tokens_details", p)? {
        Some(d) => json::opt_u64(d, "cached_tokens", &join(p, "input_tokens_details"))?.unwrap_or(0),
        None => 0,
    };
    let reasoning = match json::opt_object(u, "output_tokens_details", p)? {
        Some(d) => json::opt_u64(d, "reasoning_tokens", &join(p, "output_tokens_details"))?,
        None => None,
    };
    Ok(Usage {
        input_tokens: input.saturating_sub(cached),
        output_tokens: json::opt_u64(u, "output_tokens", p)?.unwrap_or(0),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: cached,
        reasoning_tokens: reasoning,
        extra: Map::new(),
    })
}

/// Encodes canonical usage as a Responses `usage` object.
pub fn encode_usage(u: &Usage) -> Value {
    let input = u.prompt_tokens();
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens.unwrap_or(0)},
        "total_tokens": input.saturating_add(u.output_tokens),
    })
}

/// `status` and `incomplete_details` of a stop reason.
pub fn status_of(stop: Option<&StopReason>) -> (&'static str, Value) {
    match stop {
        Some(StopReason::MaxTokens) => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some(StopReason::Refusal) => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The output items of a canonical response, ids derived from the context.
pub fn output_items(resp: &Response, ctx: &Context) -> Vec<Value> {
    let mut items = Vec::new();
    let mut n = 0u64;
    let mut next_id = |prefix: &str| {
        let id = ctx.item_id(prefix, n);
        n = n.saturating_add(1);
        id
    };
    let mut texts: Vec<Value> = Vec::new();
    let flush = |texts: &mut Vec<Value>, items: &mut Vec<Value>, id: String| {
        items.push(json!({
            "id": id,
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": std::mem::take(texts),
        }));
    };
    for part in &resp.content {
        if let Part::Text { text, .. } = part {
            texts.push(json!({"type": "output_text", "text": text, "annotations": []}));
            continue;
        }
        if !texts.is_empty() {
            let id = next_id("msg");
            flush(&mut texts, &mut items, id);
        }
        match part {
            Part::ToolUse { id, name, arguments, .. } => items.push(json!({
                "id": next_id("fc"),
                "type": "function_call",
                "status": "completed",
                "call_id": id,
                "name": name,
                "arguments": arguments,
            })),
            Part::Thinking { text, signature } => {
                items.push(reasoning_item(next_id("rs"), text, signature.as_deref().map(|s| (ANTHROPIC_SIGNATURE, s))))
            }
            Part::RedactedThinking { data } => {
                items.push(reasoning_item(next_id("rs"), "", Some((ANTHROPIC_REDACTED, data.as_str()))))
            }
            _ => {}
        }
    }
    if let Some(r) = &resp.refusal {
        texts.push(json!({"type": "refusal", "refusal": r}));
    }
    if !texts.is_empty() {
        let id = next_id("msg");
        flush(&mut texts, &mut items, id);
    }
    items
}

/// A reasoning output item; `encrypted` is a prefix and the data it marks.
pub fn reasoning_item(id: String, text: &str, encrypted: Option<(&str, &str)>) -> Value {
    let summary = if text.is_empty() { json!([]) } else { json!([{"type": "summary_text", "text": text}]) };
    let mut item = json!({"id": id, "type": "reasoning", "summary": summary});
    if let Some((prefix, data)) = encrypted {
        item["encrypted_content"] = json!(format!("{prefix}{data}"));
    }
    item
}

/// Encodes a canonical response as a Responses response. A same-protocol
/// response is the upstream's body as it came.
pub fn encode_response(resp: &Response, ctx: &Context) -> Value {
    if resp.source == Protocol::OpenAiResponses {
        return Value::Object(resp.extra.clone());
    }
    let (status, incomplete) = status_of(resp.stop_reason.as_ref());
    json!({
        "id": ctx.response_id(),
        "object": "response",
        "created_at": ctx.created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "model": resp.model,
        "output": output_items(resp, ctx),
        "usage": encode_usage(&resp.usage.clone().unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easy_messages_calls_and_outputs_form_alternating_turns() {
        let body = json!({
            "model": "gpt-5",
            "instructions": "be brief",
            "input": [
                {"role": "user", "content": "weather?"},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "look it up"}]},
                {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Rome\"}"},
                {"type": "function_call", "call_id": "call_2", "name": "weather", "arguments": "{\"city\":\"Oslo\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
                {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "snow"}]},
            ],
        });
        let req = decode_request(&body).unwrap();
        let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::User]);
        assert_eq!(req.messages[2].content.len(), 3);
        assert!(
            matches!(&req.messages[2].content[0], Part::Thinking { text, signature: None } if text == "look it up")
        );
        assert_eq!(req.messages[3].content.len(), 2);
    }

    #[test]
    fn anthropic_signatures_survive_a_responses_client() {
        let resp = Response {
            source: Protocol::AnthropicMessages,
            model: "claude".into(),
            content: vec![Part::Thinking { text: "hmm".into(), signature: Some("sig==".into()) }],
            refusal: None,
            stop_reason: Some(StopReason::EndTurn),
            stop_sequence: None,
            usage: None,
            extra: Map::new(),
            message_extra: Map::new(),
        };
        let item = output_items(&resp, &Context::fixed()).remove(0);
        let back = decode_reasoning(item.as_object().unwrap(), "").unwrap();
        assert_eq!(back, Part::Thinking { text: "hmm".into(), signature: Some("sig==".into()) });
    }

    #[test]
    fn stateful_fields_are_refused_across_protocols_by_name() {
        for (field, value) in
            [("previous_response_id", json!("resp_1")), ("store", json!(true)), ("conversation", json!("conv_1"))]
        {
            let mut body = json!({"model": "gpt-5", "input": "hi"});
            body[field] = value;
            let req = decode_request(&body).unwrap();
            let err = check_portable(&req, Protocol::AnthropicMessages).unwrap_err();
            assert_eq!(err.path, format!("/{field}"));
            assert!(err.message.contains(field));
        }
        let req = decode_request(&json!({"model": "gpt-5", "input": "hi", "store": false})).unwrap();
        check_portable(&req, Protocol::OpenAiChat).unwrap();
    }

    #[test]
    fn usage_counts_cached_tokens_once() {
        let u = json!({"input_tokens": 100, "input_tokens_details": {"cached_tokens": 40}, "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 107});
        let usage = decode_usage(u.as_object().unwrap(), "").unwrap();
        assert_eq!((usage.input_tokens, usage.cache_read_input_tokens, usage.reasoning_tokens), (60, 40, Some(3)));
        assert_eq!(encode_usage(&usage), u);
    }
}
