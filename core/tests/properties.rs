//! Property tests: re-chunking never changes a converted stream, and no
//! input, however malformed, makes the core panic.

// Tests read their fixtures from disk; the I/O ban is for the core itself.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use shadowgate_core::dispatch::open_envelope;
use shadowgate_core::streaming::{StreamOptions, convert_stream};
use shadowgate_core::{Protocol, dispatch};
use std::sync::LazyLock;

/// Fixture and corpus streams (Anthropic recordings with several responses are kept whole).
static STREAMS: LazyLock<Vec<(Protocol, Vec<u8>)>> =
    LazyLock::new(|| stream_inputs().into_iter().chain(corpus_streams()).map(|(_, p, b)| (p, b)).collect());

fn convert(from: Protocol, to: Protocol, chunks: &[&[u8]]) -> (String, Option<String>) {
    let opts = StreamOptions {
        from: from.as_str().into(),
        to: to.as_str().into(),
        include_usage: true,
        max_event_bytes: None,
    };
    let (out, err) = convert_stream(&ctx(), &opts, chunks).unwrap();
    (out, err.map(|e| e.to_string()))
}

/// Splits `bytes` at the given cut points (taken modulo the length).
fn cut<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for p in points {
        out.push(&bytes[start..p]);
        start = p;
    }
    out.push(&bytes[start..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn rechunking_never_changes_the_converted_stream(
        which in 0usize..1000,
        to_anthropic in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let (from, bytes) = &STREAMS[which % STREAMS.len()];
        let to = if to_anthropic { Protocol::AnthropicMessages } else { Protocol::OpenAiChat };
        let whole = convert(*from, to, &[bytes]);
        let split = convert(*from, to, &cut(bytes, &cuts));
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn byte_at_a_time_feeding_matches(which in 0usize..1000) {
        let (from, bytes) = &STREAMS[which % STREAMS.len()];
        let single: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(convert(*from, Protocol::OpenAiChat, &[bytes]), convert(*from, Protocol::OpenAiChat, &single));
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        prop_oneof![
            Just("user".to_string()),
            Just("assistant".to_string()),
            Just("system".to_string()),
            Just("tool".to_string()),
            Just("text".to_string()),
            Just("tool_use".to_string()),
            Just("tool_result".to_string()),
            Just("image_url".to_string()),
            Just("function".to_string()),
            Just("thinking".to_string()),
            ".{0,12}",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        let keys = prop_oneof![
            Just("role".to_string()),
            Just("content".to_string()),
            Just("type".to_string()),
            Just("text".to_string()),
            Just("messages".to_string()),
            Just("tools".to_string()),
            Just("tool_calls".to_string()),
            Just("function".to_string()),
            Just("arguments".to_string()),
            Just("input".to_string()),
            Just("id".to_string()),
            Just("name".to_string()),
            Just("model".to_string()),
            Just("system".to_string()),
            Just("tool_choice".to_string()),
            Just("thinking".to_string()),
            Just("choices".to_string()),
            Just("message".to_string()),
            Just("usage".to_string()),
            Just("source".to_string()),
            "[a-z_]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((keys, inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Replaces the value at a pseudo-random position of `doc` with `replacement`.
fn mutate(doc: &mut Value, mut pick: usize, replacement: Value) {
    fn visit(v: &mut Value, pick: &mut usize, replacement: &mut Option<Value>) {
        if replacement.is_none() {
            return;
        }
        if *pick == 0 {
            *v = replacement.take().unwrap();
            return;
        }
        *pick -= 1;
        match v {
            Value::Array(a) => a.iter_mut().for_each(|x| visit(x, pick, replacement)),
            Value::Object(o) => o.values_mut().for_each(|x| visit(x, pick, replacement)),
            _ => {}
        }
    }
    let mut r = Some(replacement);
    pick %= 64;
    visit(doc, &mut pick, &mut r);
}

fn fixture_bodies(kind: &str) -> Vec<(Protocol, Value)> {
    let mut out = Vec::new();
    for from in Protocol::ALL {
        for p in inputs(kind, from, "json") {
            if let Ok(v) = serde_json::from_slice(&std::fs::read(p).unwrap()) {
                out.push((from, v));
            }
        }
    }
    out
}

static REQUESTS: LazyLock<Vec<(Protocol, Value)>> = LazyLock::new(|| fixture_bodies("request"));
static RESPONSES: LazyLock<Vec<(Protocol, Value)>> = LazyLock::new(|| fixture_bodies("response"));

fn never_panics(op: &str, from: Protocol, body: &[u8]) {
    for to in Protocol::ALL {
        let out = dispatch(op, &framed(json!({"ctx": ctx(), "from": from.as_str(), "to": to.as_str()}), body));
        // Either outcome is fine; the envelope must be well-formed and errors must say where.
        if let Err(e) = open_envelope(&out) {
            assert!(!e.message.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn request_conversion_never_panics_on_arbitrary_json(doc in arb_json(), anthropic in any::<bool>()) {
        let from = if anthropic { Protocol::AnthropicMessages } else { Protocol::OpenAiChat };
        never_panics("compat.request", from, doc.to_string().as_bytes());
    }

    #[test]
    fn request_conversion_never_panics_on_mutated_fixtures(which in 0usize..100, pick in any::<usize>(), with in arb_json()) {
        let (from, mut doc) = REQUESTS[which % REQUESTS.len()].clone();
        mutate(&mut doc, pick, with);
        never_panics("compat.request", from, doc.to_string().as_bytes());
    }

    #[test]
    fn response_conversion_never_panics_on_mutated_fixtures(which in 0usize..100, pick in any::<usize>(), with in arb_json()) {
        let (from, mut doc) = RESPONSES[which % RESPONSES.len()].clone();
        mutate(&mut doc, pick, with);
        never_panics("compat.response", from, doc.to_string().as_bytes());
    }

    #[test]
    fn streams_never_panic_on_arbitrary_bytes(which in 0usize..1000, garbage in prop::collection::vec(any::<u8>(), 0..64), at in any::<usize>()) {
        let (from, bytes) = &STREAMS[which % STREAMS.len()];
        let at = at % (bytes.len() + 1);
        let mut corrupted = bytes[..at].to_vec();
        corrupted.extend_from_slice(&garbage);
        corrupted.extend_from_slice(&bytes[at..]);
        for to in Protocol::ALL {
            let (out, _) = convert(*from, to, &[&corrupted]);
            // Whatever happened, the client stream is well-formed SSE of its protocol.
            for (_, data) in parse_sse(&out) {
                prop_assert!(data == "[DONE]" || serde_json::from_str::<Value>(&data).is_ok(), "bad output event {data}");
            }
        }
    }
}
