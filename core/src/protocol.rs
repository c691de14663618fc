//! The client/upstream protocols the core speaks.

use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An LLM API wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    #[serde(rename = "openai-chat")]
    OpenAiChat,
    /// Anthropic Messages (`POST /v1/messages`).
    #[serde(rename = "anthropic-messages")]
    AnthropicMessages,
    /// OpenAI Responses (`POST /v1/responses`).
    #[serde(rename = "openai-responses")]
    OpenAiResponses,
    /// Gemini (`POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`).
    #[serde(rename = "gemini")]
    Gemini,
}

impl Protocol {
    /// All protocols, in a stable order.
    pub const ALL: [Protocol; 4] =
        [Protocol::OpenAiChat, Protocol::AnthropicMessages, Protocol::OpenAiResponses, Protocol::Gemini];

    /// The name used everywhere (CLI, config, records).
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenAiChat => "openai-chat",
            Protocol::AnthropicMessages => "anthropic-messages",
            Protocol::OpenAiResponses => "openai-responses",
            Protocol::Gemini => "gemini",
        }
    }

    /// The endpoint path a client of this protocol calls.
    pub const fn endpoint(self) -> &'static str {
        match self {
            Protocol::OpenAiChat => "/v1/chat/completions",
            Protocol::AnthropicMessages => "/v1/messages",
            Protocol::OpenAiResponses => "/v1/responses",
            Protocol::Gemini => "/v1beta/models/{model}:generateContent",
        }
    }

    /// Parses a protocol name; `path` names where it came from for the error.
    pub fn parse(s: &str, path: &str) -> Result<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            let known: Vec<String> = Protocol::ALL.iter().map(|p| format!("{:?}", p.as_str())).collect();
            CoreError::invalid(path, format!("unknown protocol {s:?} (expected one of {})", known.join(", ")))
        })
    }
}

impl FromStr for Protocol {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Protocol> {
        Protocol::parse(s, "")
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}
