//! The protocol-neutral model every conversion goes through.
//!
//! Decoders turn a protocol's JSON into these types; encoders turn them back
//! into any protocol. Same-protocol passthrough uses the same path, with
//! `extra` maps carrying fields only that protocol understands.

use crate::protocol::Protocol;
use serde_json::{Map, Value};

/// A chat request in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The protocol the request was decoded from (decides where `extra` may go).
    pub source: Protocol,
    /// Model name as the client sent it (routing may replace it).
    pub model: String,
    /// The conversation, system prompts included, in order.
    pub messages: Vec<Message>,
    /// Tool definitions.
    pub tools: Vec<ToolDef>,
    /// How the model may pick tools.
    pub tool_choice: Option<ToolChoice>,
    /// Whether several tool calls may come in one turn.
    pub parallel_tool_calls: Option<bool>,
    /// Output token cap.
    pub max_tokens: Option<u64>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling (Anthropic only).
    pub top_k: Option<u64>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// End-user id (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    /// Streaming requested.
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: Option<bool>,
    /// Extended thinking / reasoning settings.
    pub reasoning: Option<Reasoning>,
    /// Structured output requested (OpenAI `response_format`, Responses
    /// `text.format`, Anthropic `output_config.format`); used across protocols,
    /// while a same-protocol request keeps the client's own field.
    pub output_format: Option<OutputFormat>,
    /// Source-protocol fields with no canonical meaning, emitted only to the same protocol.
    pub extra: Map<String, Value>,
}

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A system prompt (OpenAI `system`).
    System,
    /// A system prompt sent as OpenAI `developer`.
    Developer,
    /// The user (tool results included).
    User,
    /// The model.
    Assistant,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Speaker.
    pub role: Role,
    /// Ordered content parts.
    pub content: Vec<Part>,
    /// OpenAI `name` on a message (same-protocol only).
    pub name: Option<String>,
}

/// Where an image comes from. URLs are never fetched.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// Inline bytes.
    Base64 {
        /// MIME type such as `image/png`.
        media_type: String,
        /// Base64 payload.
        data: String,
    },
    /// A remote URL, passed on as is.
    Url(String),
}

/// A content part of a message or response.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Plain text.
    Text {
        /// The text.
        text: String,
        /// Anthropic prompt-caching marker.
        cache_control: Option<Value>,
        /// Anthropic citations (carried to Anthropic only).
        citations: Option<Value>,
    },
    /// An image.
    Image {
        /// The bytes or URL.
        source: ImageSource,
        /// OpenAI `detail`.
        detail: Option<String>,
        /// Anthropic prompt-caching marker.
        cache_control: Option<Value>,
    },
    /// A tool call made by the model.
    ToolUse {
        /// Call id, preserved across protocols.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments as a JSON text (the canonical, stringified form).
        arguments: String,
        /// Anthropic prompt-caching marker.
        cache_control: Option<Value>,
        /// Other source-protocol fields of the call (e.g. Anthropic `caller`), same protocol only.
        extra: Map<String, Value>,
    },
    /// The result of a tool call, sent back by the client.
    ToolResult {
        /// The call this answers.
        tool_use_id: String,
        /// Result content (text and images).
        content: Vec<Part>,
        /// Whether the tool failed.
        is_error: bool,
        /// Anthropic prompt-caching marker.
        cache_control: Option<Value>,
    },
    /// Visible reasoning.
    Thinking {
        /// The reasoning text.
        text: String,
        /// Anthropic signature, required to send thinking back.
        signature: Option<String>,
    },
    /// Encrypted reasoning.
    RedactedThinking {
        /// Opaque data.
        data: String,
    },
    /// An Anthropic block with no canonical meaning (server tools, MCP, compaction, …).
    Raw(Value),
}

/// A tool definition.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolDef {
    /// A client-side function tool.
    Function {
        /// Name.
        name: String,
        /// Description.
        description: Option<String>,
        /// Normalized JSON Schema of the arguments.
        parameters: Value,
        /// OpenAI strict mode.
        strict: Option<bool>,
        /// Anthropic prompt-caching marker.
        cache_control: Option<Value>,
    },
    /// A provider-defined tool (Anthropic server tools such as `web_search_20250305`).
    Raw(Value),
}

/// Tool selection policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool may be called.
    None,
    /// Some tool must be called (OpenAI `required`, Anthropic `any`).
    Required,
    /// This tool must be called.
    Named(String),
}

/// Reasoning settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reasoning {
    /// Thinking explicitly off.
    Disabled,
    /// Anthropic thinking with a token budget.
    Budget(u64),
    /// OpenAI `reasoning_effort` (`minimal`, `low`, `medium`, `high`, …).
    Effort(String),
}

/// A structured-output request.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputFormat {
    /// Any JSON object (OpenAI `json_object`).
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// Schema name (OpenAI requires one; `output` when the source had none).
        name: String,
        /// The JSON Schema.
        schema: Value,
        /// OpenAI strict mode.
        strict: Option<bool>,
        /// What the output is for.
        description: Option<String>,
    },
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Natural end of turn.
    EndTurn,
    /// A stop sequence matched.
    StopSequence,
    /// The token cap was hit.
    MaxTokens,
    /// The model called tools.
    ToolUse,
    /// The model refused / the content was filtered.
    Refusal,
    /// Any other value, kept verbatim.
    Other(String),
}

impl StopReason {
    /// From an Anthropic `stop_reason`.
    pub fn from_anthropic(s: &str) -> StopReason {
        match s {
            "end_turn" => StopReason::EndTurn,
            "stop_sequence" => StopReason::StopSequence,
            "max_tokens" => StopReason::MaxTokens,
            "tool_use" => StopReason::ToolUse,
            "refusal" => StopReason::Refusal,
            other => StopReason::Other(other.to_string()),
        }
    }

    /// To an Anthropic `stop_reason`.
    pub fn to_anthropic(&self) -> &str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::StopSequence => "stop_sequence",
            StopReason::MaxTokens => "max_tokens",
            StopReason::ToolUse => "tool_use",
            StopReason::Refusal => "refusal",
            StopReason::Other(s) => s,
        }
    }

    /// From an OpenAI `finish_reason`.
    pub fn from_openai(s: &str) -> StopReason {
        match s {
            "stop" => StopReason::EndTurn,
            "length" => StopReason::MaxTokens,
            "tool_calls" | "function_call" => StopReason::ToolUse,
            "content_filter" => StopReason::Refusal,
            other => StopReason::Other(other.to_string()),
        }
    }

    /// To an OpenAI `finish_reason`.
    pub fn to_openai(&self) -> &str {
        match self {
            StopReason::EndTurn | StopReason::StopSequence => "stop",
            StopReason::MaxTokens => "length",
            StopReason::ToolUse => "tool_calls",
            StopReason::Refusal => "content_filter",
            StopReason::Other(s) => s,
        }
    }
}

/// Token usage. `input_tokens` excludes cached tokens, as Anthropic counts them;
/// OpenAI's `prompt_tokens` is the sum of the three input fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens (reasoning included).
    pub output_tokens: u64,
    /// Tokens written to the prompt cache.
    pub cache_creation_input_tokens: u64,
    /// Tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
    /// Reasoning tokens, when the upstream reports them.
    pub reasoning_tokens: Option<u64>,
    /// Source-protocol usage fields, emitted only to the same protocol.
    pub extra: Map<String, Value>,
}

impl Usage {
    /// OpenAI `prompt_tokens`: every input token, cached or not.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.cache_creation_input_tokens).saturating_add(self.cache_read_input_tokens)
    }
}

/// A non-streaming response in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The protocol it was decoded from.
    pub source: Protocol,
    /// Model that answered.
    pub model: String,
    /// Content in order: text, tool calls, thinking, raw blocks.
    pub content: Vec<Part>,
    /// OpenAI `message.refusal`, or Anthropic's refusal explanation.
    pub refusal: Option<String>,
    /// Why generation stopped, if known.
    pub stop_reason: Option<StopReason>,
    /// The stop sequence that matched.
    pub stop_sequence: Option<String>,
    /// Token usage, if the upstream reported it.
    pub usage: Option<Usage>,
    /// Source-protocol top-level fields, emitted only to the same protocol.
    pub extra: Map<String, Value>,
    /// Source-protocol message-level fields (OpenAI `message` / choice), same protocol only.
    pub message_extra: Map<String, Value>,
}
