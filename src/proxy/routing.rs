//! The `[routing]` section (retries, backoff, cooldowns) and what the host
//! keeps for the core's routing decisions: per key, a slot semaphore of
//! `max_inflight` held for the whole upstream call, the in-flight count, the
//! cooldown and the failure streak. Cooldowns are persisted in
//! `<data_dir>/state/upstreams.json` so a restart does not hammer a key that
//! was just rate limited.

use super::config::Config;
use crate::toml_error::Invalid;
use serde::{Deserialize, Serialize};
use shadowgate_core::routing::{self, Cooldown, CooldownPolicy, FailureClass, KeyHealth, KeyRef, RetryPolicy};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

fn d_retry_on() -> Vec<FailureClass> {
    use FailureClass::*;
    vec![RateLimited, ServerError, Timeout, Auth, QuotaExhausted]
}
fn d_attempts() -> u32 {
    3
}
fn d_base() -> u64 {
    200
}
fn d_max() -> u64 {
    5_000
}
fn d_cap() -> u64 {
    10_000
}
fn d_slot() -> u64 {
    30_000
}

/// `[routing]`: when to retry and how long keys rest.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Failure classes worth another attempt (`client_error` and `mid_stream` never are).
    #[serde(default = "d_retry_on")]
    pub retry_on: Vec<FailureClass>,
    /// Most upstream attempts per request, the first included.
    #[serde(default = "d_attempts")]
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles per attempt, with jitter.
    #[serde(default = "d_base")]
    pub backoff_base_ms: u64,
    /// Longest backoff.
    #[serde(default = "d_max")]
    pub backoff_max_ms: u64,
    /// Longest `retry-after` worth waiting for on the same key.
    #[serde(default = "d_cap")]
    pub retry_after_cap_ms: u64,
    /// Longest wait for a free slot on a key at its `max_inflight` (then: a timeout, the next key).
    #[serde(default = "d_slot")]
    pub slot_timeout_ms: u64,
    /// How long keys rest after failures.
    #[serde(default)]
    pub cooldown: CooldownConfig,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        toml::from_str("").expect("the routing defaults parse")
    }
}

fn d_rate() -> u64 {
    5_000
}
fn d_server() -> u64 {
    30_000
}
fn d_streak() -> u32 {
    3
}
fn d_timeout() -> u64 {
    15_000
}
fn d_auth() -> u64 {
    300_000
}
fn d_quota() -> u64 {
    3_600_000
}

/// `[routing.cooldown]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CooldownConfig {
    /// After a rate limit (or the upstream's `retry-after`, when longer).
    #[serde(default = "d_rate")]
    pub rate_limited_ms: u64,
    /// After `server_errors` server errors in a row.
    #[serde(default = "d_server")]
    pub server_error_ms: u64,
    /// Server errors or timeouts in a row that rest a key.
    #[serde(default = "d_streak")]
    pub server_errors: u32,
    /// After that many timeouts in a row.
    #[serde(default = "d_timeout")]
    pub timeout_ms: u64,
    /// After a 401/403.
    #[serde(default = "d_auth")]
    pub auth_ms: u64,
    /// After the key's quota ran out.
    #[serde(default = "d_quota")]
    pub quota_ms: u64,
}

impl Default for CooldownConfig {
    fn default() -> Self {
        toml::from_str("").expect("the cooldown defaults parse")
    }
}

impl CooldownConfig {
    /// The core's policy.
    pub fn policy(&self) -> CooldownPolicy {
        CooldownPolicy {
            rate_limited_ms: self.rate_limited_ms,
            server_error_ms: self.server_error_ms,
            server_errors: self.server_errors,
            timeout_ms: self.timeout_ms,
            auth_ms: self.auth_ms,
            quota_ms: self.quota_ms,
        }
    }
}

impl RoutingConfig {
    /// The core's retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            retry_on: self.retry_on.clone(),
            max_attempts: self.max_attempts,
            backoff_base_ms: self.backoff_base_ms,
            backoff_max_ms: self.backoff_max_ms,
            retry_after_cap_ms: self.retry_after_cap_ms,
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(c) = self.retry_on.iter().find(|c| matches!(c, FailureClass::ClientError | FailureClass::MidStream))
        {
            return Err(Invalid::new(
                "routing.retry_on",
                format!("{} is never retried: the client gets the answer as it is", c.as_str()),
            ));
        }
        if self.max_attempts == 0 {
            return Err(Invalid::new("routing.max_attempts", "must be at least 1"));
        }
        if self.backoff_base_ms > self.backoff_max_ms {
            return Err(Invalid::new("routing.backoff_base_ms", "is larger than backoff_max_ms"));
        }
        if self.cooldown.server_errors == 0 {
            return Err(Invalid::new("routing.cooldown.server_errors", "must be at least 1"));
        }
        Ok(())
    }
}

/// The wall clock in ms since the epoch: the time routing decisions see.
pub fn now_ms() -> u64 {
    u64::try_from(crate::clock::now_us() / 1000).unwrap_or(0)
}

/// What the host knows of one key.
struct KeyState {
    max_inflight: Option<u32>,
    slots: Arc<Semaphore>,
    inflight: AtomicU32,
    streak: AtomicU32,
    rest: Mutex<Option<(u64, FailureClass)>>,
}

/// A slot on a key, held for the whole upstream call (streams included).
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    key: Arc<KeyState>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.key.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One persisted cooldown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rest {
    provider: String,
    key: String,
    until_ms: u64,
    reason: FailureClass,
}

/// Every key's health, shared by all requests.
pub struct UpstreamHealth {
    keys: BTreeMap<KeyRef, Arc<KeyState>>,
    file: PathBuf,
    /// Serializes writes of `file` (each writes the latest state).
    writing: Arc<Mutex<()>>,
}

fn key_ref(provider: &str, key: &str) -> KeyRef {
    KeyRef { provider: provider.to_string(), key: key.to_string() }
}

impl UpstreamHealth {
    /// Every configured key, idle, with the cooldowns `file` still holds at `now_ms`.
    pub fn new(cfg: &Config, file: PathBuf, now_ms: u64) -> UpstreamHealth {
        let mut keys = BTreeMap::new();
        for p in &cfg.providers {
            for (name, max) in p.keys() {
                let permits = max.map_or(Semaphore::MAX_PERMITS, |m| usize::try_from(m).unwrap_or(usize::MAX));
                let state = KeyState {
                    max_inflight: max,
                    slots: Arc::new(Semaphore::new(permits.min(Semaphore::MAX_PERMITS))),
                    inflight: AtomicU32::new(0),
                    streak: AtomicU32::new(0),
                    rest: Mutex::new(None),
                };
                keys.insert(key_ref(&p.name, &name), Arc::new(state));
            }
        }
        let saved: Vec<Rest> =
            std::fs::read(&file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        for r in saved.into_iter().filter(|r| r.until_ms > now_ms) {
            if let Some(k) = keys.get(&key_ref(&r.provider, &r.key)) {
                *k.rest.lock().unwrap_or_else(|e| e.into_inner()) = Some((r.until_ms, r.reason));
            }
        }
        UpstreamHealth { keys, file, writing: Arc::new(Mutex::new(())) }
    }

    /// The snapshot the core routes on: keys that are busy, resting or failing (the others are idle).
    pub fn snapshot(&self, now_ms: u64) -> routing::Health {
        let keys = self
            .keys
            .iter()
            .filter_map(|(r, k)| {
                let inflight = k.inflight.load(Ordering::Relaxed);
                let recent_failures = k.streak.load(Ordering::Relaxed);
                let rest = (*k.rest.lock().unwrap_or_else(|e| e.into_inner())).filter(|(until, _)| *until > now_ms);
                (inflight > 0 || recent_failures > 0 || rest.is_some()).then(|| KeyHealth {
                    provider: r.provider.clone(),
                    key: r.key.clone(),
                    inflight,
                    cooldown_until_ms: rest.map_or(0, |r| r.0),
                    reason: rest.map(|r| r.1),
                    recent_failures,
                })
            })
            .collect();
        routing::Health { now_ms, keys }
    }

    /// A slot on the key, waiting up to `wait` while it is at its cap; `None` after that.
    pub async fn acquire(&self, provider: &str, key: &str, wait: Duration) -> Option<Slot> {
        let k = self.keys.get(&key_ref(provider, key))?.clone();
        let permit = tokio::time::timeout(wait, k.slots.clone().acquire_owned()).await.ok()?.ok()?;
        k.inflight.fetch_add(1, Ordering::Relaxed);
        Some(Slot { _permit: permit, key: k })
    }

    /// Server errors or timeouts in a row on the key.
    pub fn streak(&self, provider: &str, key: &str) -> u32 {
        self.keys.get(&key_ref(provider, key)).map_or(0, |k| k.streak.load(Ordering::Relaxed))
    }

    /// Records an attempt's end: a success clears the streak, a server error or timeout extends it.
    pub fn outcome(&self, provider: &str, key: &str, failure: Option<FailureClass>) {
        if let Some(k) = self.keys.get(&key_ref(provider, key)) {
            match failure {
                None => k.streak.store(0, Ordering::Relaxed),
                Some(FailureClass::ServerError | FailureClass::Timeout) => {
                    k.streak.fetch_add(1, Ordering::Relaxed);
                }
                Some(_) => {}
            }
        }
    }

    /// Rests a key as the core decided, and persists the cooldowns off the caller's thread.
    pub fn cool(&self, c: &Cooldown) {
        let Some(k) = self.keys.get(&key_ref(&c.provider, &c.key)) else { return };
        {
            let mut rest = k.rest.lock().unwrap_or_else(|e| e.into_inner());
            if rest.is_none_or(|(until, _)| until < c.until_ms) {
                *rest = Some((c.until_ms, c.reason));
            }
        }
        let rests = self.rests();
        let (file, writing) = (self.file.clone(), self.writing.clone());
        let write = move || {
            let _one = writing.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = write_atomically(&file, &rests) {
                tracing::warn!(file = %file.display(), error = %e, "cannot persist upstream cooldowns");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => drop(h.spawn_blocking(write)),
            Err(_) => write(),
        }
    }

    fn rests(&self) -> Vec<Rest> {
        self.keys
            .iter()
            .filter_map(|(r, k)| {
                let rest = *k.rest.lock().unwrap_or_else(|e| e.into_inner());
                rest.map(|(until_ms, reason)| Rest {
                    provider: r.provider.clone(),
                    key: r.key.clone(),
                    until_ms,
                    reason,
                })
            })
            .collect()
    }

    /// `GET /admin/upstreams`: every key with its cap, in-flight count, streak and cooldown.
    pub fn view(&self, now_ms: u64) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .map(|(r, k)| {
                let rest = (*k.rest.lock().unwrap_or_else(|e| e.into_inner())).filter(|(until, _)| *until > now_ms);
                serde_json::json!({
                    "provider": r.provider, "key": r.key, "max_inflight": k.max_inflight,
                    "inflight": k.inflight.load(Ordering::Relaxed),
                    "recent_failures": k.streak.load(Ordering::Relaxed),
                    "cooling_down": rest.is_some(),
                    "cooldown_until_ms": rest.map(|r| r.0),
                    "cooldown_reason": rest.map(|r| r.1.as_str()),
                    "cooldown_left_ms": rest.map(|r| r.0.saturating_sub(now_ms)),
                })
            })
            .collect();
        serde_json::json!({"now_ms": now_ms, "keys": keys})
    }
}

/// Temporary file, fsync, rename, fsync of the folder.
fn write_atomically(file: &std::path::Path, rests: &[Rest]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = file.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".upstreams.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(rests).unwrap_or_default())?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[[providers]]
name = "openai"
protocol = "openai-chat"
base_url = "http://127.0.0.1:9/v1"
max_inflight = 2
[[routes]]
id = "gpt"
model = "gpt-*"
provider = "openai"
"#;

    fn config() -> Config {
        Config::parse(CONFIG, "c.toml").unwrap()
    }

    #[tokio::test]
    async fn slots_cap_the_key_and_free_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let h = UpstreamHealth::new(&config(), dir.path().join("u.json"), 0);
        let wait = Duration::from_millis(20);
        let (a, b) = (h.acquire("openai", "-", wait).await.unwrap(), h.acquire("openai", "-", wait).await.unwrap());
        assert_eq!(h.snapshot(0).keys[0].inflight, 2);
        assert!(h.acquire("openai", "-", wait).await.is_none(), "a third waits, then times out");
        drop(a);
        assert!(h.acquire("openai", "-", wait).await.is_some());
        drop(b);
        assert!(h.snapshot(0).keys.is_empty(), "idle keys are not listed");
        assert!(h.acquire("openai", "NOPE", wait).await.is_none());
    }

    #[tokio::test]
    async fn cooldowns_persist_across_a_restart_until_they_end() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state/upstreams.json");
        let h = UpstreamHealth::new(&config(), file.clone(), 1_000);
        h.cool(&Cooldown {
            provider: "openai".into(),
            key: "-".into(),
            until_ms: 9_000,
            reason: FailureClass::RateLimited,
        });
        for _ in 0..100 {
            if file.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let again = UpstreamHealth::new(&config(), file.clone(), 2_000);
        let snap = again.snapshot(2_000);
        assert_eq!((snap.keys[0].cooldown_until_ms, snap.keys[0].reason), (9_000, Some(FailureClass::RateLimited)));
        assert!(UpstreamHealth::new(&config(), file, 9_500).snapshot(9_500).keys.is_empty(), "ended");
    }

    #[test]
    fn the_section_rejects_what_is_never_retried() {
        let e = Config::parse(&format!("{CONFIG}\n[routing]\nretry_on = [\"client_error\"]"), "c.toml").unwrap_err();
        assert_eq!(e.key, "routing.retry_on", "{e}");
        assert!(e.message.contains("never retried"), "{e}");
    }
}
