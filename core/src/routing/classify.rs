//! Failure classes: what an upstream failure is, and what it calls for.

use serde::{Deserialize, Serialize};

/// Where in the exchange an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No response: connect failure or timeout, or no headers in time.
    Connect,
    /// A non-success status arrived; nothing reached the client.
    Response,
    /// A success status, then the body broke off before its first byte.
    FirstByte,
    /// The stream broke off after bytes reached the client.
    MidStream,
}

/// What kind of failure an attempt met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// 429, 529 (overloaded).
    RateLimited,
    /// 500/502/503/504 and other 5xx; a body that broke off before its first byte.
    ServerError,
    /// 408, connect or idle timeout, connection refused or reset.
    Timeout,
    /// 401/403: this key is refused.
    Auth,
    /// 402 and quota-type bodies: this key's credit is spent.
    QuotaExhausted,
    /// Any other 4xx: the request itself is at fault.
    ClientError,
    /// The stream failed after its first byte reached the client.
    MidStream,
}

impl FailureClass {
    /// Every class, in a stable order.
    pub const ALL: [FailureClass; 7] = [
        FailureClass::RateLimited,
        FailureClass::ServerError,
        FailureClass::Timeout,
        FailureClass::Auth,
        FailureClass::QuotaExhausted,
        FailureClass::ClientError,
        FailureClass::MidStream,
    ];

    /// The stable name (metrics labels, config values).
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureClass::RateLimited => "rate_limited",
            FailureClass::ServerError => "server_error",
            FailureClass::Timeout => "timeout",
            FailureClass::Auth => "auth",
            FailureClass::QuotaExhausted => "quota_exhausted",
            FailureClass::ClientError => "client_error",
            FailureClass::MidStream => "mid_stream",
        }
    }

    /// What the class calls for.
    pub const fn action(self) -> Action {
        match self {
            FailureClass::RateLimited | FailureClass::Timeout | FailureClass::Auth | FailureClass::QuotaExhausted => {
                Action::NextKey
            }
            FailureClass::ServerError => Action::NextTarget,
            FailureClass::ClientError | FailureClass::MidStream => Action::Stop,
        }
    }
}

/// What a failure class calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The same key again, after a wait (only when no other key can serve).
    RetrySameKey,
    /// Another key (of this target's provider or the next target's).
    NextKey,
    /// The next target (another provider or model).
    NextTarget,
    /// Give up: the answer goes to the client as it is.
    Stop,
}

/// Words in an error body that mean the key's credit or quota is spent
/// (OpenAI's `insufficient_quota` comes with a 429, Anthropic's credit
/// balance with a 400).
const QUOTA_MARKERS: &[&str] =
    &["insufficient_quota", "billing", "credit balance", "exceeded your current quota", "quota exceeded"];

fn says_quota(body: &str) -> bool {
    // Only the head of a body is read: markers sit in the error message.
    let mut end = body.len().min(4096);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    let head = body[..end].to_ascii_lowercase();
    QUOTA_MARKERS.iter().any(|m| head.contains(m))
}

/// The class of a failure: `status` is the upstream's (none when there was
/// no response), `body` its error body (or the transport error's text).
pub fn classify(status: Option<u16>, body: &str, phase: Phase) -> FailureClass {
    match phase {
        Phase::MidStream => return FailureClass::MidStream,
        Phase::FirstByte => return FailureClass::ServerError,
        Phase::Connect => return FailureClass::Timeout,
        Phase::Response => {}
    }
    match status {
        None => FailureClass::Timeout,
        Some(402) => FailureClass::QuotaExhausted,
        Some(400 | 401 | 403 | 429) if says_quota(body) => FailureClass::QuotaExhausted,
        Some(429 | 529) => FailureClass::RateLimited,
        Some(401 | 403) => FailureClass::Auth,
        Some(408) => FailureClass::Timeout,
        Some(500..=599) => FailureClass::ServerError,
        Some(_) => FailureClass::ClientError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailureClass::*;

    #[test]
    fn the_class_table() {
        let table: &[(Option<u16>, &str, Phase, FailureClass)] = &[
            (Some(429), r#"{"error":{"type":"rate_limit_error"}}"#, Phase::Response, RateLimited),
            (Some(529), r#"{"type":"error","error":{"type":"overloaded_error"}}"#, Phase::Response, RateLimited),
            (
                Some(429),
                r#"{"error":{"code":"insufficient_quota","message":"You exceeded your current quota"}}"#,
                Phase::Response,
                QuotaExhausted,
            ),
            (
                Some(400),
                r#"{"error":{"message":"Your credit balance is too low to access the Anthropic API."}}"#,
                Phase::Response,
                QuotaExhausted,
            ),
            (Some(402), "", Phase::Response, QuotaExhausted),
            (Some(401), r#"{"error":{"type":"authentication_error"}}"#, Phase::Response, Auth),
            (Some(403), "", Phase::Response, Auth),
            (Some(408), "", Phase::Response, Timeout),
            (None, "connection failed", Phase::Connect, Timeout),
            (Some(500), "", Phase::Response, ServerError),
            (Some(502), "", Phase::Response, ServerError),
            (Some(503), "", Phase::Response, ServerError),
            (Some(504), "", Phase::Response, ServerError),
            (Some(200), "", Phase::FirstByte, ServerError),
            (Some(200), "", Phase::MidStream, MidStream),
            (Some(400), r#"{"error":{"message":"max_tokens: must be positive"}}"#, Phase::Response, ClientError),
            (Some(404), "", Phase::Response, ClientError),
            (Some(422), "", Phase::Response, ClientError),
        ];
        for (status, body, phase, want) in table {
            assert_eq!(classify(*status, body, *phase), *want, "{status:?} {body} {phase:?}");
        }
    }

    #[test]
    fn actions_and_names() {
        assert_eq!(RateLimited.action(), Action::NextKey);
        assert_eq!(ServerError.action(), Action::NextTarget);
        assert_eq!(ClientError.action(), Action::Stop);
        assert_eq!(MidStream.action(), Action::Stop);
        for c in FailureClass::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
    }

    #[test]
    fn a_huge_body_is_read_only_at_its_head_and_never_split_inside_a_character() {
        let body = format!("{}insufficient_quota", "é".repeat(5000));
        assert_eq!(classify(Some(429), &body, Phase::Response), RateLimited);
    }
}
