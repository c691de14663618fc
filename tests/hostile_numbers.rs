//! Parity on hostile numbers: every integer of every body fixture and every
//! stream event is replaced, one at a time and at random, by values at the
//! edges of 32- and 64-bit arithmetic (and by negatives and floats), and the
//! native and wasm runtimes must still give byte-identical envelopes —
//! `usize` is 32 bits in the guest and 64 in the host, so any truncating cast
//! or unchecked sum on wire values shows up here.

use proptest::prelude::*;
use serde_json::{Value, json};
use shadowgate_core::{Context, Protocol};
use shadowgate_runtime::{NativeRuntime, Runtime, WasmConfig, WasmRuntime, frame};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

static WASM: LazyLock<WasmRuntime> =
    LazyLock::new(|| WasmRuntime::embedded(WasmConfig::default()).expect("embedded guest loads"));
static NATIVE: LazyLock<NativeRuntime> = LazyLock::new(NativeRuntime::new);

/// Values at the edges, as JSON text.
const EXTREMES: &[&str] = &[
    "0",
    "1",
    "2147483647",
    "2147483648",
    "2147483649",
    "4294967295",
    "4294967296",
    "4294967297",
    "9007199254740991",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "-2147483649",
    "-4294967297",
    "-9223372036854775808",
    "1.5",
    "4294967297.0",
    "1e300",
    "-0.0",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("core/tests/fixtures")
}

fn inputs(kind: &str, ext: &str) -> Vec<(Protocol, String, PathBuf)> {
    let mut out = Vec::new();
    for from in Protocol::ALL {
        let dir = fixtures().join(kind).join(from.as_str());
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(ext) && !p.to_string_lossy().contains(".to-"))
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|f| (from, std::fs::read_to_string(&f).unwrap(), f)));
    }
    out
}

/// The JSON text of `v` with its `n`-th number (in document order) written as `raw`.
fn with_number(v: &Value, n: usize, raw: &str) -> Option<String> {
    fn walk(v: &Value, n: usize, seen: &mut usize, raw: &str, out: &mut String, hit: &mut bool) {
        match v {
            Value::Number(_) => {
                if *seen == n {
                    out.push_str(raw);
                    *hit = true;
                } else {
                    out.push_str(&v.to_string());
                }
                *seen += 1;
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    walk(x, n, seen, raw, out, hit);
                }
                out.push(']');
            }
            Value::Object(o) => {
                out.push('{');
                for (i, (k, x)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    walk(x, n, seen, raw, out, hit);
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let (mut out, mut seen, mut hit) = (String::new(), 0, false);
    walk(v, n, &mut seen, raw, &mut out, &mut hit);
    hit.then_some(out)
}

fn numbers(v: &Value) -> usize {
    match v {
        Value::Number(_) => 1,
        Value::Array(a) => a.iter().map(numbers).sum(),
        Value::Object(o) => o.values().map(numbers).sum(),
        _ => 0,
    }
}

fn ctx() -> Context {
    Context { request_id: "req_hostile".into(), created: 1_763_800_000, id_seed: 7 }
}

fn both(op: &str, input: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (NATIVE.call(op, input).unwrap(), WASM.call(op, input).unwrap())
}

fn stream_both(options: &[u8], body: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let run = |rt: &dyn Runtime| {
        let mut s = rt.open_stream(options).unwrap();
        let mut out = vec![s.feed(body).unwrap()];
        out.push(s.close().unwrap());
        out
    };
    (run(&*NATIVE), run(&*WASM))
}

/// (op, header) for every conversion of a body fixture of `kind` from `from`.
fn body_ops(kind: &str, from: Protocol) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for to in Protocol::ALL {
        let h = json!({"ctx": ctx(), "from": from.as_str(), "to": to.as_str()});
        match kind {
            "request" => {
                out.push(("compat.request", h));
                out.push(("tools.canonicalize", json!({"from": from.as_str(), "kind": "request"})));
            }
            "response" => {
                out.push(("compat.response", h));
                out.push(("tools.canonicalize", json!({"ctx": ctx(), "from": from.as_str(), "kind": "response"})));
            }
            _ => out.push(("compat.error", h)),
        }
    }
    out
}

/// A stream whose `e`-th event's `n`-th number is `raw` (events without JSON stay as they are).
fn stream_with_number(sse: &str, e: usize, n: usize, raw: &str) -> Option<String> {
    let mut events: Vec<String> = sse.split("\n\n").map(str::to_string).collect();
    let event = events.get_mut(e)?;
    let data_line = event.lines().position(|l| l.starts_with("data: "))?;
    let mut lines: Vec<String> = event.lines().map(str::to_string).collect();
    let v: Value = serde_json::from_str(&lines[data_line]["data: ".len()..]).ok()?;
    lines[data_line] = format!("data: {}", with_number(&v, n, raw)?);
    *event = lines.join("\n");
    Some(events.join("\n\n"))
}

#[test]
fn an_index_past_u32_is_the_same_error_in_both_runtimes() {
    // The reproduction from the issue: open block 1, then a delta for index 2^32 + 1.
    let sse = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":4294967297,\"delta\":{\"type\":\"text_delta\",\"text\":\"leak\"}}\n\n",
    );
    for to in Protocol::ALL {
        let options = json!({"ctx": ctx(), "from": "anthropic-messages", "to": to.as_str()}).to_string();
        let (native, wasm) = stream_both(options.as_bytes(), sse.as_bytes());
        assert_eq!(native, wasm, "→ {to}");
        let text = String::from_utf8_lossy(&native.concat()).to_string();
        assert!(!text.contains("leak"), "the delta for a block that is not open is not converted: {text}");
        assert!(text.contains("out of range"), "{text}");
    }
}

#[test]
fn usage_sums_saturate_in_both_runtimes() {
    let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": u64::MAX, "cache_creation_input_tokens": u64::MAX,
                  "cache_read_input_tokens": 5, "output_tokens": u64::MAX}});
    let input =
        frame(&json!({"ctx": ctx(), "from": "anthropic-messages", "to": "openai-chat"}), body.to_string().as_bytes());
    let (native, wasm) = both("compat.response", &input);
    assert_eq!(native, wasm);
    let v: Value = serde_json::from_slice(&native).unwrap();
    assert_eq!(v["ok"]["usage"]["prompt_tokens"], u64::MAX);
    assert_eq!(v["ok"]["usage"]["total_tokens"], u64::MAX);
    let req = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}],
                     "reasoning_effort": "high", "max_tokens": 0});
    let input = frame(&json!({"from": "openai-chat", "to": "anthropic-messages"}), req.to_string().as_bytes());
    let (native, wasm) = both("compat.request", &input);
    assert_eq!(native, wasm, "a zero cap with a thinking budget neither underflows nor differs");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_number_in_any_body_gives_the_same_envelopes(pick in any::<prop::sample::Index>(),
                                                        slot in any::<prop::sample::Index>(),
                                                        raw in prop::sample::select(EXTREMES)) {
        static BODIES: LazyLock<Vec<(String, Protocol, Value)>> = LazyLock::new(|| {
            ["request", "response", "error"]
                .into_iter()
                .flat_map(|k| {
                    inputs(k, ".json")
                        .into_iter()
                        .filter_map(move |(p, t, _)| Some((k.to_string(), p, serde_json::from_str(&t).ok()?)))
                })
                .filter(|(_, _, v): &(String, Protocol, Value)| numbers(v) > 0)
                .collect()
        });
        let (kind, from, v) = pick.get(&BODIES);
        let body = with_number(v, slot.index(numbers(v)), raw).unwrap();
        for (op, header) in body_ops(kind, *from) {
            let input = frame(&header, body.as_bytes());
            let (native, wasm) = both(op, &input);
            prop_assert_eq!(native, wasm, "{} {} with {}", op, kind, raw);
        }
    }

    #[test]
    fn any_number_in_any_stream_event_gives_the_same_envelopes(pick in any::<prop::sample::Index>(),
                                                                event in any::<prop::sample::Index>(),
                                                                slot in any::<prop::sample::Index>(),
                                                                raw in prop::sample::select(EXTREMES)) {
        static STREAMS: LazyLock<Vec<(Protocol, String)>> =
            LazyLock::new(|| inputs("stream", ".sse").into_iter().map(|(p, t, _)| (p, t)).collect());
        let (from, sse) = pick.get(&STREAMS);
        let events: Vec<&str> = sse.split("\n\n").collect();
        let e = event.index(events.len());
        let count = events[e]
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
            .map_or(0, |v| numbers(&v));
        prop_assume!(count > 0);
        let mutated = stream_with_number(sse, e, slot.index(count), raw).unwrap();
        for to in Protocol::ALL {
            let options = json!({"ctx": ctx(), "from": from.as_str(), "to": to.as_str(), "include_usage": true}).to_string();
            let (native, wasm) = stream_both(options.as_bytes(), mutated.as_bytes());
            prop_assert_eq!(native, wasm, "{} → {} with {}", from, to, raw);
        }
    }
}
