//! The proxy over real HTTP on loopback, in front of the mock upstream: every
//! mode, both client protocols, streaming and not; precedence and locks;
//! refused overrides; misbehaving guests on either side; bad input; upstream
//! failures.

use serde_json::{Value, json};
use shadowgate::diff::Outcome;
use shadowgate::mock::spawn as spawn_mock;
use shadowgate::proxy::config::Config;
use shadowgate::proxy::{Recording, build, spawn};
use shadowgate::record::DiffRecord;
use shadowgate::sink::SinkRecord;
use shadowgate_runtime::{WasmConfig, WasmRuntime};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;

const ANY: &str = "127.0.0.1:0";

/// The key of the `tester` tenant, the one allowed to set `x-shadowgate-mode`.
const TESTER: (&str, &str) = ("authorization", "Bearer sk-tester");

struct Proxy {
    url: String,
    records: Receiver<SinkRecord>,
    state: Arc<shadowgate::proxy::app::AppState>,
}

fn config(mock: SocketAddr, extra_top: &str, extra: &str) -> Config {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
trust_tenant_header = true
pass_headers = ["x-mock-script", "x-mock-case"]
max_body_bytes = 65536
{extra_top}
[[providers]]
name = "openai"
protocol = "openai-chat"
base_url = "http://{mock}/v1"
[[providers]]
name = "anthropic"
protocol = "anthropic-messages"
base_url = "http://{mock}/v1"
[[routes]]
id = "gpt-via-anthropic"
endpoint = "openai-chat"
model = "gpt-via-anthropic"
provider = "anthropic"
upstream_model = "claude-sonnet-4-5"
[[routes]]
id = "claude-via-openai"
endpoint = "anthropic-messages"
model = "claude-via-openai"
provider = "openai"
upstream_model = "gpt-4.1"
[[routes]]
id = "gpt"
model = "gpt-*"
provider = "openai"
[[routes]]
id = "claude"
model = "claude-*"
provider = "anthropic"
[[tenants]]
name = "default"
allow_mode_header = true
[[tenants]]
name = "tester"
api_key_sha256 = ["db667cc674848cc826af16172cbf7ed6f6284212d15af34a025969523a31f57c"]
allow_mode_header = true
[[tenants]]
name = "strict"
header_value = "strict"
[shadow]
deadline_ms = 100
{extra}
"#
    );
    Config::parse(&text, "test.toml").unwrap()
}

async fn start(cfg: Config, guest: Option<&[u8]>) -> Proxy {
    let wasm_cfg = WasmConfig {
        deadline: Duration::from_millis(cfg.shadow.deadline_ms),
        cache_dir: None,
        ..WasmConfig::default()
    };
    let wasm = Arc::new(match guest {
        Some(bytes) => WasmRuntime::new(bytes, "test-guest", wasm_cfg).unwrap(),
        None => WasmRuntime::embedded(wasm_cfg).unwrap(),
    });
    let (rec, records) = Recording::channel(4096);
    let state = build(cfg, wasm, rec).unwrap();
    let addr = spawn(state.clone(), ANY.parse().unwrap()).await.unwrap();
    Proxy { url: format!("http://{addr}"), records, state }
}

async fn mock() -> SocketAddr {
    spawn_mock(Vec::new(), ANY.parse().unwrap()).await.unwrap()
}

fn body(client: &str, model: &str, stream: bool) -> Value {
    match client {
        "openai" => {
            json!({"model": model, "stream": stream, "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
                           "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is shadow traffic?"}]})
        }
        _ => json!({"model": model, "max_tokens": 256, "stream": stream, "system": "Be brief.",
                    "messages": [{"role": "user", "content": "What is shadow traffic?"}]}),
    }
}

fn path(client: &str) -> &'static str {
    if client == "openai" { "/v1/chat/completions" } else { "/v1/messages" }
}

async fn post(p: &Proxy, client: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().post(format!("{}{}", p.url, path(client))).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// The text an answer carries, whatever its protocol and framing.
fn text_of(client: &str, stream: bool, raw: &str) -> String {
    if !stream {
        let v: Value = serde_json::from_str(raw).unwrap();
        return match client {
            "openai" => v["choices"][0]["message"]["content"].as_str().unwrap_or("").to_string(),
            _ => v["content"].as_array().unwrap().iter().filter_map(|b| b["text"].as_str()).collect(),
        };
    }
    let mut text = String::new();
    for line in raw.lines().filter_map(|l| l.strip_prefix("data: ")).filter(|l| *l != "[DONE]") {
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
        if let Some(t) = v["delta"]["text"].as_str() {
            text.push_str(t);
        }
    }
    text
}

fn records(p: &Proxy, want: usize) -> Vec<DiffRecord> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while out.len() < want && std::time::Instant::now() < deadline {
        if let Ok(SinkRecord::Diff(r)) = p.records.recv_timeout(Duration::from_millis(50)) {
            out.push(r);
        }
    }
    out
}

const ANSWER: &str = "Shadow traffic lets you compare two runtimes on real requests without risk.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_serves_both_protocols_streaming_and_not() {
    let p = start(config(mock().await, "", ""), None).await;
    for (mode, runtime) in [
        ("native_primary", "native"),
        ("shadow", "native"),
        ("wasm_primary", "wasm"),
        ("split:100", "wasm"),
        ("split:0", "native"),
    ] {
        for client in ["openai", "anthropic"] {
            for model in ["gpt-4o", "claude-sonnet-4-5", "gpt-via-anthropic", "claude-via-openai"] {
                if (client == "openai") != model.starts_with("gpt") && model.contains("via") {
                    continue; // cross-protocol routes are bound to their endpoint
                }
                for stream in [false, true] {
                    let headers = [TESTER, ("x-shadowgate-mode", mode)];
                    let r = post(&p, client, &body(client, model, stream), &headers).await;
                    assert_eq!(r.status(), 200, "{mode} {client} {model} {stream}");
                    assert_eq!(r.headers()["x-shadowgate-mode"], mode);
                    assert_eq!(r.headers()["x-shadowgate-runtime"], runtime, "{mode} {client} {model}");
                    assert!(r.headers().contains_key("x-shadowgate-request-id"));
                    let raw = r.text().await.unwrap();
                    assert_eq!(text_of(client, stream, &raw), ANSWER, "{mode} {client} {model} {stream}: {raw}");
                    if stream {
                        assert!(raw.contains("data: [DONE]") || raw.contains("event: message_stop"), "{raw}");
                    }
                }
            }
        }
    }
    // Every shadowed module call agreed.
    let recs = records(&p, 40);
    assert!(recs.len() >= 40);
    assert!(recs.iter().all(|r| r.result.agrees()), "{:?}", recs.iter().find(|r| !r.result.agrees()));
    let modules: std::collections::BTreeSet<&str> = recs.iter().map(|r| r.result.module.as_str()).collect();
    assert_eq!(modules.into_iter().collect::<Vec<_>>(), vec!["compat", "routing", "streaming", "tokenizer", "tools"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_only_compared_are_made_only_where_a_module_has_a_shadow() {
    let p = start(config(mock().await, "mode = \"native_primary\"", ""), None).await;
    for client in ["openai", "anthropic"] {
        for stream in [false, true] {
            let model = if client == "openai" { "gpt-4o" } else { "claude-x" };
            let r = post(&p, client, &body(client, model, stream), &[]).await;
            assert_eq!(r.status(), 200);
            assert_eq!(text_of(client, stream, &r.text().await.unwrap()), ANSWER);
        }
    }
    // Shadow jobs run right after the answer: a second is ample for any record to arrive.
    let start = std::time::Instant::now();
    while let Some(left) = Duration::from_secs(1).checked_sub(start.elapsed()) {
        if let Ok(SinkRecord::Diff(r)) = p.records.recv_timeout(left) {
            panic!("native_primary compares nothing, yet {} was compared", r.result.module);
        }
    }

    // The same proxy, a request in shadow mode: tools and tokenizer are built and compared off the request path.
    let r = post(&p, "openai", &body("openai", "gpt-4o", false), &[TESTER, ("x-shadowgate-mode", "shadow")]).await;
    assert_eq!(r.status(), 200);
    let recs = records(&p, 6);
    let mut modules: Vec<&str> = recs.iter().map(|r| r.result.module.as_str()).collect();
    modules.sort_unstable();
    assert_eq!(modules, ["compat", "compat", "routing", "tokenizer", "tools", "tools"], "{recs:?}");
    assert!(recs.iter().all(|r| r.result.agrees()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_global_native_primary_wins_and_overrides_need_permission() {
    let p = start(config(mock().await, "mode = \"native_primary\"\nmode_locked = true", ""), None).await;
    let r =
        post(&p, "openai", &body("openai", "gpt-4o", false), &[TESTER, ("x-shadowgate-mode", "wasm_primary")]).await;
    assert_eq!((r.status().as_u16(), r.headers()["x-shadowgate-runtime"].to_str().unwrap()), (200, "native"));
    assert_eq!(r.headers()["x-shadowgate-mode"], "native_primary");

    let p = start(config(mock().await, "mode = \"shadow\"", ""), None).await;
    for client in ["openai", "anthropic"] {
        let model = if client == "openai" { "gpt-4o" } else { "claude-x" };
        let r = post(
            &p,
            client,
            &body(client, model, false),
            &[("x-shadowgate-tenant", "strict"), ("x-shadowgate-mode", "wasm_primary")],
        )
        .await;
        assert_eq!(r.status(), 403);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "permission_error", "{v}");
        if client == "anthropic" {
            assert_eq!(v["type"], "error");
        }
    }
    // Without the header the strict tenant is served in the global mode.
    let r = post(&p, "openai", &body("openai", "gpt-4o", false), &[("x-shadowgate-tenant", "strict")]).await;
    assert_eq!((r.status().as_u16(), r.headers()["x-shadowgate-mode"].to_str().unwrap()), (200, "shadow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_is_sticky_by_the_configured_key() {
    let p = start(config(mock().await, "mode = \"split:50\"\nsplit_key_header = \"x-user\"", ""), None).await;
    let mut seen = std::collections::BTreeMap::new();
    for user in 0..12 {
        for _ in 0..3 {
            let user = format!("user-{user}");
            let r = post(&p, "openai", &body("openai", "gpt-4o", false), &[("x-user", &user)]).await;
            let runtime = r.headers()["x-shadowgate-runtime"].to_str().unwrap().to_string();
            assert_eq!(
                seen.entry(user.clone()).or_insert_with(|| runtime.clone()),
                &runtime,
                "{user} moved between runtimes"
            );
        }
    }
    let wasm = seen.values().filter(|r| *r == "wasm").count();
    assert!(wasm > 0 && wasm < 12, "both sides of the split are used: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_stages_decide_when_no_level_sets_a_mode() {
    let p = start(config(mock().await, "", "[modules.stages]\ncompat = \"default\"\nrouting = \"shadow\""), None).await;
    let r = post(&p, "openai", &body("openai", "gpt-4o", false), &[]).await;
    assert_eq!(r.headers()["x-shadowgate-mode"], "stages");
    assert_eq!(r.headers()["x-shadowgate-runtime"], "wasm", "compat is at the default stage: wasm serves");
}

/// A guest that lists every op and loops forever in all of them.
fn looping_guest() -> Vec<u8> {
    let caps = r#"{"abi":1,"core_version":"0.0.0-loop","modules":{"compat":"loop"},"sse_protocol":"sse/1","ops":["capabilities","routing.resolve","compat.request","compat.response","compat.error","tools.canonicalize","tokenizer.count"],"features":[]}"#;
    let wat = format!(
        r#"(module
  (memory (export "memory") 17)
  (global $bump (mut i32) (i32.const 65536))
  (data (i32.const 16) "{}")
  (func (export "sg_abi_version") (result i32) (i32.const 1))
  (func (export "sg_alloc") (param $len i32) (result i32) (local $p i32)
    (local.set $p (global.get $bump)) (global.set $bump (i32.add (global.get $bump) (local.get $len))) (local.get $p))
  (func (export "sg_free") (param i32 i32))
  (func (export "sg_capabilities") (result i64) (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const {})))
  (func (export "sg_call") (param i32 i32 i32) (result i64) (loop $l (br $l)) (unreachable)))"#,
        caps.replace('"', "\\\""),
        caps.len()
    );
    wat::parse_str(wat).unwrap()
}

fn strip_ids(raw: &str) -> Value {
    let mut v: Value = serde_json::from_str(raw).unwrap();
    v.as_object_mut().unwrap().retain(|k, _| k != "id" && k != "created");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_shadow_guest_leaves_the_primary_untouched() {
    let m = mock().await;
    let reference = start(config(m, "mode = \"native_primary\"", ""), None).await;
    let p = start(config(m, "mode = \"shadow\"", ""), Some(&looping_guest())).await;
    for (client, model) in [("openai", "gpt-via-anthropic"), ("anthropic", "claude-x")] {
        let b = body(client, model, false);
        let want = post(&reference, client, &b, &[]).await.text().await.unwrap();
        let r = post(&p, client, &b, &[]).await;
        assert_eq!((r.status().as_u16(), r.headers()["x-shadowgate-runtime"].to_str().unwrap()), (200, "native"));
        assert_eq!(strip_ids(&r.text().await.unwrap()), strip_ids(&want));
    }
    let recs = records(&p, 4);
    assert!(
        recs.iter().any(|r| r.result.outcome == Outcome::ShadowTimeout),
        "{:?}",
        recs.iter().map(|r| r.result.outcome).collect::<Vec<_>>()
    );
    assert!(recs.iter().all(|r| matches!(r.result.outcome, Outcome::ShadowTimeout | Outcome::ShadowError)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_wasm_primary_falls_back_to_native_explicitly() {
    let p = start(config(mock().await, "mode = \"wasm_primary\"", ""), Some(&looping_guest())).await;
    let r = post(&p, "openai", &body("openai", "gpt-4o", false), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-shadowgate-fallback"], "native");
    assert_eq!(r.headers()["x-shadowgate-runtime"], "native");
    assert_eq!(text_of("openai", false, &r.text().await.unwrap()), ANSWER);
    let recs = records(&p, 2);
    assert!(
        recs.iter()
            .any(|r| r.result.outcome == Outcome::PrimaryError && r.result.module == shadowgate_core::Module::Routing)
    );
    let metrics = reqwest::get(format!("{}/metrics", p.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("shadowgate_fallbacks_total{module=\"routing\"}"), "{metrics}");
    assert!(p.state.wasm.stats().deadline >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_errors_in_the_clients_protocol() {
    let p = start(config(mock().await, "", ""), None).await;
    let client = reqwest::Client::new();
    let big = "x".repeat(70_000);
    for (path, body, status, kind) in [
        ("/v1/chat/completions", big.clone(), 413, "invalid_request_error"),
        ("/v1/messages", big, 413, "request_too_large"),
        ("/v1/chat/completions", "{\"model\":".to_string(), 400, "invalid_request_error"),
        ("/v1/messages", "[1,2]".to_string(), 400, "invalid_request_error"),
        ("/v1/chat/completions", json!({"model": "llama-3"}).to_string(), 404, "invalid_request_error"),
        (
            "/v1/chat/completions",
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": 42}]}).to_string(),
            400,
            "invalid_request_error",
        ),
    ] {
        let r = client.post(format!("{}{path}", p.url)).body(body).send().await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], kind, "{path}: {v}");
        assert_eq!(v.get("type").is_some(), path == "/v1/messages", "Anthropic errors carry type: error");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_are_mapped_and_disconnects_end_with_an_error_event() {
    // The mock's errors are scripted per request: passed through, neither retried nor rested.
    let once = "[routing]\nretry_on = []\n[routing.cooldown]\nrate_limited_ms = 0";
    let p = start(config(mock().await, "", once), None).await;
    let r = post(&p, "openai", &body("openai", "gpt-via-anthropic", false), &[("x-mock-script", "rate_limit")]).await;
    assert_eq!((r.status().as_u16(), r.headers()["retry-after"].to_str().unwrap()), (429, "2"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let r = post(&p, "anthropic", &body("anthropic", "claude-via-openai", false), &[("x-mock-script", "server_error")])
        .await;
    assert_eq!(r.status(), 500);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["type"].as_str(), v["error"]["type"].as_str()), (Some("error"), Some("api_error")));
    for (client, model) in [("openai", "gpt-via-anthropic"), ("anthropic", "claude-via-openai")] {
        let r = post(&p, client, &body(client, model, true), &[("x-mock-script", "disconnect")]).await;
        assert_eq!(r.status(), 200);
        let raw = r.text().await.unwrap();
        assert!(raw.contains("upstream stream ended before the message completed"), "{raw}");
    }
    let dead = start(config("127.0.0.1:9".parse().unwrap(), "", ""), None).await;
    let r = post(&dead, "openai", &body("openai", "gpt-4o", false), &[]).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("unreachable"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_models_metrics_and_admin() {
    let p = start(config(mock().await, "admin_token_env = \"SG_TEST_ADMIN_TOKEN\"", ""), None).await;
    let get = |path: &str| reqwest::get(format!("{}{path}", p.url));
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let ready: Value = get("/readyz").await.unwrap().json().await.unwrap();
    assert_eq!(ready["ready"], true);
    let models: Value = get("/v1/models").await.unwrap().json().await.unwrap();
    assert!(models["data"].as_array().unwrap().iter().any(|m| m["id"] == "gpt-via-anthropic"));
    let m = get("/metrics").await.unwrap().text().await.unwrap();
    for name in
        ["shadowgate_wasm_load_seconds", "shadowgate_shadow_queue_depth", "shadowgate_shadow_jobs_dropped_total"]
    {
        assert!(m.contains(name), "{name}");
    }
    assert_eq!(get("/admin/modes").await.unwrap().status(), 403);
    let r = reqwest::Client::new()
        .get(format!("{}/admin/modes?tenant=strict&route=gpt", p.url))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["tenant"].as_str(), v["modules"]["compat"].as_str()), (Some("strict"), Some("shadow")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_latency_is_each_sides_own_conversion_time() {
    let p = start(config(mock().await, "mode = \"shadow\"", ""), None).await;
    let started = std::time::Instant::now();
    let r = post(&p, "openai", &body("openai", "gpt-via-anthropic", true), &[("x-mock-script", "slow")]).await;
    let raw = r.text().await.unwrap();
    let took = started.elapsed();
    assert_eq!(text_of("openai", true, &raw), ANSWER);
    assert!(took >= Duration::from_millis(150), "the slow script spreads the stream over {took:?}");
    let recs = records(&p, 5);
    let stream = recs.iter().find(|r| r.result.module == shadowgate_core::Module::Streaming).expect("a stream record");
    // Before, the primary side counted the waits for upstream chunks (the whole stream's duration).
    assert!(
        stream.latency_main_us < 50_000,
        "primary conversion {} µs while the stream took {took:?}",
        stream.latency_main_us
    );
    let delta = stream.latency_shadow_us as i64 - stream.latency_main_us as i64;
    assert!(delta.abs() < 50_000, "shadow {} µs vs primary {} µs", stream.latency_shadow_us, stream.latency_main_us);
}

#[tokio::test(flavor = "current_thread")]
async fn a_spinning_primary_guest_never_holds_the_executor_and_trips_its_breaker() {
    // One executor thread: if a guest call ran on it, nothing else could be served meanwhile.
    let top = "mode = \"wasm_primary\"\nadmin_token_env = \"SG_TEST_ADMIN_TOKEN\"";
    let extra = "[primary]\ndeadline_ms = 400\nbreaker_failures = 2\nbreaker_cooldown_ms = 60000";
    let p = start(config(mock().await, top, extra), Some(&looping_guest())).await;
    let url = p.url.clone();
    let spinning = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/v1/chat/completions"))
            .json(&body("openai", "gpt-4o", false))
            .send()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let health = reqwest::get(format!("{}/healthz", p.url)).await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "healthz waited {:?} for a spinning guest",
        started.elapsed()
    );
    let r = spinning.await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-shadowgate-fallback"].to_str().unwrap()), (200, "native"));

    // Routing failed on the guest, then compat: two failures of routing need one more request.
    let r = post(&p, "openai", &body("openai", "gpt-4o", false), &[]).await;
    assert_eq!(r.status(), 200);
    // Now routing's breaker is open: the next request is served natively at once.
    let started = std::time::Instant::now();
    let r = post(&p, "openai", &body("openai", "gpt-4o", false), &[]).await;
    assert_eq!((r.status().as_u16(), r.headers()["x-shadowgate-fallback"].to_str().unwrap()), (200, "native"));
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "an open breaker does not wait for the guest: {:?}",
        started.elapsed()
    );
    let admin: Value = reqwest::Client::new()
        .get(format!("{}/admin/modules", p.url))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(admin["breakers"]["routing"]["state"], "open", "{}", admin["breakers"]);
    assert_eq!(admin["breakers"]["compat"]["state"], "open");
    let metrics = reqwest::get(format!("{}/metrics", p.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("shadowgate_breaker_open{module=\"routing\"} 1"), "{metrics}");
    assert!(metrics.contains("shadowgate_breaker_trips_total{module=\"compat\"} 1"));
    let recs = records(&p, 9);
    assert!(recs.iter().any(|r| r.result.outcome == Outcome::PrimaryError
        && r.result.summary.to_value()["error"].as_str().is_some_and(|e| e.contains("circuit open"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_choices_cross_no_protocol_silently() {
    let p = start(config(mock().await, "", ""), None).await;
    let mut req = body("openai", "gpt-via-anthropic", false);
    req["n"] = json!(3);
    let r = post(&p, "openai", &req, &[]).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("/n") && msg.contains("several choices"), "{msg}");
}
