//! The per-request context the host passes in: the only source of ids and time.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Everything non-deterministic the core needs, decided by the host.
///
/// Two runtimes given the same `Context` and the same input bytes produce
/// byte-identical output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// The host's request id (also the root of generated ids).
    pub request_id: String,
    /// Unix time in seconds, used for `created` fields.
    pub created: i64,
    /// Extra entropy mixed into generated ids.
    #[serde(default)]
    pub id_seed: u64,
}

impl Context {
    /// A fixed context for tests and examples.
    pub fn fixed() -> Context {
        Context { request_id: "req_0000000000000000".into(), created: 1_700_000_000, id_seed: 0 }
    }

    /// A stable 24-hex-digit id for `purpose` (and `n`, for several of a kind).
    pub fn derive_id(&self, purpose: &str, n: u64) -> String {
        let mut h = Sha256::new();
        h.update(self.request_id.as_bytes());
        h.update([0]);
        h.update(self.id_seed.to_le_bytes());
        h.update(purpose.as_bytes());
        h.update([0]);
        h.update(n.to_le_bytes());
        let digest = h.finalize();
        hex(&digest[..12])
    }

    /// The id of a converted OpenAI chat completion.
    pub fn openai_completion_id(&self) -> String {
        format!("chatcmpl-{}", self.derive_id("completion", 0))
    }

    /// The id of a converted Anthropic message.
    pub fn anthropic_message_id(&self) -> String {
        format!("msg_{}", self.derive_id("message", 0))
    }

    /// The id of a converted OpenAI Responses response.
    pub fn response_id(&self) -> String {
        format!("resp_{}", self.derive_id("response", 0))
    }

    /// The id of the `n`th output item of a converted Responses response;
    /// `prefix` names the kind as OpenAI does (`msg`, `fc`, `rs`).
    pub fn item_id(&self, prefix: &str, n: u64) -> String {
        format!("{prefix}_{}", self.derive_id("item", n))
    }

    /// An id for the `n`th tool call whose upstream gave none.
    pub fn tool_call_id(&self, n: u64) -> String {
        format!("call_{}", self.derive_id("tool_call", n))
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_depend_on_the_context() {
        let a = Context::fixed();
        assert_eq!(a.openai_completion_id(), a.openai_completion_id());
        let b = Context { id_seed: 1, ..Context::fixed() };
        assert_ne!(a.openai_completion_id(), b.openai_completion_id());
        assert_ne!(a.tool_call_id(0), a.tool_call_id(1));
        assert_eq!(a.anthropic_message_id().len(), "msg_".len() + 24);
    }
}
