//! Gemini `generateContent` bodies ⇄ the canonical model.
//!
//! The model is not in a Gemini body (it is in the URL): a decoded Gemini
//! request takes its model from the host, and an encoded one has none.
//! Function calls without ids (the public API sends none) get positional ids
//! (`gemini_call_<n>`), and each `functionResponse` answers the earliest
//! unanswered call of its name. Tool results sent to Gemini name their
//! function, found by the call id in the conversation.
//!
//! Thought signatures: Gemini's ride through clients of other protocols as the
//! thinking signature behind [`GEMINI_SIGNATURE`]; an Anthropic signature rides
//! through a Gemini client as a `thoughtSignature` holding the base64 of
//! `ANTHROPIC_SIGNATURE` + signature. Each comes back to its own vendor only.

use super::{CompatProfile, effort_to_budget};
use crate::canonical::{
    ImageSource, Message, OutputFormat, Part, Reasoning, Request, Response, Role, StopReason, Usage,
};
use crate::error::{CoreError, Result};
use crate::json::{self, join};
use crate::protocol::Protocol;
use crate::tools;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, VecDeque};

/// Signature prefix of a Gemini thought signature carried by another protocol's client.
pub const GEMINI_SIGNATURE: &str = "shadowgate.gemini.signature.v1:";

const REQUEST_FIELDS: &[&str] = &["contents", "systemInstruction", "tools", "toolConfig", "generationConfig"];

const GENERATION_FIELDS: &[&str] = &[
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "thinkingConfig",
];

/// A Gemini signature for a canonical thinking signature, if it is one of
/// Gemini's own; an Anthropic one is wrapped so a Gemini client can hold it.
fn to_gemini_signature(sig: &str) -> String {
    match sig.strip_prefix(GEMINI_SIGNATURE) {
        Some(g) => g.to_string(),
        None => STANDARD.encode(format!("{}{sig}", super::ANTHROPIC_SIGNATURE)),
    }
}

/// The canonical signature of a Gemini `thoughtSignature`.
fn from_gemini_signature(sig: &str) -> String {
    if let Ok(bytes) = STANDARD.decode(sig)
        && let Ok(text) = std::str::from_utf8(&bytes)
        && let Some(anthropic) = text.strip_prefix(super::ANTHROPIC_SIGNATURE)
    {
        return anthropic.to_string();
    }
    format!("{GEMINI_SIGNATURE}{sig}")
}

/// Decodes a Gemini `generateContent` request; `model` comes from the URL.
pub fn decode_request(body: &Value) -> Result<Request> {
    let obj = json::as_object(body, "")?;
    let mut messages = Vec::new();
    let mut calls = Calls::default();
    if let Some(si) = json::opt_object(obj, "systemInstruction", "")? {
        let content = decode_parts(si, "/systemInstruction", &mut calls)?;
        messages.push(Message { role: Role::System, content, name: None });
    }
    let contents = json::opt_array(obj, "contents", "")?
        .ok_or_else(|| CoreError::invalid("/contents", "missing required field"))?;
    for (i, c) in contents.iter().enumerate() {
        let p = join("/contents", i);
        let o = json::as_object(c, &p)?;
        let role = match json::opt_str(o, "role", &p)?.unwrap_or("user") {
            "user" | "function" | "tool" => Role::User,
            "model" => Role::Assistant,
            other => return Err(CoreError::invalid(join(&p, "role"), format!("unknown role {other:?}"))),
        };
        let content = decode_parts(o, &p, &mut calls)?;
        messages.push(Message { role, content, name: None });
    }
    let mut tools_out = Vec::new();
    if let Some(ts) = json::opt_array(obj, "tools", "")? {
        for (i, t) in ts.iter().enumerate() {
            let p = join("/tools", i);
            let o = json::as_object(t, &p)?;
            for (k, v) in o {
                if k != "functionDeclarations" {
                    // googleSearch, codeExecution, urlContext, …: same protocol only.
                    tools_out.push(crate::canonical::ToolDef::Raw(json!({"type": k, k: v})));
                    continue;
                }
                let fp = join(&p, "functionDeclarations");
                let decls = v.as_array().ok_or_else(|| CoreError::invalid(&fp, "expected an array"))?;
                for (j, d) in decls.iter().enumerate() {
                    let dp = join(&fp, j);
                    let d = json::as_object(d, &dp)?;
                    let schema = match (json::field(d, "parametersJsonSchema"), json::field(d, "parameters")) {
                        (Some(s), _) => Some(s.clone()),
                        (None, Some(s)) => Some(schema_from_gemini(s)),
                        (None, None) => None,
                    };
                    tools_out.push(crate::canonical::ToolDef::Function {
                        name: json::req_str(d, "name", &dp)?.to_string(),
                        description: json::opt_str(d, "description", &dp)?.map(str::to_string),
                        parameters: tools::normalize_schema(schema.as_ref(), &join(&dp, "parameters"))?,
                        strict: None,
                        cache_control: None,
                    });
                }
            }
        }
    }
    let tool_choice = match json::opt_object(obj, "toolConfig", "")? {
        Some(tc) => match json::opt_object(tc, "functionCallingConfig", "/toolConfig")? {
            Some(f) => decode_calling_config(f, "/toolConfig/functionCallingConfig")?,
            None => None,
        },
        None => None,
    };
    let gp = "/generationConfig";
    let empty = Map::new();
    let g = json::opt_object(obj, "generationConfig", "")?.unwrap_or(&empty);
    let stop = match json::opt_array(g, "stopSequences", gp)? {
        Some(a) => a
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| CoreError::invalid(format!("{gp}/stopSequences/{i}"), "expected a string"))
            })
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let reasoning = match json::opt_object(g, "thinkingConfig", gp)? {
        Some(t) => {
            let tp = "/generationConfig/thinkingConfig";
            match (json::field(t, "thinkingBudget").and_then(Value::as_i64), json::opt_str(t, "thinkingLevel", tp)?) {
                (Some(0), _) => Some(Reasoning::Disabled),
                (Some(b), _) if b > 0 => Some(Reasoning::Budget(b.unsigned_abs())),
                (_, Some(level)) => Some(Reasoning::Effort(level.to_ascii_lowercase())),
                _ => None,
            }
        }
        None => None,
    };
    let output_format = match json::opt_str(g, "responseMimeType", gp)? {
        Some("application/json") => match (json::field(g, "responseJsonSchema"), json::field(g, "responseSchema")) {
            (Some(s), _) => Some(json_schema_format(s.clone())),
            (None, Some(s)) => Some(json_schema_format(schema_from_gemini(s))),
            (None, None) => Some(OutputFormat::JsonObject),
        },
        _ => None,
    };
    let mut extra = json::extras(obj, REQUEST_FIELDS);
    let rest = json::extras(g, GENERATION_FIELDS);
    if !rest.is_empty() {
        extra.insert("generationConfig".into(), Value::Object(rest));
    }
    Ok(Request {
        source: Protocol::Gemini,
        model: String::new(),
        messages,
        tools: tools_out,
        tool_choice,
        parallel_tool_calls: None,
        max_tokens: json::opt_u64(g, "maxOutputTokens", gp)?,
        temperature: json::opt_f64(g, "temperature", gp)?,
        top_p: json::opt_f64(g, "topP", gp)?,
        top_k: json::opt_u64(g, "topK", gp)?,
        stop,
        user: None,
        stream: false,
        include_usage: None,
        reasoning,
        output_format,
        extra,
    })
}

fn json_schema_format(schema: Value) -> OutputFormat {
    OutputFormat::JsonSchema { name: "output".into(), schema, strict: None, description: None }
}

fn decode_calling_config(f: &Map<String, Value>, p: &str) -> Result<Option<crate::canonical::ToolChoice>> {
    use crate::canonical::ToolChoice;
    let allowed = json::opt_array(f, "allowedFunctionNames", p)?.map(Vec::as_slice).unwrap_or(&[]);
    Ok(match json::opt_str(f, "mode", p)?.unwrap_or("AUTO") {
        "AUTO" | "MODE_UNSPECIFIED" => Some(ToolChoice::Auto),
        "NONE" => Some(ToolChoice::None),
        "ANY" | "VALIDATED" => match allowed {
            [one] => Some(ToolChoice::Named(
                one.as_str()
                    .ok_or_else(|| CoreError::invalid(join(p, "allowedFunctionNames/0"), "expected a string"))?
                    .to_string(),
            )),
            [] => Some(ToolChoice::Required),
            _ => {
                return Err(CoreError::unsupported(
                    join(p, "allowedFunctionNames"),
                    "several allowedFunctionNames have no counterpart in the other protocols: name one or none",
                ));
            }
        },
        other => return Err(CoreError::invalid(join(p, "mode"), format!("unknown function calling mode {other:?}"))),
    })
}

/// Call ids for a conversation whose calls may have none.
#[derive(Default)]
struct Calls {
    next: u64,
    /// Unanswered calls by function name, oldest first.
    open: BTreeMap<String, VecDeque<String>>,
}

impl Calls {
    fn call(&mut self, name: &str, id: Option<&str>) -> String {
        let id = id.map(str::to_string).unwrap_or_else(|| {
            let id = format!("gemini_call_{}", self.next);
            self.next = self.next.saturating_add(1);
            id
        });
        self.open.entry(name.to_string()).or_default().push_back(id.clone());
        id
    }

    fn answer(&mut self, name: &str, id: Option<&str>) -> String {
        let queue = self.open.entry(name.to_string()).or_default();
        match id {
            Some(id) => {
                queue.retain(|x| x != id);
                id.to_string()
            }
            None => queue.pop_front().unwrap_or_else(|| format!("gemini_call_{name}")),
        }
    }
}

fn decode_parts(content: &Map<String, Value>, p: &str, calls: &mut Calls) -> Result<Vec<Part>> {
    let pp = join(p, "parts");
    let parts = json::opt_array(content, "parts", p)?.map(Vec::as_slice).unwrap_or(&[]);
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let ip = join(&pp, i);
        let o = json::as_object(part, &ip)?;
        let signature = json::opt_str(o, "thoughtSignature", &ip)?.map(from_gemini_signature);
        if let Some(t) = json::opt_str(o, "text", &ip)? {
            if json::opt_bool(o, "thought", &ip)? == Some(true) || (t.is_empty() && signature.is_some()) {
                out.push(Part::Thinking { text: t.to_string(), signature });
            } else {
                out.push(Part::Text { text: t.to_string(), cache_control: None, citations: None });
                if let Some(s) = signature {
                    out.push(Part::Thinking { text: String::new(), signature: Some(s) });
                }
            }
        } else if let Some(d) = json::opt_object(o, "inlineData", &ip)? {
            let dp = join(&ip, "inlineData");
            let media_type = json::req_str(d, "mimeType", &dp)?;
            if !media_type.starts_with("image/") {
                out.push(Part::Raw(json!({"type": "inlineData", "inlineData": d})));
                continue;
            }
            out.push(Part::Image {
                source: ImageSource::Base64 {
                    media_type: media_type.to_string(),
                    data: json::req_str(d, "data", &dp)?.to_string(),
                },
                detail: None,
                cache_control: None,
            });
        } else if let Some(f) = json::opt_object(o, "fileData", &ip)? {
            let fp = join(&ip, "fileData");
            let is_image = json::opt_str(f, "mimeType", &fp)?.is_some_and(|m| m.starts_with("image/"));
            let uri = json::req_str(f, "fileUri", &fp)?;
            if is_image && (uri.starts_with("https://") || uri.starts_with("http://")) {
                out.push(Part::Image { source: ImageSource::Url(uri.to_string()), detail: None, cache_control: None });
            } else {
                out.push(Part::Raw(json!({"type": "fileData", "fileData": f})));
            }
        } else if let Some(f) = json::opt_object(o, "functionCall", &ip)? {
            let fp = join(&ip, "functionCall");
            let name = json::req_str(f, "name", &fp)?;
            let args = json::field(f, "args").cloned().unwrap_or_else(|| json!({}));
            out.push(Part::ToolUse {
                id: calls.call(name, json::opt_str(f, "id", &fp)?),
                name: name.to_string(),
                arguments: tools::stringify_arguments(&args),
                cache_control: None,
                extra: Map::new(),
            });
            if let Some(s) = signature {
                out.push(Part::Thinking { text: String::new(), signature: Some(s) });
            }
        } else if let Some(f) = json::opt_object(o, "functionResponse", &ip)? {
            let fp = join(&ip, "functionResponse");
            let name = json::req_str(f, "name", &fp)?;
            let response = json::field(f, "response").cloned().unwrap_or_else(|| json!({}));
            // `{"output": "text"}` / `{"result": "text"}` are plain results; other shapes stay JSON.
            let text = match response.as_object().map(|r| (r.len(), r.get("output").or_else(|| r.get("result")))) {
                Some((1, Some(Value::String(s)))) => s.clone(),
                _ => tools::stringify_arguments(&response),
            };
            out.push(Part::ToolResult {
                tool_use_id: calls.answer(name, json::opt_str(f, "id", &fp)?),
                content: vec![Part::Text { text, cache_control: None, citations: None }],
                is_error: response.get("error").is_some(),
                cache_control: None,
            });
        } else {
            // executableCode, codeExecutionResult, videoMetadata, …: same protocol only.
            let kind = o.keys().find(|k| *k != "thoughtSignature").map_or("?", |k| k.as_str());
            out.push(Part::Raw(json!({"type": kind, kind: o.get(kind)})));
        }
    }
    Ok(out)
}

/// Gemini's OpenAPI-subset schema → JSON Schema: lower-case types, `nullable` as a `null` type.
pub fn schema_from_gemini(s: &Value) -> Value {
    match s {
        Value::Object(o) => {
            let mut out = Map::new();
            let nullable = o.get("nullable").and_then(Value::as_bool) == Some(true);
            for (k, v) in o {
                match k.as_str() {
                    "nullable" => {}
                    "type" => {
                        let t = v.as_str().map(str::to_ascii_lowercase).unwrap_or_default();
                        out.insert(k.clone(), if nullable { json!([t, "null"]) } else { json!(t) });
                    }
                    "properties" => {
                        let props: Map<String, Value> = v
                            .as_object()
                            .map(|p| p.iter().map(|(n, x)| (n.clone(), schema_from_gemini(x))).collect())
                            .unwrap_or_default();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    "items" => {
                        out.insert(k.clone(), schema_from_gemini(v));
                    }
                    "anyOf" => {
                        let all = v.as_array().map(|a| a.iter().map(schema_from_gemini).collect()).unwrap_or_default();
                        out.insert(k.clone(), Value::Array(all));
                    }
                    "propertyOrdering" => {}
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// JSON Schema keywords Gemini's schema subset knows.
const SCHEMA_KEYS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "enum",
    "items",
    "properties",
    "required",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "anyOf",
    "minProperties",
    "maxProperties",
    "example",
    "default",
];

/// JSON Schema → Gemini's OpenAPI subset: upper-case types, a `null` type as
/// `nullable`, keywords it does not know dropped.
pub fn schema_to_gemini(s: &Value) -> Value {
    let Value::Object(o) = s else { return s.clone() };
    let mut out = Map::new();
    for (k, v) in o {
        if !SCHEMA_KEYS.contains(&k.as_str()) {
            continue;
        }
        match k.as_str() {
            "type" => {
                let types: Vec<&str> = match v {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                let non_null: Vec<&str> = types.iter().copied().filter(|t| *t != "null").collect();
                if let [t] = non_null.as_slice() {
                    out.insert("type".into(), json!(t.to_ascii_uppercase()));
                }
                if non_null.len() < types.len() {
                    out.insert("nullable".into(), json!(true));
                }
            }
            "properties" => {
                let props: Map<String, Value> = v
                    .as_object()
                    .map(|p| p.iter().map(|(n, x)| (n.clone(), schema_to_gemini(x))).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" => {
                out.insert(k.clone(), schema_to_gemini(v));
            }
            "anyOf" => {
                let all = v.as_array().map(|a| a.iter().map(schema_to_gemini).collect()).unwrap_or_default();
                out.insert(k.clone(), Value::Array(all));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Encodes a canonical request of another protocol as a Gemini request
/// (Gemini to Gemini keeps the client's body; see `passthrough`).
pub fn encode_request(req: &Request, _profile: &CompatProfile) -> Result<Value> {
    let mut out = Map::new();
    let mut system = Vec::new();
    let mut contents: Vec<(Role, Vec<Value>)> = Vec::new();
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, m) in req.messages.iter().enumerate() {
        let p = format!("/messages/{i}");
        let mut parts = Vec::new();
        for part in &m.content {
            if let Part::ToolUse { id, name, .. } = part {
                names.insert(id, name);
            }
            match (encode_part(part, &names, &p)?, parts.last_mut()) {
                // Gemini wants a signature on the part it signs (a call, a text), not apart.
                (Some(v), Some(Value::Object(last)))
                    if v.get("text") == Some(&json!("")) && !last.contains_key("thoughtSignature") =>
                {
                    if let Some(sig) = v.get("thoughtSignature") {
                        last.insert("thoughtSignature".into(), sig.clone());
                    }
                }
                (Some(v), _) => parts.push(v),
                (None, _) => {}
            }
        }
        match m.role {
            Role::System | Role::Developer => system.extend(parts),
            role if parts.is_empty() => {
                let _ = role;
            }
            role => match contents.last_mut() {
                Some((r, ps)) if *r == role => ps.extend(parts),
                _ => contents.push((role, parts)),
            },
        }
    }
    let contents: Vec<Value> = contents
        .into_iter()
        .map(|(role, parts)| json!({"role": if role == Role::Assistant { "model" } else { "user" }, "parts": parts}))
        .collect();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    if !req.tools.is_empty() {
        let mut decls = Vec::new();
        for (i, t) in req.tools.iter().enumerate() {
            match t {
                crate::canonical::ToolDef::Function { name, description, parameters, .. } => {
                    let mut d = Map::new();
                    d.insert("name".into(), json!(name));
                    if let Some(desc) = description {
                        d.insert("description".into(), json!(desc));
                    }
                    d.insert("parameters".into(), schema_to_gemini(parameters));
                    decls.push(Value::Object(d));
                }
                crate::canonical::ToolDef::Raw(v) => {
                    return Err(CoreError::unsupported(
                        format!("/tools/{i}"),
                        format!(
                            "tool type {:?} has no gemini counterpart",
                            v.get("type").and_then(Value::as_str).unwrap_or("?")
                        ),
                    ));
                }
            }
        }
        out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    if let Some(c) = &req.tool_choice {
        use crate::canonical::ToolChoice;
        let f = match c {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Named(n) => json!({"mode": "ANY", "allowedFunctionNames": [n]}),
        };
        out.insert("toolConfig".into(), json!({"functionCallingConfig": f}));
    }
    let mut g = Map::new();
    if let Some(n) = req.max_tokens {
        g.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        g.insert("temperature".into(), json!(t));
    }
    if let Some(t) = req.top_p {
        g.insert("topP".into(), json!(t));
    }
    if let Some(k) = req.top_k {
        g.insert("topK".into(), json!(k));
    }
    if !req.stop.is_empty() {
        g.insert("stopSequences".into(), json!(req.stop));
    }
    match &req.output_format {
        Some(OutputFormat::JsonObject) => {
            g.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(OutputFormat::JsonSchema { schema, .. }) => {
            g.insert("responseMimeType".into(), json!("application/json"));
            g.insert("responseJsonSchema".into(), schema.clone());
        }
        None => {}
    }
    let budget = match &req.reasoning {
        Some(Reasoning::Budget(b)) => Some(*b),
        Some(Reasoning::Effort(e)) => Some(effort_to_budget(e).unwrap_or(0)),
        Some(Reasoning::Disabled) => Some(0),
        None => None,
    };
    if let Some(b) = budget {
        let mut t = json!({"thinkingBudget": b});
        if b > 0 {
            t["includeThoughts"] = json!(true);
        }
        g.insert("thinkingConfig".into(), t);
    }
    if !g.is_empty() {
        out.insert("generationConfig".into(), Value::Object(g));
    }
    Ok(Value::Object(out))
}

fn encode_part(part: &Part, names: &BTreeMap<&str, &str>, p: &str) -> Result<Option<Value>> {
    Ok(Some(match part {
        Part::Text { text, .. } if text.is_empty() => return Ok(None),
        Part::Text { text, .. } => json!({"text": text}),
        Part::Image { source: ImageSource::Base64 { media_type, data }, .. } => {
            json!({"inlineData": {"mimeType": media_type, "data": data}})
        }
        Part::Image { source: ImageSource::Url(u), .. } => {
            json!({"fileData": {"mimeType": guess_image_type(u), "fileUri": u}})
        }
        Part::ToolUse { id, name, arguments, .. } => {
            let args = tools::parse_arguments(arguments, p)?;
            let mut f = json!({"name": name, "args": args});
            if !id.starts_with("gemini_call_") {
                f["id"] = json!(id);
            }
            json!({"functionCall": f})
        }
        Part::ToolResult { tool_use_id, content, is_error, .. } => {
            let name = names.get(tool_use_id.as_str()).copied().ok_or_else(|| {
                CoreError::invalid(p, format!("tool result {tool_use_id:?} answers no call in the conversation"))
            })?;
            let text: Vec<&str> = content
                .iter()
                .filter_map(|c| if let Part::Text { text, .. } = c { Some(text.as_str()) } else { None })
                .collect();
            let key = if *is_error { "error" } else { "output" };
            let mut f = json!({"name": name, "response": {key: text.join("\n")}});
            if !tool_use_id.starts_with("gemini_call_") {
                f["id"] = json!(tool_use_id);
            }
            json!({"functionResponse": f})
        }
        // Only Gemini's own signatures go back to Gemini; other reasoning is left out.
        Part::Thinking { text, signature: Some(s) } if s.starts_with(GEMINI_SIGNATURE) => {
            let mut v = json!({"thoughtSignature": to_gemini_signature(s)});
            if !text.is_empty() {
                v["text"] = json!(text);
                v["thought"] = json!(true);
            } else {
                v["text"] = json!("");
            }
            v
        }
        Part::Thinking { .. } | Part::RedactedThinking { .. } => return Ok(None),
        other => {
            return Err(CoreError::unsupported(
                p,
                format!("{} has no gemini counterpart", super::openai::part_name(other)),
            ));
        }
    }))
}

fn guess_image_type(url: &str) -> &'static str {
    let lower = url.to_ascii_lowercase();
    if lower.ends_with(".png") {
        "image/png"
    } else if lower.ends_with(".webp") {
        "image/webp"
    } else if lower.ends_with(".gif") {
        "image/gif"
    } else {
        "image/jpeg"
    }
}

/// A `finishReason` as a stop reason (function calls present: tool use).
pub fn stop_reason(finish: &str, has_calls: bool) -> StopReason {
    match finish {
        "STOP" if has_calls => StopReason::ToolUse,
        "STOP" => StopReason::EndTurn,
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => StopReason::Refusal,
        other => StopReason::Other(other.to_string()),
    }
}

/// A stop reason as a `finishReason`.
pub fn finish_reason(stop: Option<&StopReason>) -> &str {
    match stop {
        Some(StopReason::MaxTokens) => "MAX_TOKENS",
        Some(StopReason::Refusal) => "SAFETY",
        Some(StopReason::Other(s)) if s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') => s,
        Some(StopReason::Other(_)) => "OTHER",
        _ => "STOP",
    }
}

/// Decodes `usageMetadata`: the prompt count includes cached tokens, the
/// candidates count excludes thoughts.
pub fn decode_usage(u: &Map<String, Value>, p: &str) -> Result<Usage> {
    let prompt = json::opt_u64(u, "promptTokenCount", p)?.unwrap_or(0);
    let cached = json::opt_u64(u, "cachedContentTokenCount", p)?.unwrap_or(0);
    let candidates = json::opt_u64(u, "candidatesTokenCount", p)?.unwrap_or(0);
    let thoughts = json::opt_u64(u, "thoughtsTokenCount", p)?;
    Ok(Usage {
        input_tokens: prompt.saturating_sub(cached),
        output_tokens: candidates.saturating_add(thoughts.unwrap_or(0)),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: cached,
        reasoning_tokens: thoughts,
        extra: Map::new(),
    })
}

/// Encodes canonical usage as `usageMetadata`.
pub fn encode_usage(u: &Usage) -> Value {
    let prompt = u.prompt_tokens();
    let thoughts = u.reasoning_tokens.unwrap_or(0).min(u.output_tokens);
    let mut o = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": u.output_tokens - thoughts,
        "totalTokenCount": prompt.saturating_add(u.output_tokens),
    });
    if u.cache_read_input_tokens > 0 {
        o["cachedContentTokenCount"] = json!(u.cache_read_input_tokens);
    }
    if thoughts > 0 {
        o["thoughtsTokenCount"] = json!(thoughts);
    }
    o
}

/// Decodes a non-streaming `generateContent` response (candidate 0). A same-
/// protocol client gets the body as it came (kept whole in `extra`).
pub fn decode_response(body: &Value) -> Result<Response> {
    let obj = json::as_object(body, "")?;
    let candidates = json::opt_array(obj, "candidates", "")?.map(Vec::as_slice).unwrap_or(&[]);
    let mut content = Vec::new();
    let mut finish = None;
    if let Some(c) = candidates.first() {
        let c = json::as_object(c, "/candidates/0")?;
        if let Some(body) = json::opt_object(c, "content", "/candidates/0")? {
            content = decode_parts(body, "/candidates/0/content", &mut Calls::default())?;
        }
        finish = json::opt_str(c, "finishReason", "/candidates/0")?;
    }
    // A prompt blocked before any candidate says so in promptFeedback.
    let blocked = json::opt_object(obj, "promptFeedback", "")?.and_then(|f| f.get("blockReason")).is_some();
    let has_calls = content.iter().any(|c| matches!(c, Part::ToolUse { .. }));
    let stop_reason = match (finish, blocked) {
        (Some(f), _) => Some(stop_reason(f, has_calls)),
        (None, true) => Some(StopReason::Refusal),
        (None, false) => None,
    };
    Ok(Response {
        source: Protocol::Gemini,
        model: json::opt_str(obj, "modelVersion", "")?.unwrap_or("").to_string(),
        content,
        refusal: None,
        stop_reason,
        stop_sequence: None,
        usage: json::opt_object(obj, "usageMetadata", "")?.map(|u| decode_usage(u, "/usageMetadata")).transpose()?,
        extra: obj.clone(),
        message_extra: Map::new(),
    })
}

/// The parts of a canonical response, as Gemini parts (signatures folded onto
/// the part before them, as Gemini sends them).
pub fn response_parts(resp_content: &[Part]) -> Vec<Value> {
    let mut parts: Vec<Value> = Vec::new();
    for part in resp_content {
        match part {
            Part::Text { text, .. } => parts.push(json!({"text": text})),
            Part::Thinking { text, signature } => {
                let sig = signature.as_deref().map(to_gemini_signature);
                if text.is_empty()
                    && let (Some(s), Some(last)) = (&sig, parts.last_mut())
                {
                    last["thoughtSignature"] = json!(s);
                    continue;
                }
                let mut v = json!({"text": text, "thought": true});
                if let Some(s) = sig {
                    v["thoughtSignature"] = json!(s);
                }
                parts.push(v);
            }
            Part::ToolUse { id, name, arguments, .. } => {
                let args = tools::parse_arguments(arguments, "").unwrap_or_else(|_| json!({}));
                parts.push(json!({"functionCall": {"id": id, "name": name, "args": args}}));
            }
            _ => {}
        }
    }
    parts
}

/// Encodes a canonical response as a `generateContent` response.
pub fn encode_response(resp: &Response, ctx: &crate::context::Context) -> Value {
    if resp.source == Protocol::Gemini {
        return Value::Object(resp.extra.clone());
    }
    let mut parts = response_parts(&resp.content);
    if let (Some(r), true) = (&resp.refusal, parts.is_empty()) {
        parts.push(json!({"text": r}));
    }
    let stop = match (&resp.refusal, &resp.stop_reason) {
        (Some(_), None | Some(StopReason::EndTurn)) => Some(StopReason::Refusal),
        (_, s) => s.clone(),
    };
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": parts},
            "finishReason": finish_reason(stop.as_ref()),
            "index": 0,
        }],
        "usageMetadata": encode_usage(&resp.usage.clone().unwrap_or_default()),
        "modelVersion": resp.model,
        "responseId": ctx.derive_id("response", 0),
    })
}
