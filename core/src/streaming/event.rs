//! Canonical stream events: what every upstream stream is decoded into and
//! every client stream is encoded from.

use crate::canonical::{StopReason, Usage};
use serde_json::{Map, Value};

/// The kind of a content block opened in a stream.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockKind {
    /// Text.
    Text,
    /// A tool call.
    ToolUse {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Other Anthropic fields of the block (e.g. `caller`), same protocol only.
        extra: Map<String, Value>,
    },
    /// Visible reasoning.
    Thinking,
    /// Encrypted reasoning.
    RedactedThinking {
        /// Opaque data.
        data: String,
    },
    /// An Anthropic block with no canonical meaning, as started.
    Raw(Value),
}

/// An incremental piece of a block.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// Text.
    Text(String),
    /// A fragment of tool arguments (or of a raw block's input).
    ToolArgs(String),
    /// Reasoning text.
    Thinking(String),
    /// A reasoning signature.
    Signature(String),
    /// An Anthropic delta with no canonical meaning (citations, compaction, …).
    Raw(Value),
}

/// One canonical stream event.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The message begins.
    Start {
        /// Model answering.
        model: String,
        /// Usage known at the start (Anthropic input tokens).
        usage: Option<Usage>,
    },
    /// A content block opens. `index` is unique within the message.
    BlockStart {
        /// Block index.
        index: usize,
        /// What the block is.
        kind: BlockKind,
    },
    /// A piece of an open block.
    Delta {
        /// Block index.
        index: usize,
        /// The piece.
        delta: Delta,
    },
    /// A block closes.
    BlockStop {
        /// Block index.
        index: usize,
    },
    /// Generation ended: why, and the final usage.
    Finish {
        /// Stop reason.
        stop_reason: Option<StopReason>,
        /// Matched stop sequence.
        stop_sequence: Option<String>,
        /// Final usage.
        usage: Option<Usage>,
        /// Source-protocol `delta` fields (same protocol only), e.g. `stop_details`.
        extra: Map<String, Value>,
    },
    /// The stream is complete.
    Done,
    /// Keep-alive.
    Ping,
    /// The upstream reported an error mid-stream.
    Error {
        /// Error type in the upstream's words.
        kind: String,
        /// Message.
        message: String,
    },
}
