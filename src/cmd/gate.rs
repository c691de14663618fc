//! `gate`: per-module verdicts; with `--apply`, the new stages in the state file.

use super::{CmdError, CmdResult, Context, TextOrJson, print};
use crate::gate::{self, Decision, State, Verdict};
use crate::proxy::config::Config;
use crate::report::{self, DataReport, Dim};
use crate::stage::Stage;
use shadowgate_core::Module;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags of `gate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data dir, `s3://bucket/prefix`, or a `report --format json --by module` file.
    pub input: PathBuf,
    /// Config with `[gate]` thresholds and `modules.state_file`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// State file (default: the config's, else `<data_dir>/state/modules.json`).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Observation window (default: the config's `gate.window`, 24h).
    #[arg(long)]
    pub since: Option<String>,
    /// Write the new stages to the state file (a running serve picks them up).
    #[arg(long)]
    pub apply: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextOrJson,
}

/// Prints the verdicts; exit 1 if any module fails.
pub fn run(a: Args) -> CmdResult {
    let input = read_input(&a.input)?;
    let table = matches!(input, Input::Table);
    let setup = Setup::load(&a.input, table, a.config.as_deref(), a.state)?;
    let state_file =
        setup.state_file.clone().ok_or_else(|| CmdError::input("no state file: pass --state or --config"))?;
    let Setup { cfg, gate: gate_cfg, state: st, stages, .. } = setup;
    let window = a.since.as_deref().unwrap_or(&gate_cfg.window);
    let cut = report::cutoff_us(window).context("gate.window")?;
    let now = crate::clock::now_us();
    let (verdicts, rows) = match &input {
        Input::Table => {
            let (mut tally, mut rows) = (gate::Tally::new(cut, &st, &stages), 0u64);
            report::scan(&a.input, Some(cut), &mut |r| {
                rows += 1;
                tally.push(r);
            })?;
            (tally.verdicts(now, &gate_cfg), rows)
        }
        // An aggregated report: its rows cannot be split by stage; the dwell counts from the
        // stage change in the history, else from the report's first row.
        Input::Report(r) => {
            let verdicts = gate::verdicts(r, &gate_cfg, &stages)
                .into_iter()
                .map(|v| {
                    let entered = st.entered(v.module.as_str(), v.stage);
                    let evidence =
                        gate::Evidence { since_us: r.span_us.0, observed_since_us: entered.or(Some(r.span_us.0)) };
                    gate::with_dwell(v, evidence, now, &gate_cfg)
                })
                .collect();
            (verdicts, r.rows)
        }
    };
    let mut verdicts = verdicts;
    if let Some(c) = &cfg {
        gate::assign_owners(&mut verdicts, &c.owners);
    }
    let mut text = format!("gate over {window} of {} ({rows} rows)\n", a.input.display());
    text += &gate::render_table(&verdicts);
    if a.apply {
        if let Some(c) = &cfg {
            text += &hidden_stages(c);
        }
        let (mut changed, mut moved) = (0, Vec::new());
        State::update(&state_file, |st| (changed, moved) = apply(st, &verdicts))?;
        text += &format!("applied: {changed} stage change(s) written to {}\n", state_file.display());
        for m in moved {
            text += &format!("not applied to {m}: its stage changed while the gate ran; run the gate again\n");
        }
    }
    print(&match a.format {
        TextOrJson::Text => text,
        TextOrJson::Json => serde_json::to_string_pretty(&verdicts)? + "\n",
    });
    let failed = verdicts.iter().any(|v| v.verdict == Decision::Fail);
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// What the gate judges with: the config (if any), its `[gate]`, the state
/// file and what it holds, and each module's stage (the state's, else the config's).
pub(super) struct Setup {
    pub cfg: Option<Config>,
    pub gate: gate::GateConfig,
    pub state_file: Option<PathBuf>,
    pub state: State,
    pub stages: BTreeMap<String, Stage>,
}

impl Setup {
    /// The state file is `state`, else the config's, else `<input>/state/modules.json` for a
    /// local data dir (`table`), else the config's data dir's; a bucket holds none.
    pub(super) fn load(
        input: &Path,
        table: bool,
        config: Option<&Path>,
        state: Option<PathBuf>,
    ) -> Result<Setup, CmdError> {
        let cfg = config.map(Config::load).transpose()?;
        let gate = cfg.as_ref().map(|c| c.gate.clone()).unwrap_or_default();
        let data_dir = (table && !is_object_url(input)).then(|| input.to_path_buf());
        let state_file = state
            .or_else(|| cfg.as_ref().and_then(|c| c.modules.state_file.clone()))
            .or_else(|| data_dir.map(|d| d.join("state/modules.json")))
            .or_else(|| cfg.as_ref().map(|c| c.sink.data_dir.join("state/modules.json")));
        let state = state_file.as_deref().map(State::load).transpose()?.unwrap_or_default();
        let mut stages = state.stages.clone();
        if let Some(c) = &cfg {
            for m in Module::ALL {
                stages.entry(m.as_str().to_string()).or_insert_with(|| c.modules.stage(m));
            }
        }
        Ok(Setup { cfg, gate, state_file, state, stages })
    }
}

/// Warnings for modes in `c` that override the stages `--apply` writes.
fn hidden_stages(c: &Config) -> String {
    let mut w = String::new();
    if let Some(m) = c.mode {
        w += &format!(
            "warning: the config sets mode = \"{m}\" globally: serving follows it, not the stages, until it is unset\n"
        );
    }
    let tenants: Vec<&str> = c.tenants.iter().filter(|t| t.mode.is_some()).map(|t| t.name.as_str()).collect();
    let routes: Vec<&str> = c.routes.iter().filter(|r| r.mode.is_some()).map(|r| r.id.as_str()).collect();
    if !tenants.is_empty() || !routes.is_empty() {
        w += &format!(
            "warning: a mode set for tenants [{}] and routes [{}] overrides the stages for their requests\n",
            tenants.join(", "),
            routes.join(", ")
        );
    }
    w
}

/// `s3://bucket/prefix`: the tables of a fleet.
pub(super) fn is_object_url(input: &Path) -> bool {
    input.to_string_lossy().starts_with("s3://")
}

/// What the gate judges: the `diffs` table of a data dir or bucket (streamed), or an aggregated report.
enum Input {
    Table,
    Report(Box<DataReport>),
}

/// A data dir or bucket, or a report JSON grouped by module.
fn read_input(input: &Path) -> Result<Input, CmdError> {
    if input.is_dir() || is_object_url(input) {
        return Ok(Input::Table);
    }
    let text = std::fs::read_to_string(input).context(input.display())?;
    let r: DataReport = serde_json::from_str(&text).context(format_args!("{}: not a report JSON", input.display()))?;
    if r.by != [Dim::Module] {
        return Err(CmdError::input(format!(
            "{}: the report must be grouped by module only (report --by module --format json)",
            input.display()
        )));
    }
    Ok(Input::Report(Box::new(r)))
}

/// Writes each verdict's next stage into the state (as read under the lock):
/// the number of changes, and the modules left alone because their stage is
/// no longer the one the verdict judged (another writer moved them).
fn apply(st: &mut State, verdicts: &[Verdict]) -> (usize, Vec<Module>) {
    let (mut changed, mut moved) = (0, Vec::new());
    for v in verdicts {
        let current = *st.stages.entry(v.module.as_str().into()).or_insert(v.stage);
        if current != v.stage {
            moved.push(v.module);
            continue;
        }
        if st.set(v.module.as_str(), v.next_stage, "gate", &format!("{:?}: {}", v.verdict, v.reason).to_lowercase()) {
            changed += 1;
        }
    }
    (changed, moved)
}
