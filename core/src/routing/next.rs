//! `routing.next`: after a failed attempt, what next — another attempt of
//! the plan (after a backoff, or the upstream's `retry-after`), or stop — and
//! which key to rest.

use super::{Action, CooldownPolicy, FailureClass, KeyRef, Phase, Plan, RetryPolicy, classify, mix};
use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// What `routing.next` is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextRequest {
    /// The plan `routing.resolve` made.
    pub plan: Plan,
    /// The attempt that failed (its position in `plan.attempts`).
    pub failed: u32,
    /// The upstream's status, if one arrived.
    #[serde(default)]
    pub status: Option<u16>,
    /// The upstream's error body (its head), or the transport error.
    #[serde(default)]
    pub body: String,
    /// Where it failed.
    pub phase: Phase,
    /// The upstream's `retry-after`, in ms.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    /// Attempts made so far, the failed one included.
    pub attempts_made: u32,
    /// Keys this request already rested.
    #[serde(default)]
    pub cooled: Vec<KeyRef>,
    /// Server errors or timeouts in a row on the failed key before this one.
    #[serde(default)]
    pub recent_failures: u32,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Cooldown policy.
    pub cooldown: CooldownPolicy,
    /// The time (ms since the epoch).
    pub now_ms: u64,
    /// Seed for the backoff jitter.
    #[serde(default)]
    pub seed: u64,
}

/// A key to rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cooldown {
    /// Provider name.
    pub provider: String,
    /// Key name.
    pub key: String,
    /// Until when (ms since the epoch).
    pub until_ms: u64,
    /// Why.
    pub reason: FailureClass,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Make attempt `attempt` of the plan after `delay_ms`.
    Retry {
        /// Position in `plan.attempts`.
        attempt: u32,
        /// Wait first.
        delay_ms: u64,
        /// Which way the failure was answered.
        action: Action,
    },
    /// Give up: the failed attempt's answer goes to the client.
    Stop,
}

/// The decision after a failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The failure's class.
    pub class: FailureClass,
    /// Retry or stop.
    pub next: Step,
    /// The key to rest, if the class rests one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<Cooldown>,
    /// Why, in words.
    pub reason: String,
}

/// Exponential backoff before attempt `made + 1`, with jitter in its upper half.
fn backoff(policy: &RetryPolicy, made: u32, seed: u64) -> u64 {
    let doublings = made.saturating_sub(1).min(32);
    let full = policy.backoff_base_ms.saturating_mul(1u64 << doublings).min(policy.backoff_max_ms);
    let half = full / 2;
    half + mix(seed, u64::from(made)) % (full - half + 1)
}

/// The wait a Google error body asks for: `error.details[]` holding a
/// `google.rpc.RetryInfo` with `retryDelay` (`"37s"`, `"1.5s"`), in ms. The
/// body may be a list of errors (Gemini streams) or cut short (then none).
pub fn retry_info_ms(body: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let errors = match &v {
        serde_json::Value::Array(a) => a.iter().collect::<Vec<_>>(),
        other => vec![other],
    };
    errors
        .into_iter()
        .filter_map(|e| e.get("error")?.get("details")?.as_array())
        .flatten()
        .filter(|d| d.get("@type").and_then(|t| t.as_str()).is_some_and(|t| t.ends_with("google.rpc.RetryInfo")))
        .find_map(|d| duration_ms(d.get("retryDelay")?.as_str()?))
}

/// A protobuf JSON duration (`"<seconds>[.<fraction>]s"`, not negative) in ms, saturating.
fn duration_ms(s: &str) -> Option<u64> {
    let (secs, frac) = s.strip_suffix('s')?.split_once('.').map_or((s.strip_suffix('s')?, ""), |(a, b)| (a, b));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Seconds past u64 saturate; the fraction counts to the millisecond.
    let whole = secs.bytes().fold(0u64, |n, b| n.saturating_mul(10).saturating_add(u64::from(b - b'0')));
    let ms = frac.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
    Some(whole.saturating_mul(1000).saturating_add(ms))
}

/// Decides what follows a failed attempt.
pub fn next(req: &NextRequest) -> Result<Decision> {
    let class = classify(req.status, &req.body, req.phase);
    // The header's wait, else the one a Google error body states.
    let retry_after_ms = req.retry_after_ms.or_else(|| retry_info_ms(&req.body));
    let attempts = &req.plan.attempts;
    let at = usize::try_from(req.failed).unwrap_or(usize::MAX);
    let failed = attempts.get(at).ok_or_else(|| {
        CoreError::invalid("/failed", format!("attempt {} is not in a plan of {}", req.failed, attempts.len()))
    })?;
    let streak = req.recent_failures.saturating_add(1);
    let c = &req.cooldown;
    let rest_ms = match class {
        // 0 turns rate-limit cooldowns off, `retry-after` included.
        // The upstream's wait, but never past the longest rest the policy knows (a
        // wild `retry-after` must not retire a key for good).
        FailureClass::RateLimited if c.rate_limited_ms > 0 => {
            c.rate_limited_ms.max(retry_after_ms.unwrap_or(0).min(c.quota_ms.max(c.rate_limited_ms)))
        }
        FailureClass::Auth => c.auth_ms,
        FailureClass::QuotaExhausted => c.quota_ms,
        FailureClass::ServerError if streak >= c.server_errors => c.server_error_ms,
        FailureClass::Timeout if streak >= c.server_errors => c.timeout_ms,
        _ => 0,
    };
    let cooldown = (rest_ms > 0).then(|| Cooldown {
        provider: failed.provider.clone(),
        key: failed.key.clone(),
        until_ms: req.now_ms.saturating_add(rest_ms),
        reason: class,
    });
    let stop = |reason: String| Decision { class, next: Step::Stop, cooldown: cooldown.clone(), reason };
    if !req.retry.retry_on.contains(&class) {
        return Ok(stop(format!("{} is not retried", class.as_str())));
    }
    if req.attempts_made >= req.retry.max_attempts {
        return Ok(stop(format!("{} of {} attempts made", req.attempts_made, req.retry.max_attempts)));
    }
    let same_key = |a: &super::Attempt| a.provider == failed.provider && a.key == failed.key;
    let resting = |a: &super::Attempt| {
        req.cooled.iter().any(|k| k.provider == a.provider && k.key == a.key) || (cooldown.is_some() && same_key(a))
    };
    let later = || attempts.iter().enumerate().skip(at + 1).filter(|(_, a)| !resting(a));
    let action = class.action();
    let pick = match action {
        Action::NextTarget => {
            later().find(|(_, a)| a.target != failed.target).or_else(|| later().find(|(_, a)| !same_key(a)))
        }
        Action::NextKey => later().find(|(_, a)| !same_key(a)),
        Action::RetrySameKey | Action::Stop => None,
    };
    let wait = backoff(&req.retry, req.attempts_made, req.seed);
    let backs_off = matches!(class, FailureClass::ServerError | FailureClass::Timeout);
    if let Some((i, a)) = pick {
        let attempt = u32::try_from(i).unwrap_or(u32::MAX);
        let reason = format!("{}: {} to {}/{}", class.as_str(), describe(action), a.provider, a.key);
        return Ok(Decision {
            class,
            next: Step::Retry { attempt, delay_ms: if backs_off { wait } else { 0 }, action },
            cooldown,
            reason,
        });
    }
    // Nothing else can serve: the same key again, when waiting can help.
    let retry_after = retry_after_ms.unwrap_or(0);
    let same_again = match class {
        FailureClass::RateLimited => retry_after <= req.retry.retry_after_cap_ms,
        FailureClass::ServerError | FailureClass::Timeout => cooldown.is_none(),
        _ => false,
    };
    if !same_again || req.cooled.iter().any(|k| k.provider == failed.provider && k.key == failed.key) {
        let why = if class == FailureClass::RateLimited && retry_after > req.retry.retry_after_cap_ms {
            format!("retry-after {retry_after} ms is over the {} ms cap", req.retry.retry_after_cap_ms)
        } else {
            "no other key or target can serve".to_string()
        };
        return Ok(stop(format!("{}: {why}", class.as_str())));
    }
    Ok(Decision {
        class,
        next: Step::Retry { attempt: req.failed, delay_ms: wait.max(retry_after), action: Action::RetrySameKey },
        cooldown,
        reason: format!("{}: the same key {}/{} after a wait", class.as_str(), failed.provider, failed.key),
    })
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::NextTarget => "failover",
        Action::NextKey => "next key",
        Action::RetrySameKey => "same key",
        Action::Stop => "stop",
    }
}
