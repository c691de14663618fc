//! The host's one clock: wall time for records, ids and windows. The core
//! never reads a clock; what it needs of time comes in its `Context`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (0 before it).
pub fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Whole seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    now_us() / 1_000_000
}

/// Nanoseconds since the Unix epoch, for unique ids.
pub fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// How long ago `t` was (`None` if it is in the future).
pub fn age(t: SystemTime) -> Option<Duration> {
    SystemTime::now().duration_since(t).ok()
}

/// Now as RFC 3339 UTC with seconds (`2026-01-02T03:04:05Z`).
pub fn now_rfc3339() -> String {
    rfc3339(now_us())
}

/// `us` (µs since the epoch) as RFC 3339 UTC with seconds.
pub fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}
