//! The module gate: thresholds, verdicts (`pass` → may promote one stage,
//! `fail` → roll back one stage, `inconclusive`), and the stage state file
//! that `gate --apply`, the admin API and automatic rollback write and a
//! running `serve` picks up.

use crate::owners::{Owner, Owners};
use crate::report::{Aggregator, DataReport, Dim, Group, RowView};
use crate::stage::Stage;
use serde::{Deserialize, Serialize};
use shadowgate_core::Module;
use std::collections::BTreeMap;
use std::path::Path;

/// Thresholds of one module.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Highest diff rate (mismatches / comparisons).
    pub max_diff_rate: f64,
    /// Highest shadow error rate.
    pub max_shadow_error_rate: f64,
    /// Highest p95 of shadow-minus-main latency (ms).
    pub max_p95_latency_delta_ms: f64,
    /// Fewer comparisons than this: inconclusive.
    pub min_samples: u64,
}

/// Per-module overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdOverride {
    /// Highest diff rate.
    pub max_diff_rate: Option<f64>,
    /// Highest shadow error rate.
    pub max_shadow_error_rate: Option<f64>,
    /// Highest p95 latency delta (ms).
    pub max_p95_latency_delta_ms: Option<f64>,
    /// Minimum comparisons.
    pub min_samples: Option<u64>,
}

fn d_window() -> String {
    "24h".into()
}
fn d_rollback_window() -> usize {
    500
}
fn d_rollback_min() -> usize {
    100
}

/// The `[gate]` config section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// Observation window of `gate` (`30m`, `24h`, `7d`).
    #[serde(default = "d_window")]
    pub window: String,
    /// Defaults for every module (migration plan: 0.5% diffs, 0.1% shadow errors, +10 ms p95, 1000 samples).
    #[serde(default)]
    pub defaults: Option<ThresholdOverride>,
    /// Per-module overrides (the tokenizer defaults to 0.01%).
    #[serde(default)]
    pub modules: BTreeMap<String, ThresholdOverride>,
    /// Calls in the rolling window that triggers automatic rollback while serving.
    #[serde(default = "d_rollback_window")]
    pub rollback_window: usize,
    /// Calls needed in that window before it can trigger.
    #[serde(default = "d_rollback_min")]
    pub rollback_min_samples: usize,
    /// The least time a module spends in a stage before the gate promotes it out.
    #[serde(default)]
    pub min_dwell: MinDwell,
}

fn d_dwell_shadow() -> String {
    "7d".into()
}
fn d_dwell_canary() -> String {
    "3d".into()
}
fn d_dwell_default() -> String {
    "14d".into()
}

/// `[gate] min_dwell.<stage>`: observation periods in the spirit of the
/// migration plan (a week of shadow, three days of canary, two weeks as the
/// default before the native path is deprecated, and again before removal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinDwell {
    /// Before `shadow` → `canary`.
    #[serde(default = "d_dwell_shadow")]
    pub shadow: String,
    /// Before `canary` → `default`.
    #[serde(default = "d_dwell_canary")]
    pub canary: String,
    /// Before `default` → `deprecated`.
    #[serde(default = "d_dwell_default")]
    pub default: String,
    /// Before `deprecated` → `removed`.
    #[serde(default = "d_dwell_default")]
    pub deprecated: String,
}

impl Default for MinDwell {
    fn default() -> Self {
        MinDwell {
            shadow: d_dwell_shadow(),
            canary: d_dwell_canary(),
            default: d_dwell_default(),
            deprecated: d_dwell_default(),
        }
    }
}

impl MinDwell {
    fn of(&self, stage: Stage) -> &str {
        match stage {
            Stage::Shadow => &self.shadow,
            Stage::Canary => &self.canary,
            Stage::Default => &self.default,
            Stage::Deprecated | Stage::Removed => &self.deprecated,
        }
    }

    /// The minimum for leaving `stage`, in µs (validated at load).
    pub fn micros(&self, stage: Stage) -> i64 {
        crate::report::parse_since(self.of(stage)).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            window: d_window(),
            defaults: None,
            modules: BTreeMap::new(),
            rollback_window: d_rollback_window(),
            rollback_min_samples: d_rollback_min(),
            min_dwell: MinDwell::default(),
        }
    }
}

impl GateConfig {
    /// Checks that every per-module table names a module.
    pub fn validate(&self) -> Result<(), crate::toml_error::Invalid> {
        for stage in [Stage::Shadow, Stage::Canary, Stage::Default, Stage::Deprecated] {
            crate::report::parse_since(self.min_dwell.of(stage))
                .map_err(|e| crate::toml_error::Invalid::new(format!("gate.min_dwell.{stage}"), e.to_string()))?;
        }
        if let Some(m) = self.modules.keys().find(|m| m.parse::<Module>().is_err()) {
            return Err(crate::toml_error::Invalid::new(
                format!("gate.modules.{m}"),
                format!("unknown module (known: {})", Module::names()),
            ));
        }
        Ok(())
    }

    /// The thresholds of `module`.
    pub fn thresholds(&self, module: Module) -> Thresholds {
        let mut t = Thresholds {
            max_diff_rate: if module == Module::Tokenizer { 0.0001 } else { 0.005 },
            max_shadow_error_rate: 0.001,
            max_p95_latency_delta_ms: 10.0,
            min_samples: 1000,
        };
        for o in [self.defaults.as_ref(), self.modules.get(module.as_str())].into_iter().flatten() {
            t.max_diff_rate = o.max_diff_rate.unwrap_or(t.max_diff_rate);
            t.max_shadow_error_rate = o.max_shadow_error_rate.unwrap_or(t.max_shadow_error_rate);
            t.max_p95_latency_delta_ms = o.max_p95_latency_delta_ms.unwrap_or(t.max_p95_latency_delta_ms);
            t.min_samples = o.min_samples.unwrap_or(t.min_samples);
        }
        t
    }
}

/// A verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Within thresholds with enough samples: may promote one stage.
    Pass,
    /// Over a threshold: roll back one stage.
    Fail,
    /// Too few samples or no data.
    Inconclusive,
}

/// The verdict of one module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Module.
    pub module: Module,
    /// Decision.
    pub verdict: Decision,
    /// Why, in words.
    pub reason: String,
    /// Comparisons in the window.
    pub comparisons: u64,
    /// Diff rate.
    pub diff_rate: f64,
    /// Shadow error rate.
    pub shadow_error_rate: f64,
    /// p95 shadow-minus-main latency (ms).
    pub p95_latency_delta_ms: f64,
    /// The thresholds applied.
    pub thresholds: Thresholds,
    /// Current stage.
    pub stage: Stage,
    /// Stage after the verdict.
    pub next_stage: Stage,
    /// Who fixes the module and where, when the config names an owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

/// The verdict for one module's figures.
pub fn decide(module: Module, g: Option<&Group>, t: Thresholds, stage: Stage) -> Verdict {
    let pct = |x: f64| format!("{:.3}%", x * 100.0);
    let (n, diff, err, p95) = g.map_or((0, 0.0, 0.0, 0.0), |g| {
        (g.comparisons, g.diff_rate, g.shadow_error_rate, g.latency_delta_us.p95 as f64 / 1000.0)
    });
    let (verdict, reason) = if g.is_none() || n == 0 {
        (Decision::Inconclusive, "no comparisons in the window".to_string())
    } else if diff > t.max_diff_rate {
        (Decision::Fail, format!("diff rate {} is above {}", pct(diff), pct(t.max_diff_rate)))
    } else if err > t.max_shadow_error_rate {
        (Decision::Fail, format!("shadow error rate {} is above {}", pct(err), pct(t.max_shadow_error_rate)))
    } else if p95 > t.max_p95_latency_delta_ms {
        (Decision::Fail, format!("p95 latency delta {p95:.2} ms is above {} ms", t.max_p95_latency_delta_ms))
    } else if n < t.min_samples {
        (Decision::Inconclusive, format!("{n} comparisons, {} needed", t.min_samples))
    } else {
        (
            Decision::Pass,
            format!(
                "{n} comparisons: diff rate {}, shadow errors {}, p95 latency delta {p95:.2} ms",
                pct(diff),
                pct(err)
            ),
        )
    };
    let next_stage = match verdict {
        Decision::Pass => stage.promote(),
        Decision::Fail => stage.rollback(),
        Decision::Inconclusive => stage,
    };
    Verdict {
        module,
        verdict,
        reason,
        comparisons: n,
        diff_rate: diff,
        shadow_error_rate: err,
        p95_latency_delta_ms: p95,
        thresholds: t,
        stage,
        next_stage,
        owner: None,
    }
}

/// Names each verdict's owner from the ownership table.
pub fn assign_owners(vs: &mut [Verdict], owners: &Owners) {
    for v in vs {
        v.owner = owners.of(v.module).cloned();
    }
}

/// Verdicts for every module from a report grouped by module.
pub fn verdicts(report: &DataReport, cfg: &GateConfig, stages: &BTreeMap<String, Stage>) -> Vec<Verdict> {
    Module::ALL
        .into_iter()
        .map(|m| {
            let g = report.groups.iter().find(|g| g.key.get("module").map(String::as_str) == Some(m.as_str()));
            decide(m, g, cfg.thresholds(m), stages.get(m.as_str()).copied().unwrap_or(Stage::Shadow))
        })
        .collect()
}

/// What a module's verdict rests on: the rows since it entered its stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    /// Rows counted from here (µs): the later of the window's start and the stage's start.
    pub since_us: i64,
    /// When the module was first observed in its current stage (µs), if known.
    pub observed_since_us: Option<i64>,
}

/// A duration in µs as `3d 4h`, `12m`, `45s`.
fn human(us: i64) -> String {
    let s = us.max(0) / 1_000_000;
    match (s / 86_400, s % 86_400 / 3600, s % 3600 / 60) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// Verdicts over diff rows: each module is judged only on the rows recorded
/// since it entered its current stage (the state's history says when; within
/// the window starting at `since_us`), and is not promoted out of a stage
/// before `min_dwell` of it has passed.
pub fn judge(
    rows: &[crate::sink::schema::DiffRow],
    since_us: i64,
    now_us: i64,
    cfg: &GateConfig,
    state: &State,
    stages: &BTreeMap<String, Stage>,
) -> Vec<Verdict> {
    let mut tally = Tally::new(since_us, state, stages);
    for r in rows {
        tally.push(&RowView::from(r));
    }
    tally.verdicts(now_us, cfg)
}

/// One module's evidence as rows stream in.
struct Judged {
    module: Module,
    stage: Stage,
    entered: Option<i64>,
    from: i64,
    first_seen: Option<i64>,
    figures: Aggregator,
}

/// [`judge`] one row at a time: what the gate keeps is a few counters and a
/// latency sketch per module, whatever the number of rows.
pub struct Tally {
    modules: Vec<Judged>,
}

impl Tally {
    /// Empty evidence for every module, each counted from the later of
    /// `since_us` and the time it entered its stage.
    pub fn new(since_us: i64, state: &State, stages: &BTreeMap<String, Stage>) -> Tally {
        let modules = Module::ALL
            .into_iter()
            .map(|m| {
                let stage = stages.get(m.as_str()).copied().unwrap_or(Stage::Shadow);
                let entered = state.entered(m.as_str(), stage);
                let from = entered.map_or(since_us, |e| e.max(since_us));
                Judged { module: m, stage, entered, from, first_seen: None, figures: Aggregator::new(&[Dim::Module]) }
            })
            .collect();
        Tally { modules }
    }

    /// Counts one row toward its module, if it falls in that module's evidence.
    pub fn push(&mut self, r: &RowView) {
        let Some(j) = self.modules.iter_mut().find(|j| j.module.as_str() == r.module) else { return };
        if r.timestamp_us < j.from {
            return;
        }
        j.first_seen = Some(j.first_seen.map_or(r.timestamp_us, |t| t.min(r.timestamp_us)));
        j.figures.push(r);
    }

    /// The verdicts, in module order.
    pub fn verdicts(self, now_us: i64, cfg: &GateConfig) -> Vec<Verdict> {
        self.modules
            .into_iter()
            .map(|j| {
                let report = j.figures.finish();
                let evidence = Evidence { since_us: j.from, observed_since_us: j.entered.or(j.first_seen) };
                with_dwell(
                    decide(j.module, report.groups.first(), cfg.thresholds(j.module), j.stage),
                    evidence,
                    now_us,
                    cfg,
                )
            })
            .collect()
    }
}

/// Holds back a pass before the stage's minimum dwell, and says what the verdict rests on.
pub fn with_dwell(mut v: Verdict, e: Evidence, now_us: i64, cfg: &GateConfig) -> Verdict {
    let min = cfg.min_dwell.micros(v.stage);
    let dwell = e.observed_since_us.map_or(0, |t| now_us.saturating_sub(t));
    if v.verdict == Decision::Pass && dwell < min {
        v.verdict = Decision::Inconclusive;
        v.next_stage = v.stage;
        v.reason = format!(
            "in {} for {} of the {} to observe before promotion; {}",
            v.stage,
            human(dwell),
            human(min),
            v.reason
        );
    }
    v.reason += &format!(" (evidence: rows since {} in stage {})", crate::clock::rfc3339(e.since_us), v.stage);
    v
}

/// One change of stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Module.
    pub module: String,
    /// Stage before.
    pub from: Stage,
    /// Stage after.
    pub to: Stage,
    /// `gate`, `admin` or `auto-rollback`.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// A state file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StateError {
    /// The file.
    pub path: String,
    /// Why.
    pub message: String,
}

/// The stage state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Stage per module.
    pub stages: BTreeMap<String, Stage>,
    /// Changes, oldest first.
    pub history: Vec<Change>,
}

impl State {
    /// When `module` last entered `stage` (µs), by the history; `None` if it never changed.
    pub fn entered(&self, module: &str, stage: Stage) -> Option<i64> {
        let change = self.history.iter().rev().find(|c| c.module == module)?;
        (change.to == stage)
            .then(|| chrono::DateTime::parse_from_rfc3339(&change.at).ok().map(|t| t.timestamp_micros()))
            .flatten()
    }

    /// Reads `path`; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<State, StateError> {
        let err = |message: String| StateError { path: path.display().to_string(), message };
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| err(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// The one way to change the state file, for every writer (`gate --apply`,
    /// the admin API, automatic rollback, in this process or another): under
    /// an exclusive lock on `<path>.lock`, read the current state, apply `f`,
    /// write a uniquely named temporary file, fsync it, rename it over `path`
    /// and fsync the folder. Returns the state written.
    pub fn update(path: &Path, f: impl FnOnce(&mut State)) -> Result<State, StateError> {
        let err = |e: std::io::Error| StateError { path: path.display().to_string(), message: e.to_string() };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut lock_name = path.as_os_str().to_owned();
        lock_name.push(".lock");
        let lock =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_name).map_err(err)?;
        lock.lock().map_err(err)?;
        let mut state = State::load(path)?;
        f(&mut state);
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), crate::clock::now_nanos()));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut file, &serde_json::to_vec_pretty(&state).unwrap_or_default())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        let written = write();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(err)?;
        Ok(state)
    }

    /// Sets a stage and records the change (no entry when nothing changes).
    pub fn set(&mut self, module: &str, to: Stage, by: &str, reason: &str) -> bool {
        let from = self.stages.get(module).copied().unwrap_or(Stage::Shadow);
        self.stages.insert(module.into(), to);
        if from == to {
            return false;
        }
        self.history.push(Change {
            at: crate::clock::now_rfc3339(),
            module: module.into(),
            from,
            to,
            by: by.into(),
            reason: reason.into(),
        });
        true
    }
}

/// The verdicts as an aligned text table.
pub fn render_table(vs: &[Verdict]) -> String {
    let mut s = format!(
        "{:<10} {:<13} {:>11} {:>9} {:>10} {:>11} {:<10} {:<10} reason\n",
        "module", "verdict", "comparisons", "diff", "shadow_err", "p95 Δ ms", "stage", "next"
    );
    for v in vs {
        s += &format!(
            "{:<10} {:<13} {:>11} {:>8.3}% {:>9.3}% {:>11.2} {:<10} {:<10} {}\n",
            v.module,
            format!("{:?}", v.verdict).to_lowercase(),
            v.comparisons,
            v.diff_rate * 100.0,
            v.shadow_error_rate * 100.0,
            v.p95_latency_delta_ms,
            format!("{:?}", v.stage).to_lowercase(),
            format!("{:?}", v.next_stage).to_lowercase(),
            v.reason
        );
    }
    let owned: Vec<&Verdict> = vs.iter().filter(|v| v.owner.is_some()).collect();
    if !owned.is_empty() {
        s += "owners:\n";
        for v in owned {
            let fix = if v.verdict == Decision::Fail { "  <- fails: fix here" } else { "" };
            s += &format!("  {:<10} {}{fix}\n", v.module, v.owner.as_ref().map(Owner::text).unwrap_or_default());
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn racing_writers_lose_no_update_and_leave_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("shadowgate-state-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("state/modules.json");
        let (writers, each) = (8, 25);
        std::thread::scope(|s| {
            for w in 0..writers {
                let path = &path;
                s.spawn(move || {
                    for i in 0..each {
                        let to = if i % 2 == 0 { Stage::Canary } else { Stage::Shadow };
                        State::update(path, |st| {
                            st.set(&format!("m{w}"), to, "test", &format!("writer {w} step {i}"));
                        })
                        .unwrap();
                    }
                });
            }
        });
        let st = State::load(&path).unwrap();
        assert_eq!(st.history.len(), writers * each, "every read-modify-write kept the others' changes");
        assert_eq!(st.stages.len(), writers);
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn row(t: i64, mismatch: bool) -> crate::sink::schema::DiffRow {
        crate::sink::schema::DiffRow {
            dims: crate::record::Dims {
                request_id: "r".into(),
                timestamp_us: t,
                tenant: "t".into(),
                route: "r".into(),
                endpoint: "/v1/messages".into(),
                client_protocol: shadowgate_core::Protocol::AnthropicMessages,
                upstream_protocol: None,
                model: "m".into(),
                stream: false,
                mode: "stages".into(),
                compat_profile: String::new(),
                upstream: String::new(),
                attempts: 1,
            },
            runtime_main: "native".into(),
            runtime_shadow: "wasm".into(),
            module: "compat".into(),
            outcome: if mismatch { "mismatch" } else { "match" }.into(),
            diff_class: None,
            rule_id: None,
            diff_paths: Vec::new(),
            summary: "null".into(),
            latency_main_us: 10,
            latency_shadow_us: 11,
            ruleset_version: "v1".into(),
            guest_sha256: String::new(),
            core_version: String::new(),
        }
    }

    #[test]
    fn promotion_rests_on_evidence_from_the_current_stage_after_its_minimum_dwell() {
        let day = 86_400_000_000_i64;
        let now = 1_800_000_000_000_000_i64;
        let promoted_at = now - 4 * day;
        // Bad rows while in shadow, clean rows since the module entered canary.
        let mut rows: Vec<_> = (0..2000).map(|i| row(promoted_at - day + i, i % 2 == 0)).collect();
        rows.extend((0..1500).map(|i| row(promoted_at + 1 + i, false)));
        let at = crate::clock::rfc3339(promoted_at);
        let state = State {
            stages: BTreeMap::from([("compat".into(), Stage::Canary)]),
            history: vec![Change {
                at,
                module: "compat".into(),
                from: Stage::Shadow,
                to: Stage::Canary,
                by: "gate".into(),
                reason: String::new(),
            }],
        };
        let stages = state.stages.clone();
        let cfg = GateConfig::default();
        let v = &judge(&rows, now - 7 * day, now, &cfg, &state, &stages)[2];
        assert_eq!(v.module, Module::Compat);
        assert_eq!((v.verdict, v.comparisons, v.next_stage), (Decision::Pass, 1500, Stage::Default), "{}", v.reason);
        assert!(v.reason.contains("evidence: rows since") && v.reason.contains("in stage canary"), "{}", v.reason);

        // The same evidence one day into canary: held back until 3 days have passed.
        let v = &judge(&rows, now - 7 * day, promoted_at + day, &cfg, &state, &stages)[2];
        assert_eq!((v.verdict, v.next_stage), (Decision::Inconclusive, Stage::Canary), "{}", v.reason);
        assert!(v.reason.starts_with("in canary for 1d 0h of the 3d 0h to observe"), "{}", v.reason);

        // Without a recorded stage change every row in the window counts, the bad ones too.
        let fresh = State { stages: stages.clone(), history: Vec::new() };
        let v = &judge(&rows, now - 7 * day, now, &cfg, &fresh, &stages)[2];
        assert_eq!((v.verdict, v.comparisons), (Decision::Fail, 3500), "{}", v.reason);
    }
}
