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
