//! The daily loop: replay of the sample baseline (passes with the built-in
//! guest, fails on the right module with the candidate), gate verdicts,
//! `gate --apply` picked up by a running server, automatic rollback under a
//! diff spike, and the demo end to end.

use serde_json::{Value, json};
use shadowgate::gate::{Decision, GateConfig, decide};
use shadowgate::mock::spawn as spawn_mock;
use shadowgate::proxy::{Recording, build, spawn};
use shadowgate::report::{Delta, Group};
use shadowgate::stage::Stage;
use shadowgate_core::Module;
use shadowgate_runtime::{CANDIDATE_GUEST, WasmConfig, WasmRuntime};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shadowgate-loop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn shadowgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shadowgate")).args(args).current_dir(root()).output().unwrap()
}

#[test]
fn the_sample_baseline_replays_clean_and_a_changed_module_is_caught_and_attributed() {
    let dir = tmp("replay");
    let out = shadowgate(&["replay", "baselines/sample", "--report-json", dir.join("ok.json").to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok: Value = serde_json::from_slice(&std::fs::read(dir.join("ok.json")).unwrap()).unwrap();
    assert_eq!(ok["cases"], 12);
    assert_eq!(ok["baseline_outputs"], true);
    assert!(ok["modules"].as_array().unwrap().iter().all(|m| m["mismatches"] == 0 && m["regressions"] == 0));

    let guest = dir.join("candidate.wasm");
    std::fs::write(&guest, CANDIDATE_GUEST).unwrap();
    let md = dir.join("replay.md");
    let out = shadowgate(&[
        "replay",
        "baselines/sample",
        "--guest",
        guest.to_str().unwrap(),
        "--report-json",
        dir.join("bad.json").to_str().unwrap(),
        "--report-md",
        md.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("tokenizer: native vs candidate diff rate 100.00% > 0.00%"), "{stdout}");
    let bad: Value = serde_json::from_slice(&std::fs::read(dir.join("bad.json")).unwrap()).unwrap();
    for m in bad["modules"].as_array().unwrap() {
        let diverged = m["mismatches"].as_u64().unwrap() > 0;
        assert_eq!(diverged, m["module"] == "tokenizer", "{m}");
    }
    let tok = bad["modules"].as_array().unwrap().iter().find(|m| m["module"] == "tokenizer").unwrap();
    assert_eq!(tok["top_paths"][0]["path"], "/digest");
    // Mismatches and regressions are counted apart, each adding up to its own total.
    let sum = |k: &str| tok[k].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("classes"), tok["mismatches"].as_u64().unwrap(), "{tok}");
    assert_eq!(sum("regression_classes"), tok["regressions"].as_u64().unwrap(), "{tok}");
    assert!(stdout.contains("regress logic:"), "{stdout}");
    assert!(tok["top_paths"][0]["examples"].as_array().unwrap().len() <= 3);
    assert_eq!(bad["versions"]["candidate"]["modules"]["tokenizer"], "tokenizer/1.1.0-candidate");
    assert!(std::fs::read_to_string(&md).unwrap().contains("| tokenizer |"));

    // A threshold above the observed rate passes; bad input is exit 2 with the path.
    let out = shadowgate(&["replay", "baselines/sample", "--guest", guest.to_str().unwrap(), "--max-diff-rate", "1"]);
    assert_eq!(out.status.code(), Some(0));
    let out = shadowgate(&["replay", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/dir: no such file or folder"));
    // The readable case folder replays too (no recorded outputs: no regression check).
    let out = shadowgate(&["replay", "replay/cases", "--module", "compat"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sharded_replay_merges_into_the_whole_replays_report_and_verdict() {
    let dir = tmp("shards");
    let guest = dir.join("candidate.wasm");
    std::fs::write(&guest, CANDIDATE_GUEST).unwrap();
    let json = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let whole = shadowgate(&[
        "replay",
        "baselines/sample",
        "--guest",
        guest.to_str().unwrap(),
        "--report-json",
        &json("whole.json"),
    ]);
    assert_eq!(whole.status.code(), Some(1));
    let mut parts = Vec::new();
    let mut cases = 0;
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = shadowgate(&[
            "replay",
            "baselines/sample",
            "--guest",
            guest.to_str().unwrap(),
            "--shard",
            &shard,
            "--report-json",
            &json(&format!("s{k}.json")),
        ]);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
        let r: Value = serde_json::from_str(&std::fs::read_to_string(json(&format!("s{k}.json"))).unwrap()).unwrap();
        assert_eq!(r["shard"], shard);
        cases += r["cases"].as_u64().unwrap();
        parts.push(json(&format!("s{k}.json")));
    }
    assert_eq!(cases, 12, "three shards hold the 12 sample cases once each");
    let mut args = vec!["replay", "merge"];
    args.extend(parts.iter().map(String::as_str));
    let merged_json = json("merged.json");
    args.extend(["--report-json", &merged_json]);
    let merged = shadowgate(&args);
    assert_eq!(merged.status.code(), Some(1), "the merged verdict is the whole replay's");
    let read = |p: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let (m, w) = (read(&merged_json), read(&json("whole.json")));
    for k in ["cases", "replayed", "calls", "exceeded"] {
        assert_eq!(m[k], w[k], "{k}");
    }
    for (a, b) in m["modules"].as_array().unwrap().iter().zip(w["modules"].as_array().unwrap()) {
        for k in ["module", "calls", "mismatches", "regressions", "errors", "diff_rate", "classes"] {
            assert_eq!(a[k], b[k], "{k}: {a}");
        }
    }
    // A missing shard is refused, naming it.
    let out = shadowgate(&["replay", "merge", &parts[0], &parts[2]]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shards missing: 2/3"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn group(n: u64, diff: f64, err: f64, p95_us: i64) -> Group {
    Group {
        key: BTreeMap::from([("module".into(), "compat".into())]),
        comparisons: n,
        mismatches: (n as f64 * diff) as u64,
        diff_rate: diff,
        ignored: 0,
        shadow_errors: (n as f64 * err) as u64,
        shadow_error_rate: err,
        primary_errors: 0,
        drops: 0,
        latency_delta_us: Delta { p50: p95_us / 2, p95: p95_us, p99: p95_us * 2 },
    }
}

#[test]
fn verdicts_pass_fail_and_inconclusive_with_reasons() {
    let cfg = GateConfig::default();
    let t = cfg.thresholds(Module::Compat);
    assert_eq!((t.max_diff_rate, t.max_shadow_error_rate, t.max_p95_latency_delta_ms), (0.005, 0.001, 10.0));
    assert_eq!(cfg.thresholds(Module::Tokenizer).max_diff_rate, 0.0001);
    let pass = decide(Module::Compat, Some(&group(5000, 0.001, 0.0, 800)), t, Stage::Shadow);
    assert_eq!((pass.verdict, pass.next_stage), (Decision::Pass, Stage::Canary));
    let fail = decide(Module::Compat, Some(&group(5000, 0.02, 0.0, 800)), t, Stage::Canary);
    assert_eq!((fail.verdict, fail.next_stage), (Decision::Fail, Stage::Shadow));
    assert!(fail.reason.contains("diff rate 2.000% is above 0.500%"), "{}", fail.reason);
    let slow = decide(Module::Compat, Some(&group(5000, 0.0, 0.0, 25_000)), t, Stage::Default);
    assert_eq!((slow.verdict, slow.next_stage), (Decision::Fail, Stage::Canary));
    assert!(slow.reason.contains("p95 latency delta 25.00 ms"), "{}", slow.reason);
    let errs = decide(Module::Compat, Some(&group(5000, 0.0, 0.01, 0)), t, Stage::Canary);
    assert!(errs.reason.contains("shadow error rate"), "{}", errs.reason);
    let few = decide(Module::Compat, Some(&group(50, 0.0, 0.0, 0)), t, Stage::Shadow);
    assert_eq!((few.verdict, few.next_stage), (Decision::Inconclusive, Stage::Shadow));
    assert_eq!(few.reason, "50 comparisons, 1000 needed");
    let none = decide(Module::Compat, None, t, Stage::Shadow);
    assert_eq!(none.verdict, Decision::Inconclusive);
}

fn config(
    mock: std::net::SocketAddr,
    state: &Path,
    data: &Path,
    stages: &str,
    gate: &str,
) -> shadowgate::proxy::config::Config {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
admin_token_env = "SG_TEST_ADMIN_TOKEN"
[[providers]]
name = "openai"
protocol = "openai-chat"
base_url = "http://{mock}/v1"
[[routes]]
id = "gpt"
model = "gpt-*"
provider = "openai"
[modules]
state_file = {state:?}
[modules.stages]
{stages}
[sink]
data_dir = {data:?}
{gate}
"#
    );
    shadowgate::proxy::config::Config::parse(&text, "test.toml").unwrap()
}

async fn admin_modules(base: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/admin/modules"))
        .bearer_auth(env!("SG_TEST_ADMIN_TOKEN"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_apply_is_picked_up_by_a_running_server_and_the_admin_api_sets_stages() {
    let dir = tmp("apply");
    let state = dir.join("modules.json");
    let mock = spawn_mock(Vec::new(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cfg = config(mock, &state, &dir, "", "");
    let wasm = Arc::new(WasmRuntime::embedded(WasmConfig { cache_dir: None, ..WasmConfig::default() }).unwrap());
    let (rec, _rx) = Recording::channel(1 << 16);
    let addr = spawn(build(cfg, wasm, rec).unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    assert_eq!(admin_modules(&base).await["stages"]["compat"], "shadow");

    // A report in which compat passes with plenty of samples and the tokenizer fails.
    let mut groups = vec![];
    for (m, diff) in [("compat", 0.0), ("tokenizer", 0.5)] {
        let mut g = serde_json::to_value(group(5000, diff, 0.0, 100)).unwrap();
        g["key"] = json!({"module": m});
        groups.push(g);
    }
    let report = json!({"rows": 10000, "span_us": [0, 1], "by": ["module"], "groups": groups, "series": {}});
    let report_file = dir.join("report.json");
    std::fs::write(&report_file, report.to_string()).unwrap();
    let out = shadowgate(&["gate", report_file.to_str().unwrap(), "--state", state.to_str().unwrap(), "--apply"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a failing module makes the gate exit 1: {stdout}");
    assert!(stdout.contains("compat     pass"), "{stdout}");
    assert!(stdout.contains("tokenizer  fail"), "{stdout}");
    let mut picked = Value::Null;
    for _ in 0..40 {
        picked = admin_modules(&base).await;
        if picked["stages"]["compat"] == "canary" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(picked["stages"]["compat"], "canary", "{picked}");
    // Already at the first stage, the failing tokenizer stays at shadow.
    assert_eq!(picked["stages"]["tokenizer"], "shadow");
    assert_eq!(picked["history"][0]["by"], "gate");

    // The admin API: authorization required, then promote.
    let http = reqwest::Client::new();
    let url = format!("{base}/admin/modules/compat");
    let r = http.post(&url).json(&json!({"action": "promote"})).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(&url)
        .bearer_auth(env!("SG_TEST_ADMIN_TOKEN"))
        .json(&json!({"action": "promote"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["stage"], "default");
    let r = http
        .post(format!("{base}/admin/modules/nope"))
        .bearer_auth(env!("SG_TEST_ADMIN_TOKEN"))
        .json(&json!({"stage": "canary"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["stages"]["compat"], "default");
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("shadowgate_module_stage{module=\"compat\"} 2"), "{metrics}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_spike_rolls_the_module_back_one_stage_automatically() {
    let dir = tmp("rollback");
    let state = dir.join("modules.json");
    let mock = spawn_mock(Vec::new(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    // The tokenizer is at `default` (wasm primary, native shadow); the candidate guest's tokenizer differs.
    let cfg =
        config(mock, &state, &dir, "tokenizer = \"default\"", "[gate]\nrollback_window = 20\nrollback_min_samples = 5");
    let wasm = Arc::new(
        WasmRuntime::new(CANDIDATE_GUEST, "candidate", WasmConfig { cache_dir: None, ..WasmConfig::default() })
            .unwrap(),
    );
    let (rec, _rx) = Recording::channel(1 << 16);
    let addr = spawn(build(cfg, wasm, rec).unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let mut after = Value::Null;
    for i in 0..60 {
        let body = json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": format!("Summarize the migration plan, part {i}.")}]});
        let r = http.post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        after = admin_modules(&base).await;
        if after["stages"]["tokenizer"] == "canary" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(after["stages"]["tokenizer"], "canary", "{after}");
    let change = after["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (change["by"].as_str(), change["from"].as_str(), change["to"].as_str()),
        (Some("auto-rollback"), Some("default"), Some("canary"))
    );
    assert!(change["reason"].as_str().unwrap().contains("diff rate spike"), "{change}");
    assert_eq!(after["stages"]["compat"], "shadow", "other modules are untouched");
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("shadowgate_module_rollbacks_total{module=\"tokenizer\"} 1"), "{metrics}");
    assert!(metrics.contains("shadowgate_module_diff_rate{module=\"tokenizer\"}"), "{metrics}");
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["stages"]["tokenizer"], "canary");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_demo_runs_end_to_end() {
    let dir = tmp("demo");
    let out = shadowgate(&["demo", "--requests", "60", "--data-dir", dir.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for want in [
        "== diff report by module",
        "== gate verdicts ==",
        "thresholds exceeded:",
        "tokenizer: native vs candidate diff rate",
        // The demo config's `claude` route is a failover chain; the candidate's router tries its last target first.
        "routing: regression vs the baseline",
        "/attempts/0/provider",
        "read_parquet(",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}");
    }
    // The built-in guest replays the same recorded cases, routing queries and all, clean.
    let clean = shadowgate(&["replay", dir.to_str().unwrap()]);
    let clean_out = String::from_utf8_lossy(&clean.stdout);
    assert_eq!(clean.status.code(), Some(0), "{clean_out}");
    assert!(clean_out.lines().any(|l| l.starts_with("routing ") && l.contains("0.00%")), "{clean_out}");
    assert!(dir.join("candidate-guest.wasm").exists());
    assert!(!shadowgate::sink::files::parquet_files(&dir.join("diffs")).unwrap().is_empty());

    // The closing hints work as printed: Python one-liners (what `make test` installs)
    // and the binary by its own path (shadowgate is on no one's PATH after `make demo`).
    let hints: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("python3 -c") || l.ends_with("--report-md replay.md"))
        .collect();
    assert_eq!(hints.len(), 3, "{stdout}");
    for hint in hints {
        let out = Command::new("bash").args(["-c", hint]).current_dir(&dir).output().unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        if hint.ends_with("replay.md") {
            assert_eq!(out.status.code(), Some(1), "the candidate diverges: {hint}\n{printed}");
        } else {
            assert!(
                out.status.success() && printed.contains("compat"),
                "{hint}\n{printed}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    // The pages it wrote, and the `show` hints: the list, then one request from it.
    for (page, marker) in [("report.html", "class=\"plot\""), ("replay.html", "class=\"bar\"")] {
        let html = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(html.contains("id=\"verdict-table\"") && html.contains(marker), "{page}");
    }
    let list = stdout.lines().map(str::trim).find(|l| l.contains(" show --data-dir ")).expect("a show hint");
    let out = Command::new("bash").args(["-c", list]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && listed.starts_with(char::is_numeric), "{list}\n{listed}");
    let id = listed.lines().nth(1).and_then(|l| l.split_whitespace().next()).expect("a listed request");
    let one =
        stdout.lines().map(str::trim).find(|l| l.contains(" show <request_id>")).unwrap().replace("<request_id>", id);
    let out = Command::new("bash").args(["-c", &one]).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && shown.starts_with(&format!("request {id}")), "{one}\n{shown}");

    // The demo's gate verdicts are the `gate` command's, with the config the demo wrote.
    let verdicts = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| ["routing ", "tools ", "compat ", "streaming ", "tokenizer "].iter().any(|m| l.starts_with(m)))
            .filter(|l| l.contains(" pass ") || l.contains(" fail ") || l.contains(" inconclusive "))
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect()
    };
    let gate_hint = stdout.lines().map(str::trim).find(|l| l.contains(" gate ") && l.contains("demo.toml")).unwrap();
    let out = Command::new("bash").args(["-c", gate_hint]).current_dir(&dir).output().unwrap();
    let gate_out = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("at least 50 comparisons"), "the demo says which thresholds it used: {stdout}");
    assert_eq!(verdicts(&gate_out), verdicts(&stdout)[..5], "{gate_out}\n---\n{stdout}");
    assert_eq!(verdicts(&gate_out).len(), 5);

    // A second demo into the same folder starts clean instead of mixing the runs; another folder is refused.
    let replayed =
        |text: &str| text.lines().find(|l| l.starts_with("replayed ")).unwrap().split(" (").next().unwrap().to_string();
    let again = shadowgate(&["demo", "--requests", "60", "--data-dir", dir.to_str().unwrap()]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("starting clean"));
    assert_eq!(replayed(&String::from_utf8_lossy(&again.stdout)), replayed(&stdout));
    let other = tmp("demo-other");
    std::fs::write(other.join("keep.txt"), "mine").unwrap();
    let out = shadowgate(&["demo", "--requests", "10", "--data-dir", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--append"));
    assert!(other.join("keep.txt").exists());
    let _ = std::fs::remove_dir_all(&other);

    // Reports over the demo's data: JSON figures per module and tenant, and one self-contained HTML page.
    let d = dir.to_str().unwrap();
    let out = shadowgate(&["report", d, "--since", "1h", "--by", "module,tenant", "--format", "json"]);
    assert!(out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let groups = r["groups"].as_array().unwrap();
    assert!(groups.iter().any(|g| g["key"] == json!({"module": "compat", "tenant": "default"})), "{r}");
    assert!(groups.iter().all(|g| g["diff_rate"] == 0.0 && g["comparisons"].as_u64().unwrap() > 0), "{r}");
    let html = dir.join("report.html");
    let out = shadowgate(&["report", d, "--format", "html", "--out", html.to_str().unwrap()]);
    assert!(out.status.success());
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<polyline class=\"series\"").count(), 5, "one line per module");
    assert!(page.contains("data-module=\"tokenizer\"") && page.contains("<table id=\"group-table\">"));
    assert!(!page.contains("<script") && !page.contains("src=\"http"), "self-contained");
    let out = shadowgate(&["report", d, "--since", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
