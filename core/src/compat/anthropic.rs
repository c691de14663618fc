//! Anthropic Messages bodies ⇄ the canonical model.

use super::{CompatProfile, effort_to_budget};

/// Smallest thinking budget the Anthropic API accepts.
pub const MIN_THINKING_BUDGET: u64 = 1024;
use crate::canonical::{
    ImageSource, Message, OutputFormat, Part, Reasoning, Request, Response, Role, StopReason, Usage,
};
use crate::context::Context;
use crate::error::{CoreError, Result};
use crate::json::{self, join};
use crate::protocol::Protocol;
use crate::tools;
use serde_json::{Map, Value, json};

const REQUEST_FIELDS: &[&str] = &[
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
    "stream",
    "thinking",
];

/// Decodes an Anthropic Messages request.
pub fn decode_request(body: &Value) -> Result<Request> {
    let obj = json::as_object(body, "")?;
    let mut messages = Vec::new();
    match json::field(obj, "system") {
        None => {}
        Some(Value::String(s)) => messages.push(Message {
            role: Role::System,
            content: vec![Part::Text { text: s.clone(), cache_control: None, citations: None }],
            name: None,
        }),
        Some(Value::Array(blocks)) => {
            let content = blocks
                .iter()
                .enumerate()
                .map(|(i, b)| decode_block(b, &format!("/system/{i}")))
                .collect::<Result<Vec<_>>>()?;
            messages.push(Message { role: Role::System, content, name: None });
        }
        Some(v) => {
            return Err(CoreError::invalid(
                "/system",
                format!("expected a string or an array, got {}", json::type_name(v)),
            ));
        }
    }
    let raw = json::opt_array(obj, "messages", "")?
        .ok_or_else(|| CoreError::invalid("/messages", "missing required field"))?;
    for (i, m) in raw.iter().enumerate() {
        let p = join("/messages", i);
        let mo = json::as_object(m, &p)?;
        let role = match json::req_str(mo, "role", &p)? {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(CoreError::invalid(join(&p, "role"), format!("unknown role {other:?}"))),
        };
        let cp = join(&p, "content");
        let content = match json::required(mo, "content", &p)? {
            Value::String(s) => vec![Part::Text { text: s.clone(), cache_control: None, citations: None }],
            Value::Array(blocks) => {
                blocks.iter().enumerate().map(|(j, b)| decode_block(b, &join(&cp, j))).collect::<Result<_>>()?
            }
            v => {
                return Err(CoreError::invalid(
                    cp,
                    format!("expected a string or an array, got {}", json::type_name(v)),
                ));
            }
        };
        messages.push(Message { role, content, name: None });
    }
    let tools = match json::opt_array(obj, "tools", "")? {
        Some(t) => tools::decode_anthropic_tools(t, "/tools")?,
        None => Vec::new(),
    };
    let (tool_choice, disable_parallel) = match json::field(obj, "tool_choice") {
        Some(v) => {
            let (c, d) = tools::decode_anthropic_tool_choice(v, "/tool_choice")?;
            (Some(c), d)
        }
        None => (None, None),
    };
    let stop = match json::opt_array(obj, "stop_sequences", "")? {
        Some(a) => a
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| CoreError::invalid(format!("/stop_sequences/{i}"), "expected a string"))
            })
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let mut extra = json::extras(obj, REQUEST_FIELDS);
    let user = match json::opt_object(obj, "metadata", "")? {
        Some(md) => {
            let rest = json::extras(md, &["user_id"]);
            if !rest.is_empty() {
                extra.insert("metadata".into(), Value::Object(rest));
            }
            json::opt_str(md, "user_id", "/metadata")?.map(str::to_string)
        }
        None => None,
    };
    let reasoning = match json::opt_object(obj, "thinking", "")? {
        None => None,
        Some(t) => match json::req_str(t, "type", "/thinking")? {
            "enabled" => Some(Reasoning::Budget(
                json::opt_u64(t, "budget_tokens", "/thinking")?
                    .ok_or_else(|| CoreError::invalid("/thinking/budget_tokens", "missing required field"))?,
            )),
            "disabled" => Some(Reasoning::Disabled),
            other => {
                return Err(CoreError::unsupported(
                    "/thinking/type",
                    format!("thinking type {other:?} is not supported"),
                ));
            }
        },
    };
    Ok(Request {
        source: Protocol::AnthropicMessages,
        model: json::req_str(obj, "model", "")?.to_string(),
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: disable_parallel.map(|d| !d),
        max_tokens: json::opt_u64(obj, "max_tokens", "")?,
        temperature: json::opt_f64(obj, "temperature", "")?,
        top_p: json::opt_f64(obj, "top_p", "")?,
        top_k: json::opt_u64(obj, "top_k", "")?,
        stop,
        user,
        stream: json::opt_bool(obj, "stream", "")?.unwrap_or(false),
        include_usage: None,
        reasoning,
        output_format: decode_output_format(obj)?,
        extra,
    })
}

/// Decodes one content block. Types with no canonical meaning are kept raw.
pub fn decode_block(b: &Value, p: &str) -> Result<Part> {
    let o = json::as_object(b, p)?;
    let cache_control = json::field(o, "cache_control").cloned();
    Ok(match json::req_str(o, "type", p)? {
        "text" => Part::Text {
            text: json::req_str(o, "text", p)?.to_string(),
            cache_control,
            citations: json::field(o, "citations").cloned(),
        },
        "image" => {
            let sp = join(p, "source");
            let s = json::as_object(json::required(o, "source", p)?, &sp)?;
            let source = match json::req_str(s, "type", &sp)? {
                "base64" => ImageSource::Base64 {
                    media_type: json::req_str(s, "media_type", &sp)?.to_string(),
                    data: json::req_str(s, "data", &sp)?.to_string(),
                },
                "url" => ImageSource::Url(json::req_str(s, "url", &sp)?.to_string()),
                _ => return Ok(Part::Raw(b.clone())),
            };
            Part::Image { source, detail: None, cache_control }
        }
        "tool_use" => Part::ToolUse {
            id: json::req_str(o, "id", p)?.to_string(),
            name: json::req_str(o, "name", p)?.to_string(),
            arguments: tools::stringify_arguments(json::field(o, "input").unwrap_or(&json!({}))),
            cache_control,
            extra: json::extras(o, TOOL_USE_FIELDS),
        },
        "tool_result" => {
            let cp = join(p, "content");
            let content = match json::field(o, "content") {
                None => Vec::new(),
                Some(Value::String(s)) => vec![Part::Text { text: s.clone(), cache_control: None, citations: None }],
                Some(Value::Array(a)) => {
                    a.iter().enumerate().map(|(i, c)| decode_block(c, &join(&cp, i))).collect::<Result<_>>()?
                }
                Some(v) => {
                    return Err(CoreError::invalid(
                        cp,
                        format!("expected a string or an array, got {}", json::type_name(v)),
                    ));
                }
            };
            Part::ToolResult {
                tool_use_id: json::req_str(o, "tool_use_id", p)?.to_string(),
                content,
                is_error: json::opt_bool(o, "is_error", p)?.unwrap_or(false),
                cache_control,
            }
        }
        "thinking" => Part::Thinking {
            text: json::opt_str(o, "thinking", p)?.unwrap_or("").to_string(),
            signature: json::opt_str(o, "signature", p)?.map(str::to_string),
        },
        "redacted_thinking" => Part::RedactedThinking { data: json::req_str(o, "data", p)?.to_string() },
        _ => Part::Raw(b.clone()),
    })
}

/// The fields of a `tool_use` block with a canonical meaning.
pub const TOOL_USE_FIELDS: &[&str] = &["type", "id", "name", "input", "cache_control"];

/// Encodes one canonical part as an Anthropic block, or `None` when the
/// part has no Anthropic form that the API would accept (empty text,
/// unsigned thinking). `same`: the part was decoded from Anthropic, so its
/// Anthropic-only fields go back too.
pub fn encode_block(part: &Part, same: bool) -> Option<Value> {
    let with_cache = |mut v: Value, c: &Option<Value>| {
        if let Some(c) = c {
            v["cache_control"] = c.clone();
        }
        v
    };
    Some(match part {
        Part::Text { text, .. } if text.is_empty() => return None,
        Part::Text { text, cache_control, citations } => {
            let mut v = json!({"type": "text", "text": text});
            if let Some(c) = citations {
                v["citations"] = c.clone();
            }
            with_cache(v, cache_control)
        }
        Part::Image { source, cache_control, .. } => {
            let source = match source {
                ImageSource::Base64 { media_type, data } => {
                    json!({"type": "base64", "media_type": media_type, "data": data})
                }
                ImageSource::Url(u) => json!({"type": "url", "url": u}),
            };
            with_cache(json!({"type": "image", "source": source}), cache_control)
        }
        Part::ToolUse { id, name, arguments, cache_control, extra } => {
            let input = tools::parse_arguments(arguments, "").unwrap_or_else(|_| json!({}));
            let mut v = json!({"type": "tool_use", "id": id, "name": name, "input": input});
            if same {
                for (k, x) in extra {
                    v[k] = x.clone();
                }
            }
            with_cache(v, cache_control)
        }
        Part::ToolResult { tool_use_id, content, is_error, cache_control } => {
            let mut v = json!({"type": "tool_result", "tool_use_id": tool_use_id});
            match content.as_slice() {
                [Part::Text { text, cache_control: None, citations: None }] => v["content"] = json!(text),
                parts => v["content"] = Value::Array(parts.iter().filter_map(|p| encode_block(p, same)).collect()),
            }
            if *is_error {
                v["is_error"] = json!(true);
            }
            with_cache(v, cache_control)
        }
        Part::Thinking { signature: None, .. } => return None,
        // Another vendor's signed reasoning is not Anthropic's to verify.
        Part::Thinking { signature: Some(s), .. } if s.starts_with(super::GEMINI_SIGNATURE) => return None,
        Part::Thinking { text, signature: Some(s) } => json!({"type": "thinking", "thinking": text, "signature": s}),
        Part::RedactedThinking { data } => json!({"type": "redacted_thinking", "data": data}),
        Part::Raw(v) => v.clone(),
    })
}

/// Encodes a canonical request as an Anthropic Messages request.
pub fn encode_request(req: &Request, profile: &CompatProfile) -> Result<Value> {
    let same = req.source == Protocol::AnthropicMessages;
    let mut system: Vec<Value> = Vec::new();
    let mut messages: Vec<(Role, Vec<Value>)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let p = format!("/messages/{i}");
        if !same {
            check_arguments(m, &p)?;
            check_no_raw(m, &p)?;
        }
        let blocks: Vec<Value> = m.content.iter().filter_map(|p| encode_block(p, same)).collect();
        match m.role {
            Role::System | Role::Developer => system.extend(blocks),
            role => {
                if blocks.is_empty() {
                    continue;
                }
                // Anthropic alternates roles: consecutive turns of one role merge.
                match messages.last_mut() {
                    Some((r, b)) if *r == role => b.extend(blocks),
                    _ => messages.push((role, blocks)),
                }
            }
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(req.model));
    let budget = match &req.reasoning {
        Some(Reasoning::Budget(b)) => Some(*b),
        Some(Reasoning::Effort(e)) => effort_to_budget(e),
        Some(Reasoning::Disabled) | None => None,
    };
    // The API requires MIN_THINKING_BUDGET <= budget_tokens < max_tokens. A
    // client's own cap wins: the budget shrinks to fit under it, and thinking
    // is left off when the cap is below the minimum budget.
    let (max_tokens, budget) = match (req.max_tokens, budget) {
        (Some(cap), Some(b)) if b >= cap => (cap, cap.checked_sub(1).filter(|&b| b >= MIN_THINKING_BUDGET)),
        (Some(cap), b) => (cap, b),
        (None, Some(b)) => (b.saturating_add(profile.default_max_tokens), Some(b)),
        (None, None) => (profile.default_max_tokens, None),
    };
    out.insert("max_tokens".into(), json!(max_tokens));
    match system.as_slice() {
        [] => {}
        [one] if one.get("cache_control").is_none() && one.get("citations").is_none() && one["type"] == "text" => {
            out.insert("system".into(), one["text"].clone());
        }
        _ => {
            out.insert("system".into(), Value::Array(system));
        }
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(role, blocks)| {
            let role = if role == Role::Assistant { "assistant" } else { "user" };
            match blocks.as_slice() {
                [b] if b["type"] == "text" && b.as_object().is_some_and(|o| o.len() == 2) => {
                    json!({"role": role, "content": b["text"]})
                }
                _ => json!({"role": role, "content": blocks}),
            }
        })
        .collect();
    out.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools::encode_anthropic_tools(&req.tools, req.source)?));
    }
    let parallel = if req.tools.is_empty() { None } else { req.parallel_tool_calls };
    if let Some(tc) = tools::encode_anthropic_tool_choice(req.tool_choice.as_ref(), parallel) {
        out.insert("tool_choice".into(), tc);
    }
    if let Some(b) = budget {
        out.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": b}));
    } else if same && req.reasoning == Some(Reasoning::Disabled) {
        out.insert("thinking".into(), json!({"type": "disabled"}));
    }
    // Thinking is incompatible with custom temperature and top_k.
    if budget.is_none() {
        if let Some(t) = req.temperature {
            out.insert("temperature".into(), json!(t.min(profile.max_temperature)));
        }
        if let Some(k) = req.top_k {
            out.insert("top_k".into(), json!(k));
        }
    }
    if let Some(t) = req.top_p {
        out.insert("top_p".into(), json!(t));
    }
    if !req.stop.is_empty() {
        out.insert("stop_sequences".into(), json!(req.stop));
    }
    let mut metadata = match (same, req.extra.get("metadata")) {
        (true, Some(Value::Object(m))) => m.clone(),
        _ => Map::new(),
    };
    if let Some(u) = &req.user {
        metadata.insert("user_id".into(), json!(u));
    }
    if !metadata.is_empty() {
        out.insert("metadata".into(), Value::Object(metadata));
    }
    if req.stream {
        out.insert("stream".into(), json!(true));
    }
    // Anthropic takes a schema only; a bare JSON-object request has no form here.
    if let (false, Some(OutputFormat::JsonSchema { schema, .. })) = (same, &req.output_format) {
        out.insert("output_config".into(), json!({"format": {"type": "json_schema", "schema": schema}}));
    }
    if same {
        for (k, v) in &req.extra {
            if k != "metadata" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(Value::Object(out))
}

/// Structured output: `output_config.format`, or the beta's `output_format`.
fn decode_output_format(obj: &Map<String, Value>) -> Result<Option<OutputFormat>> {
    let (format, p) = match json::opt_object(obj, "output_config", "")? {
        Some(c) if c.contains_key("format") => {
            (json::opt_object(c, "format", "/output_config")?, "/output_config/format")
        }
        _ => (json::opt_object(obj, "output_format", "")?, "/output_format"),
    };
    let Some(f) = format else { return Ok(None) };
    match json::req_str(f, "type", p)? {
        "json_schema" => Ok(Some(OutputFormat::JsonSchema {
            name: "output".into(),
            schema: json::required(f, "schema", p)?.clone(),
            strict: None,
            description: None,
        })),
        other => Err(CoreError::unsupported(join(p, "type"), format!("output format type {other:?} is not supported"))),
    }
}

/// Items of another protocol with no canonical meaning (Responses `item_reference`,
/// built-in tool calls, files by id) cannot be sent to Anthropic.
fn check_no_raw(m: &Message, p: &str) -> Result<()> {
    match m.content.iter().find(|c| matches!(c, Part::Raw(_))) {
        Some(part) => Err(CoreError::unsupported(
            p,
            format!("{} has no anthropic-messages counterpart", super::openai::part_name(part)),
        )),
        None => Ok(()),
    }
}

/// Tool-call arguments from an OpenAI client must be JSON objects for Anthropic.
fn check_arguments(m: &Message, p: &str) -> Result<()> {
    for part in &m.content {
        if let Part::ToolUse { arguments, .. } = part {
            tools::parse_arguments(arguments, p)?;
        }
    }
    Ok(())
}

const RESPONSE_FIELDS: &[&str] = &["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"];

/// Decodes a non-streaming Anthropic message.
pub fn decode_response(body: &Value) -> Result<Response> {
    let obj = json::as_object(body, "")?;
    if json::opt_str(obj, "type", "")? == Some("error") {
        return Err(CoreError::invalid("/type", "the body is an error, not a message; convert it as an error"));
    }
    let blocks =
        json::opt_array(obj, "content", "")?.ok_or_else(|| CoreError::invalid("/content", "missing required field"))?;
    let content = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| decode_block(b, &format!("/content/{i}")))
        .collect::<Result<Vec<_>>>()?;
    let refusal = json::opt_object(obj, "stop_details", "")?
        .and_then(|d| d.get("explanation"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Response {
        source: Protocol::AnthropicMessages,
        model: json::opt_str(obj, "model", "")?.unwrap_or("").to_string(),
        content,
        refusal,
        stop_reason: json::opt_str(obj, "stop_reason", "")?.map(StopReason::from_anthropic),
        stop_sequence: json::opt_str(obj, "stop_sequence", "")?.map(str::to_string),
        usage: json::opt_object(obj, "usage", "")?.map(|u| decode_usage(u, "/usage")).transpose()?,
        extra: json::extras(obj, RESPONSE_FIELDS),
        message_extra: Map::new(),
    })
}

/// Decodes an Anthropic `usage` object.
pub fn decode_usage(u: &Map<String, Value>, p: &str) -> Result<Usage> {
    Ok(Usage {
        input_tokens: json::opt_u64(u, "input_tokens", p)?.unwrap_or(0),
        output_tokens: json::opt_u64(u, "output_tokens", p)?.unwrap_or(0),
        cache_creation_input_tokens: json::opt_u64(u, "cache_creation_input_tokens", p)?.unwrap_or(0),
        cache_read_input_tokens: json::opt_u64(u, "cache_read_input_tokens", p)?.unwrap_or(0),
        reasoning_tokens: None,
        extra: json::extras(
            u,
            &["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"],
        ),
    })
}

/// Encodes canonical usage as an Anthropic `usage` object.
pub fn encode_usage(u: &Usage, same: bool) -> Value {
    let mut o = json!({
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
        "output_tokens": u.output_tokens,
    });
    if same {
        for (k, v) in &u.extra {
            o[k] = v.clone();
        }
    }
    o
}

/// Encodes a canonical response as an Anthropic message.
pub fn encode_response(resp: &Response, ctx: &Context) -> Value {
    let same = resp.source == Protocol::AnthropicMessages;
    let mut content: Vec<Value> = Vec::new();
    for part in &resp.content {
        match part {
            // Unsigned reasoning from an OpenAI-protocol upstream still shows as thinking.
            Part::Thinking { text, signature: None } => {
                content.push(json!({"type": "thinking", "thinking": text, "signature": ""}))
            }
            p => content.extend(encode_block(p, same)),
        }
    }
    if !same
        && let Some(r) = &resp.refusal
        && !resp.content.iter().any(|p| matches!(p, Part::Text { .. }))
    {
        content.push(json!({"type": "text", "text": r}));
    }
    let mut stop = resp.stop_reason.as_ref().map(|s| s.to_anthropic().to_string());
    // An OpenAI refusal arrives with finish_reason "stop"; Anthropic says so in stop_reason.
    if !same && resp.refusal.is_some() && matches!(resp.stop_reason, Some(StopReason::EndTurn) | None) {
        stop = Some("refusal".into());
    }
    let mut out = json!({
        "id": ctx.anthropic_message_id(),
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": resp.stop_sequence,
        "usage": encode_usage(&resp.usage.clone().unwrap_or_default(), same),
    });
    if same {
        for (k, v) in &resp.extra {
            out[k] = v.clone();
        }
    }
    out
}
