//! Parity: every core fixture and recorded stream, run through the native and
//! the wasm runtime, gives byte-identical envelopes, for streams in several
//! chunkings too.

use serde_json::{Value, json};
use shadowgate_core::{Context, Protocol};
use shadowgate_runtime::{InstanceMode, NativeRuntime, Runtime, WasmConfig, WasmRuntime, frame};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

static WASM: LazyLock<WasmRuntime> =
    LazyLock::new(|| WasmRuntime::embedded(WasmConfig::default()).expect("embedded guest loads"));
static NATIVE: LazyLock<NativeRuntime> = LazyLock::new(NativeRuntime::new);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("core/tests/fixtures")
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext) && !p.to_string_lossy().contains(".to-"))
        .collect();
    out.sort();
    out
}

fn ctx() -> Context {
    Context { request_id: "req_parity".into(), created: 1_763_800_000, id_seed: 7 }
}

#[test]
fn capabilities_agree() {
    assert_eq!(NATIVE.capabilities(), WASM.capabilities());
    assert_eq!(NATIVE.call("capabilities", b"").unwrap(), WASM.call("capabilities", b"").unwrap());
}

#[test]
fn every_body_fixture_converts_identically() {
    let mut n = 0;
    for (kind, op) in [("request", "compat.request"), ("response", "compat.response"), ("error", "compat.error")] {
        for from in Protocol::ALL {
            for file in files(&fixtures().join(kind).join(from.as_str()), ".json") {
                let body = std::fs::read(&file).unwrap();
                for to in Protocol::ALL {
                    let input = frame(&json!({"ctx": ctx(), "from": from.as_str(), "to": to.as_str()}), &body);
                    let native = NATIVE.call(op, &input).unwrap();
                    let wasm = WASM.call(op, &input).unwrap();
                    assert_eq!(native, wasm, "{} → {to}", file.display());
                    n += 1;
                }
            }
        }
    }
    assert!(n >= 50, "{n}");
}

#[test]
fn tools_tokenizer_and_routing_agree() {
    let req = std::fs::read(fixtures().join("request/openai-chat/tools_parallel_history.json")).unwrap();
    let resp = std::fs::read(fixtures().join("response/openai-chat/tool_calls_finish_stop.json")).unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("tools.canonicalize", frame(&json!({"from": "openai-chat", "kind": "request"}), &req)),
        ("tools.canonicalize", frame(&json!({"ctx": ctx(), "from": "openai-chat", "kind": "response"}), &resp)),
        ("tokenizer.count", frame(&json!({}), "Héllo, wörld! 12345 日本語".as_bytes())),
        ("no.such.op", b"{}".to_vec()),
    ];
    // Every routing fixture: plans and decisions over tables, snapshots and failures.
    let dir = fixtures().join("routing");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".out.json") {
            continue;
        }
        let fixture: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let op = if fixture["op"] == "routing.next" { "routing.next" } else { "routing.resolve" };
        cases.push((op, frame(&json!({}), fixture["input"].to_string().as_bytes())));
    }
    assert!(cases.len() > 10, "the routing fixtures are found");
    for (op, input) in cases {
        let native = NATIVE.call(op, &input).unwrap();
        match WASM.call(op, &input) {
            Ok(wasm) => assert_eq!(native, wasm, "{op}"),
            // The host refuses ops the guest does not list, before calling it.
            Err(e) => assert_eq!((op, e.kind()), ("no.such.op", "unsupported")),
        }
    }
}

#[test]
fn every_recorded_response_converts_identically() {
    let corpus = fixtures().join("corpus/vercel-ai");
    let mut n = 0;
    for (dir, from) in [
        ("anthropic", Protocol::AnthropicMessages),
        ("openai", Protocol::OpenAiChat),
        ("openai-responses", Protocol::OpenAiResponses),
        ("google", Protocol::Gemini),
    ] {
        for file in files(&corpus.join(dir), ".json") {
            let body = std::fs::read(&file).unwrap();
            for to in Protocol::ALL {
                let input = frame(&json!({"ctx": ctx(), "from": from.as_str(), "to": to.as_str()}), &body);
                let native = NATIVE.call("compat.response", &input).unwrap();
                assert_eq!(native, WASM.call("compat.response", &input).unwrap(), "{} → {to}", file.display());
                n += 1;
            }
        }
    }
    assert!(n >= 150, "{n}");
}

fn stream_inputs() -> Vec<(Protocol, Vec<u8>, String)> {
    let mut out = Vec::new();
    for from in Protocol::ALL {
        for f in files(&fixtures().join("stream").join(from.as_str()), ".sse") {
            out.push((from, std::fs::read(&f).unwrap(), f.display().to_string()));
        }
    }
    let corpus = fixtures().join("corpus/vercel-ai");
    for (dir, from) in [
        ("anthropic", Protocol::AnthropicMessages),
        ("openai", Protocol::OpenAiChat),
        ("openai-compatible", Protocol::OpenAiChat),
        ("openai-responses", Protocol::OpenAiResponses),
        ("google", Protocol::Gemini),
    ] {
        for f in files(&corpus.join(dir), ".chunks.txt") {
            let text = std::fs::read_to_string(&f).unwrap();
            let mut sse = String::new();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match from {
                    Protocol::AnthropicMessages | Protocol::OpenAiResponses => {
                        sse.push_str(&format!("event: x\ndata: {line}\n\n"))
                    }
                    Protocol::OpenAiChat => sse.push_str(&format!("data: {line}\n\n")),
                    Protocol::Gemini => sse.push_str(&format!("data: {line}\r\n\r\n")),
                }
            }
            if from == Protocol::OpenAiChat {
                sse.push_str("data: [DONE]\n\n");
            }
            out.push((from, sse.into_bytes(), f.display().to_string()));
        }
    }
    out
}

fn run_stream(rt: &dyn Runtime, options: &[u8], chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut s = rt.open_stream(options).unwrap();
    let mut envelopes: Vec<Vec<u8>> = chunks.iter().map(|c| s.feed(c).unwrap()).collect();
    envelopes.push(s.close().unwrap());
    envelopes
}

#[test]
fn every_stream_converts_identically_in_several_chunkings() {
    let mut n = 0;
    for (from, bytes, name) in stream_inputs() {
        let chunkings: Vec<Vec<&[u8]>> =
            vec![vec![&bytes[..]], bytes.chunks(7).collect(), bytes.chunks(1024).collect()];
        for to in Protocol::ALL {
            let options =
                json!({"ctx": ctx(), "from": from.as_str(), "to": to.as_str(), "include_usage": true}).to_string();
            for chunks in &chunkings {
                let native = run_stream(&*NATIVE, options.as_bytes(), chunks);
                let wasm = run_stream(&*WASM, options.as_bytes(), chunks);
                assert_eq!(native, wasm, "{name} → {to} in {} chunks", chunks.len());
                n += 1;
            }
        }
    }
    assert!(n >= 280, "{n}");
}

#[test]
fn fresh_instances_give_the_same_bytes_as_warm_ones() {
    let fresh =
        WasmRuntime::embedded(WasmConfig { instance_mode: InstanceMode::Fresh, ..WasmConfig::default() }).unwrap();
    let body = std::fs::read(fixtures().join("response/anthropic-messages/thinking_tool_cache.json")).unwrap();
    let input = frame(&json!({"ctx": ctx(), "from": "anthropic-messages", "to": "openai-chat"}), &body);
    for _ in 0..3 {
        assert_eq!(fresh.call("compat.response", &input).unwrap(), WASM.call("compat.response", &input).unwrap());
    }
    assert_eq!(fresh.stats().instantiations, 3, "fresh mode instantiates once per call: {:?}", fresh.stats());
}

#[test]
fn bad_stream_options_answer_an_error_envelope_in_both_runtimes() {
    let bad = br#"{"ctx": {"request_id": "r", "created": 0}, "from": "grpc", "to": "openai-chat"}"#;
    let native = run_stream(&*NATIVE, bad, &[b"data: x\n\n"]);
    let wasm = run_stream(&*WASM, bad, &[b"data: x\n\n"]);
    assert_eq!(native, wasm);
    assert!(String::from_utf8_lossy(&native[0]).contains("unknown protocol"));
}
