//! OpenAI Chat Completions bodies ⇄ the canonical model.

use super::{CompatProfile, reasoning_to_effort};
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
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "user",
    "stream",
    "stream_options",
    "reasoning_effort",
];

/// Decodes an OpenAI chat completion request.
pub fn decode_request(body: &Value) -> Result<Request> {
    let obj = json::as_object(body, "")?;
    let mut messages: Vec<Message> = Vec::new();
    let raw_messages = json::opt_array(obj, "messages", "")?
        .ok_or_else(|| CoreError::invalid("/messages", "missing required field"))?;
    for (i, m) in raw_messages.iter().enumerate() {
        let p = join("/messages", i);
        let decoded = decode_message(m, &p)?;
        // Consecutive tool results form one user turn, as Anthropic requires.
        let is_tool_result = decoded.content.iter().all(|c| matches!(c, Part::ToolResult { .. }));
        if let (true, Some(last)) = (decoded.role == Role::User && is_tool_result, messages.last_mut())
            && last.role == Role::User
            && last.content.iter().all(|c| matches!(c, Part::ToolResult { .. }))
        {
            last.content.extend(decoded.content);
            continue;
        }
        messages.push(decoded);
    }
    let tools = match json::opt_array(obj, "tools", "")? {
        Some(t) => tools::decode_openai_tools(t, "/tools")?,
        None => Vec::new(),
    };
    let tool_choice =
        json::field(obj, "tool_choice").map(|v| tools::decode_openai_tool_choice(v, "/tool_choice")).transpose()?;
    let stop = match json::field(obj, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| CoreError::invalid(format!("/stop/{i}"), "expected a string"))
            })
            .collect::<Result<_>>()?,
        Some(v) => {
            return Err(CoreError::invalid(
                "/stop",
                format!("expected a string or an array, got {}", json::type_name(v)),
            ));
        }
    };
    let include_usage = match json::opt_object(obj, "stream_options", "")? {
        Some(o) => json::opt_bool(o, "include_usage", "/stream_options")?,
        None => None,
    };
    let max_tokens = match json::opt_u64(obj, "max_completion_tokens", "")? {
        Some(n) => Some(n),
        None => json::opt_u64(obj, "max_tokens", "")?,
    };
    Ok(Request {
        source: Protocol::OpenAiChat,
        model: json::req_str(obj, "model", "")?.to_string(),
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: json::opt_bool(obj, "parallel_tool_calls", "")?,
        max_tokens,
        temperature: json::opt_f64(obj, "temperature", "")?,
        top_p: json::opt_f64(obj, "top_p", "")?,
        top_k: None,
        stop,
        user: json::opt_str(obj, "user", "")?.map(str::to_string),
        stream: json::opt_bool(obj, "stream", "")?.unwrap_or(false),
        include_usage,
        reasoning: json::opt_str(obj, "reasoning_effort", "")?.map(|e| Reasoning::Effort(e.to_string())),
        output_format: decode_response_format(obj)?,
        extra: json::extras(obj, REQUEST_FIELDS),
    })
}

/// `response_format`: `text` (none), `json_object`, or `json_schema`.
fn decode_response_format(obj: &Map<String, Value>) -> Result<Option<OutputFormat>> {
    let Some(f) = json::opt_object(obj, "response_format", "")? else { return Ok(None) };
    let p = "/response_format";
    match json::req_str(f, "type", p)? {
        "text" => Ok(None),
        "json_object" => Ok(Some(OutputFormat::JsonObject)),
        "json_schema" => {
            let sp = "/response_format/json_schema";
            let s = json::as_object(json::required(f, "json_schema", p)?, sp)?;
            Ok(Some(OutputFormat::JsonSchema {
                name: json::opt_str(s, "name", sp)?.unwrap_or("output").to_string(),
                schema: json::field(s, "schema").cloned().unwrap_or_else(|| json!({})),
                strict: json::opt_bool(s, "strict", sp)?,
                description: json::opt_str(s, "description", sp)?.map(str::to_string),
            }))
        }
        other => {
            Err(CoreError::unsupported(join(p, "type"), format!("response_format type {other:?} is not supported")))
        }
    }
}

/// `response_format` for a canonical output format.
fn encode_response_format(f: &OutputFormat) -> Value {
    match f {
        OutputFormat::JsonObject => json!({"type": "json_object"}),
        OutputFormat::JsonSchema { name, schema, strict, description } => {
            let mut s = Map::new();
            s.insert("name".into(), json!(name));
            if let Some(d) = description {
                s.insert("description".into(), json!(d));
            }
            s.insert("schema".into(), schema.clone());
            if let Some(st) = strict {
                s.insert("strict".into(), json!(st));
            }
            json!({"type": "json_schema", "json_schema": s})
        }
    }
}

fn decode_message(m: &Value, p: &str) -> Result<Message> {
    let obj = json::as_object(m, p)?;
    let role = json::req_str(obj, "role", p)?;
    let name = json::opt_str(obj, "name", p)?.map(str::to_string);
    let content_path = join(p, "content");
    match role {
        "system" | "developer" => Ok(Message {
            role: if role == "system" { Role::System } else { Role::Developer },
            content: decode_content(json::field(obj, "content"), &content_path)?,
            name,
        }),
        "user" => {
            Ok(Message { role: Role::User, content: decode_content(json::field(obj, "content"), &content_path)?, name })
        }
        "assistant" => {
            let mut content = decode_reasoning(obj, p)?;
            content.extend(decode_content(json::field(obj, "content"), &content_path)?);
            if let Some(calls) = json::opt_array(obj, "tool_calls", p)? {
                for (i, call) in calls.iter().enumerate() {
                    let cp = join(&join(p, "tool_calls"), i);
                    let c = json::as_object(call, &cp)?;
                    let fp = join(&cp, "function");
                    let f = json::as_object(json::required(c, "function", &cp)?, &fp)?;
                    content.push(Part::ToolUse {
                        id: json::req_str(c, "id", &cp)?.to_string(),
                        name: json::req_str(f, "name", &fp)?.to_string(),
                        arguments: json::opt_str(f, "arguments", &fp)?.unwrap_or("").to_string(),
                        cache_control: json::field(c, "cache_control").cloned(),
                        extra: Map::new(),
                    });
                }
            }
            Ok(Message { role: Role::Assistant, content, name })
        }
        "tool" => {
            let content = decode_content(json::field(obj, "content"), &content_path)?;
            Ok(Message {
                role: Role::User,
                content: vec![Part::ToolResult {
                    tool_use_id: json::req_str(obj, "tool_call_id", p)?.to_string(),
                    content,
                    is_error: false,
                    cache_control: None,
                }],
                name: None,
            })
        }
        "function" => {
            Err(CoreError::unsupported(join(p, "role"), "legacy role \"function\" is not supported; use tool messages"))
        }
        other => Err(CoreError::invalid(join(p, "role"), format!("unknown role {other:?}"))),
    }
}

/// Reasoning carried in an assistant message: LiteLLM-style `thinking_blocks`
/// (with signatures) or the plain `reasoning_content` text.
fn decode_reasoning(obj: &Map<String, Value>, p: &str) -> Result<Vec<Part>> {
    if let Some(blocks) = json::opt_array(obj, "thinking_blocks", p)? {
        let mut out = Vec::new();
        for (i, b) in blocks.iter().enumerate() {
            let bp = join(&join(p, "thinking_blocks"), i);
            let o = json::as_object(b, &bp)?;
            match json::req_str(o, "type", &bp)? {
                "thinking" => out.push(Part::Thinking {
                    text: json::opt_str(o, "thinking", &bp)?.unwrap_or("").to_string(),
                    signature: json::opt_str(o, "signature", &bp)?.map(str::to_string),
                }),
                "redacted_thinking" => {
                    out.push(Part::RedactedThinking { data: json::req_str(o, "data", &bp)?.to_string() })
                }
                other => {
                    return Err(CoreError::unsupported(
                        join(&bp, "type"),
                        format!("unknown thinking block type {other:?}"),
                    ));
                }
            }
        }
        return Ok(out);
    }
    Ok(match json::opt_str(obj, "reasoning_content", p)? {
        Some(t) if !t.is_empty() => vec![Part::Thinking { text: t.to_string(), signature: None }],
        _ => Vec::new(),
    })
}

fn decode_content(v: Option<&Value>, p: &str) -> Result<Vec<Part>> {
    let parts = match v {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => {
            return Ok(vec![Part::Text { text: s.clone(), cache_control: None, citations: None }]);
        }
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
        let cache_control = json::field(o, "cache_control").cloned();
        match json::req_str(o, "type", &pp)? {
            "text" => out.push(Part::Text {
                text: json::req_str(o, "text", &pp)?.to_string(),
                cache_control,
                citations: None,
            }),
            "image_url" => {
                let ip = join(&pp, "image_url");
                let img = json::as_object(json::required(o, "image_url", &pp)?, &ip)?;
                let url = json::req_str(img, "url", &ip)?;
                out.push(Part::Image {
                    source: parse_image_url(url),
                    detail: json::opt_str(img, "detail", &ip)?.map(str::to_string),
                    cache_control,
                });
            }
            "refusal" => out.push(Part::Text {
                text: json::req_str(o, "refusal", &pp)?.to_string(),
                cache_control,
                citations: None,
            }),
            other => {
                return Err(CoreError::unsupported(
                    join(&pp, "type"),
                    format!("content part type {other:?} is not supported"),
                ));
            }
        }
    }
    Ok(out)
}

/// A `data:` URL becomes inline base64; anything else stays a URL (never fetched).
fn parse_image_url(url: &str) -> ImageSource {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((meta, data)) = rest.split_once(',')
        && let Some(media_type) = meta.strip_suffix(";base64")
    {
        return ImageSource::Base64 { media_type: media_type.to_string(), data: data.to_string() };
    }
    ImageSource::Url(url.to_string())
}

fn text_part(text: &str, cache_control: &Option<Value>) -> Value {
    let mut o = json!({"type": "text", "text": text});
    if let Some(c) = cache_control {
        o["cache_control"] = c.clone();
    }
    o
}

fn image_part(source: &ImageSource, detail: &Option<String>) -> Value {
    let url = match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url(u) => u.clone(),
    };
    let mut img = json!({"url": url});
    if let Some(d) = detail {
        img["detail"] = json!(d);
    }
    json!({"type": "image_url", "image_url": img})
}

/// Plain string when the content is one uncached text, else an array of parts.
/// `cache_control` is kept only when the client itself sent it (OpenAI caches
/// prompts by itself and does not take the marker).
fn encode_content(parts: &[&Part], path: &str, same: bool) -> Result<Value> {
    let plain = |c: &Option<Value>| c.is_none() || !same;
    if let [Part::Text { text, cache_control, .. }] = parts
        && plain(cache_control)
    {
        return Ok(json!(text));
    }
    parts
        .iter()
        .map(|p| match p {
            Part::Text { text, cache_control, .. } => Ok(text_part(text, if same { cache_control } else { &None })),
            Part::Image { source, detail, .. } => Ok(image_part(source, detail)),
            other => {
                Err(CoreError::unsupported(path, format!("{} cannot appear here in openai-chat", part_name(other))))
            }
        })
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}

pub(super) fn part_name(p: &Part) -> String {
    match p {
        Part::Text { .. } => "text".into(),
        Part::Image { .. } => "image".into(),
        Part::ToolUse { .. } => "tool_use".into(),
        Part::ToolResult { .. } => "tool_result".into(),
        Part::Thinking { .. } => "thinking".into(),
        Part::RedactedThinking { .. } => "redacted_thinking".into(),
        Part::Raw(v) => format!("block type {:?}", v.get("type").and_then(Value::as_str).unwrap_or("?")),
    }
}

/// Encodes a canonical request as an OpenAI chat completion request.
pub fn encode_request(req: &Request, profile: &CompatProfile) -> Result<Value> {
    let same = req.source == Protocol::OpenAiChat;
    let mut out = Map::new();
    out.insert("model".into(), json!(req.model));
    let mut messages = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        encode_message(m, &format!("/messages/{i}"), same, &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools::encode_openai_tools(&req.tools, req.source)?));
        if let Some(p) = req.parallel_tool_calls {
            out.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    if let Some(c) = &req.tool_choice {
        out.insert("tool_choice".into(), tools::encode_openai_tool_choice(c));
    }
    if let Some(n) = req.max_tokens {
        out.insert(profile.max_tokens_field.into(), json!(n));
    }
    if let Some(t) = req.temperature {
        out.insert("temperature".into(), json!(t));
    }
    if let Some(t) = req.top_p {
        out.insert("top_p".into(), json!(t));
    }
    if !req.stop.is_empty() {
        out.insert("stop".into(), json!(req.stop));
    }
    if let Some(u) = &req.user {
        out.insert("user".into(), json!(u));
    }
    match &req.reasoning {
        Some(Reasoning::Effort(e)) => {
            out.insert("reasoning_effort".into(), json!(e));
        }
        Some(Reasoning::Budget(b)) => {
            out.insert("reasoning_effort".into(), json!(reasoning_to_effort(*b)));
        }
        Some(Reasoning::Disabled) | None => {}
    }
    if req.stream {
        out.insert("stream".into(), json!(true));
        // A client of another protocol always gets usage, so ask for it.
        let include = if same { req.include_usage } else { Some(true) };
        if let Some(inc) = include {
            out.insert("stream_options".into(), json!({"include_usage": inc}));
        }
    }
    if let (false, Some(f)) = (same, &req.output_format) {
        out.insert("response_format".into(), encode_response_format(f));
    }
    if same {
        for (k, v) in &req.extra {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(Value::Object(out))
}

fn encode_message(m: &Message, p: &str, same: bool, out: &mut Vec<Value>) -> Result<()> {
    let with_name = |mut v: Value| {
        if let (true, Some(n)) = (same, &m.name) {
            v["name"] = json!(n);
        }
        v
    };
    match m.role {
        Role::System | Role::Developer => {
            let role = if m.role == Role::Developer && same { "developer" } else { "system" };
            let parts: Vec<&Part> = m.content.iter().collect();
            out.push(with_name(json!({"role": role, "content": encode_content(&parts, p, same)?})));
        }
        Role::User => {
            // Tool results become `tool` messages; images inside them, which
            // tool messages cannot carry, follow in a user message.
            let mut rest: Vec<&Part> = Vec::new();
            let mut result_images: Vec<&Part> = Vec::new();
            for part in &m.content {
                match part {
                    Part::ToolResult { tool_use_id, content, .. } => {
                        let texts: Vec<&Part> = content.iter().filter(|c| matches!(c, Part::Text { .. })).collect();
                        result_images.extend(content.iter().filter(|c| matches!(c, Part::Image { .. })));
                        let text: String = texts
                            .iter()
                            .filter_map(|t| if let Part::Text { text, .. } = t { Some(text.as_str()) } else { None })
                            .collect::<Vec<_>>()
                            .join("\n");
                        out.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": text}));
                    }
                    Part::Text { .. } | Part::Image { .. } => rest.push(part),
                    other => {
                        return Err(CoreError::unsupported(
                            p,
                            format!("{} in a user message has no openai-chat counterpart", part_name(other)),
                        ));
                    }
                }
            }
            rest.splice(0..0, result_images);
            if !rest.is_empty() {
                out.push(with_name(json!({"role": "user", "content": encode_content(&rest, p, same)?})));
            }
        }
        Role::Assistant => {
            let mut msg = Map::new();
            msg.insert("role".into(), json!("assistant"));
            let texts: Vec<&Part> = m.content.iter().filter(|c| matches!(c, Part::Text { .. })).collect();
            let mut calls = Vec::new();
            let mut thinking = Vec::new();
            for part in &m.content {
                match part {
                    Part::ToolUse { id, name, arguments, .. } => calls.push(
                        json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}),
                    ),
                    Part::Thinking { .. } | Part::RedactedThinking { .. } => thinking.push(part),
                    Part::Text { .. } => {}
                    other => {
                        return Err(CoreError::unsupported(
                            p,
                            format!("{} in an assistant message has no openai-chat counterpart", part_name(other)),
                        ));
                    }
                }
            }
            msg.insert("content".into(), if texts.is_empty() { Value::Null } else { encode_content(&texts, p, same)? });
            if !calls.is_empty() {
                msg.insert("tool_calls".into(), Value::Array(calls));
            }
            // Reasoning in history only goes back to an OpenAI-protocol upstream
            // when the client itself sent it in that shape.
            if same && !thinking.is_empty() {
                let (text, blocks) = thinking_fields(&thinking);
                msg.insert("reasoning_content".into(), json!(text));
                if blocks.iter().any(|b| b.get("signature").is_some() || b["type"] == "redacted_thinking") {
                    msg.insert("thinking_blocks".into(), Value::Array(blocks));
                }
            }
            out.push(with_name(Value::Object(msg)));
        }
    }
    Ok(())
}

/// `reasoning_content` text and LiteLLM-style `thinking_blocks` for thinking parts.
fn thinking_fields(parts: &[&Part]) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut blocks = Vec::new();
    for p in parts {
        match p {
            Part::Thinking { text: t, signature } => {
                text.push_str(t);
                let mut b = json!({"type": "thinking", "thinking": t});
                if let Some(s) = signature {
                    b["signature"] = json!(s);
                }
                blocks.push(b);
            }
            Part::RedactedThinking { data } => blocks.push(json!({"type": "redacted_thinking", "data": data})),
            _ => {}
        }
    }
    (text, blocks)
}

const RESPONSE_FIELDS: &[&str] = &["id", "object", "created", "model", "choices", "usage"];
const MESSAGE_FIELDS: &[&str] =
    &["role", "content", "tool_calls", "reasoning_content", "reasoning", "thinking_blocks", "refusal"];

/// Decodes a non-streaming OpenAI chat completion.
pub fn decode_response(body: &Value, ctx: &Context) -> Result<Response> {
    let obj = json::as_object(body, "")?;
    let choices =
        json::opt_array(obj, "choices", "")?.ok_or_else(|| CoreError::invalid("/choices", "missing required field"))?;
    let choice = choices.first().ok_or_else(|| CoreError::invalid("/choices", "no choices in response"))?;
    let choice = json::as_object(choice, "/choices/0")?;
    let mp = "/choices/0/message";
    let msg = json::as_object(json::required(choice, "message", "/choices/0")?, mp)?;
    let mut content = decode_reasoning(msg, mp)?;
    if content.is_empty()
        && let Some(r) = json::opt_str(msg, "reasoning", mp)?
    {
        content.push(Part::Thinking { text: r.to_string(), signature: None });
    }
    match json::field(msg, "content") {
        Some(Value::String(s)) if !s.is_empty() => {
            content.push(Part::Text { text: s.clone(), cache_control: None, citations: None })
        }
        Some(Value::String(_)) | None => {}
        Some(v @ Value::Array(_)) => content.extend(decode_content(Some(v), &join(mp, "content"))?),
        Some(v) => {
            return Err(CoreError::invalid(
                join(mp, "content"),
                format!("expected a string, got {}", json::type_name(v)),
            ));
        }
    }
    if let Some(calls) = json::opt_array(msg, "tool_calls", mp)? {
        for (i, call) in calls.iter().enumerate() {
            let cp = format!("{mp}/tool_calls/{i}");
            let c = json::as_object(call, &cp)?;
            let fp = join(&cp, "function");
            let f = json::as_object(json::required(c, "function", &cp)?, &fp)?;
            let id = match json::opt_str(c, "id", &cp)? {
                Some(id) if !id.is_empty() => id.to_string(),
                _ => ctx.tool_call_id(i as u64),
            };
            content.push(Part::ToolUse {
                id,
                name: json::req_str(f, "name", &fp)?.to_string(),
                arguments: json::opt_str(f, "arguments", &fp)?.unwrap_or("").to_string(),
                cache_control: None,
                extra: Map::new(),
            });
        }
    }
    let mut message_extra = json::extras(msg, MESSAGE_FIELDS);
    if let Some(lp) = choice.get("logprobs") {
        message_extra.insert("__logprobs".into(), lp.clone());
    }
    Ok(Response {
        source: Protocol::OpenAiChat,
        model: json::opt_str(obj, "model", "")?.unwrap_or("").to_string(),
        content,
        refusal: json::opt_str(msg, "refusal", mp)?.map(str::to_string),
        stop_reason: json::opt_str(choice, "finish_reason", "/choices/0")?.map(StopReason::from_openai),
        stop_sequence: None,
        usage: json::opt_object(obj, "usage", "")?.map(|u| decode_usage(u, "/usage")).transpose()?,
        extra: json::extras(obj, RESPONSE_FIELDS),
        message_extra,
    })
}

/// Decodes an OpenAI `usage` object into canonical usage (cached tokens split out).
pub fn decode_usage(u: &Map<String, Value>, p: &str) -> Result<Usage> {
    let prompt = json::opt_u64(u, "prompt_tokens", p)?.unwrap_or(0);
    let completion = json::opt_u64(u, "completion_tokens", p)?.unwrap_or(0);
    let cached = match json::opt_object(u, "prompt_tokens_details", p)? {
        Some(d) => json::opt_u64(d, "cached_tokens", &join(p, "prompt_tokens_details"))?.unwrap_or(0),
        None => 0,
    };
    let reasoning = match json::opt_object(u, "completion_tokens_details", p)? {
        Some(d) => json::opt_u64(d, "reasoning_tokens", &join(p, "completion_tokens_details"))?,
        None => None,
    };
    Ok(Usage {
        input_tokens: prompt.saturating_sub(cached),
        output_tokens: completion,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: cached,
        reasoning_tokens: reasoning,
        extra: json::extras(u, &["prompt_tokens", "completion_tokens", "total_tokens"]),
    })
}

/// Encodes canonical usage as an OpenAI `usage` object.
pub fn encode_usage(u: &Usage, same: bool) -> Value {
    let prompt = u.prompt_tokens();
    let mut o = json!({
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt.saturating_add(u.output_tokens),
    });
    if same {
        for (k, v) in &u.extra {
            o[k] = v.clone();
        }
    } else {
        o["prompt_tokens_details"] = json!({"cached_tokens": u.cache_read_input_tokens});
        if let Some(r) = u.reasoning_tokens {
            o["completion_tokens_details"] = json!({"reasoning_tokens": r});
        }
    }
    o
}

/// Encodes a canonical response as an OpenAI chat completion.
pub fn encode_response(resp: &Response, ctx: &Context) -> Value {
    let same = resp.source == Protocol::OpenAiChat;
    let mut msg = Map::new();
    msg.insert("role".into(), json!("assistant"));
    let text: String = resp
        .content
        .iter()
        .filter_map(|p| if let Part::Text { text, .. } = p { Some(text.as_str()) } else { None })
        .collect();
    let has_text = resp.content.iter().any(|p| matches!(p, Part::Text { .. }));
    msg.insert("content".into(), if has_text { json!(text) } else { Value::Null });
    msg.insert("refusal".into(), json!(resp.refusal));
    let thinking: Vec<&Part> =
        resp.content.iter().filter(|p| matches!(p, Part::Thinking { .. } | Part::RedactedThinking { .. })).collect();
    if !thinking.is_empty() {
        let (text, blocks) = thinking_fields(&thinking);
        msg.insert("reasoning_content".into(), json!(text));
        if !same || blocks.iter().any(|b| b.get("signature").is_some()) {
            msg.insert("thinking_blocks".into(), Value::Array(blocks));
        }
    }
    let calls: Vec<Value> = resp
        .content
        .iter()
        .filter_map(|p| match p {
            Part::ToolUse { id, name, arguments, .. } => {
                Some(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}))
            }
            _ => None,
        })
        .collect();
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    // Blocks with no OpenAI counterpart (server tools, MCP, compaction, …) are carried through.
    let provider: Vec<Value> =
        resp.content.iter().filter_map(|p| if let Part::Raw(v) = p { Some(v.clone()) } else { None }).collect();
    if !provider.is_empty() {
        msg.insert("provider_content".into(), Value::Array(provider));
    }
    let mut logprobs = Value::Null;
    if same {
        for (k, v) in &resp.message_extra {
            if k == "__logprobs" {
                logprobs = v.clone();
            } else {
                msg.insert(k.clone(), v.clone());
            }
        }
    }
    let finish = resp.stop_reason.as_ref().map(|s| s.to_openai().to_string());
    let mut out = json!({
        "id": ctx.openai_completion_id(),
        "object": "chat.completion",
        "created": ctx.created,
        "model": resp.model,
        "choices": [{"index": 0, "message": msg, "logprobs": logprobs, "finish_reason": finish}],
    });
    if let Some(u) = &resp.usage {
        out["usage"] = encode_usage(u, same);
    }
    if same {
        for (k, v) in &resp.extra {
            out[k] = v.clone();
        }
    }
    out
}
