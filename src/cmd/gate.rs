//! `gate`: per-module verdicts; with `--apply`, the new stages in the state file.

use super::{CmdError, CmdResult, Context, TextOrJson, print};
use crate::gate::{self, Decision, State, Verdict};
use crate::proxy::config::Config;
use crate::report::{self, DataReport, Dim};
use crate::sink::schema::DiffRow;
use shadowgate_core::Module;
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
    let cfg = a.config.as_deref().map(Config::load).transpose()?;
    let gate_cfg = cfg.as_ref().map(|c| c.gate.clone()).unwrap_or_default();
    let window = a.since.as_deref().unwrap_or(&gate_cfg.window);
    let cut = report::cutoff_us(window).context("gate.window")?;
    let input = read_input(&a.input, cut)?;
    // A bucket holds no state file: that comes from --state or the config.
    let data_dir = (matches!(input, Input::Rows(_)) && !is_object_url(&a.input)).then(|| a.input.clone());
    let state_file = a
        .state
        .or_else(|| cfg.as_ref().and_then(|c| c.modules.state_file.clone()))
        .or_else(|| data_dir.map(|d| d.join("state/modules.json")))
        .or_else(|| cfg.as_ref().map(|c| c.sink.data_dir.join("state/modules.json")))
        .ok_or_else(|| CmdError::input("no state file: pass --state or --config"))?;
    let st = State::load(&state_file)?;
    let mut stages = st.stages.clone();
    if let Some(c) = &cfg {
        for m in Module::ALL {
            stages.entry(m.as_str().to_string()).or_insert_with(|| c.modules.stage(m));
        }
    }
    let now = crate::clock::now_us();
    let (verdicts, rows) = match &input {
        Input::Rows(rows) => (gate::judge(rows, cut, now, &gate_cfg, &st, &stages), rows.len() as u64),
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

/// The report to judge: built from a data dir over `window`, or read from a report JSON.
/// `s3://bucket/prefix`: the tables of a fleet.
fn is_object_url(input: &Path) -> bool {
    input.to_string_lossy().starts_with("s3://")
}

/// What the gate judges: the rows of a data dir, or an aggregated report.
enum Input {
    Rows(Vec<DiffRow>),
    Report(DataReport),
}

/// The rows of a data dir since `cut`, or a report JSON grouped by module.
fn read_input(input: &Path, cut: i64) -> Result<Input, CmdError> {
    if input.is_dir() || is_object_url(input) {
        return Ok(Input::Rows(report::load(input, Some(cut))?));
    }
    let text = std::fs::read_to_string(input).context(input.display())?;
    let r: DataReport = serde_json::from_str(&text).context(format_args!("{}: not a report JSON", input.display()))?;
    if r.by != [Dim::Module] {
        return Err(CmdError::input(format!(
            "{}: the report must be grouped by module only (report --by module --format json)",
            input.display()
        )));
    }
    Ok(Input::Report(r))
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
