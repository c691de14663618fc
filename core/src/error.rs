//! The core's one error type: a kind, a message, and the JSON path it concerns.

use std::fmt;

/// What went wrong, as a stable machine-readable word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is not valid JSON (or not valid UTF-8).
    InvalidJson,
    /// A field is missing, has the wrong type, or holds a value out of range.
    InvalidInput,
    /// A block, tool or option with no counterpart in the target protocol.
    Unsupported,
    /// The SSE stream is broken or violates the protocol's event order.
    Stream,
    /// The upstream sent an error event mid-stream (already converted in the output).
    Upstream,
    /// The dispatch op or stream handle is unknown.
    UnknownOp,
    /// No route matches the request.
    NoRoute,
}

impl ErrorKind {
    /// The stable name used in envelopes and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidJson => "invalid_json",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Stream => "stream",
            ErrorKind::Upstream => "upstream",
            ErrorKind::UnknownOp => "unknown_op",
            ErrorKind::NoRoute => "no_route",
        }
    }

    /// Parses a name produced by [`ErrorKind::as_str`].
    pub fn parse(s: &str) -> Option<ErrorKind> {
        Some(match s {
            "invalid_json" => ErrorKind::InvalidJson,
            "invalid_input" => ErrorKind::InvalidInput,
            "unsupported" => ErrorKind::Unsupported,
            "stream" => ErrorKind::Stream,
            "upstream" => ErrorKind::Upstream,
            "unknown_op" => ErrorKind::UnknownOp,
            "no_route" => ErrorKind::NoRoute,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from the core. `path` is a JSON pointer into the input (`""` for the root).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}{}", if path.is_empty() { String::new() } else { format!(" (at {path})") })]
pub struct CoreError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// A human-readable sentence.
    pub message: String,
    /// JSON pointer to the offending value, or empty.
    pub path: String,
}

impl CoreError {
    /// Builds an error of `kind` at `path`.
    pub fn new(kind: ErrorKind, path: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError { kind, message: message.into(), path: path.into() }
    }

    /// A malformed or non-UTF-8 JSON document.
    pub fn json(err: &serde_json::Error) -> Self {
        CoreError::new(
            ErrorKind::InvalidJson,
            "",
            format!("malformed JSON at line {} column {}: {}", err.line(), err.column(), err),
        )
    }

    /// A wrong or missing field.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::new(ErrorKind::InvalidInput, path, message)
    }

    /// A feature that has no counterpart in the target protocol.
    pub fn unsupported(path: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::new(ErrorKind::Unsupported, path, message)
    }

    /// A broken stream.
    pub fn stream(message: impl Into<String>) -> Self {
        CoreError::new(ErrorKind::Stream, "", message)
    }
}

/// Result alias for the core.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
