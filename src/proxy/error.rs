//! Errors answered to clients, each in the client's own protocol.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shadowgate_core::Protocol;

/// An error for a client of `protocol`: rendered once, in that protocol's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// The client's protocol.
    pub protocol: Protocol,
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the client.
    pub message: String,
}

impl ApiError {
    /// An error of `status` for a `protocol` client.
    pub fn new(protocol: Protocol, status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { protocol, status, message: message.into() }
    }

    /// The protocol's error type for the status.
    pub fn kind(&self) -> &'static str {
        match (self.protocol, self.status.as_u16()) {
            (Protocol::AnthropicMessages, 413) => "request_too_large",
            (_, 400 | 404 | 413) => "invalid_request_error",
            (_, 403) => "permission_error",
            (Protocol::AnthropicMessages, 429) => "rate_limit_error",
            (_, 429) => "rate_limit_exceeded",
            (Protocol::OpenAiChat | Protocol::OpenAiResponses | Protocol::Gemini, _) => "server_error",
            (Protocol::AnthropicMessages, _) => "api_error",
        }
    }
}

impl ApiError {
    /// Gemini's gRPC status name for the status.
    fn grpc_status(&self) -> &'static str {
        match self.status.as_u16() {
            400 | 413 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            429 => "RESOURCE_EXHAUSTED",
            503 => "UNAVAILABLE",
            504 => "DEADLINE_EXCEEDED",
            _ => "INTERNAL",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (kind, message) = (self.kind(), self.message.as_str());
        let body = match self.protocol {
            Protocol::OpenAiChat | Protocol::OpenAiResponses => {
                json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
            }
            Protocol::AnthropicMessages => json!({"type": "error", "error": {"type": kind, "message": message}}),
            Protocol::Gemini => {
                json!({"error": {"code": self.status.as_u16(), "message": message, "status": self.grpc_status()}})
            }
        };
        (self.status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}

/// An admin API error: `{"error": "…"}` with a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct AdminError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
}

impl AdminError {
    /// An error of `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> AdminError {
        AdminError { status, message: message.into() }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({"error": self.message}))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_gets_its_own_error_shape() {
        let e = ApiError::new(Protocol::AnthropicMessages, StatusCode::PAYLOAD_TOO_LARGE, "too big");
        assert_eq!(e.kind(), "request_too_large");
        let e = ApiError::new(Protocol::OpenAiChat, StatusCode::PAYLOAD_TOO_LARGE, "too big");
        assert_eq!(e.kind(), "invalid_request_error");
        assert_eq!(ApiError::new(Protocol::OpenAiChat, StatusCode::BAD_GATEWAY, "x").kind(), "server_error");
        assert_eq!(ApiError::new(Protocol::AnthropicMessages, StatusCode::BAD_GATEWAY, "x").kind(), "api_error");
    }
}
