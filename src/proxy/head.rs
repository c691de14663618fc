//! The few fields of a client request the host itself needs (model, stream,
//! usage option), read in one pass over the body without building a tree:
//! the conversion is the core's, which parses the body its own way.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// What the host reads of a client request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RequestHead {
    /// `model`, when it is a string.
    pub model: Option<String>,
    /// `stream: true`.
    pub stream: bool,
    /// `stream_options.include_usage: true` (OpenAI Chat).
    pub include_usage: bool,
}

/// Why a body is not a request.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Not JSON.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// JSON, but not an object.
    #[error("request body must be a JSON object")]
    NotObject,
}

impl RequestHead {
    /// Reads the head of `body`; a duplicate key counts as its last value, as
    /// in the core's parse.
    pub fn parse(body: &[u8]) -> Result<RequestHead, HeadError> {
        serde_json::from_slice::<RequestHead>(body).map_err(|e| {
            if e.is_data() {
                // A type error at the top; unless the body is not JSON at all.
                match serde_json::from_slice::<IgnoredAny>(body) {
                    Ok(_) => HeadError::NotObject,
                    Err(e) => HeadError::Malformed(e.to_string()),
                }
            } else {
                HeadError::Malformed(e.to_string())
            }
        })
    }
}

enum Key {
    Model,
    Stream,
    StreamOptions,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
                Ok(match k {
                    "model" => Key::Model,
                    "stream" => Key::Stream,
                    "stream_options" => Key::StreamOptions,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> de::Deserialize<'de> for RequestHead {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RequestHead, D::Error> {
        struct HeadVisitor;
        impl<'de> Visitor<'de> for HeadVisitor {
            type Value = RequestHead;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RequestHead, A::Error> {
                let mut head = RequestHead::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Model => {
                            let raw: &RawValue = map.next_value()?;
                            head.model = serde_json::from_str(raw.get()).ok();
                        }
                        Key::Stream => {
                            let raw: &RawValue = map.next_value()?;
                            head.stream = serde_json::from_str(raw.get()).unwrap_or(false);
                        }
                        Key::StreamOptions => {
                            let raw: &RawValue = map.next_value()?;
                            let opts: serde_json::Value = serde_json::from_str(raw.get()).unwrap_or_default();
                            head.include_usage = opts["include_usage"].as_bool().unwrap_or(false);
                        }
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(head)
            }
        }
        d.deserialize_map(HeadVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(body: &str) -> Result<RequestHead, HeadError> {
        RequestHead::parse(body.as_bytes())
    }

    #[test]
    fn reads_model_stream_and_usage_option() {
        let h = head(
            r#"{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o","stream":true,
                        "stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert_eq!(h, RequestHead { model: Some("gpt-4o".into()), stream: true, include_usage: true });
    }

    #[test]
    fn wrong_types_read_as_absent_and_escapes_are_decoded() {
        let h = head(r#"{"model":7,"stream":"yes","stream_options":[]}"#).unwrap();
        assert_eq!(h, RequestHead::default());
        let h = head(r#"{"mod\u0065l":"a\"b","stream":false}"#).unwrap();
        assert_eq!(h.model.as_deref(), Some("a\"b"));
    }

    #[test]
    fn a_duplicate_key_counts_as_its_last_value() {
        assert_eq!(head(r#"{"model":"a","model":"b"}"#).unwrap().model.as_deref(), Some("b"));
    }

    #[test]
    fn non_objects_and_broken_json_are_told_apart() {
        assert_eq!(head("[1,2]"), Err(HeadError::NotObject));
        assert_eq!(head("\"model\""), Err(HeadError::NotObject));
        for broken in ["[1,", "{\"model\":", "{\"a\":1,}", "{} x", ""] {
            assert!(matches!(head(broken), Err(HeadError::Malformed(_))), "{broken}");
        }
        let broken = "{\"model\": }";
        let want = serde_json::from_str::<serde_json::Value>(broken).unwrap_err();
        assert_eq!(
            head(broken).unwrap_err().to_string(),
            format!("malformed JSON: {want}"),
            "the parser's own message"
        );
    }
}
