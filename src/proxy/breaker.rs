//! A circuit breaker per module for the wasm primary: after `failures`
//! guest failures (deadline, memory, trap, panic, ABI) within `window`, the
//! module is served natively for `cooldown`; then one call probes the guest
//! again — a success closes the breaker, a failure opens it once more.

use super::metrics::{Metrics, ModuleLabels};
use serde::{Deserialize, Serialize};
use shadowgate_core::Module;
use shadowgate_runtime::RuntimeError;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a module's breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// The guest serves.
    Closed,
    /// Native serves until the cooldown ends.
    Open,
    /// The cooldown ended: the next call probes the guest.
    HalfOpen,
}

/// A module's breaker, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerView {
    /// State.
    pub state: BreakerState,
    /// Failures in the current window.
    pub recent_failures: usize,
    /// Milliseconds until the cooldown ends (open only).
    pub open_for_ms: u64,
    /// Times it opened.
    pub trips: u64,
}

#[derive(Default)]
struct Breaker {
    failures: VecDeque<Instant>,
    open_until: Option<Instant>,
    trips: u64,
}

/// The breaker settings (`[primary]`).
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Failures that open it.
    pub failures: usize,
    /// Window they are counted in.
    pub window: Duration,
    /// How long it stays open.
    pub cooldown: Duration,
}

/// One breaker per module.
pub struct Breakers {
    cfg: BreakerConfig,
    state: Mutex<BTreeMap<Module, Breaker>>,
    metrics: Arc<Metrics>,
}

/// Whether a failure is the guest's (counts) rather than a refusal (does not).
fn counts(e: &RuntimeError) -> bool {
    matches!(
        e,
        RuntimeError::Deadline(_)
            | RuntimeError::MemoryLimit(_)
            | RuntimeError::Trap(_)
            | RuntimeError::Panic(_)
            | RuntimeError::Abi(_)
    )
}

impl Breakers {
    /// Closed breakers for every module (their series start at zero in `Metrics::new`).
    pub fn new(cfg: BreakerConfig, metrics: Arc<Metrics>) -> Breakers {
        Breakers { cfg, state: Mutex::new(BTreeMap::new()), metrics }
    }

    /// May the guest serve `module` now? False while the breaker is open.
    pub fn allow(&self, module: Module) -> bool {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.get(&module).and_then(|b| b.open_until).is_none_or(|until| Instant::now() >= until)
    }

    /// The guest served `module`: a probe that succeeds closes the breaker.
    pub fn success(&self, module: Module) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = st.get_mut(&module).filter(|b| b.open_until.is_some()) {
            b.open_until = None;
            b.failures.clear();
            self.metrics.breaker_open.get_or_create(&ModuleLabels { module: module.as_str().into() }).set(0);
            tracing::info!(%module, "circuit closed: the guest serves again");
        }
    }

    /// The guest failed on `module`; true if that opened the breaker.
    pub fn failure(&self, module: Module, e: &RuntimeError) -> bool {
        if !counts(e) {
            return false;
        }
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let b = st.entry(module).or_default();
        let probe_failed = b.open_until.is_some_and(|until| now >= until);
        b.failures.push_back(now);
        while b.failures.front().is_some_and(|t| now.duration_since(*t) > self.cfg.window) {
            b.failures.pop_front();
        }
        if !probe_failed && (b.open_until.is_some() || b.failures.len() < self.cfg.failures.max(1)) {
            return false;
        }
        b.open_until = Some(now + self.cfg.cooldown);
        b.trips += 1;
        let labels = ModuleLabels { module: module.as_str().into() };
        self.metrics.breaker_open.get_or_create(&labels).set(1);
        self.metrics.breaker_trips.get_or_create(&labels).inc();
        tracing::warn!(%module, failures = b.failures.len(), cooldown_ms = self.cfg.cooldown.as_millis() as u64, error = %e,
            "circuit open: the module is served natively for the cooldown");
        true
    }

    /// Every module's breaker.
    pub fn views(&self) -> BTreeMap<Module, BreakerView> {
        let now = Instant::now();
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Module::ALL
            .into_iter()
            .map(|m| {
                let b = st.get(&m);
                let until = b.and_then(|b| b.open_until);
                let state = match until {
                    None => BreakerState::Closed,
                    Some(u) if now < u => BreakerState::Open,
                    Some(_) => BreakerState::HalfOpen,
                };
                let open_for_ms = until
                    .map_or(0, |u| u64::try_from(u.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX));
                let recent_failures = b.map_or(0, |b| b.failures.len());
                (m, BreakerView { state, recent_failures, open_for_ms, trips: b.map_or(0, |b| b.trips) })
            })
            .collect()
    }
}

fn d_failures() -> usize {
    5
}
fn d_window() -> u64 {
    10_000
}
fn d_cooldown() -> u64 {
    30_000
}

/// The `[primary]` breaker keys, flattened into `PrimaryConfig`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerKeys {
    /// Guest failures that open a module's breaker.
    #[serde(default = "d_failures")]
    pub breaker_failures: usize,
    /// Window the failures are counted in.
    #[serde(default = "d_window")]
    pub breaker_window_ms: u64,
    /// How long an open breaker serves natively before probing.
    #[serde(default = "d_cooldown")]
    pub breaker_cooldown_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::SinkStats;

    fn breakers(failures: usize, cooldown_ms: u64) -> Breakers {
        let cfg =
            BreakerConfig { failures, window: Duration::from_secs(10), cooldown: Duration::from_millis(cooldown_ms) };
        Breakers::new(cfg, Arc::new(Metrics::new(&SinkStats::default())))
    }

    #[test]
    fn opens_after_n_failures_probes_after_the_cooldown_and_closes_on_success() {
        let b = breakers(3, 50);
        let e = RuntimeError::Deadline(50);
        assert!(!b.failure(Module::Compat, &e) && !b.failure(Module::Compat, &e));
        assert!(b.allow(Module::Compat));
        assert!(b.failure(Module::Compat, &e), "the third failure opens it");
        assert!(!b.allow(Module::Compat) && b.allow(Module::Routing), "per module");
        assert_eq!(b.views()[&Module::Compat].state, BreakerState::Open);
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow(Module::Compat), "half open: one probe");
        assert_eq!(b.views()[&Module::Compat].state, BreakerState::HalfOpen);
        assert!(b.failure(Module::Compat, &e), "a failed probe opens it again");
        assert_eq!(b.views()[&Module::Compat].trips, 2);
        std::thread::sleep(Duration::from_millis(60));
        b.success(Module::Compat);
        assert_eq!(b.views()[&Module::Compat].state, BreakerState::Closed);
    }

    #[test]
    fn refusals_do_not_count() {
        let b = breakers(1, 1000);
        assert!(!b.failure(Module::Tools, &RuntimeError::Unsupported("op".into())));
        assert!(b.allow(Module::Tools));
    }
}
