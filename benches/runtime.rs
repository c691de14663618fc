//! Native vs wasm per op, on the core's fixtures; warm vs fresh instances.
//!
//! `cargo bench --bench runtime` (figures in BENCHMARKS.md). The host's
//! allocator is the serve binary's (mimalloc with the default features), so
//! "native" is the core as it runs in the proxy.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use shadowgate_core::Context;
use shadowgate_runtime::{InstanceMode, NativeRuntime, Runtime, WasmConfig, WasmRuntime, frame};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("core/tests/fixtures").join(rel)).unwrap()
}

/// The input of a routing fixture (`{"op", "input"}`), framed.
fn routing_input(name: &str) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_slice(&fixture(&format!("routing/{name}"))).unwrap();
    frame(&json!({}), v["input"].to_string().as_bytes())
}

fn ctx() -> Context {
    Context { request_id: "req_bench".into(), created: 1_763_800_000, id_seed: 1 }
}

/// An Anthropic stream of `n` upstream chunks: text deltas, then a tool call
/// whose arguments arrive in fragments, as real upstreams send them.
fn anthropic_stream(n: usize) -> Vec<Vec<u8>> {
    let ev = |v: serde_json::Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap()).into_bytes();
    let mut out = vec![
        ev(
            json!({"type": "message_start", "message": {"id": "msg_b", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 900, "cache_read_input_tokens": 2048, "output_tokens": 1}}}),
        ),
        ev(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
    ];
    let text_chunks = n.saturating_sub(8) * 3 / 4;
    for i in 0..text_chunks {
        out.push(ev(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": format!(" token{i} of the answer,")}})));
    }
    out.push(ev(json!({"type": "content_block_stop", "index": 0})));
    out.push(ev(json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "search", "input": {}}})));
    for i in 0..n - out.len() - 4 {
        out.push(ev(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": if i == 0 { "{\"q\": \"".to_string() } else { format!("part{i} ") }}})));
    }
    out.push(ev(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"}"}})));
    out.push(ev(json!({"type": "content_block_stop", "index": 1})));
    out.push(ev(json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 480}})));
    out.push(ev(json!({"type": "message_stop"})));
    assert_eq!(out.len(), n);
    out
}

fn runtimes() -> Vec<(&'static str, Box<dyn Runtime>)> {
    let cfg = |mode| WasmConfig { instance_mode: mode, ..WasmConfig::default() };
    vec![
        ("native", Box::new(NativeRuntime::new())),
        ("wasm-warm", Box::new(WasmRuntime::embedded(cfg(InstanceMode::Warm)).unwrap())),
        ("wasm-fresh", Box::new(WasmRuntime::embedded(cfg(InstanceMode::Fresh)).unwrap())),
    ]
}

fn bench_ops(c: &mut Criterion) {
    let rts = runtimes();
    let cases = [
        (
            "request",
            "compat.request",
            frame(
                &json!({"from": "openai-chat", "to": "anthropic-messages"}),
                &fixture("request/openai-chat/tools_parallel_history.json"),
            ),
        ),
        (
            "response",
            "compat.response",
            frame(
                &json!({"ctx": ctx(), "from": "anthropic-messages", "to": "openai-chat"}),
                &fixture("response/anthropic-messages/thinking_tool_cache.json"),
            ),
        ),
        (
            "responses-request",
            "compat.request",
            frame(
                &json!({"from": "openai-responses", "to": "anthropic-messages"}),
                &fixture("request/openai-responses/function_tools_history.json"),
            ),
        ),
        (
            "responses-response",
            "compat.response",
            frame(
                &json!({"ctx": ctx(), "from": "anthropic-messages", "to": "openai-responses"}),
                &fixture("response/anthropic-messages/thinking_tool_cache.json"),
            ),
        ),
        (
            "gemini-request",
            "compat.request",
            frame(
                &json!({"from": "gemini", "to": "anthropic-messages", "model": "claude-sonnet-4-5"}),
                &fixture("request/gemini/function_calling_history.json"),
            ),
        ),
        (
            "gemini-response",
            "compat.response",
            frame(
                &json!({"ctx": ctx(), "from": "anthropic-messages", "to": "gemini"}),
                &fixture("response/anthropic-messages/thinking_tool_cache.json"),
            ),
        ),
        ("routing-resolve", "routing.resolve", routing_input("resolve-weighted-pool-loaded.json")),
        ("routing-next", "routing.next", routing_input("next-503-failover.json")),
        ("tiny", "tokenizer.count", frame(&json!({}), b"ok")),
    ];
    for (name, op, input) in &cases {
        let mut g = c.benchmark_group(*name);
        g.throughput(Throughput::Bytes(input.len() as u64));
        for (rt_name, rt) in &rts {
            assert_eq!(rt.call(op, input).unwrap(), rts[0].1.call(op, input).unwrap());
            g.bench_function(BenchmarkId::from_parameter(rt_name), |b| {
                b.iter(|| rt.call(op, black_box(input)).unwrap())
            });
        }
        g.finish();
    }

    let chunks = anthropic_stream(200);
    let options =
        json!({"ctx": ctx(), "from": "anthropic-messages", "to": "openai-chat", "include_usage": true}).to_string();
    let mut g = c.benchmark_group("stream-200");
    g.throughput(Throughput::Elements(200));
    for (rt_name, rt) in &rts {
        g.bench_function(BenchmarkId::from_parameter(rt_name), |b| {
            b.iter(|| {
                let mut s = rt.open_stream(options.as_bytes()).unwrap();
                for chunk in &chunks {
                    black_box(s.feed(chunk).unwrap());
                }
                s.close().unwrap()
            })
        });
    }
    g.finish();

    // The same stream for a Responses client: the richest event family.
    let to_responses = json!({"ctx": ctx(), "from": "anthropic-messages", "to": "openai-responses"}).to_string();
    let mut g = c.benchmark_group("stream-200-to-responses");
    g.throughput(Throughput::Elements(200));
    for (rt_name, rt) in &rts {
        g.bench_function(BenchmarkId::from_parameter(rt_name), |b| {
            b.iter(|| {
                let mut s = rt.open_stream(to_responses.as_bytes()).unwrap();
                for chunk in &chunks {
                    black_box(s.feed(chunk).unwrap());
                }
                s.close().unwrap()
            })
        });
    }
    g.finish();

    let to_gemini = json!({"ctx": ctx(), "from": "anthropic-messages", "to": "gemini"}).to_string();
    let mut g = c.benchmark_group("stream-200-to-gemini");
    g.throughput(Throughput::Elements(200));
    for (rt_name, rt) in &rts {
        g.bench_function(BenchmarkId::from_parameter(rt_name), |b| {
            b.iter(|| {
                let mut s = rt.open_stream(to_gemini.as_bytes()).unwrap();
                for chunk in &chunks {
                    black_box(s.feed(chunk).unwrap());
                }
                s.close().unwrap()
            })
        });
    }
    g.finish();

    // The shadow path may feed a recorded stream in larger pieces: re-chunking
    // never changes the output (property-tested), and it saves ABI crossings.
    let whole: Vec<u8> = chunks.concat();
    let mut g = c.benchmark_group("stream-200-batched");
    g.throughput(Throughput::Elements(200));
    for (rt_name, rt) in &rts {
        g.bench_function(BenchmarkId::from_parameter(rt_name), |b| {
            b.iter(|| {
                let mut s = rt.open_stream(options.as_bytes()).unwrap();
                black_box(s.feed(&whole).unwrap());
                s.close().unwrap()
            })
        });
    }
    g.finish();
}

fn bench_instantiation(c: &mut Criterion) {
    let fresh =
        WasmRuntime::embedded(WasmConfig { instance_mode: InstanceMode::Fresh, ..WasmConfig::default() }).unwrap();
    let input = frame(&json!({}), b"ok");
    c.bench_function("instantiate+tiny-call (fresh)", |b| b.iter(|| fresh.call("tokenizer.count", &input).unwrap()));
    let s = fresh.stats();
    println!(
        "instantiation alone: {:.2} µs average over {} instances",
        s.instantiate_us as f64 / s.instantiations as f64,
        s.instantiations
    );
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(50)
}

criterion_group! { name = benches; config = config(); targets = bench_ops, bench_instantiation }
criterion_main!(benches);
