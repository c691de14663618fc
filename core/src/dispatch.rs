//! The one entry point both runtimes call: `dispatch(op, input) -> output`.
//!
//! Input framing: a one-line JSON header, then optionally `\n` and a payload
//! (a request or response body, an error, a route query, or text). Output: a
//! JSON envelope, `{"ok": <value>}` or `{"err": {"kind", "message", "path"}}`.
//! Streams are [`StreamSession`]s; [`stream_open`], [`stream_feed`] and
//! [`stream_close`] give them the same envelope discipline.

use crate::compat::{self, ErrorInput};
use crate::context::Context;
use crate::error::{CoreError, ErrorKind, Result};
use crate::json;
use crate::module::Module;
use crate::protocol::Protocol;
use crate::routing::{self, NextRequest, RouteRequest};
use crate::streaming::{self, StreamOptions, StreamSession};
use crate::{tokenizer, tools};
use serde::Deserialize;
use serde_json::{Value, json};

/// Version of the guest ABI this core's envelopes belong to.
pub const ABI_VERSION: u32 = 1;

/// Version of the core crate.
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The operations `dispatch` understands, in ABI code order (new ops are only appended).
pub const OPS: &[&str] = &[
    "capabilities",
    "routing.resolve",
    "compat.request",
    "compat.response",
    "compat.error",
    "tools.canonicalize",
    "tokenizer.count",
    "routing.next",
];

/// The ABI code of an op: its position in [`OPS`] (new ops are only appended).
pub fn op_code(name: &str) -> Option<u32> {
    OPS.iter().position(|o| *o == name).map(|i| i as u32)
}

/// The op name of an ABI code.
pub fn op_name(code: u32) -> Option<&'static str> {
    OPS.get(code as usize).copied()
}

/// The header line of an op's input.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    #[serde(default)]
    ctx: Option<Context>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    /// Whether the exchange streams, when the body cannot say (Gemini: the URL does).
    #[serde(default)]
    stream: Option<bool>,
}

impl Header {
    fn protocol(&self, which: &str) -> Result<Protocol> {
        let v = if which == "from" { &self.from } else { &self.to };
        let v = v.as_deref().ok_or_else(|| CoreError::invalid(format!("/header/{which}"), "missing required field"))?;
        Protocol::parse(v, &format!("/header/{which}"))
    }

    fn ctx(&self) -> Result<&Context> {
        self.ctx.as_ref().ok_or_else(|| CoreError::invalid("/header/ctx", "missing required field"))
    }
}

/// Splits an input into its parsed header and the payload bytes.
fn split(input: &[u8]) -> Result<(Header, &[u8])> {
    let (head, payload) = match input.iter().position(|&b| b == b'\n') {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (input, &input[input.len()..]),
    };
    if head.iter().all(u8::is_ascii_whitespace) {
        return Ok((Header::default(), payload));
    }
    let header =
        serde_json::from_slice(head).map_err(|e| CoreError::invalid("/header", format!("bad op header: {e}")))?;
    Ok((header, payload))
}

/// The guest's capabilities: ABI, core and module versions, profiles, SSE schema, ops.
pub fn capabilities() -> Value {
    let modules: serde_json::Map<String, Value> =
        Module::ALL.iter().map(|m| (m.as_str().to_string(), json!(m.version()))).collect();
    let profiles: Vec<Value> = compat::PROFILES.iter().map(|p| json!({"name": p.name, "version": p.version})).collect();
    json!({
        "abi": ABI_VERSION,
        "core_version": CORE_VERSION,
        "modules": modules,
        "compat_profiles": profiles,
        "sse_protocol": streaming::SSE_PROTOCOL_VERSION,
        "protocols": Protocol::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "ops": OPS,
        "features": ["streams", "panic_message"],
    })
}

/// Runs one op and returns its result value.
pub fn run(op: &str, input: &[u8]) -> Result<Value> {
    let (h, payload) = split(input)?;
    match op {
        "capabilities" => Ok(capabilities()),
        "routing.resolve" => {
            let req: RouteRequest =
                serde_json::from_slice(payload).map_err(|e| CoreError::invalid("", format!("bad route query: {e}")))?;
            Ok(serde_json::to_value(routing::resolve(&req)?).unwrap_or(Value::Null))
        }
        "routing.next" => {
            let req: NextRequest = serde_json::from_slice(payload)
                .map_err(|e| CoreError::invalid("", format!("bad routing.next query: {e}")))?;
            Ok(serde_json::to_value(routing::next(&req)?).unwrap_or(Value::Null))
        }
        "compat.request" => {
            let (from, to) = (h.protocol("from")?, h.protocol("to")?);
            let profile = compat::profile(h.profile.as_deref(), to)?;
            compat::convert_request(from, to, payload, profile, h.model.as_deref(), h.stream)
        }
        "compat.response" => {
            let (from, to) = (h.protocol("from")?, h.protocol("to")?);
            let profile = compat::profile(h.profile.as_deref(), from)?;
            compat::convert_response(h.ctx()?, from, to, payload, profile)
        }
        "compat.error" => {
            let (from, to) = (h.protocol("from")?, h.protocol("to")?);
            let input: ErrorInput =
                serde_json::from_slice(payload).map_err(|e| CoreError::invalid("", format!("bad error input: {e}")))?;
            Ok(serde_json::to_value(compat::convert_error(&input, from, to)).unwrap_or(Value::Null))
        }
        "tools.canonicalize" => {
            let from = h.protocol("from")?;
            let body = json::parse(payload)?;
            match h.kind.as_deref().unwrap_or("request") {
                "request" => {
                    let req = compat::decode_request(from, &body)?;
                    let calls: Vec<_> = req.messages.iter().flat_map(|m| m.content.iter().cloned()).collect();
                    Ok(tools::canonical_json(&req.tools, &calls))
                }
                "response" => {
                    let mut resp = compat::decode_response(from, &body, h.ctx()?)?;
                    let patched = tools::patch_finish_reason(&mut resp);
                    let mut v = tools::canonical_json(&[], &resp.content);
                    v["finish_reason"] = json!(resp.stop_reason.as_ref().map(|s| s.to_openai().to_string()));
                    v["finish_reason_patched"] = json!(patched);
                    Ok(v)
                }
                other => Err(CoreError::invalid(
                    "/header/kind",
                    format!("unknown kind {other:?} (expected request or response)"),
                )),
            }
        }
        "tokenizer.count" => {
            let text = std::str::from_utf8(payload)
                .map_err(|_| CoreError::new(ErrorKind::InvalidJson, "", "text is not valid UTF-8"))?;
            Ok(json!({"tokens": tokenizer::count(text), "digest": tokenizer::digest(text)}))
        }
        other => Err(CoreError::new(ErrorKind::UnknownOp, "", format!("unknown op {other:?}"))),
    }
}

/// Wraps a result in the envelope.
pub fn envelope(result: Result<Value>) -> Vec<u8> {
    let v = match result {
        Ok(v) => json!({"ok": v}),
        Err(e) => error_value(&e),
    };
    serde_json::to_vec(&v)
        .unwrap_or_else(|_| br#"{"err":{"kind":"invalid_input","message":"unserializable result","path":""}}"#.to_vec())
}

fn error_value(e: &CoreError) -> Value {
    json!({"err": {"kind": e.kind.as_str(), "message": e.message, "path": e.path}})
}

/// Runs `op` on `input` and returns the envelope bytes. Never panics on bad input.
pub fn dispatch(op: &str, input: &[u8]) -> Vec<u8> {
    envelope(run(op, input))
}

/// The stream session options header: `{"ctx", "from", "to", "include_usage"}`.
#[derive(Debug, Deserialize)]
struct OpenHeader {
    ctx: Context,
    #[serde(flatten)]
    opts: StreamOptions,
}

/// Opens a stream session from its JSON options.
pub fn stream_open(input: &[u8]) -> Result<StreamSession> {
    let h: OpenHeader =
        serde_json::from_slice(input).map_err(|e| CoreError::invalid("", format!("bad stream options: {e}")))?;
    StreamSession::new(h.ctx, &h.opts)
}

/// Feeds a session; the envelope holds the client SSE text.
pub fn stream_feed(s: &mut StreamSession, bytes: &[u8]) -> Vec<u8> {
    // `{"ok":"<text>"}`, as `envelope` writes it, without building a value.
    let text = s.feed(bytes);
    let mut out = Vec::with_capacity(text.len() + text.len() / 8 + 10);
    out.extend_from_slice(b"{\"ok\":");
    crate::json::write_str(&mut out, &text);
    out.push(b'}');
    out
}

/// Ends a session; the envelope holds the last SSE text and the stream's error, if any.
pub fn stream_close(s: &mut StreamSession) -> Vec<u8> {
    let out = s.finish();
    let err = s.error().map(|e| json!({"kind": e.kind.as_str(), "message": e.message, "path": e.path}));
    envelope(Ok(json!({"out": out, "error": err})))
}

/// A decoded envelope: the `ok` value as raw JSON text, or the error.
pub fn open_envelope(bytes: &[u8]) -> Result<Box<serde_json::value::RawValue>> {
    #[derive(Deserialize)]
    struct Env {
        ok: Option<Box<serde_json::value::RawValue>>,
        err: Option<ErrBody>,
    }
    #[derive(Deserialize)]
    struct ErrBody {
        kind: String,
        message: String,
        #[serde(default)]
        path: String,
    }
    let env: Env =
        serde_json::from_slice(bytes).map_err(|e| CoreError::invalid("", format!("malformed envelope: {e}")))?;
    match (env.ok, env.err) {
        (Some(ok), None) => Ok(ok),
        (None, Some(e)) => {
            Err(CoreError::new(ErrorKind::parse(&e.kind).unwrap_or(ErrorKind::InvalidInput), e.path, e.message))
        }
        _ => Err(CoreError::invalid("", "envelope has neither ok nor err")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_ops_and_bad_headers_are_error_envelopes() {
        let out = dispatch("nope", b"");
        assert_eq!(open_envelope(&out).unwrap_err().kind, ErrorKind::UnknownOp);
        let out = dispatch("compat.request", b"{\"from\":1}\n{}");
        assert!(open_envelope(&out).unwrap_err().message.contains("bad op header"));
        let out = dispatch("compat.request", b"{\"from\":\"openai-chat\",\"to\":\"anthropic-messages\"}\n{\"model\":");
        assert_eq!(open_envelope(&out).unwrap_err().kind, ErrorKind::InvalidJson);
    }

    #[test]
    fn capabilities_list_every_module() {
        let caps = capabilities();
        for m in Module::ALL {
            assert_eq!(caps["modules"][m.as_str()], m.version());
        }
        assert_eq!(caps["abi"], 1);
    }
}
