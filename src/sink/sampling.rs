//! Which requests become replayable cases: per tenant / route rates (a
//! deterministic hash of the request id, so a retried decision is the same),
//! mismatching requests always (up to a budget a minute), a boosted rate for a
//! while after a new guest or core version, and a hard cap a minute.

use crate::record::Dims;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a case was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A module comparison did not agree.
    Mismatch,
    /// The boosted rate after a version change.
    NewVersion,
    /// The tenant / route rate.
    Rate,
}

impl Reason {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Mismatch => "mismatch",
            Reason::NewVersion => "new_version",
            Reason::Rate => "rate",
        }
    }
}

struct Window {
    start: Instant,
    kept: u32,
    mismatches: u32,
}

/// The sampling decision.
pub struct Sampler {
    cfg: SamplingConfig,
    boost_until: Option<Instant>,
    window: Mutex<Window>,
}

/// A uniform number in [0, 1) from the request id.
fn unit(request_id: &str) -> f64 {
    let d = Sha256::digest(request_id.as_bytes());
    let n = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
    (n >> 11) as f64 / (1u64 << 53) as f64
}

impl Sampler {
    /// A sampler; `new_version` starts the boost window.
    pub fn new(cfg: &SamplingConfig, new_version: bool) -> Sampler {
        let boost = new_version && cfg.boost_minutes > 0 && cfg.boost_rate > 0.0;
        Sampler {
            cfg: cfg.clone(),
            boost_until: boost.then(|| Instant::now() + Duration::from_secs(u64::from(cfg.boost_minutes) * 60)),
            window: Mutex::new(Window { start: Instant::now(), kept: 0, mismatches: 0 }),
        }
    }

    /// The rate for a request: the route's if set, else the tenant's, else the default.
    pub fn rate(&self, dims: &Dims) -> f64 {
        self.cfg
            .routes
            .get(&dims.route)
            .or_else(|| self.cfg.tenants.get(&dims.tenant))
            .copied()
            .unwrap_or(self.cfg.rate)
    }

    fn boosting(&self) -> bool {
        self.boost_until.is_some_and(|t| Instant::now() < t)
    }

    /// Whether the rate (or boost) alone could keep this request.
    pub fn rate_hit(&self, dims: &Dims) -> Option<Reason> {
        let u = unit(&dims.request_id);
        if u < self.rate(dims) {
            Some(Reason::Rate)
        } else if self.boosting() && u < self.cfg.boost_rate {
            Some(Reason::NewVersion)
        } else {
            None
        }
    }

    /// Decides for a request whose comparisons are done; counts what it keeps.
    pub fn decide(&self, dims: &Dims, diverged: bool) -> Option<Reason> {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.start.elapsed() >= Duration::from_secs(60) {
            *w = Window { start: Instant::now(), kept: 0, mismatches: 0 };
        }
        if diverged && w.mismatches < self.cfg.mismatch_budget_per_minute {
            w.mismatches += 1;
            return Some(Reason::Mismatch);
        }
        let reason = self.rate_hit(dims)?;
        if w.kept >= self.cfg.cap_per_minute {
            return None;
        }
        w.kept += 1;
        Some(reason)
    }
}

fn d_rate() -> f64 {
    0.01
}
fn d_budget() -> u32 {
    60
}
fn d_cap() -> u32 {
    600
}

/// Case sampling.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    /// Default share of requests kept as cases.
    #[serde(default = "d_rate")]
    pub rate: f64,
    /// Per-tenant rates.
    #[serde(default)]
    pub tenants: BTreeMap<String, f64>,
    /// Per-route rates.
    #[serde(default)]
    pub routes: BTreeMap<String, f64>,
    /// Mismatching requests always kept, up to this many a minute.
    #[serde(default = "d_budget")]
    pub mismatch_budget_per_minute: u32,
    /// Hard cap of cases a minute (mismatches have their own budget).
    #[serde(default = "d_cap")]
    pub cap_per_minute: u32,
    /// Rate used for a while after a new guest or core version starts.
    #[serde(default = "d_boost_rate")]
    pub boost_rate: f64,
    /// How long the boost lasts.
    #[serde(default = "d_boost_minutes")]
    pub boost_minutes: u32,
}

fn d_boost_rate() -> f64 {
    0.1
}
fn d_boost_minutes() -> u32 {
    60
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            rate: d_rate(),
            tenants: BTreeMap::new(),
            routes: BTreeMap::new(),
            mismatch_budget_per_minute: d_budget(),
            cap_per_minute: d_cap(),
            boost_rate: d_boost_rate(),
            boost_minutes: d_boost_minutes(),
        }
    }
}
impl SamplingConfig {
    /// Checks that every rate is a share.
    pub fn validate(&self) -> Result<(), crate::toml_error::Invalid> {
        let rates = [("sampling.rate".to_string(), self.rate), ("sampling.boost_rate".into(), self.boost_rate)]
            .into_iter()
            .chain(self.tenants.iter().map(|(k, v)| (format!("sampling.tenants.{k}"), *v)))
            .chain(self.routes.iter().map(|(k, v)| (format!("sampling.routes.{k}"), *v)));
        for (key, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(crate::toml_error::Invalid::new(key, format!("rate {rate} is not in 0..=1")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(id: &str, tenant: &str, route: &str) -> Dims {
        Dims {
            request_id: id.into(),
            timestamp_us: 0,
            tenant: tenant.into(),
            route: route.into(),
            endpoint: "/v1/messages".into(),
            client_protocol: shadowgate_core::Protocol::AnthropicMessages,
            upstream_protocol: Some(shadowgate_core::Protocol::AnthropicMessages),
            model: "m".into(),
            stream: false,
            mode: "shadow".into(),
            compat_profile: "anthropic/1".into(),
            upstream: String::new(),
            attempts: 1,
        }
    }

    fn cfg(rate: f64) -> SamplingConfig {
        SamplingConfig { rate, ..SamplingConfig::default() }
    }

    #[test]
    fn rates_follow_route_then_tenant_then_default() {
        let mut c = cfg(0.0);
        c.tenants = BTreeMap::from([("acme".to_string(), 1.0)]);
        c.routes = BTreeMap::from([("quiet".to_string(), 0.0)]);
        c.cap_per_minute = 10_000;
        let s = Sampler::new(&c, false);
        let kept = |tenant: &str, route: &str| {
            (0..1000).filter(|i| s.decide(&dims(&format!("req_{i}"), tenant, route), false).is_some()).count()
        };
        assert_eq!(kept("acme", "any"), 1000);
        assert_eq!(kept("acme", "quiet"), 0);
        assert_eq!(kept("other", "any"), 0);
    }

    #[test]
    fn a_rate_keeps_about_that_share_deterministically() {
        let c = SamplingConfig { cap_per_minute: 100_000, ..cfg(0.1) };
        let s = Sampler::new(&c, false);
        let kept: Vec<bool> = (0..10_000).map(|i| s.rate_hit(&dims(&format!("req_{i}"), "t", "r")).is_some()).collect();
        let n = kept.iter().filter(|k| **k).count();
        assert!((850..1150).contains(&n), "{n} of 10000 at rate 0.1");
        let again: Vec<bool> =
            (0..10_000).map(|i| s.rate_hit(&dims(&format!("req_{i}"), "t", "r")).is_some()).collect();
        assert_eq!(kept, again);
    }

    #[test]
    fn mismatches_are_kept_up_to_the_budget_and_the_cap_holds() {
        let c = SamplingConfig { mismatch_budget_per_minute: 5, cap_per_minute: 3, ..cfg(1.0) };
        let s = Sampler::new(&c, false);
        let mismatch: Vec<_> = (0..8).map(|i| s.decide(&dims(&format!("m{i}"), "t", "r"), true)).collect();
        assert_eq!(mismatch.iter().filter(|r| **r == Some(Reason::Mismatch)).count(), 5);
        // Past the budget, mismatches fall back to the rate, under the cap.
        assert_eq!(mismatch.iter().filter(|r| **r == Some(Reason::Rate)).count(), 3);
        assert_eq!(s.decide(&dims("late", "t", "r"), false), None);
    }

    #[test]
    fn a_new_version_boosts_the_rate() {
        let c = SamplingConfig { boost_rate: 1.0, boost_minutes: 10, ..cfg(0.0) };
        assert_eq!(Sampler::new(&c, true).decide(&dims("a", "t", "r"), false), Some(Reason::NewVersion));
        assert_eq!(Sampler::new(&c, false).decide(&dims("a", "t", "r"), false), None);
    }
}
