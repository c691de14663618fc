//! The client/upstream protocols the core speaks.

use crate::error::{CoreError, Result};
use std::fmt;

/// An LLM API wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    OpenAiChat,
    /// Anthropic Messages (`POST /v1/messages`).
    AnthropicMessages,
}

impl Protocol {
    /// All protocols, in a stable order.
    pub const ALL: [Protocol; 2] = [Protocol::OpenAiChat, Protocol::AnthropicMessages];

    /// The name used everywhere (CLI, config, records).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenAiChat => "openai-chat",
            Protocol::AnthropicMessages => "anthropic-messages",
        }
    }

    /// Parses a protocol name; `path` names where it came from for the error.
    pub fn parse(s: &str, path: &str) -> Result<Protocol> {
        match s {
            "openai-chat" => Ok(Protocol::OpenAiChat),
            "anthropic-messages" => Ok(Protocol::AnthropicMessages),
            other => Err(CoreError::invalid(
                path,
                format!("unknown protocol {other:?} (expected \"openai-chat\" or \"anthropic-messages\")"),
            )),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
