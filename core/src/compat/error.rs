//! Upstream error bodies → the client protocol's error shape.

use crate::json;
use crate::protocol::Protocol;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// An upstream error as the host saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorInput {
    /// HTTP status.
    pub status: u16,
    /// Raw body text (JSON or not).
    #[serde(default)]
    pub body: String,
    /// `retry-after` header (seconds or an HTTP date), if any.
    #[serde(default)]
    pub retry_after: Option<String>,
    /// `retry-after-ms` header, if any.
    #[serde(default)]
    pub retry_after_ms: Option<String>,
}

/// The error the client should see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorOutput {
    /// HTTP status to answer with.
    pub status: u16,
    /// Body in the client's protocol.
    pub body: Value,
    /// `retry-after` value to send, if the upstream gave one.
    pub retry_after: Option<String>,
}

fn anthropic_type_for(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

fn openai_type_for(status: u16) -> &'static str {
    match status {
        400 | 404 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "server_error",
    }
}

/// Extracts (type, message, code, param) from an upstream error body of either protocol.
fn parse_body(body: &str) -> (Option<String>, String, Option<Value>, Option<Value>) {
    let Ok(v) = json::parse(body.as_bytes()) else {
        let text = body.trim();
        return (
            None,
            if text.is_empty() {
                "upstream error with an empty body".into()
            } else {
                text.chars().take(2000).collect()
            },
            None,
            None,
        );
    };
    let err = v.get("error").unwrap_or(&v);
    let kind = err.get("type").and_then(Value::as_str).map(str::to_string);
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| serde_json::to_string(&v).unwrap_or_default());
    (
        kind,
        message,
        err.get("code").filter(|c| !c.is_null()).cloned(),
        err.get("param").filter(|c| !c.is_null()).cloned(),
    )
}

/// The gRPC status name Gemini gives an HTTP status.
fn gemini_status_for(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 | 529 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// `error.status` of a Gemini error body.
fn gemini_status(body: &str) -> Option<String> {
    let v = json::parse(body.as_bytes()).ok()?;
    v.get("error")?.get("status")?.as_str().map(str::to_string)
}

/// `RetryInfo.retryDelay` (`"34.4s"`) of a Gemini error body, in whole seconds rounded up.
fn gemini_retry_delay(body: &str) -> Option<String> {
    let v = json::parse(body.as_bytes()).ok()?;
    let details = v.get("error")?.get("details")?.as_array()?;
    let delay = details.iter().find_map(|d| d.get("retryDelay")?.as_str())?;
    let secs = delay.strip_suffix('s')?;
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, ""));
    let whole: u64 = whole.parse().ok()?;
    let up = u64::from(frac.bytes().any(|b| b != b'0'));
    Some(whole.saturating_add(up).to_string())
}

/// Maps an upstream error of protocol `from` to protocol `to`, keeping the
/// status and the retry information.
pub fn convert_error(input: &ErrorInput, from: Protocol, to: Protocol) -> ErrorOutput {
    let (kind, message, code, param) = parse_body(&input.body);
    let retry_after = input
        .retry_after
        .clone()
        .or_else(|| {
            let ms: u64 = input.retry_after_ms.as_deref()?.trim().parse().ok()?;
            Some(ms.div_ceil(1000).to_string())
        })
        .or_else(|| gemini_retry_delay(&input.body));
    let body = match to {
        Protocol::Gemini => {
            let status = match (from, gemini_status(&input.body)) {
                (Protocol::Gemini, Some(s)) => s,
                _ => gemini_status_for(input.status).to_string(),
            };
            json!({"error": {"code": input.status, "message": message, "status": status}})
        }
        Protocol::AnthropicMessages => {
            let t = match (from, kind) {
                (Protocol::AnthropicMessages, Some(k)) => k,
                _ => anthropic_type_for(input.status).to_string(),
            };
            json!({"type": "error", "error": {"type": t, "message": message}})
        }
        // Chat Completions and Responses share OpenAI's error shape.
        Protocol::OpenAiChat | Protocol::OpenAiResponses => {
            let t = match (from, kind) {
                (Protocol::OpenAiChat | Protocol::OpenAiResponses, Some(k)) => k,
                _ => openai_type_for(input.status).to_string(),
            };
            json!({"error": {"message": message, "type": t, "param": param, "code": code}})
        }
    };
    ErrorOutput { status: input.status, body, retry_after }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_overload_becomes_openai_server_error_with_retry() {
        let input = ErrorInput {
            status: 529,
            body: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.into(),
            retry_after: None,
            retry_after_ms: Some("1500".into()),
        };
        let out = convert_error(&input, Protocol::AnthropicMessages, Protocol::OpenAiChat);
        assert_eq!(out.status, 529);
        assert_eq!(out.retry_after.as_deref(), Some("2"));
        assert_eq!(
            out.body,
            json!({"error": {"message": "Overloaded", "type": "server_error", "param": null, "code": null}})
        );
    }

    #[test]
    fn non_json_bodies_keep_their_text() {
        let input = ErrorInput {
            status: 502,
            body: "<html>bad gateway</html>".into(),
            retry_after: None,
            retry_after_ms: None,
        };
        let out = convert_error(&input, Protocol::OpenAiChat, Protocol::AnthropicMessages);
        assert_eq!(out.body["error"]["type"], "api_error");
        assert_eq!(out.body["error"]["message"], "<html>bad gateway</html>");
    }
}
