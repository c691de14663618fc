//! Typed access to `serde_json` values that names the JSON pointer on failure.

use crate::error::{CoreError, Result};
use serde_json::{Map, Value};

/// Appends a key or index to a JSON pointer.
pub fn join(path: &str, key: impl std::fmt::Display) -> String {
    format!("{path}/{key}")
}

/// Parses bytes as JSON.
pub fn parse(bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| CoreError::json(&e))
}

/// The name of a value's JSON type, for error messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn wrong(path: &str, want: &str, got: &Value) -> CoreError {
    CoreError::invalid(path, format!("expected {want}, got {}", type_name(got)))
}

/// The value as an object.
pub fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| wrong(path, "an object", v))
}

/// A present, non-null field of `obj`, or `None`.
pub fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// A required field.
pub fn required<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a Value> {
    field(obj, key).ok_or_else(|| CoreError::invalid(join(path, key), "missing required field"))
}

/// An optional string field.
pub fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a str>> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(wrong(&join(path, key), "a string", v)),
    }
}

/// A required string field.
pub fn req_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str> {
    opt_str(obj, key, path)?.ok_or_else(|| CoreError::invalid(join(path, key), "missing required field"))
}

/// An optional non-negative integer field.
pub fn opt_u64(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<u64>> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| wrong(&join(path, key), "a non-negative integer", v)),
    }
}

/// An optional number field.
pub fn opt_f64(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<f64>> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| wrong(&join(path, key), "a number", v)),
    }
}

/// An optional boolean field.
pub fn opt_bool(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong(&join(path, key), "a boolean", v)),
    }
}

/// An optional array field.
pub fn opt_array<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a Vec<Value>>> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(wrong(&join(path, key), "an array", v)),
    }
}

/// An optional object field.
pub fn opt_object<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a Map<String, Value>>> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(v) => Err(wrong(&join(path, key), "an object", v)),
    }
}

/// The fields of `obj` not named in `known`, kept for same-protocol carry-through.
pub fn extras(obj: &Map<String, Value>, known: &[&str]) -> Map<String, Value> {
    obj.iter().filter(|(k, _)| !known.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Appends `s` as a JSON string, byte for byte what `serde_json` writes
/// (`\"`, `\\`, the short forms `\b \f \n \r \t`, `\u00XX` for other control
/// characters; nothing else escaped), but scanning eight bytes at a time:
/// stream envelopes carry whole SSE text, which is mostly plain bytes, and
/// wasm32 has no vectorized string code.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            if !needs_escape(w) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let short = match b {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'\n' => Some(b'n'),
            b'\r' => Some(b'r'),
            b'\t' => Some(b't'),
            0x08 => Some(b'b'),
            0x0c => Some(b'f'),
            0x00..=0x1f => None,
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        match short {
            Some(c) => out.extend_from_slice(&[b'\\', c]),
            None => {
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
            }
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any byte of `w` is `"`, `\` or below 0x20 (SWAR: a byte of
/// `has_zero(x)` is set where the byte of `x` is zero).
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    // Bytes below 0x20: (b - 0x20) borrows into the high bit, for bytes < 0x80.
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    control | has_zero(w ^ (ONES * u64::from(b'"'))) | has_zero(w ^ (ONES * u64::from(b'\\'))) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_exactly_as_serde_json() {
        for s in [
            "",
            "plain text longer than eight bytes",
            "data: {\"id\":\"chatcmpl-1\",\"choices\":[]}\n\n",
            "\u{0}\u{1}\u{1f}\u{7f}\u{8}\u{c}\t\r\\/",
            "é 漢字 🦀 \"q\" 1234567\"",
            "12345678\n",
        ] {
            assert_eq!(ours(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn escapes_any_string_as_serde_json(s in "(\\PC|[\u{0}-\u{1f}\"\\\\]){0,64}") {
            prop_assert_eq!(ours(&s), serde_json::to_string(&s).unwrap());
        }
    }
}
