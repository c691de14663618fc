//! Module `compat`: protocol conversion of requests, non-streaming responses
//! and error bodies, with provider compat fixes driven by versioned profiles.
//!
//! Contract: (body bytes, source protocol, target protocol, compat profile)
//! in; the target protocol's body out. Everything passes through the
//! canonical model, including same-protocol passthrough.

mod anthropic;
mod error;
mod gemini;
mod openai;
mod responses;

pub use anthropic::{
    TOOL_USE_FIELDS, decode_block as decode_anthropic_block, decode_usage as decode_anthropic_usage,
    encode_usage as encode_anthropic_usage,
};
pub use error::{ErrorInput, ErrorOutput, convert_error};
pub use gemini::{
    GEMINI_SIGNATURE, decode_usage as decode_gemini_usage, encode_usage as encode_gemini_usage,
    finish_reason as gemini_finish_reason, response_parts as gemini_response_parts, stop_reason as gemini_stop_reason,
};
pub use openai::{decode_usage as decode_openai_usage, encode_usage as encode_openai_usage};
pub use responses::{
    ANTHROPIC_REDACTED, ANTHROPIC_SIGNATURE, decode_usage as decode_responses_usage,
    encode_usage as encode_responses_usage, reasoning_item as responses_reasoning_item, status_of as responses_status,
    stop_reason as responses_stop_reason,
};

use crate::canonical::{Request, Response};
use crate::context::Context;
use crate::error::{CoreError, Result};
use crate::json;
use crate::protocol::Protocol;
use crate::tools;
use serde_json::Value;

/// Version of the `compat` module.
pub const VERSION: &str = "compat/1.0.0";

/// Output cap sent to Anthropic when the client gave none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Provider quirks, as versioned data. A change to a profile is a new version.
#[derive(Debug, Clone, PartialEq)]
pub struct CompatProfile {
    /// Profile name, as used in config and op headers.
    pub name: &'static str,
    /// Profile version, recorded with every diff.
    pub version: &'static str,
    /// The protocol of the upstream this profile describes.
    pub protocol: Protocol,
    /// Field used for the output cap in OpenAI requests.
    pub max_tokens_field: &'static str,
    /// Output cap used when the client sent none.
    pub default_max_tokens: u64,
    /// Highest temperature the upstream accepts (larger values are clamped).
    pub max_temperature: f64,
    /// Patch `stop` to `tool_calls` when a response carries tool calls.
    pub patch_tool_finish_reason: bool,
}

/// Every profile the core knows, by name.
pub const PROFILES: &[CompatProfile] = &[
    CompatProfile {
        name: "openai",
        version: "openai/1",
        protocol: Protocol::OpenAiChat,
        max_tokens_field: "max_completion_tokens",
        default_max_tokens: DEFAULT_MAX_TOKENS,
        max_temperature: 2.0,
        patch_tool_finish_reason: true,
    },
    CompatProfile {
        name: "openai-compatible",
        version: "openai-compatible/1",
        protocol: Protocol::OpenAiChat,
        max_tokens_field: "max_tokens",
        default_max_tokens: DEFAULT_MAX_TOKENS,
        max_temperature: 2.0,
        patch_tool_finish_reason: true,
    },
    CompatProfile {
        name: "anthropic",
        version: "anthropic/1",
        protocol: Protocol::AnthropicMessages,
        max_tokens_field: "max_tokens",
        default_max_tokens: DEFAULT_MAX_TOKENS,
        max_temperature: 1.0,
        patch_tool_finish_reason: false,
    },
    CompatProfile {
        name: "gemini",
        version: "gemini/1",
        protocol: Protocol::Gemini,
        max_tokens_field: "maxOutputTokens",
        default_max_tokens: DEFAULT_MAX_TOKENS,
        max_temperature: 2.0,
        patch_tool_finish_reason: false,
    },
    CompatProfile {
        name: "openai-responses",
        version: "openai-responses/1",
        protocol: Protocol::OpenAiResponses,
        max_tokens_field: "max_output_tokens",
        default_max_tokens: DEFAULT_MAX_TOKENS,
        max_temperature: 2.0,
        patch_tool_finish_reason: false,
    },
];

/// Looks up a profile by name, or the default profile of `protocol` when `name` is `None`.
pub fn profile(name: Option<&str>, protocol: Protocol) -> Result<&'static CompatProfile> {
    match name {
        Some(n) => PROFILES.iter().find(|p| p.name == n).ok_or_else(|| {
            let known: Vec<&str> = PROFILES.iter().map(|p| p.name).collect();
            CoreError::invalid("/profile", format!("unknown compat profile {n:?} (known: {})", known.join(", ")))
        }),
        None => Ok(PROFILES.iter().find(|p| p.protocol == protocol).expect("every protocol has a default profile")),
    }
}

/// `reasoning_effort` → Anthropic thinking budget (documented mapping).
pub fn effort_to_budget(effort: &str) -> Option<u64> {
    match effort {
        "none" => None,
        "minimal" => Some(1024),
        "low" => Some(2048),
        "medium" => Some(8192),
        _ => Some(24576),
    }
}

/// Anthropic thinking budget → `reasoning_effort` (documented mapping).
pub fn reasoning_to_effort(budget: u64) -> &'static str {
    match budget {
        0..=1024 => "minimal",
        1025..=2048 => "low",
        2049..=8192 => "medium",
        _ => "high",
    }
}

/// Decodes a request body of protocol `from`.
pub fn decode_request(from: Protocol, body: &Value) -> Result<Request> {
    match from {
        Protocol::OpenAiChat => openai::decode_request(body),
        Protocol::AnthropicMessages => anthropic::decode_request(body),
        Protocol::OpenAiResponses => responses::decode_request(body),
        Protocol::Gemini => gemini::decode_request(body),
    }
}

/// Converts a client request of protocol `from` to protocol `to`.
/// `model`, when given, replaces the model (the routing target's upstream model);
/// `stream`, when given, says whether the exchange streams (a Gemini body does not).
pub fn convert_request(
    from: Protocol,
    to: Protocol,
    body: &[u8],
    profile: &CompatProfile,
    model: Option<&str>,
    stream: Option<bool>,
) -> Result<Value> {
    // The benchmark's poisoned candidate: spins on requests that carry the marker
    // (the host stops it at its deadline). Never part of a real build.
    #[cfg(feature = "bench-poison")]
    if body.windows(b"POISON-PILL".len()).any(|w| w == b"POISON-PILL") {
        #[allow(clippy::empty_loop)]
        loop {}
    }
    let body = json::parse(body)?;
    let mut req = decode_request(from, &body)?;
    if from == Protocol::OpenAiResponses {
        if to == from {
            return Ok(responses::passthrough_request(body, model));
        }
        responses::check_portable(&req, to)?;
    }
    // Gemini to Gemini: the body as sent (the model is in the URL, not the body).
    if from == Protocol::Gemini && to == from {
        return Ok(body);
    }
    // Several choices (Chat `n`, Gemini `candidateCount`) are not converted:
    // refused, never silently dropped.
    let choices = req.extra.get("n").map(|n| ("/n", "n", n)).or_else(|| {
        req.extra
            .get("generationConfig")?
            .get("candidateCount")
            .map(|n| ("/generationConfig/candidateCount", "candidateCount", n))
    });
    if let (true, Some((path, name, n))) = (to != from, choices)
        && n.as_u64().is_some_and(|n| n > 1)
    {
        let article = if from.as_str().starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        return Err(CoreError::invalid(
            path,
            format!(
                "{name} > 1 (several choices) cannot be converted to {to}: send {name} = 1 or use {article} {from} route"
            ),
        ));
    }
    if let Some(m) = model {
        req.model = m.to_string();
    }
    if let Some(s) = stream {
        req.stream = s;
    }
    match to {
        Protocol::OpenAiChat => openai::encode_request(&req, profile),
        Protocol::AnthropicMessages => anthropic::encode_request(&req, profile),
        Protocol::OpenAiResponses => responses::encode_request(&req, profile),
        Protocol::Gemini => gemini::encode_request(&req, profile),
    }
}

/// Decodes a non-streaming upstream response of protocol `from`.
pub fn decode_response(from: Protocol, body: &Value, ctx: &Context) -> Result<Response> {
    match from {
        Protocol::OpenAiChat => openai::decode_response(body, ctx),
        Protocol::AnthropicMessages => anthropic::decode_response(body),
        Protocol::OpenAiResponses => responses::decode_response(body),
        Protocol::Gemini => gemini::decode_response(body),
    }
}

/// Converts a non-streaming upstream response of protocol `from` into the
/// client's protocol `to`, applying the profile's fixes.
pub fn convert_response(
    ctx: &Context,
    from: Protocol,
    to: Protocol,
    body: &[u8],
    profile: &CompatProfile,
) -> Result<Value> {
    let body = json::parse(body)?;
    if from == Protocol::OpenAiChat && to == Protocol::OpenAiChat {
        return several_choices(ctx, &body, profile);
    }
    let mut resp = decode_response(from, &body, ctx)?;
    if profile.patch_tool_finish_reason {
        tools::patch_finish_reason(&mut resp);
    }
    Ok(encode_response(&resp, to, ctx))
}

/// OpenAI to OpenAI keeps every choice (`n > 1`): each goes through the
/// canonical model on its own, and the answer lists them all.
fn several_choices(ctx: &Context, body: &Value, profile: &CompatProfile) -> Result<Value> {
    let convert = |body: &Value| {
        let mut resp = decode_response(Protocol::OpenAiChat, body, ctx)?;
        if profile.patch_tool_finish_reason {
            tools::patch_finish_reason(&mut resp);
        }
        Ok::<Value, CoreError>(encode_response(&resp, Protocol::OpenAiChat, ctx))
    };
    let choices = match body.get("choices") {
        Some(Value::Array(c)) if c.len() > 1 => c,
        _ => return convert(body),
    };
    let mut out = Value::Null;
    let mut converted = Vec::with_capacity(choices.len());
    for (i, choice) in choices.iter().enumerate() {
        let mut one = body.clone();
        one["choices"] = Value::Array(vec![choice.clone()]);
        let mut v = convert(&one).map_err(|mut e| {
            if let Some(rest) = e.path.strip_prefix("/choices/0") {
                e.path = format!("/choices/{i}{rest}");
            }
            e
        })?;
        let mut c = v["choices"][0].take();
        c["index"] = choice.get("index").cloned().unwrap_or_else(|| i.into());
        converted.push(c);
        if i == 0 {
            out = v;
        }
    }
    out["choices"] = Value::Array(converted);
    Ok(out)
}

/// Encodes a canonical response for a client of protocol `to`.
pub fn encode_response(resp: &Response, to: Protocol, ctx: &Context) -> Value {
    match to {
        Protocol::OpenAiChat => openai::encode_response(resp, ctx),
        Protocol::AnthropicMessages => anthropic::encode_response(resp, ctx),
        Protocol::OpenAiResponses => responses::encode_response(resp, ctx),
        Protocol::Gemini => gemini::encode_response(resp, ctx),
    }
}
