//! Module `routing`: which upstream serves a request, and what to do when an
//! attempt fails.
//!
//! Contract: [`resolve`] takes the request (client protocol, model, tenant),
//! the route table (routes with ordered failover targets, providers with key
//! pools, the retry and cooldown policy), the host's snapshot of upstream
//! health (per key: in-flight count, cooldown, recent failures; the time as a
//! number) and a seed, and returns the ordered attempt plan with a reason for
//! every choice and every key it skipped. [`next`] takes that plan, the attempt
//! that failed and how, and says whether to retry (which attempt, after how
//! long) and which key to cool down. [`classify`] names the failure. All three
//! are pure: the same inputs give the same plan in every runtime.

mod classify;
mod next;
mod resolve;

pub use classify::{Action, FailureClass, Phase, classify};
pub use next::{Cooldown, Decision, NextRequest, Step, next};
pub use resolve::{Attempt, Plan, Skipped, Unavailable, resolve};

use crate::protocol::Protocol;
use serde::{Deserialize, Serialize};

/// Version of the `routing` module.
pub const VERSION: &str = if cfg!(feature = "demo-candidate") { "routing/2.0.0-candidate" } else { "routing/2.0.0" };

/// The name a provider's only key has when it needs none.
pub const NO_KEY: &str = "-";

/// One route of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Route id (recorded with every diff).
    pub id: String,
    /// Model pattern, `*` wildcards allowed.
    pub model: String,
    /// Other model names (or patterns) the route answers to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Client protocol this route serves; any when absent.
    #[serde(default)]
    pub client_protocol: Option<Protocol>,
    /// Tenant this route is for; any when absent.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Failover targets, in order.
    pub targets: Vec<RouteTarget>,
}

/// One failover target of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTarget {
    /// Provider name.
    pub provider: String,
    /// Model to send upstream; the requested model when absent.
    #[serde(default)]
    pub upstream_model: Option<String>,
    /// Share of traffic among adjacent weighted targets (load sharing among equals).
    #[serde(default)]
    pub weight: Option<u32>,
}

/// A provider: its protocol and its pool of keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Name targets refer to.
    pub name: String,
    /// Upstream protocol.
    pub protocol: Protocol,
    /// Its keys, by name (the env var that holds one, never the key); [`NO_KEY`] for none.
    pub keys: Vec<KeySpec>,
}

/// One key of a provider's pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Key name.
    pub name: String,
    /// Most requests in flight on this key at once; unbounded when absent.
    #[serde(default)]
    pub max_inflight: Option<u32>,
}

/// When and how to retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Failure classes worth another attempt.
    pub retry_on: Vec<FailureClass>,
    /// Most attempts per request, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles per attempt.
    pub backoff_base_ms: u64,
    /// Longest backoff.
    pub backoff_max_ms: u64,
    /// Longest `retry-after` worth waiting for on the same key.
    pub retry_after_cap_ms: u64,
}

/// How long a key rests after a failure of each class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CooldownPolicy {
    /// After a rate limit without `retry-after` (with one: the longer of the two); 0: never.
    pub rate_limited_ms: u64,
    /// After `server_errors` failures in a row.
    pub server_error_ms: u64,
    /// Server errors or timeouts in a row that cool a key down.
    pub server_errors: u32,
    /// After a timeout streak (see `server_errors`).
    pub timeout_ms: u64,
    /// After the key was refused (401/403).
    pub auth_ms: u64,
    /// After the key's quota ran out.
    pub quota_ms: u64,
}

/// The route table: routes in priority order, providers, policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// Routes, first match wins.
    pub routes: Vec<Route>,
    /// Providers targets refer to.
    pub providers: Vec<Provider>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Cooldown policy.
    pub cooldown: CooldownPolicy,
}

/// A key, named by its provider.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyRef {
    /// Provider name.
    pub provider: String,
    /// Key name.
    pub key: String,
}

/// What the host knows of one key right now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyHealth {
    /// Provider name.
    pub provider: String,
    /// Key name.
    pub key: String,
    /// Requests in flight on it.
    #[serde(default)]
    pub inflight: u32,
    /// Resting until this time (ms since the epoch); 0 when not.
    #[serde(default)]
    pub cooldown_until_ms: u64,
    /// Why it rests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureClass>,
    /// Server errors or timeouts in a row.
    #[serde(default)]
    pub recent_failures: u32,
}

/// The host's snapshot of upstream health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// The time (ms since the epoch) the snapshot was taken.
    pub now_ms: u64,
    /// Keys the host has seen; a key not listed is idle and healthy.
    #[serde(default)]
    pub keys: Vec<KeyHealth>,
}

impl Health {
    /// The entry of a key, if listed.
    pub fn key(&self, provider: &str, key: &str) -> Option<&KeyHealth> {
        self.keys.iter().find(|k| k.provider == provider && k.key == key)
    }
}

/// What `routing.resolve` is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    /// Client protocol.
    pub client_protocol: Protocol,
    /// Requested model.
    pub model: String,
    /// Tenant, if identified.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The route table.
    pub table: Table,
    /// Upstream health as the host saw it.
    #[serde(default)]
    pub health: Health,
    /// Seed for load sharing and key rotation (from the request's context).
    #[serde(default)]
    pub seed: u64,
}

/// Whether `text` matches `pattern` (`*` matches any run of characters).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A deterministic 64-bit mix of `seed` and `salt` (SplitMix64): the same in every runtime.
fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("gpt-*", "gpt-4o"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxc"));
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
    }

    #[test]
    fn the_mix_spreads_and_repeats() {
        assert_eq!(mix(7, 1), mix(7, 1));
        assert_ne!(mix(7, 1), mix(7, 2));
        assert_ne!(mix(7, 1), mix(8, 1));
    }
}
