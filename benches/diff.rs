//! Cost of one shadow comparison next to the conversion it checks.
//!
//! `cargo bench --bench diff` (figures in BENCHMARKS.md).

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use shadowgate::diff::{Differ, Ruleset, Scope};
use shadowgate_core::{Context, Protocol};
use shadowgate_runtime::{NativeRuntime, Runtime, frame};
use std::hint::black_box;
use std::time::Duration;

fn scope(module: &str, kind: &str) -> Scope {
    Scope {
        module: module.parse().expect("a module"),
        protocol: shadowgate_core::Protocol::OpenAiChat,
        kind: kind.into(),
    }
}

/// A 500-event OpenAI client stream, and the same content chunked differently.
fn streams() -> (String, String) {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let (mut a, mut b) = (chunk(json!({"role": "assistant", "content": ""}), json!(null)), String::new());
    b.push_str(&a);
    for i in 0..497 {
        let word = format!(" word{i}");
        a.push_str(&chunk(json!({"content": word}), json!(null)));
        // The other side splits each word in two.
        let (x, y) = word.split_at(3);
        b.push_str(&chunk(json!({"content": x}), json!(null)));
        b.push_str(&chunk(json!({"content": y}), json!(null)));
    }
    for s in [&mut a, &mut b] {
        s.push_str(&chunk(json!({}), json!("stop")));
        s.push_str("data: [DONE]\n\n");
    }
    (a, b)
}

fn bench(c: &mut Criterion) {
    let differ = Differ::new(Ruleset::load(Some("v1")).unwrap());
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/core/tests/fixtures/response/anthropic-messages/thinking_tool_cache.json"
    ))
    .unwrap();
    let ctx = |seed| Context { request_id: format!("req_{seed}"), created: 1_763_800_000 + seed as i64, id_seed: seed };
    let native = NativeRuntime::new();
    let convert = |seed| {
        let env = native
            .call(
                "compat.response",
                &frame(&json!({"ctx": ctx(seed), "from": "anthropic-messages", "to": "openai-chat"}), &body),
            )
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&env).unwrap();
        v["ok"].to_string().into_bytes()
    };
    // Same content, different id and created: the full canonical path runs.
    let (left, right) = (convert(1), convert(2));
    let mut g = c.benchmark_group("diff");
    g.bench_function("response-conversion (for scale)", |b| b.iter(|| convert(black_box(1))));
    g.bench_function("response identical bytes", |b| {
        b.iter(|| differ.compare_json(&scope("compat", "response"), black_box(&left), &left))
    });
    g.bench_function("response ignored ids", |b| {
        b.iter(|| differ.compare_json(&scope("compat", "response"), black_box(&left), &right))
    });
    let (a, b2) = streams();
    // For scale: converting the 500-chunk OpenAI upstream stream for an OpenAI client.
    let options =
        json!({"ctx": ctx(1), "from": "openai-chat", "to": "openai-chat", "include_usage": false}).to_string();
    g.bench_function("stream-500 conversion (for scale)", |bch| {
        bch.iter(|| {
            let mut s = native.open_stream(options.as_bytes()).unwrap();
            for piece in a.split_inclusive("\n\n") {
                black_box(s.feed(piece.as_bytes()).unwrap());
            }
            s.close().unwrap()
        })
    });
    g.bench_function("stream-500 identical bytes", |b| {
        b.iter(|| {
            differ.compare_sse(
                &scope("streaming", "stream"),
                Protocol::OpenAiChat,
                black_box(a.as_bytes()),
                a.as_bytes(),
            )
        })
    });
    g.bench_function("stream-500 rechunked", |b| {
        b.iter(|| {
            differ.compare_sse(
                &scope("streaming", "stream"),
                Protocol::OpenAiChat,
                black_box(a.as_bytes()),
                b2.as_bytes(),
            )
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(50)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
