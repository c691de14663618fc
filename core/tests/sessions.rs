//! Stream session behaviour that golden files do not show on their own.

// Tests read their fixtures from disk; the I/O ban is for the core itself.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use serde_json::Value;
use shadowgate_core::streaming::{StreamOptions, StreamSession};
use shadowgate_core::{ErrorKind, Protocol};

fn session(from: Protocol, to: Protocol, include_usage: bool) -> StreamSession {
    let opts =
        StreamOptions { from: from.as_str().into(), to: to.as_str().into(), include_usage, max_event_bytes: None };
    StreamSession::new(ctx(), &opts).unwrap()
}

fn fixture(from: Protocol, name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("stream").join(from.as_str()).join(name)).unwrap()
}

#[test]
fn usage_chunk_only_when_the_openai_client_asked_for_it() {
    let bytes = fixture(Protocol::AnthropicMessages, "max_tokens.sse");
    for include in [true, false] {
        let mut s = session(Protocol::AnthropicMessages, Protocol::OpenAiChat, include);
        let out = s.feed(&bytes) + &s.finish();
        let usage_chunks = parse_sse(&out).iter().filter(|(_, d)| d.contains("\"usage\"")).count();
        assert_eq!(usage_chunks, usize::from(include));
        assert!(s.error().is_none());
    }
}

#[test]
fn missing_upstream_usage_is_estimated_for_anthropic_clients() {
    let bytes = fixture(Protocol::OpenAiChat, "length_no_usage.sse");
    let mut s = session(Protocol::OpenAiChat, Protocol::AnthropicMessages, false);
    let out = s.feed(&bytes) + &s.finish();
    let delta = parse_sse(&out).into_iter().find(|(e, _)| e.as_deref() == Some("message_delta")).unwrap();
    let v: Value = serde_json::from_str(&delta.1).unwrap();
    assert_eq!(v["delta"]["stop_reason"], "max_tokens");
    // "A migration harness is a": 5 tokens, as cl100k counts it.
    assert_eq!(v["usage"]["output_tokens"], 5);
}

#[test]
fn bytes_after_the_end_are_ignored_and_errors_are_recorded() {
    let mut s = session(Protocol::AnthropicMessages, Protocol::OpenAiChat, false);
    let out = s.feed(&fixture(Protocol::AnthropicMessages, "max_tokens.sse"));
    assert!(out.ends_with("data: [DONE]\n\n") && s.is_ended());
    assert_eq!(s.feed(b"event: ping\ndata: {\"type\":\"ping\"}\n\n"), "");
    assert_eq!(s.finish(), "");

    let mut s = session(Protocol::OpenAiChat, Protocol::AnthropicMessages, false);
    let out = s.feed(&fixture(Protocol::OpenAiChat, "no_done.sse")) + &s.finish();
    assert!(out.contains("event: error"));
    assert_eq!(s.error().unwrap().kind, ErrorKind::Stream);

    let mut s = session(Protocol::AnthropicMessages, Protocol::OpenAiChat, false);
    s.feed(&fixture(Protocol::AnthropicMessages, "error_midstream.sse"));
    assert_eq!(s.error().unwrap().kind, ErrorKind::Upstream);
}

#[test]
fn oversized_events_end_the_stream_with_an_error() {
    let opts = StreamOptions {
        from: "openai-chat".into(),
        to: "anthropic-messages".into(),
        include_usage: false,
        max_event_bytes: Some(64),
    };
    let mut s = StreamSession::new(ctx(), &opts).unwrap();
    let out = s.feed(format!("data: {{\"x\":\"{}\"}}\n\n", "a".repeat(100)).as_bytes());
    assert!(out.contains("larger than 64 bytes") || out.contains("longer than 64 bytes"), "{out}");
    assert!(s.is_ended());
}

#[test]
fn every_choice_of_an_openai_stream_keeps_its_own_text_tools_and_finish() {
    let bytes = fixture(Protocol::OpenAiChat, "n3_choices.sse");
    for chunk in [bytes.len(), 13, 1] {
        let mut s = session(Protocol::OpenAiChat, Protocol::OpenAiChat, true);
        let mut out = String::new();
        for piece in bytes.chunks(chunk) {
            out += &s.feed(piece);
        }
        out += &s.finish();
        assert!(s.error().is_none(), "{:?}", s.error());
        let mut text = [String::new(), String::new(), String::new()];
        let (mut args, mut finish, mut usage, mut done) = (String::new(), Vec::new(), 0, 0);
        for (_, data) in parse_sse(&out) {
            if data == "[DONE]" {
                done += 1;
                continue;
            }
            let v: Value = serde_json::from_str(&data).unwrap();
            usage += usize::from(v.get("usage").is_some_and(|u| !u.is_null()));
            for c in v["choices"].as_array().unwrap() {
                let i = c["index"].as_u64().unwrap() as usize;
                text[i] += c["delta"]["content"].as_str().unwrap_or("");
                if let Some(calls) = c["delta"]["tool_calls"].as_array() {
                    assert_eq!(i, 2, "tool calls stay with choice 2");
                    args += calls[0]["function"]["arguments"].as_str().unwrap_or("");
                }
                if let Some(f) = c["finish_reason"].as_str() {
                    finish.push((i, f.to_string()));
                }
            }
        }
        assert_eq!(text, ["Shadow traffic compares.".to_string(), "Shadow runs twice".into(), String::new()]);
        assert_eq!(args, "{\"city\":\"Paris\"}");
        finish.sort();
        assert_eq!(finish, [(0, "stop".into()), (1, "length".into()), (2, "tool_calls".into())]);
        assert_eq!((usage, done), (1, 1), "one usage chunk and one [DONE] for the whole stream");
    }
}

#[test]
fn only_the_first_choice_crosses_protocols() {
    let bytes = fixture(Protocol::OpenAiChat, "n3_choices.sse");
    let mut s = session(Protocol::OpenAiChat, Protocol::AnthropicMessages, false);
    let out = s.feed(&bytes) + &s.finish();
    assert!(out.contains("Shadow") && out.contains(" compares") && !out.contains(" twice") && !out.contains("Paris"));
}

#[test]
fn a_responses_stream_reaches_a_responses_client_event_for_event() {
    let mut n = 0;
    for (path, from, bytes) in corpus_streams() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if from != Protocol::OpenAiResponses || name.starts_with("parallel-tool-call-wrapper") {
            continue;
        }
        // One HTTP response per stream: the recording up to its first terminal event.
        let text = String::from_utf8(bytes).unwrap();
        let mut one = String::new();
        for event in text.split_inclusive("\n\n") {
            one.push_str(event);
            if ["event: response.completed", "event: response.incomplete", "event: response.failed"]
                .iter()
                .any(|e| event.starts_with(e))
            {
                break;
            }
        }
        let mut s = session(Protocol::OpenAiResponses, Protocol::OpenAiResponses, false);
        let out = s.feed(one.as_bytes()) + &s.finish();
        if name == "openai-error.1.chunks.txt" {
            // The upstream's `error` ends the session; its one terminal event follows, numbered after it.
            let events = parse_sse(&out);
            assert_eq!(events[..3], parse_sse(&one)[..3], "{name}");
            let last: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
            assert_eq!((last["type"].as_str(), last["sequence_number"].as_u64()), (Some("response.failed"), Some(3)));
            assert!(last["response"]["id"].as_str().unwrap().starts_with("resp_05500b38"));
        } else {
            assert_eq!(parse_sse(&out), parse_sse(&one), "{name}");
            assert!(s.error().is_none(), "{name}: {:?}", s.error());
        }
        n += 1;
    }
    assert!(n >= 20, "{n}");
}

#[test]
fn a_truncated_responses_stream_ends_with_one_failed_event() {
    let bytes = fixture(Protocol::OpenAiResponses, "truncated.sse");
    for to in Protocol::ALL {
        let mut s = session(Protocol::OpenAiResponses, to, false);
        let out = s.feed(&bytes) + &s.finish();
        assert_eq!(s.error().unwrap().kind, ErrorKind::Stream, "{to}");
        if to == Protocol::OpenAiResponses {
            let types: Vec<String> = parse_sse(&out)
                .iter()
                .map(|(_, d)| serde_json::from_str::<Value>(d).unwrap()["type"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(types.iter().filter(|t| t.as_str() == "response.failed").count(), 1);
            assert_eq!(types.last().map(String::as_str), Some("response.failed"));
        }
    }
}
