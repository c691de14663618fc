//! The axum app driven without a server (`tower::ServiceExt::oneshot` on
//! `app(state)`): error shapes in each client's protocol, admin
//! authorization, mode resolution, health and readiness. Nothing here needs
//! an upstream: every request is answered before one would be called.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use shadowgate::proxy::app::{AppState, app};
use shadowgate::proxy::config::Config;
use shadowgate::proxy::{Recording, build};
use shadowgate_runtime::{WasmConfig, WasmRuntime};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use tower::ServiceExt;

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
trust_tenant_header = true
admin_token_env = "SG_TEST_ADMIN_TOKEN"
max_body_bytes = 1024
[[providers]]
name = "openai"
protocol = "openai-chat"
base_url = "http://127.0.0.1:9/v1"
[[routes]]
id = "gpt"
model = "gpt-*"
provider = "openai"
[[tenants]]
name = "default"
allow_mode_header = true
[[tenants]]
name = "strict"
header_value = "strict"
mode = "native_primary"
[[tenants]]
name = "prod"
api_key_sha256 = ["0160b68d1ffc5cc72b7872e79bcee346da291365a91873788d1f8da259180c15"]
[[tenants]]
name = "testers"
header_value = "qa-team"
allow_mode_header = true
[modules]
state_file = "/dev/null/unused"
"#;

static WASM: LazyLock<Arc<WasmRuntime>> =
    LazyLock::new(|| Arc::new(WasmRuntime::embedded(WasmConfig { cache_dir: None, ..WasmConfig::default() }).unwrap()));

/// A state with `extra` top-level keys.
fn state(extra: &str) -> Arc<AppState> {
    state_of(&(extra.to_string() + CONFIG))
}

/// A state from config `text`; each has its own state file.
fn state_of(text: &str) -> Arc<AppState> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let file = std::env::temp_dir().join(format!("shadowgate-app-{}-{n}/modules.json", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let text = text.replace("/dev/null/unused", &file.display().to_string());
    let cfg = Config::parse(&text, "app.toml").unwrap();
    let (rec, _records) = Recording::channel(1024);
    build(cfg, WASM.clone(), rec).unwrap()
}

async fn send(st: &Arc<AppState>, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = app(st.clone()).oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn post(path: &str, body: impl Into<Body>, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.into()).unwrap()
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

const TOKEN: &str = "test-admin-token";

#[tokio::test]
async fn errors_come_in_the_clients_own_protocol() {
    let st = state("");
    let big = format!("{{\"model\": \"gpt-4o\", \"pad\": \"{}\"}}", "x".repeat(2048));
    let (status, headers, v) = send(&st, post("/v1/chat/completions", big.clone(), &[])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("1024 byte limit"), "{v}");
    assert!(headers.contains_key("x-shadowgate-request-id"));
    let (status, _, v) = send(&st, post("/v1/messages", big, &[])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!((v["type"].as_str(), v["error"]["type"].as_str()), (Some("error"), Some("request_too_large")));

    let (status, _, v) = send(&st, post("/v1/messages", "{\"model\": ", &[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"].as_str().unwrap().starts_with("malformed JSON"), "{v}");
    let (status, _, v) = send(&st, post("/v1/chat/completions", "[1, 2]", &[])).await;
    assert_eq!(
        (status, v["error"]["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("request body must be a JSON object"))
    );
    let (status, _, v) = send(&st, post("/v1/chat/completions", "{\"messages\": []}", &[])).await;
    assert_eq!(
        (status, v["error"]["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("missing required field: model"))
    );

    let (status, _, v) = send(&st, post("/v1/messages", json!({"model": "llama-3"}).to_string(), &[])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("llama-3"), "{v}");

    // A Responses client gets OpenAI's error shape, with the path of a bad field,
    // and a stateful field bound for another protocol is refused by name.
    let (status, _, v) = send(&st, post("/v1/responses", r#"{"model": "gpt-5", "input": 42}"#, &[])).await;
    assert_eq!((status, v["error"]["type"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request_error")));
    assert!(v["error"]["message"].as_str().unwrap().contains("/input"), "{v}");
    let body = json!({"model": "gpt-5", "input": "hi", "previous_response_id": "resp_1"}).to_string();
    let (status, _, v) = send(&st, post("/v1/responses", body, &[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"].as_str().unwrap().contains("previous_response_id"), "{v}");
}

#[test]
fn a_guest_without_a_protocol_a_route_needs_is_refused() {
    let cfg = Config::parse(CONFIG, "app.toml").unwrap();
    let all: Vec<String> = shadowgate_core::Protocol::ALL.iter().map(|p| p.as_str().to_string()).collect();
    shadowgate::proxy::check_guest_protocols(&cfg, &all).unwrap();
    let old = ["openai-chat".to_string(), "anthropic-messages".to_string()];
    let e = shadowgate::proxy::check_guest_protocols(&cfg, &old).unwrap_err().to_string();
    assert!(e.starts_with("routes[0]: route \"gpt\" needs protocol openai-responses"), "{e}");
    let pinned = CONFIG.replace("model = \"gpt-*\"", "model = \"gpt-*\"\nendpoint = \"openai-chat\"");
    shadowgate::proxy::check_guest_protocols(&Config::parse(&pinned, "app.toml").unwrap(), &old).unwrap();
}

#[tokio::test]
async fn mode_overrides_are_checked_before_anything_is_called() {
    let st = state("");
    let body = json!({"model": "gpt-4o", "messages": []}).to_string();
    let (status, _, v) = send(&st, post("/v1/chat/completions", body.clone(), &[("x-shadowgate-mode", "turbo")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"].as_str().unwrap().contains("invalid mode"), "{v}");
    let strict = [("x-shadowgate-tenant", "strict"), ("x-shadowgate-mode", "wasm_primary")];
    let (status, headers, v) = send(&st, post("/v1/messages", body, &strict)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["type"], "permission_error");
    assert_eq!(headers["x-shadowgate-mode"], "-");
}

#[tokio::test]
async fn a_tenant_and_its_mode_cannot_be_claimed_by_a_header() {
    let st = state("");
    let body = json!({"model": "gpt-4o", "messages": []}).to_string();
    // Holding prod's key and naming another tenant (by name or header value) does not make one that tenant.
    for claimed in ["testers", "qa-team"] {
        let headers =
            [("x-api-key", "sk-prod"), ("x-shadowgate-tenant", claimed), ("x-shadowgate-mode", "wasm_primary")];
        let (status, _, v) = send(&st, post("/v1/chat/completions", body.clone(), &headers)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{claimed}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("\"prod\""), "{v}");
    }
    // Anonymous: the default tenant, which may not set its mode although its config allows the header.
    let headers = [("x-shadowgate-tenant", "testers"), ("x-shadowgate-mode", "wasm_primary")];
    let (status, _, v) = send(&st, post("/v1/messages", body.clone(), &headers)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(v["error"]["message"].as_str().unwrap().contains("\"default\""), "{v}");
    // Without a trusted front the header is ignored altogether.
    let untrusted = state_of(&CONFIG.replace("trust_tenant_header = true", "trust_tenant_header = false"));
    let headers = [("x-shadowgate-tenant", "qa-team"), ("x-shadowgate-mode", "wasm_primary")];
    let (status, _, _) = send(&untrusted, post("/v1/messages", body, &headers)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_admin_api_needs_the_token() {
    let st = state("");
    for token in [None, Some("wrong"), Some("")] {
        let (status, _, v) = send(&st, get("/admin/modules", token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{token:?}");
        assert!(v["error"].as_str().unwrap().contains("admin token required"));
        let (status, _, _) = send(&st, get("/admin/modes", token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _, v) = send(&st, get("/admin/modules", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["stages"]["compat"], "shadow");
    assert_eq!(v["thresholds"]["tokenizer"]["max_diff_rate"], 0.0001);

    let auth = [("authorization", "Bearer test-admin-token")];
    let (status, _, _) = send(&st, post("/admin/modules/compat", "{\"stage\": \"canary\"}", &[])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, v) = send(&st, post("/admin/modules/tokeniser", "{\"stage\": \"canary\"}", &auth)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("tokeniser"));
    let (status, _, v) = send(&st, post("/admin/modules/compat", "{\"stage\": \"beta\"}", &auth)).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unknown stage \"beta\"")));
    let (status, _, v) = send(&st, post("/admin/modules/compat", "{\"action\": \"promote\"}", &auth)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((v["from"].as_str(), v["stage"].as_str()), (Some("shadow"), Some("canary")));
    let (_, _, v) = send(&st, get("/admin/modules", Some(TOKEN))).await;
    assert_eq!(v["stages"]["compat"], "canary");
}

#[tokio::test]
async fn modes_resolve_per_tenant_route_and_stage() {
    let st = state("");
    let (status, _, v) = send(&st, get("/admin/modes?tenant=strict&route=gpt", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["tenant"], "strict");
    assert_eq!(v["resolution"]["level"], "tenant");
    assert_eq!(v["modules"]["compat"], "native_primary");
    let (_, _, v) = send(&st, get("/admin/modes", Some(TOKEN))).await;
    assert_eq!((v["tenant"].as_str(), v["resolution"]["level"].as_str()), (Some("default"), Some("stage")));
    assert_eq!(v["modules"]["routing"], "shadow");
    let (_, _, v) = send(&st, get("/admin/modes?mode=wasm_primary", Some(TOKEN))).await;
    assert_eq!(
        (v["resolution"]["level"].as_str(), v["modules"]["tools"].as_str()),
        (Some("request"), Some("wasm_primary"))
    );

    let locked = state("mode = \"native_primary\"\nmode_locked = true\n");
    let (_, _, v) = send(&locked, get("/admin/modes?mode=wasm_primary", Some(TOKEN))).await;
    assert_eq!(v["resolution"]["level"], "global");
    assert_eq!(v["resolution"]["header_ignored"], true);
    assert_eq!(v["modules"]["compat"], "native_primary");
}

#[tokio::test]
async fn health_readiness_and_models() {
    let st = state("");
    let resp = app(st.clone()).oneshot(get("/healthz", None)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, _, v) = send(&st, get("/readyz", None)).await;
    assert_eq!((status, v["ready"].as_bool(), v["abi"].as_u64()), (StatusCode::OK, Some(true), Some(1)));
    assert_eq!(v["guest_sha256"].as_str().unwrap().len(), 64);
    let (_, _, v) = send(&st, get("/v1/models", None)).await;
    assert_eq!(v["data"], json!([]), "wildcard routes are not listed as models");
}

#[tokio::test]
async fn a_stream_task_that_panics_does_not_hold_up_shutdown() {
    let st = state("");
    let guard = st.stream_started();
    assert_eq!(st.streams_in_flight(), 1);
    let task = tokio::spawn(async move {
        let _guard = guard;
        panic!("a bug in the pump");
    });
    assert!(task.await.is_err());
    assert_eq!(st.streams_in_flight(), 0);
    let start = std::time::Instant::now();
    st.streams_done(std::time::Duration::from_secs(30)).await;
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
}

#[tokio::test]
async fn a_dead_sink_writer_fails_readiness() {
    let st = state("");
    st.sink.writer_down.store(true, Ordering::Release);
    let (status, _, v) = send(&st, get("/readyz", None)).await;
    assert_eq!((status, v["ready"].as_bool()), (StatusCode::SERVICE_UNAVAILABLE, Some(false)));
    assert!(v["reason"].as_str().unwrap().contains("sink writer"));
}

#[tokio::test]
async fn alerting_series_exist_at_zero_from_the_start() {
    let st = state("");
    let resp = app(st.clone()).oneshot(get("/metrics", None)).await.unwrap();
    let text = String::from_utf8(axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    for series in [
        "shadowgate_fallbacks_total{module=\"compat\"} 0",
        "shadowgate_shadow_errors_total{kind=\"deadline\"} 0",
        "shadowgate_sink_records_dropped_total{table=\"diffs\"} 0",
        "shadowgate_sink_rows_failed_total{table=\"cases\"} 0",
        "shadowgate_module_rollbacks_total{module=\"tokenizer\"} 0",
        "shadowgate_breaker_open{module=\"streaming\"} 0",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
}

#[tokio::test]
async fn without_an_admin_token_the_admin_api_says_it_is_disabled() {
    let st = state_of(&CONFIG.replace("admin_token_env = \"SG_TEST_ADMIN_TOKEN\"\n", ""));
    let (status, _, v) = send(&st, get("/admin/modules", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(v["error"].as_str().unwrap().contains("disabled by configuration"), "{v}");
}
