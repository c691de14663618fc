//! What a comparison found beyond its outcome: the typed `summary` of a
//! [`DiffResult`](super::DiffResult), written by the sink as JSON and read
//! by the `diff` command's renderer.

use super::json::DiffEntry;
use serde::Serialize;
use serde_json::Value;

/// The details of one comparison. Serialized without a tag: each variant has
/// its own keys (`null` for [`Summary::None`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(untagged)]
pub enum Summary {
    /// Nothing to add (an identical JSON body).
    #[default]
    None,
    /// The comparison could not happen: a runtime failed or the job was dropped.
    Failed {
        /// Why.
        error: String,
    },
    /// Compared by digest (an input over the size cap).
    Digests {
        /// Left SHA-256.
        left_sha256: String,
        /// Right SHA-256.
        right_sha256: String,
        /// Left size.
        left_bytes: usize,
        /// Right size.
        right_bytes: usize,
    },
    /// A side did not parse.
    Unparsable {
        /// The left side's parse error.
        left_error: Option<String>,
        /// The right side's parse error.
        right_error: Option<String>,
    },
    /// JSON whose differences the ruleset explains.
    Ignored {
        /// Differences explained.
        ignored: usize,
    },
    /// JSON that differs.
    Entries {
        /// The first differences (capped).
        entries: Vec<DiffEntry>,
        /// Differences the ruleset explained besides.
        ignored: usize,
    },
    /// Two SSE streams.
    Events(Events),
}

/// Two streams as canonical events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Events {
    /// Canonical events on the left.
    pub left_events: usize,
    /// Canonical events on the right.
    pub right_events: usize,
    /// Tokenizer digest of the left stream's text.
    pub left_token_digest: String,
    /// Tokenizer digest of the right stream's text.
    pub right_token_digest: String,
    /// Where the streams part, when they do.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub divergence: Option<Divergence>,
}

/// How two event sequences differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// Events only on the right.
    pub added: usize,
    /// Events only on the left.
    pub removed: usize,
    /// Aligned events with different payloads.
    pub mismatched: usize,
    /// The first difference.
    pub first_divergence: Option<Box<FirstDivergence>>,
}

/// How an event differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventChange {
    /// Only on the left.
    Removed,
    /// Only on the right.
    Added,
    /// On both sides, different.
    Mismatched,
}

/// The first event where two streams differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirstDivergence {
    /// Position on the left.
    pub index: usize,
    /// Event type (left side; the right's for an added event).
    pub event_type: String,
    /// Removed, added or mismatched.
    pub kind: EventChange,
    /// The right side's event type, for a mismatch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right_event_type: Option<String>,
    /// The first differing path inside the payloads, for a mismatch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Left value (the whole payload for a removed event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left: Option<Value>,
    /// Right value (the whole payload for an added event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right: Option<Value>,
    /// Compact text diff of string values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_diff: Option<String>,
}

impl FirstDivergence {
    /// A divergence at `index` of `event_type`, with no values yet.
    pub fn new(index: usize, event_type: &str, kind: EventChange) -> FirstDivergence {
        FirstDivergence {
            index,
            event_type: event_type.into(),
            kind,
            right_event_type: None,
            path: None,
            left: None,
            right: None,
            text_diff: None,
        }
    }
}

impl Summary {
    /// The stream figures, for streams.
    pub fn events(&self) -> Option<&Events> {
        match self {
            Summary::Events(e) => Some(e),
            _ => None,
        }
    }

    /// As a JSON value (what the sink writes).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}
