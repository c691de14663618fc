//! `routing.resolve` and `routing.next` on fixture tables: each
//! `tests/fixtures/routing/<name>.json` holds an op and its input (route
//! table + health snapshot + request, or plan + failure); its plan or
//! decision is compared with `<name>.out.json` (`SHADOWGATE_BLESS=1` writes
//! it). The tests below assert the behaviour those files show.

// Tests read their fixtures from disk; the I/O ban is for the core itself.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use serde_json::{Value, json};
use shadowgate_core::dispatch;

fn run(op: &str, input: &Value) -> Value {
    let out = dispatch(op, &framed(json!({}), input.to_string().as_bytes()));
    serde_json::from_slice(&out).unwrap()
}

fn ok(op: &str, input: &Value) -> Value {
    let v = run(op, input);
    assert!(v.get("ok").is_some(), "{op}: {v}");
    v["ok"].clone()
}

#[test]
fn fixture_plans_and_decisions() {
    let dir = fixtures().join("routing");
    let mut n = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files.iter().filter(|p| !p.to_string_lossy().ends_with(".out.json")) {
        let case: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let out = run(case["op"].as_str().unwrap(), &case["input"]);
        let expected = path.with_extension("out.json");
        check_golden(&expected, &(serde_json::to_string_pretty(&out).unwrap() + "\n"));
        n += 1;
    }
    assert!(n >= 6, "{n} fixtures");
}

fn policy() -> (Value, Value) {
    (
        json!({"retry_on": ["rate_limited", "server_error", "timeout", "auth", "quota_exhausted"], "max_attempts": 4,
               "backoff_base_ms": 100, "backoff_max_ms": 2000, "retry_after_cap_ms": 5000}),
        json!({"rate_limited_ms": 10000, "server_error_ms": 30000, "server_errors": 3, "timeout_ms": 15000,
               "auth_ms": 600000, "quota_ms": 3600000}),
    )
}

/// Two targets (Anthropic with two keys, then OpenAI with one), plus a weighted pair.
fn table() -> Value {
    let (retry, cooldown) = policy();
    json!({
        "routes": [
            {"id": "claude", "model": "claude-*", "aliases": ["sonnet"], "targets": [
                {"provider": "anthropic", "upstream_model": "claude-sonnet-4-5"},
                {"provider": "openai", "upstream_model": "gpt-4.1"}]},
            {"id": "shared", "model": "gpt-*", "targets": [
                {"provider": "openai", "weight": 3}, {"provider": "anthropic", "upstream_model": "claude-haiku-4-5", "weight": 1}]}
        ],
        "providers": [
            {"name": "anthropic", "protocol": "anthropic-messages",
             "keys": [{"name": "ANTHROPIC_KEY_A", "max_inflight": 4}, {"name": "ANTHROPIC_KEY_B", "max_inflight": 4}]},
            {"name": "openai", "protocol": "openai-chat", "keys": [{"name": "-"}]}
        ],
        "retry": retry, "cooldown": cooldown
    })
}

fn resolve(model: &str, health: Value, seed: u64) -> Value {
    ok(
        "routing.resolve",
        &json!({"client_protocol": "openai-chat", "model": model, "table": table(), "health": health, "seed": seed}),
    )
}

fn keys(plan: &Value) -> Vec<String> {
    plan["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["provider"].as_str().unwrap(), a["key"].as_str().unwrap()))
        .collect()
}

#[test]
fn targets_fail_over_in_order_and_keys_go_least_loaded_first() {
    let idle = resolve("claude-sonnet", json!({"now_ms": 1000}), 0);
    assert_eq!(idle["route_id"], "claude");
    assert_eq!(keys(&idle), ["anthropic/ANTHROPIC_KEY_A", "anthropic/ANTHROPIC_KEY_B", "openai/-"]);
    assert_eq!(idle["attempts"][2]["upstream_protocol"], "openai-chat");
    assert_eq!(idle["attempts"][2]["upstream_model"], "gpt-4.1");
    let busy = resolve(
        "sonnet",
        json!({"now_ms": 1000, "keys": [{"provider": "anthropic", "key": "ANTHROPIC_KEY_A", "inflight": 2}]}),
        0,
    );
    assert_eq!(
        keys(&busy)[..2],
        ["anthropic/ANTHROPIC_KEY_B", "anthropic/ANTHROPIC_KEY_A"],
        "an alias matches; the less loaded key leads"
    );
    let full = resolve(
        "sonnet",
        json!({"now_ms": 1000, "keys": [
        {"provider": "anthropic", "key": "ANTHROPIC_KEY_B", "inflight": 4}]}),
        1,
    );
    assert_eq!(keys(&full)[..2], ["anthropic/ANTHROPIC_KEY_A", "anthropic/ANTHROPIC_KEY_B"]);
    assert!(full["attempts"][1]["reason"].as_str().unwrap().contains("at its cap"), "{full}");
}

#[test]
fn cooling_keys_are_skipped_and_a_route_with_none_left_is_unavailable() {
    let h = json!({"now_ms": 5000, "keys": [
        {"provider": "anthropic", "key": "ANTHROPIC_KEY_A", "cooldown_until_ms": 9000, "reason": "auth"}]});
    let plan = resolve("claude-x", h, 0);
    assert_eq!(keys(&plan), ["anthropic/ANTHROPIC_KEY_B", "openai/-"]);
    assert_eq!(plan["skipped"][0]["key"], "ANTHROPIC_KEY_A");
    let all = json!({"now_ms": 5000, "keys": [
        {"provider": "anthropic", "key": "ANTHROPIC_KEY_A", "cooldown_until_ms": 9000, "reason": "rate_limited"},
        {"provider": "anthropic", "key": "ANTHROPIC_KEY_B", "cooldown_until_ms": 7000, "reason": "server_error"},
        {"provider": "openai", "key": "-", "cooldown_until_ms": 12000, "reason": "server_error"}]});
    let plan = resolve("claude-x", all.clone(), 0);
    assert_eq!(plan["attempts"], json!([]));
    assert_eq!(plan["unavailable"]["status"], 429, "a rate limit among them: 429");
    assert_eq!(plan["unavailable"]["retry_after_ms"], 2000, "the first key back");
    let mut expired = all;
    expired["now_ms"] = json!(20000);
    assert_eq!(keys(&resolve("claude-x", expired, 0)).len(), 3, "cooldowns end");
    let miss = run("routing.resolve", &json!({"client_protocol": "openai-chat", "model": "llama", "table": table()}));
    assert_eq!(miss["err"]["kind"], "no_route", "{miss}");
}

#[test]
fn weighted_targets_share_load_by_weight_and_the_seed_decides() {
    let mut first_openai = 0;
    for seed in 0..400 {
        let plan = resolve("gpt-4o", json!({"now_ms": 0}), seed);
        assert_eq!(plan["attempts"].as_array().unwrap().len(), 3, "every target stays in the plan as failover");
        if plan["attempts"][0]["provider"] == "openai" {
            first_openai += 1;
        }
        assert_eq!(plan, resolve("gpt-4o", json!({"now_ms": 0}), seed), "same seed, same plan");
    }
    assert!((260..=340).contains(&first_openai), "weight 3:1 → about 300 of 400, got {first_openai}");
}

fn next(plan: &Value, failed: u32, status: Option<u16>, body: &str, phase: &str, extra: Value) -> Value {
    let (retry, cooldown) = policy();
    let mut q = json!({"plan": plan, "failed": failed, "status": status, "body": body, "phase": phase,
                       "attempts_made": failed + 1, "retry": retry, "cooldown": cooldown, "now_ms": 1000, "seed": 9});
    for (k, v) in extra.as_object().unwrap() {
        q[k] = v.clone();
    }
    ok("routing.next", &q)
}

#[test]
fn a_google_retry_info_body_sets_the_wait_when_no_header_does() {
    let plan = resolve("claude-x", json!({"now_ms": 1000}), 0);
    let body = |delay: &str| {
        json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}})
        .to_string()
    };
    // 37 s from the body beats the policy's 10 s rest; a header, when sent, wins.
    let d = next(&plan, 0, Some(429), &body("37s"), "response", json!({}));
    assert_eq!(d["cooldown"]["until_ms"], 38000, "{d}");
    let d = next(&plan, 0, Some(429), &body("37s"), "response", json!({"retry_after_ms": 2000}));
    assert_eq!(d["cooldown"]["until_ms"], 11000, "{d}");
    // On the last attempt the body's wait is waited out within the cap, and stops past it.
    let d = next(&plan, 2, Some(429), &body("1.5s"), "response", json!({}));
    assert_eq!(
        (d["next"]["delay_ms"].as_u64(), d["next"]["action"].as_str()),
        (Some(1500), Some("retry_same_key")),
        "{d}"
    );
    let d = next(&plan, 2, Some(429), &body("37s"), "response", json!({}));
    assert_eq!(d["next"]["step"], "stop", "{d}");
    // A list of errors (Gemini streams) is read too.
    let listed = format!("[{}]", body("4.25s"));
    assert_eq!(next(&plan, 2, Some(429), &listed, "response", json!({}))["next"]["delay_ms"], 4250);
    // Hostile or cut-short delays are no delay: the policy decides alone, in both runtimes alike.
    for bad in ["-5s", "1e9s", "s", ".5s", "5", "99999999999999999999999s", "３s"] {
        let d = next(&plan, 0, Some(429), &body(bad), "response", json!({}));
        let until = d["cooldown"]["until_ms"].as_u64().unwrap();
        // Only the absurd but well-formed one counts, capped at the longest rest (quota's hour).
        assert_eq!(until, if bad.starts_with("9999") { 3_601_000 } else { 11000 }, "{bad}: {d}");
    }
    let d = next(&plan, 0, Some(429), &body("99999999999999999999999s")[..60], "response", json!({}));
    assert_eq!(d["cooldown"]["until_ms"], 11000, "a truncated body: {d}");
}

#[test]
fn each_failure_class_gets_its_next_step() {
    let plan = resolve("claude-x", json!({"now_ms": 1000}), 0);
    // 429: rest the key for retry-after (or longer), go to the next key at once.
    let d = next(&plan, 0, Some(429), "{}", "response", json!({"retry_after_ms": 2000}));
    assert_eq!(
        (d["class"].as_str(), d["next"]["step"].as_str(), d["next"]["attempt"].as_u64()),
        (Some("rate_limited"), Some("retry"), Some(1))
    );
    assert_eq!(d["next"]["delay_ms"], 0);
    assert_eq!(d["cooldown"]["until_ms"], 11000, "the policy's 10 s beats the 2 s retry-after");
    // 503: fail over to the next target (another provider and protocol), after a backoff.
    let d = next(&plan, 0, Some(503), "", "response", json!({}));
    assert_eq!((d["next"]["attempt"].as_u64(), d["next"]["action"].as_str()), (Some(2), Some("next_target")));
    let delay = d["next"]["delay_ms"].as_u64().unwrap();
    assert!((50..=100).contains(&delay), "first backoff is base 100 ms with jitter in its upper half: {delay}");
    assert!(d.get("cooldown").is_none(), "one server error does not rest a key");
    let d = next(&plan, 0, Some(503), "", "response", json!({"recent_failures": 2}));
    assert_eq!(d["cooldown"]["reason"], "server_error", "the third in a row does");
    // 401: rest the key long, try the next key.
    let d = next(&plan, 0, Some(401), "", "response", json!({}));
    assert_eq!((d["class"].as_str(), d["next"]["attempt"].as_u64()), (Some("auth"), Some(1)));
    assert_eq!(d["cooldown"]["until_ms"], 601000);
    // Other 4xx and mid-stream failures are never retried.
    for (status, phase, class) in [(Some(400), "response", "client_error"), (Some(200), "mid_stream", "mid_stream")] {
        let d = next(&plan, 0, status, "", phase, json!({}));
        assert_eq!((d["class"].as_str(), d["next"]["step"].as_str()), (Some(class), Some("stop")), "{d}");
    }
    // A disconnect before the first byte is a server error: retried.
    assert_eq!(next(&plan, 0, Some(200), "", "first_byte", json!({}))["next"]["step"], "retry");
    // The last attempt: a 429 within the cap waits on the same key; over the cap it stops.
    let d = next(&plan, 2, Some(429), "", "response", json!({"retry_after_ms": 3000}));
    assert_eq!(
        (d["next"]["attempt"].as_u64(), d["next"]["delay_ms"].as_u64(), d["next"]["action"].as_str()),
        (Some(2), Some(3000), Some("retry_same_key"))
    );
    let d = next(&plan, 2, Some(429), "", "response", json!({"retry_after_ms": 60000}));
    assert_eq!(d["next"]["step"], "stop");
    assert!(d["reason"].as_str().unwrap().contains("over the 5000 ms cap"), "{d}");
    // max_attempts ends it.
    let d = next(&plan, 0, Some(503), "", "response", json!({"attempts_made": 4}));
    assert_eq!(d["next"]["step"], "stop");
    // Keys rested earlier in the request are not tried again.
    let d = next(
        &plan,
        0,
        Some(429),
        "",
        "response",
        json!({"cooled": [{"provider": "anthropic", "key": "ANTHROPIC_KEY_B"}]}),
    );
    assert_eq!(d["next"]["attempt"], 2);
    let bad = run(
        "routing.next",
        &json!({"plan": plan, "failed": 9, "phase": "connect", "attempts_made": 1,
        "retry": policy().0, "cooldown": policy().1, "now_ms": 0}),
    );
    assert_eq!(bad["err"]["path"], "/failed", "{bad}");
}
