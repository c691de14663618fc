//! `shadowgate replay`: re-checks a baseline offline. For every case, each
//! module call runs in the native core and in the candidate guest; the two
//! are diffed, and each is diffed against the primary output recorded in the
//! baseline (regression). Cases run in parallel; the report gives per-module
//! diff, error and regression rates, classes, the top differing paths with
//! example case ids, and the versions of both sides.

use crate::case::{self, Case};
use crate::diff::{DiffResult, Differ, Ruleset};
use crate::plan::{self, ModuleCall};
use crate::sink::schema::decode_cases;
use crate::sink::store::Location;
use crate::sink::{files, read_table, read_table_at};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shadowgate_core::Module;
use shadowgate_runtime::{NativeRuntime, Runtime, WasmConfig, WasmRuntime, panic_message};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

mod shard;

pub use shard::{MergeError, Shard, merge};

/// One case to replay, with the outputs recorded for it (Parquet baselines).
#[derive(Debug, Clone)]
pub struct ReplayCase {
    /// The case.
    pub case: Case,
    /// Recorded primary output per call name; empty for readable cases.
    pub recorded: BTreeMap<String, String>,
    /// Versions the case was recorded under.
    pub versions: BTreeMap<String, String>,
}

/// Input that could not be read (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InputError {
    /// File or folder.
    pub path: String,
    /// Why.
    pub message: String,
}

/// Reads a Parquet baseline (any `.parquet` under the folder; its `cases/`
/// table if it has one) or a folder of readable cases.
pub fn load_input(path: &Path) -> Result<Vec<ReplayCase>, InputError> {
    let err = |message: String| InputError { path: path.display().to_string(), message };
    if path.to_string_lossy().starts_with("s3://") {
        let root = Location::of_path(path).map_err(|e| err(e.to_string()))?;
        // A bucket prefix holds a `cases/` table (a serve's or a baseline's).
        let rows = read_table_at(&root, "cases", None, decode_cases).map_err(err)?;
        if rows.is_empty() {
            return Err(err("no cases table (expected cases/date=…/*.parquet)".into()));
        }
        return Ok(stored(rows));
    }
    if !path.exists() {
        return Err(err("no such file or folder".into()));
    }
    let table = if path.join("cases").is_dir() { path.join("cases") } else { path.to_path_buf() };
    let parquet = path.is_dir() && !files::parquet_files(&table).map_err(|e| err(e.to_string()))?.is_empty();
    if parquet {
        let rows = read_table(&table, decode_cases)
            .map_err(|m| InputError { path: table.display().to_string(), message: m })?;
        return Ok(stored(rows));
    }
    let cases = case::load(path).map_err(|e| InputError { path: e.file.clone(), message: e.to_string() })?;
    if cases.is_empty() {
        return Err(err("no cases (.json, .jsonl or .parquet files)".into()));
    }
    Ok(cases
        .into_iter()
        .map(|case| ReplayCase { case, recorded: BTreeMap::new(), versions: BTreeMap::new() })
        .collect())
}

/// Stored case rows as cases to replay, with their recorded outputs.
fn stored(rows: Vec<crate::sink::schema::StoredCase>) -> Vec<ReplayCase> {
    rows.into_iter().map(|r| ReplayCase { case: r.case, recorded: r.outputs, versions: r.versions }).collect()
}

/// Replay settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only this module.
    pub module: Option<Module>,
    /// Highest tolerated diff (and regression) rate per module.
    pub max_diff_rate: f64,
    /// Highest tolerated error rate per module.
    pub max_error_rate: f64,
    /// Worker threads.
    pub jobs: usize,
    /// Draw a progress bar (else plain progress lines on stderr).
    pub progress_bar: bool,
}

/// A differing path, how often, and example cases.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PathCount {
    /// JSON pointer or `/events/<type>`.
    pub path: String,
    /// Comparisons it differed in.
    pub count: u64,
    /// Up to three case ids.
    pub examples: Vec<String>,
    /// The first example's values at the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example_diff: Option<String>,
}

/// One module's figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModuleReport {
    /// Module.
    pub module: Module,
    /// Calls replayed.
    pub calls: u64,
    /// Native vs candidate disagreements.
    pub mismatches: u64,
    /// Calls where a runtime failed.
    pub errors: u64,
    /// Calls where native or candidate disagreed with the recorded output.
    pub regressions: u64,
    /// `mismatches / calls`.
    pub diff_rate: f64,
    /// `errors / calls`.
    pub error_rate: f64,
    /// `regressions / calls` (0 without recorded outputs).
    pub regression_rate: f64,
    /// Native-vs-candidate mismatches by class (they add up to `mismatches`).
    pub classes: BTreeMap<String, u64>,
    /// Regressions against the recorded outputs by class (they add up to `regressions`).
    pub regression_classes: BTreeMap<String, u64>,
    /// Most frequent differing paths.
    pub top_paths: Vec<PathCount>,
    /// Example case ids of mismatches.
    pub examples: Vec<String>,
}

/// A case whose replay did not finish (a panic in the harness).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseFailure {
    /// The case id.
    pub id: String,
    /// What happened.
    pub error: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// What was replayed.
    pub input: String,
    /// Cases loaded.
    pub cases: usize,
    /// Cases whose every call was replayed and compared.
    pub replayed: usize,
    /// Cases whose replay did not finish; any makes the replay fail (exit 2).
    pub failed: Vec<CaseFailure>,
    /// Module calls.
    pub calls: u64,
    /// Whether recorded outputs were checked.
    pub baseline_outputs: bool,
    /// Ruleset applied.
    pub ruleset: String,
    /// Per module, in module order.
    pub modules: Vec<ModuleReport>,
    /// Versions: native, candidate, and those the baseline was recorded under.
    pub versions: Value,
    /// The thresholds.
    pub thresholds: Value,
    /// Each threshold exceeded, in words.
    pub exceeded: Vec<String>,
    /// The shard replayed (`K/N`), when only one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Wall time (s).
    pub elapsed_s: f64,
    /// Throughput.
    pub cases_per_s: f64,
}

struct CallOutcome {
    module: Module,
    versus: Result<DiffResult, String>,
    regression: Option<DiffResult>,
}

fn run_case(
    c: &ReplayCase,
    native: &dyn Runtime,
    candidate: &dyn Runtime,
    differ: &Differ,
    module: Option<Module>,
) -> Vec<CallOutcome> {
    let ctx = c.case.context();
    let calls: Vec<ModuleCall> = plan::plan(&c.case, &ctx);
    let keys = plan::output_keys(&calls);
    calls
        .iter()
        .zip(keys)
        .filter(|(call, _)| module.is_none_or(|m| m == call.module()))
        .map(|(call, key)| {
            let (a, b) = (plan::execute(native, call), plan::execute(candidate, call));
            let versus = match (&a, &b) {
                (Ok(a), Ok(b)) => Ok(plan::compare(differ, call, a, b)),
                (Err(e), _) => Err(format!("native: {e}")),
                (_, Err(e)) => Err(format!("candidate: {e}")),
            };
            // Each side that ran is compared with the recording; the first that
            // disagrees is the regression shown. Failed runs count as errors above.
            let regression = c.recorded.get(&key).and_then(|rec| {
                let mut diffs =
                    [&a, &b].into_iter().flatten().map(|out| plan::compare(differ, call, rec.as_bytes(), out));
                let first = diffs.next()?;
                if first.agrees() { Some(diffs.find(|d| !d.agrees()).unwrap_or(first)) } else { Some(first) }
            });
            CallOutcome { module: call.module(), versus, regression }
        })
        .collect()
}

/// The runtime replayed against the native core, and what it is.
pub struct Candidate {
    /// The runtime.
    pub runtime: Box<dyn Runtime>,
    /// Its module's SHA-256.
    pub guest_sha256: String,
    /// Where it came from.
    pub source: String,
}

impl Candidate {
    /// A wasm guest as the candidate.
    pub fn wasm(rt: WasmRuntime) -> Candidate {
        let (guest_sha256, source) = (rt.module_sha256().to_string(), rt.source().to_string());
        Candidate { runtime: Box::new(rt), guest_sha256, source }
    }
}

/// Replays `cases` with `candidate` against the native core under `rules`.
pub fn run(input: &str, cases: &[ReplayCase], candidate: &Candidate, rules: Ruleset, opts: &Options) -> Report {
    let start = Instant::now();
    let differ = Differ::new(rules);
    let native = NativeRuntime::new();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let bar = if opts.progress_bar && std::io::stderr().is_terminal() {
        let b = ProgressBar::new(cases.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{spinner} replay [{bar:40}] {pos}/{len} cases {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Some(b)
    } else {
        None
    };
    let step = (cases.len() / 10).max(1);
    let results: Vec<(usize, Result<Vec<CallOutcome>, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..opts.jobs.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(c) = cases.get(i) else { break };
                        // A panic in one case is that case's failure, never a silent gap.
                        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            run_case(c, &native, candidate.runtime.as_ref(), &differ, opts.module)
                        }))
                        .map_err(|p| panic_message(p.as_ref()));
                        out.push((i, outcome));
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        match &bar {
                            Some(b) => b.inc(1),
                            None if opts.progress_bar && (n.is_multiple_of(step) || n == cases.len()) => {
                                eprintln!("replay: {n}/{} cases", cases.len())
                            }
                            None => {}
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| vec![(usize::MAX, Err(panic_message(p.as_ref())))]))
            .collect()
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut modules: BTreeMap<Module, Acc> = BTreeMap::new();
    let mut failed = Vec::new();
    let mut replayed = 0;
    for (i, outcomes) in &results {
        let id = cases.get(*i).map_or("(a replay worker)", |c| c.case.id.as_str());
        let outcomes = match outcomes {
            Ok(o) => o,
            Err(e) => {
                failed.push(CaseFailure { id: id.into(), error: e.clone() });
                continue;
            }
        };
        replayed += 1;
        for o in outcomes {
            modules.entry(o.module).or_default().add(id, o);
        }
    }
    // `Module`'s order is the catalog's.
    let reports: Vec<ModuleReport> = modules.into_iter().map(|(m, acc)| acc.report(m)).collect();
    let exceeded = exceeded(&reports, opts.max_diff_rate, opts.max_error_rate);
    let mut baseline: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for c in cases {
        for (k, v) in &c.versions {
            baseline.entry(k).or_default().insert(v);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    Report {
        input: input.into(),
        cases: cases.len(),
        replayed,
        failed,
        calls: reports.iter().map(|r| r.calls).sum(),
        baseline_outputs: cases.iter().any(|c| !c.recorded.is_empty()),
        ruleset: differ.ruleset().version(),
        modules: reports,
        versions: json!({
            "native": {"core_version": shadowgate_core::dispatch::CORE_VERSION,
                       "modules": Module::ALL.iter().map(|m| (m.as_str(), m.version())).collect::<BTreeMap<_, _>>()},
            "candidate": {"guest_sha256": candidate.guest_sha256, "source": candidate.source,
                          "core_version": candidate.runtime.capabilities().core_version,
                          "modules": candidate.runtime.capabilities().modules},
            "baseline": baseline,
        }),
        thresholds: json!({"max_diff_rate": opts.max_diff_rate, "max_error_rate": opts.max_error_rate}),
        exceeded,
        shard: None,
        elapsed_s: elapsed,
        cases_per_s: replayed as f64 / elapsed.max(1e-9),
    }
}

/// Each threshold the module figures exceed, in words.
fn exceeded(reports: &[ModuleReport], max_diff_rate: f64, max_error_rate: f64) -> Vec<String> {
    let mut exceeded = Vec::new();
    for r in reports {
        let pct = |x: f64| format!("{:.2}%", x * 100.0);
        if r.diff_rate > max_diff_rate {
            exceeded.push(format!(
                "{}: native vs candidate diff rate {} > {} ({} of {} calls)",
                r.module,
                pct(r.diff_rate),
                pct(max_diff_rate),
                r.mismatches,
                r.calls
            ));
        }
        if r.regression_rate > max_diff_rate {
            exceeded.push(format!(
                "{}: regression vs the baseline {} > {} ({} of {} calls)",
                r.module,
                pct(r.regression_rate),
                pct(max_diff_rate),
                r.regressions,
                r.calls
            ));
        }
        if r.error_rate > max_error_rate {
            exceeded.push(format!(
                "{}: error rate {} > {} ({} of {} calls)",
                r.module,
                pct(r.error_rate),
                pct(max_error_rate),
                r.errors,
                r.calls
            ));
        }
    }
    exceeded
}

#[derive(Default)]
struct Acc {
    calls: u64,
    mismatches: u64,
    errors: u64,
    regressions: u64,
    with_recorded: bool,
    classes: BTreeMap<String, u64>,
    regression_classes: BTreeMap<String, u64>,
    paths: BTreeMap<String, PathCount>,
    examples: Vec<String>,
}

impl Acc {
    fn divergence(&mut self, id: &str, d: &DiffResult, regression: bool) {
        if let Some(c) = d.class {
            let classes = if regression { &mut self.regression_classes } else { &mut self.classes };
            *classes.entry(c.as_str().into()).or_default() += 1;
        }
        for p in &d.paths {
            let e = self.paths.entry(p.clone()).or_insert_with(|| PathCount {
                path: p.clone(),
                count: 0,
                examples: Vec::new(),
                example_diff: crate::diff::example::render(&d.summary.to_value(), p),
            });
            e.count += 1;
            if e.examples.len() < 3 && !e.examples.iter().any(|x| x == id) {
                e.examples.push(id.to_string());
            }
        }
    }

    fn add(&mut self, id: &str, o: &CallOutcome) {
        self.calls += 1;
        match &o.versus {
            Ok(d) if d.agrees() => {}
            Ok(d) => {
                self.mismatches += 1;
                self.divergence(id, d, false);
                if self.examples.len() < 5 && !self.examples.iter().any(|x| x == id) {
                    self.examples.push(id.to_string());
                }
            }
            Err(_) => self.errors += 1,
        }
        if let Some(r) = &o.regression {
            self.with_recorded = true;
            if !r.agrees() {
                self.regressions += 1;
                self.divergence(id, r, true);
            }
        }
    }

    fn report(self, module: Module) -> ModuleReport {
        let rate = |n: u64| if self.calls == 0 { 0.0 } else { n as f64 / self.calls as f64 };
        let mut top: Vec<PathCount> = self.paths.into_values().collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then(a.path.cmp(&b.path)));
        top.truncate(10);
        ModuleReport {
            module,
            calls: self.calls,
            mismatches: self.mismatches,
            errors: self.errors,
            regressions: self.regressions,
            diff_rate: rate(self.mismatches),
            error_rate: rate(self.errors),
            regression_rate: if self.with_recorded { rate(self.regressions) } else { 0.0 },
            classes: self.classes,
            regression_classes: self.regression_classes,
            top_paths: top,
            examples: self.examples,
        }
    }
}

/// Mismatch classes, then regression classes labelled as such (`logic:3,regress logic:3`).
fn class_counts(m: &ModuleReport, sep: &str, join: &str) -> String {
    let diffs = m.classes.iter().map(|(k, v)| format!("{k}{sep}{v}"));
    let regressions = m.regression_classes.iter().map(|(k, v)| format!("regress {k}{sep}{v}"));
    diffs.chain(regressions).collect::<Vec<_>>().join(join)
}

/// The report as an aligned text table (stdout).
pub fn render_text(r: &Report) -> String {
    let mut s = format!(
        "replayed {} of {} cases ({} module calls) from {} in {:.2} s ({:.0} cases/s), ruleset {}\n",
        r.replayed, r.cases, r.calls, r.input, r.elapsed_s, r.cases_per_s, r.ruleset
    );
    s += &format!(
        "candidate guest {} ({})\n\n",
        r.versions["candidate"]["guest_sha256"].as_str().unwrap_or("").get(..12).unwrap_or(""),
        r.versions["candidate"]["source"].as_str().unwrap_or("")
    );
    s += &format!(
        "{:<10} {:>7} {:>9} {:>9} {:>7} {:>11}  top differing paths\n",
        "module", "calls", "diff", "regress", "errors", "classes"
    );
    for m in &r.modules {
        let classes = class_counts(m, ":", ",");
        let paths: Vec<String> = m
            .top_paths
            .iter()
            .take(3)
            .map(|p| format!("{} ×{} (e.g. {})", p.path, p.count, p.examples.join(", ")))
            .collect();
        s += &format!(
            "{:<10} {:>7} {:>8.2}% {:>8.2}% {:>7} {:>11}  {}\n",
            m.module,
            m.calls,
            m.diff_rate * 100.0,
            m.regression_rate * 100.0,
            m.errors,
            if classes.is_empty() { "-".into() } else { classes },
            paths.join("; ")
        );
    }
    for f in &r.failed {
        s += &format!("\nreplay of case {} failed: {}\n", f.id, f.error);
    }
    if r.exceeded.is_empty() {
        s += "\nwithin thresholds\n";
    } else {
        s += "\nthresholds exceeded:\n";
        for e in &r.exceeded {
            s += &format!("  {e}\n");
        }
    }
    s
}

/// The report as Markdown (for CI job summaries and PR comments).
pub fn render_markdown(r: &Report) -> String {
    let mut s = format!(
        "## shadowgate replay: {}\n\n{} of {} cases replayed, {} module calls, ruleset `{}`, candidate guest `{}`.\n\n",
        if !r.failed.is_empty() {
            "replay failed"
        } else if r.exceeded.is_empty() {
            "within thresholds"
        } else {
            "thresholds exceeded"
        },
        r.replayed,
        r.cases,
        r.calls,
        r.ruleset,
        r.versions["candidate"]["guest_sha256"].as_str().unwrap_or("")
    );
    s += "| module | calls | diff rate | regression rate | error rate | classes | top paths (example cases) |\n";
    s += "|---|---:|---:|---:|---:|---|---|\n";
    for m in &r.modules {
        let classes = class_counts(m, ": ", ", ");
        let paths: Vec<String> = m
            .top_paths
            .iter()
            .take(3)
            .map(|p| format!("`{}` ×{} ({})", p.path, p.count, p.examples.join(", ")))
            .collect();
        s += &format!(
            "| {} | {} | {:.2}% | {:.2}% | {:.2}% | {} | {} |\n",
            m.module,
            m.calls,
            m.diff_rate * 100.0,
            m.regression_rate * 100.0,
            m.error_rate * 100.0,
            classes,
            paths.join("<br>")
        );
    }
    for e in &r.exceeded {
        s += &format!("\n- **exceeded**: {e}");
    }
    for f in &r.failed {
        s += &format!("\n- **replay failed** on case `{}`: {}", f.id, f.error);
    }
    s + "\n"
}

/// Loads the candidate: `--guest PATH`, else the embedded guest.
pub fn candidate(guest: Option<&PathBuf>) -> Result<Candidate, InputError> {
    let cfg = WasmConfig::default();
    let rt = match guest {
        Some(p) => WasmRuntime::from_file(p, cfg)
            .map_err(|e| InputError { path: p.display().to_string(), message: e.to_string() })?,
        None => WasmRuntime::embedded(cfg)
            .map_err(|e| InputError { path: "embedded guest".into(), message: e.to_string() })?,
    };
    Ok(Candidate::wasm(rt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowgate_runtime::{Capabilities, RuntimeError, RuntimeKind, Stream};

    /// The native core, except that it panics (outside any guard) on one case's requests.
    struct PanicsOn(NativeRuntime, &'static str);

    impl Runtime for PanicsOn {
        fn kind(&self) -> RuntimeKind {
            RuntimeKind::Wasm
        }
        fn capabilities(&self) -> &Capabilities {
            self.0.capabilities()
        }
        fn call(&self, op: &str, input: &[u8]) -> Result<Vec<u8>, RuntimeError> {
            if String::from_utf8_lossy(input).contains(self.1) {
                panic!("the harness broke on this input");
            }
            self.0.call(op, input)
        }
        fn open_stream(&self, options: &[u8]) -> Result<Box<dyn Stream>, RuntimeError> {
            self.0.open_stream(options)
        }
    }

    #[test]
    fn a_case_that_panics_fails_the_replay_by_name() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cases = load_input(&root.join("replay/cases")).unwrap();
        let target = cases.iter().find(|c| c.case.upstream_response.is_some()).unwrap();
        let model = target.case.request["model"].as_str().unwrap().to_string();
        let marker: &'static str = Box::leak(format!("\"model\":\"{model}\"").into_boxed_str());
        let runtime = Box::new(PanicsOn(NativeRuntime::new(), marker));
        let candidate = Candidate { runtime, guest_sha256: "test".into(), source: "test".into() };
        let opts = Options { module: None, max_diff_rate: 0.0, max_error_rate: 0.0, jobs: 2, progress_bar: false };
        let report = run("cases", &cases, &candidate, Ruleset::load(None).unwrap(), &opts);
        let expected: Vec<&str> =
            cases.iter().filter(|c| c.case.request["model"] == model.as_str()).map(|c| c.case.id.as_str()).collect();
        assert!(!report.failed.is_empty());
        assert_eq!(report.failed.len(), expected.len());
        assert!(report.failed.iter().all(|f| expected.contains(&f.id.as_str())), "{:?}", report.failed);
        assert_eq!(report.replayed + report.failed.len(), report.cases);
        assert!(report.failed[0].error.contains("the harness broke"));
        assert!(render_text(&report).contains(&format!("replayed {} of {} cases", report.replayed, report.cases)));
    }
}
