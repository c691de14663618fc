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
