//! Module `tools`: canonical tool definitions and tool calls.
//!
//! Contract: raw tool definitions / tool calls of either protocol in, canonical
//! tools and calls out. Arguments are always a compact JSON text (OpenAI's
//! form); schemas are normalized so every protocol accepts them; a response
//! that carries tool calls but says it stopped for another reason is patched.

use crate::canonical::{Part, Response, StopReason, ToolChoice, ToolDef};
use crate::error::{CoreError, Result};
use crate::json::{self, join};
use crate::protocol::Protocol;
use serde_json::{Map, Value, json};

/// Version of the `tools` module.
pub const VERSION: &str = "tools/1.0.0";

/// Normalizes a JSON Schema for tool arguments: the root must be an object
/// schema; a missing `type` becomes `"object"` and a missing `properties` `{}`.
pub fn normalize_schema(schema: Option<&Value>, path: &str) -> Result<Value> {
    let mut obj = match schema {
        None => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(v) => {
            return Err(CoreError::invalid(path, format!("expected a JSON Schema object, got {}", json::type_name(v))));
        }
    };
    if !obj.contains_key("type") {
        obj.insert("type".into(), json!("object"));
    }
    if obj.get("type") == Some(&json!("object")) && !obj.contains_key("properties") {
        obj.insert("properties".into(), json!({}));
    }
    Ok(Value::Object(obj))
}

/// Stringifies tool-call arguments (an Anthropic `input` object) compactly, keys in input order.
pub fn stringify_arguments(input: &Value) -> String {
    serde_json::to_string(input).unwrap_or_else(|_| "{}".into())
}

/// Parses an OpenAI arguments string into an object; empty text means `{}`.
pub fn parse_arguments(arguments: &str, path: &str) -> Result<Value> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(v) => Err(CoreError::invalid(
            path,
            format!("tool call arguments must be a JSON object, got {}", json::type_name(&v)),
        )),
        Err(e) => Err(CoreError::invalid(path, format!("tool call arguments are not valid JSON: {e}"))),
    }
}

/// Decodes an OpenAI `tools` array.
pub fn decode_openai_tools(tools: &[Value], path: &str) -> Result<Vec<ToolDef>> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let p = join(path, i);
        let obj = json::as_object(tool, &p)?;
        let kind = json::opt_str(obj, "type", &p)?.unwrap_or("function");
        if kind != "function" {
            out.push(ToolDef::Raw(tool.clone()));
            continue;
        }
        let fp = join(&p, "function");
        let f = json::as_object(json::required(obj, "function", &p)?, &fp)?;
        out.push(ToolDef::Function {
            name: json::req_str(f, "name", &fp)?.to_string(),
            description: json::opt_str(f, "description", &fp)?.map(str::to_string),
            parameters: normalize_schema(json::field(f, "parameters"), &join(&fp, "parameters"))?,
            strict: json::opt_bool(f, "strict", &fp)?,
            cache_control: json::field(obj, "cache_control").cloned(),
        });
    }
    Ok(out)
}

/// Decodes an Anthropic `tools` array. Provider-defined tools (any `type`
/// other than `custom`) are kept raw.
pub fn decode_anthropic_tools(tools: &[Value], path: &str) -> Result<Vec<ToolDef>> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let p = join(path, i);
        let obj = json::as_object(tool, &p)?;
        match json::opt_str(obj, "type", &p)? {
            None | Some("custom") => out.push(ToolDef::Function {
                name: json::req_str(obj, "name", &p)?.to_string(),
                description: json::opt_str(obj, "description", &p)?.map(str::to_string),
                parameters: normalize_schema(json::field(obj, "input_schema"), &join(&p, "input_schema"))?,
                strict: json::opt_bool(obj, "strict", &p)?,
                cache_control: json::field(obj, "cache_control").cloned(),
            }),
            Some(_) => out.push(ToolDef::Raw(tool.clone())),
        }
    }
    Ok(out)
}

fn raw_tool_type(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("?")
}

/// Encodes tools for an OpenAI upstream. Raw tools pass only between OpenAI ends.
pub fn encode_openai_tools(tools: &[ToolDef], source: Protocol) -> Result<Vec<Value>> {
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| match t {
            ToolDef::Function { name, description, parameters, strict, cache_control: _ } => {
                let mut f = Map::new();
                f.insert("name".into(), json!(name));
                if let Some(d) = description {
                    f.insert("description".into(), json!(d));
                }
                f.insert("parameters".into(), parameters.clone());
                if let Some(s) = strict {
                    f.insert("strict".into(), json!(s));
                }
                Ok(json!({"type": "function", "function": f}))
            }
            ToolDef::Raw(v) if source == Protocol::OpenAiChat => Ok(v.clone()),
            ToolDef::Raw(v) => Err(CoreError::unsupported(
                format!("/tools/{i}"),
                format!("tool type {:?} has no openai-chat counterpart", raw_tool_type(v)),
            )),
        })
        .collect()
}

/// Encodes tools for an Anthropic upstream. Raw tools pass only between Anthropic ends.
pub fn encode_anthropic_tools(tools: &[ToolDef], source: Protocol) -> Result<Vec<Value>> {
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| match t {
            ToolDef::Function { name, description, parameters, strict: _, cache_control } => {
                let mut o = Map::new();
                o.insert("name".into(), json!(name));
                if let Some(d) = description {
                    o.insert("description".into(), json!(d));
                }
                o.insert("input_schema".into(), parameters.clone());
                if let Some(c) = cache_control {
                    o.insert("cache_control".into(), c.clone());
                }
                Ok(Value::Object(o))
            }
            ToolDef::Raw(v) if source == Protocol::AnthropicMessages => Ok(v.clone()),
            ToolDef::Raw(v) => Err(CoreError::unsupported(
                format!("/tools/{i}"),
                format!("tool type {:?} has no anthropic-messages counterpart", raw_tool_type(v)),
            )),
        })
        .collect()
}

/// Decodes OpenAI `tool_choice`.
pub fn decode_openai_tool_choice(v: &Value, path: &str) -> Result<ToolChoice> {
    match v {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(CoreError::invalid(path, format!("unknown tool_choice {other:?}"))),
        },
        Value::Object(o) => {
            let fp = join(path, "function");
            let f = json::as_object(json::required(o, "function", path)?, &fp)?;
            Ok(ToolChoice::Named(json::req_str(f, "name", &fp)?.to_string()))
        }
        other => {
            Err(CoreError::invalid(path, format!("expected a string or an object, got {}", json::type_name(other))))
        }
    }
}

/// Decodes Anthropic `tool_choice`; returns the choice and `disable_parallel_tool_use`.
pub fn decode_anthropic_tool_choice(v: &Value, path: &str) -> Result<(ToolChoice, Option<bool>)> {
    let o = json::as_object(v, path)?;
    let choice = match json::req_str(o, "type", path)? {
        "auto" => ToolChoice::Auto,
        "none" => ToolChoice::None,
        "any" => ToolChoice::Required,
        "tool" => ToolChoice::Named(json::req_str(o, "name", path)?.to_string()),
        other => return Err(CoreError::invalid(join(path, "type"), format!("unknown tool_choice type {other:?}"))),
    };
    Ok((choice, json::opt_bool(o, "disable_parallel_tool_use", path)?))
}

/// Encodes OpenAI `tool_choice`.
pub fn encode_openai_tool_choice(c: &ToolChoice) -> Value {
    match c {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Named(n) => json!({"type": "function", "function": {"name": n}}),
    }
}

/// Encodes Anthropic `tool_choice`, folding in `parallel_tool_calls`.
pub fn encode_anthropic_tool_choice(c: Option<&ToolChoice>, parallel: Option<bool>) -> Option<Value> {
    let mut o = match c {
        None if parallel != Some(false) => return None,
        None | Some(ToolChoice::Auto) => json!({"type": "auto"}),
        Some(ToolChoice::None) => json!({"type": "none"}),
        Some(ToolChoice::Required) => json!({"type": "any"}),
        Some(ToolChoice::Named(n)) => json!({"type": "tool", "name": n}),
    };
    if parallel == Some(false) && !matches!(c, Some(ToolChoice::None)) {
        o["disable_parallel_tool_use"] = json!(true);
    }
    Some(o)
}

/// Decodes an OpenAI Responses `tools` array: function tools are flat
/// (`name`, `parameters` beside `type`); built-in tools (web search, file
/// search, code interpreter, MCP, shell, custom, …) are kept raw.
pub fn decode_responses_tools(tools: &[Value], path: &str) -> Result<Vec<ToolDef>> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let p = join(path, i);
        let obj = json::as_object(tool, &p)?;
        if json::req_str(obj, "type", &p)? != "function" {
            out.push(ToolDef::Raw(tool.clone()));
            continue;
        }
        out.push(ToolDef::Function {
            name: json::req_str(obj, "name", &p)?.to_string(),
            description: json::opt_str(obj, "description", &p)?.map(str::to_string),
            parameters: normalize_schema(
                json::field(obj, "parameters").filter(|v| !v.is_null()),
                &join(&p, "parameters"),
            )?,
            strict: json::opt_bool(obj, "strict", &p)?,
            cache_control: None,
        });
    }
    Ok(out)
}

/// Encodes tools for an OpenAI Responses upstream. `strict` is always sent:
/// the Responses API defaults it to `true`, which would reject the schemas
/// other protocols' clients write.
pub fn encode_responses_tools(tools: &[ToolDef], source: Protocol) -> Result<Vec<Value>> {
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| match t {
            ToolDef::Function { name, description, parameters, strict, cache_control: _ } => {
                let mut f = Map::new();
                f.insert("type".into(), json!("function"));
                f.insert("name".into(), json!(name));
                if let Some(d) = description {
                    f.insert("description".into(), json!(d));
                }
                f.insert("parameters".into(), parameters.clone());
                f.insert("strict".into(), json!(strict.unwrap_or(false)));
                Ok(Value::Object(f))
            }
            ToolDef::Raw(v) if source == Protocol::OpenAiResponses => Ok(v.clone()),
            ToolDef::Raw(v) => Err(CoreError::unsupported(
                format!("/tools/{i}"),
                format!("tool type {:?} has no openai-responses counterpart", raw_tool_type(v)),
            )),
        })
        .collect()
}

/// Decodes Responses `tool_choice`. `Ok(None)` for the forms with no
/// canonical meaning (`allowed_tools`, a built-in tool, MCP), which only a
/// same-protocol route can carry.
pub fn decode_responses_tool_choice(v: &Value, path: &str) -> Result<Option<ToolChoice>> {
    match v {
        Value::Object(o) if json::req_str(o, "type", path)? == "function" => {
            Ok(Some(ToolChoice::Named(json::req_str(o, "name", path)?.to_string())))
        }
        Value::Object(_) => Ok(None),
        other => decode_openai_tool_choice(other, path).map(Some),
    }
}

/// Encodes Responses `tool_choice`.
pub fn encode_responses_tool_choice(c: &ToolChoice) -> Value {
    match c {
        ToolChoice::Named(n) => json!({"type": "function", "name": n}),
        other => encode_openai_tool_choice(other),
    }
}

/// Finish-reason patching: a response that carries tool calls but reports a
/// natural stop (as some OpenAI-compatible providers do) stopped for tool use.
/// Returns whether it patched anything.
pub fn patch_finish_reason(resp: &mut Response) -> bool {
    let has_calls = resp.content.iter().any(|p| matches!(p, Part::ToolUse { .. }));
    if has_calls && matches!(resp.stop_reason, Some(StopReason::EndTurn) | None) {
        resp.stop_reason = Some(StopReason::ToolUse);
        return true;
    }
    false
}

/// The canonical view of a set of tools and calls, as the `tools.canonicalize` op returns it.
pub fn canonical_json(tools: &[ToolDef], calls: &[Part]) -> Value {
    let tools: Vec<Value> = tools
        .iter()
        .map(|t| match t {
            ToolDef::Function { name, description, parameters, strict, .. } => {
                json!({"kind": "function", "name": name, "description": description, "parameters": parameters, "strict": strict})
            }
            ToolDef::Raw(v) => json!({"kind": "provider", "type": raw_tool_type(v), "definition": v}),
        })
        .collect();
    let calls: Vec<Value> = calls
        .iter()
        .filter_map(|p| match p {
            Part::ToolUse { id, name, arguments, .. } => Some(json!({"id": id, "name": name, "arguments": arguments})),
            _ => None,
        })
        .collect();
    json!({"tools": tools, "tool_calls": calls})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_normalization_fills_object_defaults() {
        assert_eq!(normalize_schema(None, "").unwrap(), json!({"type": "object", "properties": {}}));
        let s = json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]});
        assert_eq!(normalize_schema(Some(&s), "").unwrap(), s);
        assert!(normalize_schema(Some(&json!("x")), "/tools/0").unwrap_err().path == "/tools/0");
    }

    #[test]
    fn arguments_round_trip_and_reject_non_objects() {
        assert_eq!(parse_arguments("", "").unwrap(), json!({}));
        let v = parse_arguments(r#"{"b":1,"a":[true]}"#, "").unwrap();
        assert_eq!(stringify_arguments(&v), r#"{"b":1,"a":[true]}"#);
        assert!(parse_arguments("[1]", "/p").is_err());
        assert!(parse_arguments("{", "/p").unwrap_err().message.contains("not valid JSON"));
    }

    #[test]
    fn parallel_flag_folds_into_anthropic_tool_choice() {
        assert_eq!(encode_anthropic_tool_choice(None, None), None);
        assert_eq!(
            encode_anthropic_tool_choice(None, Some(false)),
            Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
        );
        assert_eq!(encode_anthropic_tool_choice(Some(&ToolChoice::Required), Some(true)), Some(json!({"type": "any"})));
    }
}
