//! Routing for real, over loopback HTTP in front of the mock upstream: key
//! pools, failover chains (across protocols), retries, cooldowns that outlive
//! a restart, and per-key concurrency caps. The mock's `fail:` scripts and
//! `fail-<status>` keys drive every path.

use serde_json::{Value, json};
use shadowgate::proxy::config::Config;
use shadowgate::proxy::{Recording, build, spawn};
use shadowgate_runtime::{WasmConfig, WasmRuntime};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN: &str = "routing-test-admin";

/// The keys these tests use, set once before any test reads the environment.
fn keys() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (k, v) in [
            ("SG_RT_KEY_A", "sk-rt-a"),
            ("SG_RT_KEY_B", "sk-rt-b"),
            ("SG_RT_KEY_REFUSED", "sk-rt-fail-401"),
            ("SG_RT_ADMIN", ADMIN),
        ] {
            // SAFETY: every test calls this first, before it starts threads or reads the environment.
            unsafe { std::env::set_var(k, v) };
        }
    });
}

struct Proxy {
    url: String,
    mock: String,
    _state: Arc<shadowgate::proxy::app::AppState>,
}

fn config(mock: SocketAddr, data_dir: &Path, anthropic_keys: &str, extra: &str) -> Config {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
admin_token_env = "SG_RT_ADMIN"
pass_headers = ["x-mock-script"]
[[providers]]
name = "anthropic"
protocol = "anthropic-messages"
base_url = "http://{mock}/v1"
{anthropic_keys}
[[providers]]
name = "openai"
protocol = "openai-chat"
base_url = "http://{mock}/v1"
[[routes]]
id = "claude"
model = "claude-*"
targets = [{{ provider = "anthropic" }}, {{ provider = "openai", upstream_model = "gpt-4.1" }}]
[[routes]]
id = "solo"
model = "solo-*"
provider = "anthropic"
[sink]
data_dir = {data_dir:?}
{extra}
"#
    );
    Config::parse(&text, "routing-test.toml").unwrap()
}

const TWO_KEYS: &str = r#"api_key_envs = [{ env = "SG_RT_KEY_A" }, { env = "SG_RT_KEY_B" }]"#;

async fn start(cfg: Config, mock: SocketAddr) -> Proxy {
    let wasm = Arc::new(WasmRuntime::embedded(WasmConfig { cache_dir: None, ..WasmConfig::default() }).unwrap());
    let (rec, _records) = Recording::channel(4096);
    let state = build(cfg, wasm, rec).unwrap();
    let addr = spawn(state.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    Proxy { url: format!("http://{addr}"), mock: format!("http://{mock}"), _state: state }
}

async fn mock() -> SocketAddr {
    shadowgate::mock::spawn(Vec::new(), "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn tmp(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(name).tempdir().unwrap()
}

/// An OpenAI Chat request for `model` with a mock script.
async fn chat(p: &Proxy, model: &str, script: &str, stream: bool) -> reqwest::Response {
    let body =
        json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "What is shadow traffic?"}]});
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", p.url))
        .header("x-mock-script", script)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn header(r: &reqwest::Response, k: &str) -> String {
    r.headers().get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

async fn upstreams(p: &Proxy) -> Value {
    let r = reqwest::Client::new().get(format!("{}/admin/upstreams", p.url)).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The keys cooling down, as `provider/key reason`.
async fn cooling(p: &Proxy) -> Vec<String> {
    let v = upstreams(p).await;
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["cooling_down"] == true)
        .map(|k| {
            format!(
                "{}/{} {}",
                k["provider"].as_str().unwrap(),
                k["key"].as_str().unwrap(),
                k["cooldown_reason"].as_str().unwrap()
            )
        })
        .collect()
}

/// What the mock saw per key: (requests, most in flight).
async fn mock_stats(p: &Proxy, key: &str) -> (u64, u64) {
    let v: Value = reqwest::get(format!("{}/mock/stats", p.mock)).await.unwrap().json().await.unwrap();
    (v[key]["requests"].as_u64().unwrap_or(0), v[key]["max_inflight"].as_u64().unwrap_or(0))
}

const ANSWER: &str = "Shadow traffic lets you compare two runtimes on real requests without risk.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_key_rests_and_the_next_key_serves_at_once() {
    keys();
    let dir = tmp("rt-429");
    let m = mock().await;
    let p = start(config(m, dir.path(), TWO_KEYS, ""), m).await;
    let started = Instant::now();
    let r = chat(&p, "claude-sonnet-4-5", "fail:429,ok#a", false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-shadowgate-attempts"), "2");
    let served = header(&r, "x-shadowgate-upstream");
    assert!(served.starts_with("anthropic/SG_RT_KEY_"), "{served}");
    assert!(started.elapsed() < Duration::from_millis(900), "another key does not wait for retry-after");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], ANSWER);
    let rested = cooling(&p).await;
    assert_eq!(rested.len(), 1, "{rested:?}");
    assert!(!rested[0].starts_with(&served) && rested[0].ends_with(" rate_limited"), "{rested:?} {served}");
    // The next requests skip the resting key.
    for _ in 0..3 {
        let r = chat(&p, "claude-sonnet-4-5", "text", false).await;
        assert_eq!(
            (header(&r, "x-shadowgate-upstream"), header(&r, "x-shadowgate-attempts")),
            (served.clone(), "1".into())
        );
    }
    let metrics = reqwest::get(format!("{}/metrics", p.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("shadowgate_upstream_retries_total{provider=\"anthropic\""), "{metrics}");
    assert!(metrics.contains("class=\"rate_limited\""), "{metrics}");
    assert!(metrics.contains("shadowgate_upstream_cooldowns_total"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_key_waits_out_retry_after_and_every_key_resting_is_a_429_with_retry_after() {
    keys();
    let dir = tmp("rt-wait");
    let m = mock().await;
    let p = start(config(m, dir.path(), r#"api_key_env = "SG_RT_KEY_A""#, ""), m).await;
    let started = Instant::now();
    let r = chat(&p, "solo-1", "fail:429,ok#b", false).await;
    assert_eq!((r.status().as_u16(), header(&r, "x-shadowgate-attempts")), (200, "2".into()));
    assert!(started.elapsed() >= Duration::from_millis(950), "the mock's retry-after: 1 is honoured");
    assert_eq!(cooling(&p).await, ["anthropic/SG_RT_KEY_A rate_limited"]);
    // Now the route's only key rests: shadowgate answers for it, in the client's protocol.
    let before = mock_stats(&p, "sk-rt-a").await.0;
    let r = chat(&p, "solo-1", "text", false).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "x-shadowgate-attempts"), "0");
    let wait: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((1..=5).contains(&wait), "{wait}");
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("cooling down"), "{v}");
    assert_eq!(mock_stats(&p, "sk-rt-a").await.0, before, "the resting key was not called");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_fails_over_to_the_next_target_in_another_protocol() {
    keys();
    let dir = tmp("rt-503");
    let m = mock().await;
    let p = start(config(m, dir.path(), "", ""), m).await;
    for stream in [false, true] {
        let r = chat(&p, "claude-sonnet-4-5", &format!("fail:503,ok#c{stream}"), stream).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            (header(&r, "x-shadowgate-attempts"), header(&r, "x-shadowgate-upstream")),
            ("2".into(), "openai/-".into())
        );
        let text = r.text().await.unwrap();
        if stream {
            assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
            assert!(text.contains("\"content\":\"Shadow\""), "{text}");
        } else {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["choices"][0]["message"]["content"], ANSWER, "{v}");
        }
    }
    let metrics = reqwest::get(format!("{}/metrics", p.url)).await.unwrap().text().await.unwrap();
    assert!(
        metrics
            .contains("shadowgate_upstream_failovers_total{provider=\"anthropic\",key=\"-\",class=\"server_error\"} 2"),
        "{metrics}"
    );
    // A client error is never retried.
    let r = chat(&p, "claude-sonnet-4-5", "fail:400#c", false).await;
    assert_eq!((r.status().as_u16(), header(&r, "x-shadowgate-attempts")), (400, "1".into()));
}

/// A chain whose fallback speaks a protocol some requests cannot be converted to.
const CHAIN: &str = r#"
[[routes]]
id = "chain"
model = "chain-*"
targets = [{ provider = "openai" }, { provider = "anthropic", upstream_model = "claude-sonnet-4-5" }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_the_request_cannot_be_converted_to_is_skipped_and_the_last_failure_answers() {
    keys();
    let dir = tmp("rt-unconvertible");
    let m = mock().await;
    let p = start(config(m, dir.path(), "", CHAIN), m).await;
    // Two choices cannot go to Anthropic: after OpenAI's 503, no target can take the request,
    // so OpenAI's own answer goes back (not a 400 blaming the client for the fallback).
    let body =
        json!({"model": "chain-1", "n": 2, "messages": [{"role": "user", "content": "What is shadow traffic?"}]});
    let send = |script: &'static str, body: Value| {
        let url = format!("{}/v1/chat/completions", p.url);
        async move { reqwest::Client::new().post(url).header("x-mock-script", script).json(&body).send().await.unwrap() }
    };
    let r = send("fail:503#h", body.clone()).await;
    assert_eq!((r.status().as_u16(), header(&r, "x-shadowgate-attempts")), (503, "1".into()));
    assert_eq!(header(&r, "x-shadowgate-upstream"), "openai/-");
    let metrics = reqwest::get(format!("{}/metrics", p.url)).await.unwrap().text().await.unwrap();
    assert!(
        metrics
            .contains("shadowgate_upstream_attempts_total{provider=\"anthropic\",key=\"-\",class=\"unconvertible\"} 1"),
        "{metrics}"
    );
    // A request the fallback can take fails over as before.
    let mut one = body.clone();
    one["n"] = json!(1);
    let r = send("fail:503,ok#i", one).await;
    assert_eq!((r.status().as_u16(), header(&r, "x-shadowgate-attempts")), (200, "2".into()));
    assert_eq!(header(&r, "x-shadowgate-upstream"), "anthropic/-");
    // The first target's conversion failing is still the client's error.
    let p2 = start(config(m, dir.path(), "", ""), m).await;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", p2.url))
        .json(&json!({"model": "claude-x", "n": 2, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_cooled_down_and_skipped_by_later_requests() {
    keys();
    let dir = tmp("rt-401");
    let m = mock().await;
    let pool = r#"api_key_envs = [{ env = "SG_RT_KEY_REFUSED" }, { env = "SG_RT_KEY_B" }]"#;
    let p = start(config(m, dir.path(), pool, ""), m).await;
    for _ in 0..6 {
        let r = chat(&p, "claude-sonnet-4-5", "text", false).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-shadowgate-upstream"), "anthropic/SG_RT_KEY_B");
    }
    assert_eq!(mock_stats(&p, "sk-rt-fail-401").await.0, 1, "tried once, then resting");
    assert_eq!(cooling(&p).await, ["anthropic/SG_RT_KEY_REFUSED auth"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_before_the_first_byte_is_retried_and_one_after_it_is_not() {
    keys();
    let dir = tmp("rt-cut");
    let m = mock().await;
    let p = start(config(m, dir.path(), "", ""), m).await;
    let r = chat(&p, "solo-1", "fail:cut,ok#e", true).await;
    assert_eq!((r.status().as_u16(), header(&r, "x-shadowgate-attempts")), (200, "2".into()));
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    // Mid-stream: the client already has bytes; it gets the protocol's error event, no retry.
    let before = mock_stats(&p, "-").await.0;
    let r = chat(&p, "solo-1", "disconnect", true).await;
    assert_eq!(header(&r, "x-shadowgate-attempts"), "1");
    let text = r.text().await.unwrap();
    assert!(text.contains("\"error\""), "{text}");
    assert_eq!(mock_stats(&p, "-").await.0, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_never_has_more_requests_in_flight_than_its_cap() {
    keys();
    let dir = tmp("rt-cap");
    let m = mock().await;
    let p = Arc::new(
        start(
            config(
                m,
                dir.path(),
                r#"api_key_env = "SG_RT_KEY_A"
max_inflight = 2"#,
                "",
            ),
            m,
        )
        .await,
    );
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move { chat(&p, "solo-1", "hold:40", false).await.status().as_u16() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(mock_stats(&p, "sk-rt-a").await, (32, 2), "32 served, never more than 2 at once");
    assert_eq!(upstreams(&p).await["keys"][0]["inflight"], 0, "every slot came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooldown_survives_a_restart() {
    keys();
    let dir = tmp("rt-restart");
    let m = mock().await;
    let long = "[routing]\nmax_attempts = 1\n[routing.cooldown]\nrate_limited_ms = 60000";
    let cfg = || config(m, dir.path(), r#"api_key_env = "SG_RT_KEY_A""#, long);
    let p = start(cfg(), m).await;
    assert_eq!(chat(&p, "solo-1", "fail:429#f", false).await.status(), 429);
    let file = dir.path().join("state/upstreams.json");
    for _ in 0..200 {
        if file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(p);
    let p = start(cfg(), m).await;
    let before = mock_stats(&p, "sk-rt-a").await.0;
    let r = chat(&p, "solo-1", "text", false).await;
    assert_eq!(r.status(), 429);
    let wait: u64 = header(&r, "retry-after").parse().unwrap();
    assert!(wait > 50, "the rest of the minute: {wait}");
    assert_eq!(mock_stats(&p, "sk-rt-a").await.0, before, "the restarted proxy did not call the resting key");
}
