//! `shadowgate demo`: the whole loop on loopback with nothing to set up. The
//! mock upstream and the proxy start in-process, a mixed workload runs in
//! `shadow` mode, the sink flushes, and the report and gate verdicts print.
//! Then a deliberately different candidate guest (its tokenizer and its router changed) is
//! replayed against the cases just recorded, to show a divergence being
//! caught and attributed to its module.

use super::{CmdError, CmdResult, Context, print, tokio_runtime};
use crate::proxy::{self, config::Config};
use crate::sink::redact::{KEY_ENV, Redactor};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use shadowgate_runtime::CANDIDATE_GUEST;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const LOCAL: &str = include_str!("../../examples/local.toml");

/// Flags of `demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Requests to send.
    #[arg(long, default_value_t = 400)]
    pub requests: usize,
    /// Where the Parquet tables go. A previous demo's data there is replaced;
    /// any other non-empty folder is refused without `--append`.
    #[arg(long, default_value = "shadowgate-demo-data")]
    pub data_dir: PathBuf,
    /// Add to the data already in `--data-dir` instead of starting clean.
    #[arg(long)]
    pub append: bool,
}

/// The config file a demo writes into its data folder (and that marks the folder as a demo's).
const CONFIG_FILE: &str = "demo.toml";

/// Runs the demo and prints what it found.
pub fn run(a: Args) -> CmdResult {
    if let Some(note) = prepare(&a.data_dir, a.append)? {
        eprintln!("shadowgate demo: {note}");
    }
    let text = tokio_runtime()?.block_on(demo(a.requests, a.data_dir))?;
    print(&text);
    Ok(ExitCode::SUCCESS)
}

/// Makes `dir` ready: empty or missing as it is, a previous demo's data removed,
/// other data kept only with `append`. Says what it did.
fn prepare(dir: &Path, append: bool) -> Result<Option<String>, CmdError> {
    let empty = std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none());
    if empty {
        return Ok(None);
    }
    if append {
        return Ok(Some(format!("appending to the data already in {}", dir.display())));
    }
    if !dir.join(CONFIG_FILE).is_file() {
        return Err(CmdError::input(format!(
            "{}: not empty and not a previous demo's data folder; pass --append to add to it, or choose another --data-dir",
            dir.display()
        )));
    }
    for sub in ["diffs", "cases", "state"] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p).context(p.display())?;
        }
    }
    Ok(Some(format!("starting clean: removed the previous demo's data in {} (--append keeps it)", dir.display())))
}

/// The demo's config text: `examples/local.toml` pointed at the in-process mock and `data_dir`.
fn config_text(mock: std::net::SocketAddr, data_dir: &Path) -> String {
    LOCAL
        .replace("127.0.0.1:9000", &mock.to_string())
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace("data_dir = \"./shadowgate-data\"", &format!("data_dir = {:?}\nflush_interval_ms = 2000", data_dir))
        // A demo has hundreds of requests over seconds, not the thousands over days a real gate wants.
        + "\n[gate.defaults]\nmin_samples = 50\n\
           [gate.min_dwell]\nshadow = \"0s\"\ncanary = \"0s\"\ndefault = \"0s\"\ndeprecated = \"0s\"\n"
        // The mock's errors are scripted per request, not the state of a key:
        // neither retried nor rested, so every scripted error reaches the client.
        + "[routing]\nretry_on = []\n[routing.cooldown]\nrate_limited_ms = 0\nserver_error_ms = 0\nauth_ms = 0\nquota_ms = 0\ntimeout_ms = 0\n"
}

/// The demo's config.
pub fn config(mock: std::net::SocketAddr, data_dir: &Path) -> Result<Config, CmdError> {
    Ok(Config::parse(&config_text(mock, data_dir), "examples/local.toml (demo)")?)
}

/// The `i`-th request of the mixed workload: (path, headers, body).
pub fn workload(i: usize) -> (String, Vec<(&'static str, &'static str)>, Value) {
    const SCRIPTS: [&str; 10] =
        ["text", "tools", "text", "thinking", "text", "max_tokens", "tools", "refusal", "rate_limit", "server_error"];
    let script = SCRIPTS[i % SCRIPTS.len()];
    let stream = (i / SCRIPTS.len()).is_multiple_of(2);
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let question =
        ["What is shadow traffic?", "Plan a canary rollout in three steps.", "What's the weather in Paris?"][i % 3];
    let headers = vec![("x-mock-script", script)];
    if i % 5 == 4 {
        // Gemini clients: same protocol, to Chat, to Anthropic; and a Gemini upstream for a Chat client.
        let model = ["gemini-2.5-flash", "gemini-via-openai", "gemini-via-anthropic", "claude-via-gemini"][(i / 5) % 4];
        if model == "claude-via-gemini" {
            let body = json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": question}]});
            return ("/v1/chat/completions".into(), headers, body);
        }
        let mut body = json!({"systemInstruction": {"parts": [{"text": "Be brief."}]},
            "contents": [{"role": "user", "parts": [{"text": question}]}]});
        if script == "tools" {
            body["tools"] = json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather for a city",
                "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}]);
        }
        if script == "thinking" {
            body["generationConfig"] = json!({"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": true}});
        }
        let method = if stream { "streamGenerateContent?alt=sse" } else { "generateContent" };
        return (format!("/v1beta/models/{model}:{method}"), headers, body);
    }
    if i % 3 == 2 {
        // Responses clients: same protocol, to Anthropic; and a Responses upstream for a Chat client.
        let model = ["gpt-5", "responses-via-anthropic", "claude-via-responses"][(i / 3) % 3];
        if model == "claude-via-responses" {
            let body = json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": question}]});
            return ("/v1/chat/completions".into(), headers, body);
        }
        let mut body = json!({"model": model, "stream": stream, "instructions": "Be brief.", "input": question});
        if script == "tools" {
            body["tools"] = json!([{"type": "function", "name": "get_weather", "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
        }
        if script == "thinking" {
            body["reasoning"] = json!({"effort": "low", "summary": "auto"});
        }
        return ("/v1/responses".into(), headers, body);
    }
    if i.is_multiple_of(2) {
        let model = if i.is_multiple_of(4) { "gpt-4.1" } else { "gpt-via-anthropic" };
        let mut body = json!({"model": model, "stream": stream, "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]});
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        if script == "tools" {
            body["tools"] = tools;
        }
        ("/v1/chat/completions".into(), headers, body)
    } else {
        let model = if i % 4 == 1 { "claude-sonnet-4-5" } else { "claude-via-openai" };
        let mut body = json!({"model": model, "max_tokens": 512, "stream": stream, "system": "Be brief.",
            "messages": [{"role": "user", "content": question}]});
        if script == "tools" {
            body["tools"] = json!([{"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
        }
        if script == "thinking" {
            body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
        }
        ("/v1/messages".into(), headers, body)
    }
}

/// Runs the demo; returns the text to print.
pub async fn demo(requests: usize, data_dir: PathBuf) -> Result<String, CmdError> {
    let redactor = match Redactor::from_env(&[]) {
        Ok(r) => r,
        Err(_) => {
            eprintln!("shadowgate demo: {KEY_ENV} is not set; PII is hashed under a one-off key for this run");
            Redactor::ephemeral(&[])
        }
    };
    std::fs::create_dir_all(&data_dir).context(data_dir.display())?;
    let data_dir = data_dir.canonicalize().context(data_dir.display())?;
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let mock = crate::mock::spawn(Vec::new(), loopback).await?;
    let cfg = config(mock, &data_dir)?;
    let config_file = data_dir.join(CONFIG_FILE);
    std::fs::write(&config_file, config_text(mock, &data_dir)).context(config_file.display())?;
    let wasm = proxy::load_guest(&cfg)?;
    let (rec, sink) = proxy::start_sink(&cfg, &wasm, Arc::new(redactor))?;
    let state = proxy::build(cfg, wasm, rec)?;
    let addr = proxy::spawn(state.clone(), loopback).await?;
    let base = format!("http://{addr}");
    eprintln!(
        "shadowgate demo: mock upstream on {mock}, proxy on {addr} (every module at stage shadow), data in {}",
        data_dir.display()
    );

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(requests as u64);
        b.set_style(
            ProgressStyle::with_template("{spinner} requests [{bar:40}] {pos}/{len} {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let next = Arc::new(AtomicUsize::new(0));
    let statuses = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new()));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, base, next, bar, statuses) =
            (http.clone(), base.clone(), next.clone(), bar.clone(), statuses.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return;
                }
                let (path, headers, body) = workload(i);
                let mut req = http
                    .post(format!("{base}{path}"))
                    .header("content-type", "application/json")
                    .body(body.to_string());
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                let status = match req.send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 0,
                };
                *statuses.lock().unwrap_or_else(|e| e.into_inner()).entry(status).or_default() += 1;
                bar.inc(1);
            }
        }));
    }
    for t in tasks {
        t.await.context("a demo client task")?;
    }
    bar.finish_and_clear();
    proxy::shut_down(state, sink).await;

    let mut out = String::new();
    let statuses = statuses.lock().unwrap_or_else(|e| e.into_inner()).clone();
    out += &format!(
        "sent {requests} requests through the proxy; statuses {statuses:?} (429/500 are the mock's scripted errors)\n\n"
    );
    let gate_cfg = config(mock, &data_dir)?;
    let state = crate::gate::State::load(&data_dir.join("state/modules.json"))?;
    let stages = state.stages.clone();
    let cut = crate::report::cutoff_us(&gate_cfg.gate.window).unwrap_or(0);
    let mut figures = crate::report::Aggregator::new(&[crate::report::Dim::Module]);
    let mut tally = crate::gate::Tally::new(cut, &state, &stages);
    crate::report::scan(&data_dir, None, &mut |r| {
        figures.push(r);
        tally.push(r);
    })?;
    let report = figures.finish();
    out += "== diff report by module (native primary, wasm shadow) ==\n";
    out += &crate::report::render_table(&report);
    let t = |m| gate_cfg.gate.thresholds(m);
    let (compat, tokenizer) = (t(shadowgate_core::Module::Compat), t(shadowgate_core::Module::Tokenizer));
    out += &format!(
        "\n== gate verdicts ==\nthresholds (the demo's own, from {}): diff rate ≤ {}% (tokenizer {}%), shadow errors ≤ {}%, \
         p95 latency delta ≤ {} ms, at least {} comparisons and {} in a stage before promotion (a production gate's \
         defaults: 1000 comparisons; 7d of shadow, 3d of canary, 14d as default)\n",
        config_file.display(),
        compat.max_diff_rate * 100.0,
        tokenizer.max_diff_rate * 100.0,
        compat.max_shadow_error_rate * 100.0,
        compat.max_p95_latency_delta_ms,
        compat.min_samples,
        gate_cfg.gate.min_dwell.shadow,
    );
    let verdicts = tally.verdicts(crate::clock::now_us(), &gate_cfg.gate);
    out += &crate::gate::render_table(&verdicts);

    // Detection: a candidate guest with two modules changed, replayed over the cases just recorded.
    let candidate_path = data_dir.join("candidate-guest.wasm");
    std::fs::write(&candidate_path, CANDIDATE_GUEST).context(candidate_path.display())?;
    let cases = crate::replay::load_input(&data_dir)?;
    let candidate = crate::replay::candidate(Some(&candidate_path))?;
    let opts =
        crate::replay::Options { module: None, max_diff_rate: 0.0, max_error_rate: 0.0, jobs: 2, progress_bar: false };
    let replay = crate::replay::run(
        &data_dir.display().to_string(),
        &cases,
        &candidate,
        crate::diff::Ruleset::load(None)?,
        &opts,
    );
    out +=
        &format!("\n== replay of the {} recorded cases with a deliberately changed candidate guest ==\n", cases.len());
    out += &crate::replay::render_text(&replay);
    // The two HTML pages: the report with its verdicts, and the candidate's replay.
    let (report_page, replay_page) = (data_dir.join("report.html"), data_dir.join("replay.html"));
    std::fs::write(&report_page, crate::page::data(&report, &data_dir.display().to_string(), &verdicts))
        .context(report_page.display())?;
    std::fs::write(&replay_page, crate::page::replay(&replay)).context(replay_page.display())?;
    let dir = data_dir.display();
    let exe = std::env::current_exe().map_or_else(|_| "cargo run --release --".into(), |p| p.display().to_string());
    let query = format!(
        "SELECT module, outcome, count(*) AS n FROM read_parquet('{dir}/diffs/*/*.parquet') GROUP BY ALL ORDER BY ALL"
    );
    out += &format!(
        "\nPages to open in a browser: {} (report and gate verdicts) and {} (the candidate's replay)\n\
         Parquet tables: {dir}/diffs/date=*/ and {dir}/cases/date=*/\n\
         Query them with Python (duckdb and pyarrow come with `make test`):\n  \
         python3 -c \"import duckdb; print(duckdb.sql(\\\"{query}\\\"))\"\n  \
         python3 -c \"import pyarrow.dataset as ds; print(ds.dataset('{dir}/diffs', partitioning='hive').to_table().group_by(['module', 'outcome']).aggregate([('request_id', 'count')]))\"\n\
         or with the DuckDB CLI, if you have it:\n  \
         duckdb -c \"{query}\"\n\
         The same gate verdicts from the command line:\n  \
         {exe} gate {dir} --config {dir}/{CONFIG_FILE}\n\
         Replay them in CI:\n  \
         {exe} replay {dir} --guest {dir}/candidate-guest.wasm --report-md replay.md\n\
         Look up requests (`show` lists every outcome but match; the demo's shadow agrees, so ask for matches), \
         one of them, and its case as a fixture:\n  \
         {exe} show --data-dir {dir} --outcome match --limit 5\n  \
         {exe} show <request_id> --data-dir {dir}\n  \
         {exe} case export <request_id> --data-dir {dir} --out replay/cases/\n",
        report_page.display(),
        replay_page.display()
    );
    Ok(out)
}
