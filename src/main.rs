//! The `shadowgate` binary: parses flags and calls the library.

use clap::{Parser, Subcommand};
use shadowgate::convert::{self, ConvertOptions, Kind};
use shadowgate::diff_cmd::{self, DiffKindArg};
use shadowgate::noise_probe;
use shadowgate::runtime::{RuntimeKind, WasmConfig, WasmRuntime};
use shadowgate_core::{Context, Protocol};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Shadow-traffic, dual-runtime migration harness for an LLM API conversion core.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Table,
    Json,
    Md,
    Html,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RuntimeArg {
    Native,
    Wasm,
}

#[derive(Subcommand)]
enum BaselineCommand {
    /// Turn a folder of readable cases into a redacted, versioned Parquet baseline.
    Build {
        /// Folder (or file) of cases (.json / .jsonl).
        cases: PathBuf,
        /// Output folder; the table goes to `<out>/cases/date=…/`.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Convert a request, response or stream read from stdin; write the result to stdout.
    Convert {
        /// Source protocol: openai-chat or anthropic-messages.
        #[arg(long, value_parser = parse_protocol)]
        from: Protocol,
        /// Target protocol: openai-chat or anthropic-messages.
        #[arg(long, value_parser = parse_protocol)]
        to: Protocol,
        /// What stdin holds.
        #[arg(long, value_enum)]
        kind: Kind,
        /// Which runtime runs the core.
        #[arg(long, value_enum, default_value = "native")]
        runtime: RuntimeArg,
        /// A wasm guest to load instead of the embedded one (implies --runtime wasm).
        #[arg(long)]
        guest: Option<PathBuf>,
        /// Compat profile (default: the upstream protocol's).
        #[arg(long)]
        profile: Option<String>,
        /// Upstream model to put in a converted request.
        #[arg(long)]
        model: Option<String>,
        /// Request id the generated ids derive from.
        #[arg(long, default_value = "req_cli")]
        request_id: String,
        /// `created` timestamp (Unix seconds); default: now.
        #[arg(long)]
        created: Option<i64>,
        /// Streams to OpenAI clients: end with the usage chunk.
        #[arg(long)]
        include_usage: bool,
    },
    /// Print the capabilities of the wasm guest (embedded, or --guest).
    GuestInfo {
        /// A wasm guest to inspect instead of the embedded one.
        #[arg(long)]
        guest: Option<PathBuf>,
    },
    /// Compare two captured outputs (JSON bodies or raw SSE) as the shadow path does.
    /// Exit 0 on match or ignored, 1 on mismatch, 2 on bad input.
    Diff {
        /// Protocol of both outputs.
        #[arg(long, value_parser = parse_protocol)]
        protocol: Protocol,
        /// What the files hold.
        #[arg(long, value_enum)]
        kind: DiffKindArg,
        /// Left (primary) output.
        a: PathBuf,
        /// Right (shadow) output.
        b: PathBuf,
        /// Ruleset: a file, or a published version such as `v1` (default: rulesets/CURRENT).
        #[arg(long)]
        ruleset: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Learn noise: run the same runtime twice with different contexts over
    /// cases and propose the paths that differ as a new ruleset version.
    NoiseProbe {
        /// A case file or folder (readable case format).
        cases: PathBuf,
        /// Candidate guest compared with the native runtime (default: the embedded guest).
        #[arg(long)]
        guest: Option<PathBuf>,
        /// Ruleset the proposal starts from (default: rulesets/CURRENT).
        #[arg(long)]
        ruleset: Option<String>,
        /// Where to write the proposal (default: rulesets/proposed-vN+1.toml).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the proxy in front of the configured upstreams.
    Serve {
        /// Config file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Listen address (overrides the config).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Baselines: replayable Parquet `cases` tables.
    Baseline {
        #[command(subcommand)]
        command: BaselineCommand,
    },
    /// Replay a baseline (Parquet, or a folder of readable cases) in both runtimes.
    /// Exit 0 within thresholds, 1 if one is exceeded, 2 on bad arguments or input.
    Replay {
        /// Baseline folder (Parquet `cases` table) or folder of readable cases.
        input: PathBuf,
        /// Candidate guest (default: the embedded one).
        #[arg(long)]
        guest: Option<PathBuf>,
        /// Ruleset: a file or a published version such as `v1` (default: rulesets/CURRENT).
        #[arg(long)]
        ruleset: Option<String>,
        /// Only this module.
        #[arg(long)]
        module: Option<String>,
        /// Write the JSON report here.
        #[arg(long)]
        report_json: Option<PathBuf>,
        /// Write the Markdown report here.
        #[arg(long)]
        report_md: Option<PathBuf>,
        /// Highest diff (and regression) rate per module.
        #[arg(long, default_value_t = 0.0)]
        max_diff_rate: f64,
        /// Highest error rate per module.
        #[arg(long, default_value_t = 0.0)]
        max_error_rate: f64,
        /// Worker threads (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Diff-rate report from the `diffs` table of a data dir.
    Report {
        /// Data dir (the sink's `data_dir`).
        data_dir: PathBuf,
        /// Only rows newer than this (`30m`, `24h`, `7d`).
        #[arg(long)]
        since: Option<String>,
        /// Dimensions to group by.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "module")]
        by: Vec<shadowgate::report::Dim>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Per-module verdicts (pass: may promote, fail: roll back, inconclusive). Exit 1 if any fails.
    Gate {
        /// Data dir, or a `report --format json --by module` file.
        input: PathBuf,
        /// Config with `[gate]` thresholds and `modules.state_file`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// State file (default: the config's, else `<data_dir>/state/modules.json`).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Observation window (default: the config's `gate.window`, 24h).
        #[arg(long)]
        since: Option<String>,
        /// Write the new stages to the state file (a running serve picks them up).
        #[arg(long)]
        apply: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Run an OpenAI- and Anthropic-compatible fake provider.
    MockUpstream {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: std::net::SocketAddr,
        /// Answer `x-mock-case: <id>` from this case folder.
        #[arg(long)]
        cases: Option<PathBuf>,
    },
    /// The whole loop on loopback: mock upstream, proxy in shadow mode, a mixed
    /// workload, Parquet tables, report, gate verdicts, and a candidate caught diverging.
    Demo {
        /// Requests to send.
        #[arg(long, default_value_t = 400)]
        requests: usize,
        /// Where the Parquet tables go.
        #[arg(long, default_value = "shadowgate-demo-data")]
        data_dir: PathBuf,
    },
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    Protocol::parse(s, "").map_err(|e| e.message)
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shadowgate: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Convert { from, to, kind, runtime, guest, profile, model, request_id, created, include_usage } => {
            let kind_rt = if guest.is_some() { RuntimeKind::Wasm } else { runtime_kind(runtime) };
            let rt = convert::build_runtime(kind_rt, guest.as_deref())?;
            let mut input = Vec::new();
            std::io::stdin().read_to_end(&mut input)?;
            let ctx = Context { request_id, created: created.unwrap_or_else(now), id_seed: 0 };
            let opts = ConvertOptions { from, to, kind, ctx, profile, model, include_usage };
            let stdout = std::io::stdout();
            match convert::convert(rt.as_ref(), &opts, &input, &mut stdout.lock()) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("shadowgate: {e}");
                    Ok(ExitCode::from(e.exit_code()))
                }
            }
        }
        Command::GuestInfo { guest } => {
            let rt = match guest {
                Some(p) => WasmRuntime::from_file(&p, WasmConfig::default())?,
                None => WasmRuntime::embedded(WasmConfig::default())?,
            };
            let text = serde_json::to_string_pretty(&convert::guest_info(&rt))?;
            // A closed stdout (e.g. `| head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff { protocol, kind, a, b, ruleset, format } => {
            let res = match diff_cmd::run(protocol, kind, &a, &b, ruleset.as_deref()) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("shadowgate: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let text = match format {
                Format::Text => diff_cmd::render_text(&res),
                Format::Json => serde_json::to_string_pretty(&res)? + "\n",
            };
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            Ok(if res.agrees() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::NoiseProbe { cases, guest, ruleset, out } => {
            let cases = shadowgate::case::load(&cases)?;
            let rules = shadowgate::diff::Ruleset::load(ruleset.as_deref())?;
            let native = shadowgate::runtime::NativeRuntime::new();
            let candidate = convert::build_runtime(RuntimeKind::Wasm, guest.as_deref())?;
            let report = noise_probe::probe(&cases, &native, candidate.as_ref(), &rules);
            let mut text = format!(
                "probed {} cases, {} module calls; {} unstable under a repeated context\n",
                report.cases, report.calls, report.unstable_calls
            );
            for p in &report.paths {
                text += &format!(
                    "{:<10} {:<9} {:<19} {:<40} raw {:>3}  noise {:>3}{}\n",
                    p.module,
                    p.kind,
                    p.protocol,
                    p.path,
                    p.raw,
                    p.noise,
                    if p.noise > 0 && p.covered {
                        "  (covered)"
                    } else if p.noise > 0 {
                        "  (proposed)"
                    } else {
                        ""
                    }
                );
            }
            let created = shadowgate::gate::now_rfc3339();
            match noise_probe::proposal(&report, &rules, &created) {
                Some(proposal) => {
                    let path = out.unwrap_or_else(|| {
                        PathBuf::from(format!("rulesets/proposed-v{}.toml", rules.file.version + 1))
                    });
                    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                    anyhow::ensure!(
                        !name.starts_with("diff_ruleset_v"),
                        "refusing to write {name}: published rulesets are never edited"
                    );
                    std::fs::write(&path, proposal)?;
                    text += &format!("proposal written to {}\n", path.display());
                }
                None => text += "the current ruleset covers every noisy path; nothing to propose\n",
            }
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            Ok(if report.unstable_calls == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Serve { config, listen } => {
            let config = match shadowgate::proxy::config::Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("shadowgate: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            tokio_runtime()?.block_on(shadowgate::proxy::serve(config, listen))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Baseline { command: BaselineCommand::Build { cases, out } } => {
            let redactor = match shadowgate::sink::redact::Redactor::from_env(&[]) {
                Ok(r) => r,
                Err(_) => {
                    eprintln!(
                        "shadowgate: warning: {} is not set; PII in these cases is hashed under a one-off key",
                        shadowgate::sink::redact::KEY_ENV
                    );
                    shadowgate::sink::redact::Redactor::ephemeral(&[])
                }
            };
            let wasm = WasmRuntime::embedded(WasmConfig::default())?;
            let versions = shadowgate::sink::Versions::current(wasm.module_sha256(), "baseline");
            let ruleset = shadowgate::diff::Ruleset::load(None)?.version();
            match shadowgate::baseline::build(&cases, &out, &redactor, &versions, &ruleset) {
                Ok(built) => {
                    for f in &built.files {
                        println!("{} cases → {}", built.cases, f.display());
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("shadowgate: {e:#}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::MockUpstream { listen, cases } => {
            tokio_runtime()?.block_on(shadowgate::proxy::serve_mock(listen, cases))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { requests, data_dir } => {
            let text = tokio_runtime()?.block_on(shadowgate::demo::run(requests, data_dir))?;
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            input,
            guest,
            ruleset,
            module,
            report_json,
            report_md,
            max_diff_rate,
            max_error_rate,
            jobs,
        } => {
            let bad = |e: &dyn std::fmt::Display| {
                eprintln!("shadowgate: {e}");
                Ok(ExitCode::from(2))
            };
            if let Some(m) = &module
                && !shadowgate::proxy::config::MODULES.contains(&m.as_str())
            {
                return bad(&format!("--module {m}: unknown module"));
            }
            let rules = match shadowgate::diff::Ruleset::load(ruleset.as_deref()) {
                Ok(r) => r,
                Err(e) => return bad(&e),
            };
            let cases = match shadowgate::replay::load_input(&input) {
                Ok(c) => c,
                Err(e) => return bad(&e),
            };
            let candidate = match shadowgate::replay::candidate(guest.as_ref()) {
                Ok(c) => c,
                Err(e) => return bad(&e),
            };
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            let opts = shadowgate::replay::Options { module, max_diff_rate, max_error_rate, jobs, progress_bar: true };
            let report = shadowgate::replay::run(&input.display().to_string(), &cases, &candidate, rules, &opts);
            if let Some(p) = report_json {
                std::fs::write(p, serde_json::to_string_pretty(&report)? + "\n")?;
            }
            if let Some(p) = report_md {
                std::fs::write(p, shadowgate::replay::render_markdown(&report))?;
            }
            let _ = std::io::stdout().lock().write_all(shadowgate::replay::render_text(&report).as_bytes());
            Ok(if report.exceeded.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Report { data_dir, since, by, format, out } => {
            let cut = match since.as_deref().map(shadowgate::report::parse_since).transpose() {
                Ok(d) => d.map(|d| now() * 1_000_000 - d.as_micros() as i64),
                Err(e) => {
                    eprintln!("shadowgate: --since {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let rows = match shadowgate::report::load(&data_dir, cut) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("shadowgate: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let report = shadowgate::report::build(&rows, &by);
            let text = match format {
                ReportFormat::Table => shadowgate::report::render_table(&report),
                ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
                ReportFormat::Md => shadowgate::report::render_markdown(&report),
                ReportFormat::Html => shadowgate::report::render_html(&report),
            };
            match out {
                Some(p) => std::fs::write(p, text)?,
                None => {
                    let _ = std::io::stdout().lock().write_all(text.as_bytes());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Gate { input, config, state, since, apply, format } => {
            match gate_cmd(&input, config.as_deref(), state, since.as_deref(), apply) {
                Ok((verdicts, text)) => {
                    let text = match format {
                        Format::Text => text,
                        Format::Json => serde_json::to_string_pretty(&verdicts)? + "\n",
                    };
                    let _ = std::io::stdout().lock().write_all(text.as_bytes());
                    let failed = verdicts.iter().any(|v| v.verdict == shadowgate::gate::Decision::Fail);
                    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
                }
                Err(e) => {
                    eprintln!("shadowgate: {e:#}");
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}

/// `gate`: verdicts from a data dir or a report JSON; with `apply`, new stages in the state file.
fn gate_cmd(
    input: &std::path::Path,
    config: Option<&std::path::Path>,
    state: Option<PathBuf>,
    since: Option<&str>,
    apply: bool,
) -> anyhow::Result<(Vec<shadowgate::gate::Verdict>, String)> {
    use shadowgate::gate;
    let cfg = config.map(shadowgate::proxy::config::Config::load).transpose()?;
    let gate_cfg = cfg.as_ref().map(|c| c.gate.clone()).unwrap_or_default();
    let window = since.unwrap_or(&gate_cfg.window);
    let (report, data_dir) = if input.is_dir() {
        let cut =
            now() * 1_000_000 - shadowgate::report::parse_since(window).map_err(anyhow::Error::msg)?.as_micros() as i64;
        let rows = shadowgate::report::load(input, Some(cut)).map_err(anyhow::Error::msg)?;
        (shadowgate::report::build(&rows, &[shadowgate::report::Dim::Module]), Some(input.to_path_buf()))
    } else {
        let text = std::fs::read_to_string(input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
        let r: shadowgate::report::DataReport =
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a report JSON: {e}", input.display()))?;
        anyhow::ensure!(
            r.by == [shadowgate::report::Dim::Module],
            "{}: the report must be grouped by module only (report --by module --format json)",
            input.display()
        );
        (r, None)
    };
    let state_file = state
        .or_else(|| cfg.as_ref().and_then(|c| c.modules.state_file.clone()))
        .or_else(|| data_dir.map(|d| d.join("state/modules.json")))
        .or_else(|| cfg.as_ref().map(|c| c.sink.data_dir.join("state/modules.json")))
        .ok_or_else(|| anyhow::anyhow!("no state file: pass --state or --config"))?;
    let mut st = gate::State::load(&state_file).map_err(anyhow::Error::msg)?;
    let mut stages = st.stages.clone();
    if let Some(c) = &cfg {
        for m in shadowgate::proxy::config::MODULES {
            stages.entry(m.to_string()).or_insert_with(|| c.stage(m));
        }
    }
    let verdicts = gate::verdicts(&report, &gate_cfg, &stages);
    let mut text = format!("gate over {window} of {} ({} rows)\n", input.display(), report.rows);
    text += &gate::render_table(&verdicts);
    if apply {
        let mut changed = 0;
        for v in &verdicts {
            st.stages.entry(v.module.clone()).or_insert(v.stage);
            if st.set(&v.module, v.next_stage, "gate", &format!("{:?}: {}", v.verdict, v.reason).to_lowercase()) {
                changed += 1;
            }
        }
        st.save(&state_file)?;
        text += &format!("applied: {changed} stage change(s) written to {}\n", state_file.display());
    }
    Ok((verdicts, text))
}

fn runtime_kind(r: RuntimeArg) -> RuntimeKind {
    match r {
        RuntimeArg::Native => RuntimeKind::Native,
        RuntimeArg::Wasm => RuntimeKind::Wasm,
    }
}
