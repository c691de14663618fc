//! Module stages while serving: loaded from the config and the state file,
//! reloaded when the file changes (`gate --apply`), set by the admin API, and
//! rolled back one stage automatically when a module's rolling window shows a
//! diff-rate spike (2× its threshold), a shadow-error spike (2×) or a latency
//! regression. The rolling figures are exported as metrics.

use super::config::{Config, MODULES};
use super::metrics::{Metrics, ModuleLabels};
use super::mode::Stage;
use super::shadow::DiffRecord;
use crate::diff::Outcome;
use crate::gate::{GateConfig, State, Thresholds};
use serde::Serialize;
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
    stages: RwLock<BTreeMap<String, Stage>>,
    state_file: PathBuf,
    state: Mutex<(State, Option<SystemTime>)>,
    gate: GateConfig,
    rolling: Mutex<BTreeMap<String, Rolling>>,
    metrics: Arc<Metrics>,
}

impl ModuleStages {
    /// Stages from the config, overridden by the state file if it exists.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<ModuleStages> {
        let state_file =
            config.modules.state_file.clone().unwrap_or_else(|| config.sink.data_dir.join("state/modules.json"));
        let state = State::load(&state_file).map_err(|e| anyhow::anyhow!("modules.state_file: {e}"))?;
        let mut stages: BTreeMap<String, Stage> = MODULES.iter().map(|m| (m.to_string(), config.stage(m))).collect();
        stages.extend(state.stages.iter().filter(|(m, _)| MODULES.contains(&m.as_str())).map(|(m, s)| (m.clone(), *s)));
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
    pub fn get(&self, module: &str) -> Stage {
        self.stages.read().unwrap_or_else(|e| e.into_inner()).get(module).copied().unwrap_or(Stage::Shadow)
    }

    /// Every stage.
    pub fn all(&self) -> BTreeMap<String, Stage> {
        self.stages.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The thresholds of `module`.
    pub fn thresholds(&self, module: &str) -> Thresholds {
        self.gate.thresholds(module)
    }

    fn export_stages(&self) {
        for (m, s) in self.all() {
            let i = Stage::ORDER.iter().position(|x| *x == s).unwrap_or(0);
            self.metrics.module_stage.get_or_create(&ModuleLabels { module: m }).set(i as i64);
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
                    for (m, s) in state.stages.iter().filter(|(m, _)| MODULES.contains(&m.as_str())) {
                        if stages.get(m) != Some(s) {
                            tracing::info!(module = %m, stage = ?s, file = %self.state_file.display(), "stage changed by the state file");
                        }
                        stages.insert(m.clone(), *s);
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

    /// Sets a stage, records it in the state file's history.
    pub fn set(&self, module: &str, to: Stage, by: &str, reason: &str) -> std::io::Result<Stage> {
        let from = self.get(module);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (m, s) in self.all() {
            st.0.stages.entry(m).or_insert(s);
        }
        st.0.stages.insert(module.into(), from);
        st.0.set(module, to, by, reason);
        st.0.save(&self.state_file)?;
        st.1 = std::fs::metadata(&self.state_file).and_then(|m| m.modified()).ok();
        drop(st);
        self.stages.write().unwrap_or_else(|e| e.into_inner()).insert(module.into(), to);
        self.export_stages();
        Ok(from)
    }

    /// The last `n` changes.
    pub fn history(&self, n: usize) -> Vec<crate::gate::Change> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0.history.iter().rev().take(n).rev().cloned().collect()
    }

    /// Rolling figures per module.
    pub fn windows(&self) -> BTreeMap<String, Window> {
        self.rolling.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(m, r)| (m.clone(), r.window())).collect()
    }

    /// Takes a comparison into its module's window; rolls the module back one
    /// stage on a spike.
    pub fn observe(&self, r: &DiffRecord) {
        let module = r.result.module.as_str();
        let (mismatch, error) = match r.result.outcome {
            Outcome::Mismatch => (true, false),
            Outcome::ShadowError | Outcome::ShadowTimeout => (false, true),
            Outcome::Match | Outcome::Ignored => (false, false),
            Outcome::PrimaryError | Outcome::Dropped => return,
        };
        let delta = r.latency_shadow_us as i64 - r.latency_main_us as i64;
        let w = {
            let mut rolling = self.rolling.lock().unwrap_or_else(|e| e.into_inner());
            let roll = rolling.entry(module.to_string()).or_default();
            roll.push(self.gate.rollback_window.max(1), mismatch, error, if r.latency_main_us > 0 { delta } else { 0 });
            roll.window()
        };
        let labels = ModuleLabels { module: module.into() };
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
            Ok(_) => tracing::warn!(module, from = ?stage, to = ?to, %reason, "automatic rollback"),
            Err(e) => tracing::error!(module, error = %e, "automatic rollback: writing the state file failed"),
        }
        self.metrics.rollbacks.get_or_create(&labels).inc();
        self.rolling.lock().unwrap_or_else(|e| e.into_inner()).remove(module);
    }
}
