//! The operator's kit in `deploy/`: the alert rules pass `promtool check
//! rules` and their unit tests (`promtool test rules`; Debian's `prometheus`
//! package, which `make test` installs), every `shadowgate_` metric the rules,
//! the dashboard and the rollout templates name is one `/metrics` exposes, and
//! the gate's JSON verdicts match the published schema.

use serde_json::Value;
use shadowgate::proxy::config::Config;
use shadowgate::proxy::{Recording, build, spawn};
use shadowgate_runtime::{WasmConfig, WasmRuntime};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy().join("prometheus"))
        .output()
        .expect("promtool runs (Debian package `prometheus`; `make test` installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_alert_rules_are_valid_and_their_unit_tests_pass() {
    assert!(promtool(&["check", "rules", "shadowgate-rules.yml"]).contains("SUCCESS: 9 rules found"));
    assert!(promtool(&["test", "rules", "shadowgate-rules.test.yml"]).contains("SUCCESS"));
}

/// Every `shadowgate_…` name in the kit's files.
fn referenced() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for file in [
        "prometheus/shadowgate-rules.yml",
        "grafana/shadowgate-dashboard.json",
        "argo/analysis-template.yaml",
        "flagger/metric-template.yaml",
    ] {
        let text = std::fs::read_to_string(deploy().join(file)).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("shadowgate_") {
            let tail = &rest[i..];
            let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
            names.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    names
}

/// The sample names `/metrics` can carry: each family's, with the suffixes its type adds.
fn exposed(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else { continue };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_kit_names_is_exposed() {
    let mock = shadowgate::mock::spawn(Vec::new(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse(
        &format!(
            r#"
listen = "127.0.0.1:0"
pass_headers = ["x-mock-script"]
[[providers]]
name = "anthropic"
protocol = "anthropic-messages"
base_url = "http://{mock}/v1"
[[providers]]
name = "openai"
protocol = "openai-chat"
base_url = "http://{mock}/v1"
[[routes]]
id = "claude"
model = "claude-*"
targets = [{{ provider = "anthropic" }}, {{ provider = "openai", upstream_model = "gpt-4.1" }}]
[sampling]
rate = 1.0
[sink]
data_dir = {:?}
"#,
            dir.path()
        ),
        "kit.toml",
    )
    .unwrap();
    let wasm = Arc::new(WasmRuntime::embedded(WasmConfig { cache_dir: None, ..WasmConfig::default() }).unwrap());
    let (rec, _records) = Recording::channel(4096);
    let state = build(cfg, wasm, rec).unwrap();
    let addr = spawn(state, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    // Traffic that fills every family: a failover (503), a rate limit waited out, a plain answer.
    let client = reqwest::Client::new();
    for script in ["fail:503,ok#kit", "fail:429,ok#kit", "text"] {
        let body = serde_json::json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hi"}]});
        let r = client
            .post(format!("http://{addr}/v1/chat/completions"))
            .header("x-mock-script", script)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{script}");
    }
    let names = referenced();
    assert!(names.len() >= 20, "{names:?}");
    // The shadow's comparisons and rolling gauges land a moment later.
    let mut missing = Vec::new();
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
        let exposed = exposed(&metrics);
        missing = names.iter().filter(|n| !exposed.contains(*n)).cloned().collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(missing.is_empty(), "named in deploy/ but not exposed: {missing:?}\n{metrics}");
}

/// Checks `v` against the subset of JSON Schema the verdict schema uses.
fn check(schema: &Value, v: &Value, at: &str) {
    if let Some(options) = schema["enum"].as_array() {
        assert!(options.contains(v), "{at}: {v} is not one of {options:?}");
    }
    match schema["type"].as_str() {
        Some("array") => {
            let items = v.as_array().unwrap_or_else(|| panic!("{at}: not an array"));
            items.iter().enumerate().for_each(|(i, x)| check(&schema["items"], x, &format!("{at}/{i}")));
        }
        Some("object") => {
            let o = v.as_object().unwrap_or_else(|| panic!("{at}: not an object"));
            for k in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                assert!(o.contains_key(k), "{at}: {k} missing");
            }
            for (k, s) in schema["properties"].as_object().into_iter().flatten() {
                if let Some(x) = o.get(k) {
                    check(s, x, &format!("{at}/{k}"));
                }
            }
        }
        Some("string") => assert!(v.is_string(), "{at}: {v} is not a string"),
        Some("integer") => assert!(v.is_u64() || v.is_i64(), "{at}: {v} is not an integer"),
        Some("number") => assert!(v.is_number(), "{at}: {v} is not a number"),
        _ => {}
    }
    if let (Some(min), Some(x)) = (schema["minimum"].as_f64(), v.as_f64()) {
        assert!(x >= min, "{at}: {x} < {min}");
    }
}

#[test]
fn the_gate_verdicts_follow_the_published_schema() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy().join("gate-verdict.schema.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    // A report with one passing and one failing module, as `report --format json --by module` writes it.
    let group = |module: &str, mismatches: u64| {
        let g = shadowgate::report::Group {
            key: std::collections::BTreeMap::from([("module".into(), module.into())]),
            comparisons: 5000,
            mismatches,
            diff_rate: mismatches as f64 / 5000.0,
            ignored: 0,
            shadow_errors: 0,
            shadow_error_rate: 0.0,
            primary_errors: 0,
            drops: 0,
            latency_delta_us: shadowgate::report::Delta { p50: 50, p95: 100, p99: 200 },
        };
        serde_json::to_value(g).unwrap()
    };
    let groups = serde_json::json!({"rows": 10000, "span_us": [0, 1], "by": ["module"],
                                    "groups": [group("compat", 0), group("tokenizer", 2500)], "series": {}});
    std::fs::write(&report, groups.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shadowgate"))
        .args([
            "gate",
            report.to_str().unwrap(),
            "--format",
            "json",
            "--state",
            dir.path().join("m.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let verdicts: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    check(&schema, &verdicts, "");
    let by = |m: &str| verdicts.as_array().unwrap().iter().find(|v| v["module"] == m).cloned().unwrap();
    assert_eq!((by("compat")["verdict"].as_str(), by("tokenizer")["verdict"].as_str()), (Some("pass"), Some("fail")));
    assert_eq!(out.status.code(), Some(1));
}
