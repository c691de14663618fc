//! Module stages while serving: loaded from the config and the state file,
//! reloaded when the file changes (`gate --apply`), set by the admin API, and
//! rolled back one stage automatically when a module's rolling window shows a
//! diff-rate spike (2× its threshold), a shadow-error spike (2×) or a latency
//! regression. The rolling figures are exported as metrics.

use super::ServeError;
use super::config::Config;
use super::metrics::{Metrics, ModuleLabels};
use crate::diff::Outcome;
use crate::gate::{GateConfig, State, StateError, Thresholds};
use crate::record::DiffRecord;
use crate::stage::Stage;
use serde::{Deserialize, Serialize};
use shadowgate_core::Module;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

#[derive(Default)]
struct Rolling {
    calls: VecDeque<(bool, bool, i64)>,
    mismatches: usize,
    errors: usize,
}

/// A module's rolling figures.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Calls in the window.
    pub samples: usize,
    /// Mismatch share.
    pub diff_rate: f64,
    /// Shadow error share.
    pub shadow_error_rate: f64,
    /// p95 of shadow-minus-main latency (µs).
    pub p95_latency_delta_us: i64,
}

impl Rolling {
    fn push(&mut self, cap: usize, mismatch: bool, error: bool, delta: i64) {
        self.calls.push_back((mismatch, error, delta));
        self.mismatches += usize::from(mismatch);
        self.errors += usize::from(error);
        while self.calls.len() > cap {
            if let Some((m, e, _)) = self.calls.pop_front() {
                self.mismatches -= usize::from(m);
                self.errors -= usize::from(e);
            }
        }
    }

    fn window(&self) -> Window {
        let n = self.calls.len().max(1) as f64;
        let mut d: Vec<i64> = self.calls.iter().map(|c| c.2).collect();
        d.sort_unstable();
        let p95 = if d.is_empty() { 0 } else { d[((d.len() - 1) as f64 * 0.95).round() as usize] };
        Window {
            samples: self.calls.len(),
            diff_rate: self.mismatches as f64 / n,
            shadow_error_rate: self.errors as f64 / n,
            p95_latency_delta_us: p95,
        }
    }
}

/// Stages, their state file, and the rolling windows.
pub struct ModuleStages {
    stages: RwLock<BTreeMap<Module, Stage>>,
    state_file: PathBuf,
    state: Mutex<(State, Option<SystemTime>)>,
    gate: GateConfig,
    rolling: Mutex<BTreeMap<Module, Rolling>>,
    metrics: Arc<Metrics>,
}

impl ModuleStages {
    /// Stages from the config, overridden by the state file if it exists.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<ModuleStages, ServeError> {
        let state_file =
            config.modules.state_file.clone().unwrap_or_else(|| config.sink.data_dir.join("state/modules.json"));
        let state = State::load(&state_file).map_err(|e| ServeError::config("modules.state_file", e.to_string()))?;
        let mut stages: BTreeMap<Module, Stage> = Module::ALL.iter().map(|m| (*m, config.modules.stage(*m))).collect();
        stages.extend(known(&state));
        let mtime = std::fs::metadata(&state_file).and_then(|m| m.modified()).ok();
        let s = ModuleStages {
            stages: RwLock::new(stages),
            state_file,
            state: Mutex::new((state, mtime)),
            gate: config.gate.clone(),
            rolling: Mutex::new(BTreeMap::new()),
            metrics,
        };
        s.export_stages();
        Ok(s)
    }

    /// The stage of `module`.
    pub fn get(&self, module: Module) -> Stage {
        self.stages.read().unwrap_or_else(|e| e.into_inner()).get(&module).copied().unwrap_or(Stage::Shadow)
    }

    /// Every stage.
    pub fn all(&self) -> BTreeMap<Module, Stage> {
        self.stages.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The thresholds of `module`.
    pub fn thresholds(&self, module: Module) -> Thresholds {
        self.gate.thresholds(module)
    }

    fn export_stages(&self) {
        for (m, s) in self.all() {
            let i = i64::try_from(s.index()).unwrap_or(0);
            self.metrics.module_stage.get_or_create(&ModuleLabels { module: m.as_str().into() }).set(i);
        }
    }

    /// Reloads the state file if it changed since it was last read; true if it did.
    pub fn reload_if_changed(&self) -> bool {
        let mtime = std::fs::metadata(&self.state_file).and_then(|m| m.modified()).ok();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if mtime.is_none() || mtime == st.1 {
            return false;
        }
        match State::load(&self.state_file) {
            Ok(state) => {
                {
                    let mut stages = self.stages.write().unwrap_or_else(|e| e.into_inner());
                    for (m, s) in known(&state) {
                        if stages.get(&m) != Some(&s) {
                            tracing::info!(module = %m, stage = ?s, file = %self.state_file.display(), "stage changed by the state file");
                        }
                        stages.insert(m, s);
                    }
                }
                *st = (state, mtime);
                drop(st);
                self.export_stages();
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "state file unreadable; stages unchanged");
                false
            }
        }
    }

    /// Sets a stage and records it in the state file's history, through the
    /// state file's one writer protocol ([`State::update`]); blocking file I/O.
    /// Returns the stage it had.
    pub fn set(&self, module: Module, to: Stage, by: &str, reason: &str) -> Result<Stage, StateError> {
        let all = self.all();
        let mut from = self.get(module);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let written = State::update(&self.state_file, |s| {
            for (m, stage) in &all {
                s.stages.entry(m.as_str().into()).or_insert(*stage);
            }
            from = s.stages.get(module.as_str()).copied().unwrap_or(from);
            s.set(module.as_str(), to, by, reason);
        })?;
        let mtime = std::fs::metadata(&self.state_file).and_then(|m| m.modified()).ok();
        self.stages.write().unwrap_or_else(|e| e.into_inner()).extend(known(&written));
        *st = (written, mtime);
        drop(st);
        self.export_stages();
        Ok(from)
    }

    /// The last `n` changes.
    pub fn history(&self, n: usize) -> Vec<crate::gate::Change> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0.history.iter().rev().take(n).rev().cloned().collect()
    }

    /// Rolling figures per module.
    pub fn windows(&self) -> BTreeMap<Module, Window> {
        self.rolling.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(m, r)| (*m, r.window())).collect()
    }

    /// Takes a comparison into its module's window; rolls the module back one
    /// stage on a spike.
    pub fn observe(&self, r: &DiffRecord) {
        let module = r.result.module;
        let (mismatch, error) = match r.result.outcome {
            Outcome::Mismatch => (true, false),
            Outcome::ShadowError | Outcome::ShadowTimeout => (false, true),
            Outcome::Match | Outcome::Ignored => (false, false),
            Outcome::PrimaryError | Outcome::Dropped => return,
        };
        let us = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let delta = us(r.latency_shadow_us).saturating_sub(us(r.latency_main_us));
        let w = {
            let mut rolling = self.rolling.lock().unwrap_or_else(|e| e.into_inner());
            let roll = rolling.entry(module).or_default();
            roll.push(self.gate.rollback_window.max(1), mismatch, error, if r.latency_main_us > 0 { delta } else { 0 });
            roll.window()
        };
        let labels = ModuleLabels { module: module.as_str().into() };
        self.metrics.module_diff_rate.get_or_create(&labels).set(w.diff_rate);
        self.metrics.module_error_rate.get_or_create(&labels).set(w.shadow_error_rate);
        self.metrics.module_latency_delta.get_or_create(&labels).set(w.p95_latency_delta_us as f64 / 1e6);
        if w.samples < self.gate.rollback_min_samples {
            return;
        }
        let t = self.thresholds(module);
        let reason = if w.diff_rate > 2.0 * t.max_diff_rate {
            format!(
                "diff rate spike: {:.2}% over the last {} calls (threshold {:.2}%)",
                w.diff_rate * 100.0,
                w.samples,
                t.max_diff_rate * 100.0
            )
        } else if w.shadow_error_rate > 2.0 * t.max_shadow_error_rate {
            format!("shadow error spike: {:.2}% over the last {} calls", w.shadow_error_rate * 100.0, w.samples)
        } else if w.p95_latency_delta_us as f64 / 1000.0 > t.max_p95_latency_delta_ms {
            format!("latency regression: p95 delta {:.2} ms", w.p95_latency_delta_us as f64 / 1000.0)
        } else {
            return;
        };
        let stage = self.get(module);
        if stage == Stage::Shadow {
            return;
        }
        let to = stage.rollback();
        match self.set(module, to, "auto-rollback", &reason) {
            Ok(_) => tracing::warn!(%module, from = ?stage, to = ?to, %reason, "automatic rollback"),
            Err(e) => tracing::error!(%module, error = %e, "automatic rollback: writing the state file failed"),
        }
        self.metrics.rollbacks.get_or_create(&labels).inc();
        self.rolling.lock().unwrap_or_else(|e| e.into_inner()).remove(&module);
    }
}

/// The stages a state file sets for modules this core has (others are ignored).
fn known(state: &State) -> impl Iterator<Item = (Module, Stage)> + '_ {
    state.stages.iter().filter_map(|(m, s)| m.parse::<Module>().ok().map(|m| (m, *s)))
}

fn d_canary() -> u8 {
    10
}

/// Module stages.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModulesConfig {
    /// Stage of each module (default `shadow`).
    #[serde(default)]
    pub stages: BTreeMap<String, Stage>,
    /// Share of wasm-primary traffic in the canary stage.
    #[serde(default = "d_canary")]
    pub canary_percent: u8,
    /// Where `gate --apply` and the admin API keep stages (default: `<data_dir>/state/modules.json`).
    #[serde(default)]
    pub state_file: Option<PathBuf>,
}

impl Default for ModulesConfig {
    fn default() -> Self {
        ModulesConfig { stages: BTreeMap::new(), canary_percent: d_canary(), state_file: None }
    }
}

impl ModulesConfig {
    /// Checks that every staged module exists and the canary share.
    pub fn validate(&self) -> Result<(), crate::toml_error::Invalid> {
        if let Some(m) = self.stages.keys().find(|m| m.parse::<Module>().is_err()) {
            return Err(crate::toml_error::Invalid::new(
                format!("modules.stages.{m}"),
                format!("unknown module (known: {})", Module::names()),
            ));
        }
        if self.canary_percent > 100 {
            return Err(crate::toml_error::Invalid::new("modules.canary_percent", "must be at most 100"));
        }
        Ok(())
    }

    /// The configured stage of `module` (default `shadow`).
    pub fn stage(&self, module: Module) -> Stage {
        self.stages.get(module.as_str()).copied().unwrap_or(Stage::Shadow)
    }
}
