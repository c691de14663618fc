//! The diff engine on real-shaped outputs: the golden cases of the issue,
//! ruleset loading and immutability, and the re-chunking property.

use proptest::prelude::*;
use serde_json::{Value, json};
use shadowgate::diff::{DiffClass, Differ, Outcome, Ruleset, Scope};
use shadowgate_core::Protocol;
use std::path::Path;

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("core/tests/fixtures").join(rel)).unwrap()
}

fn differ() -> Differ {
    Differ::new(Ruleset::load(Some("v1")).unwrap())
}

fn scope(module: &str, protocol: Protocol, kind: &str) -> Scope {
    Scope { module: module.parse().expect("a module"), protocol, kind: kind.into() }
}

const ANTHROPIC_STREAM: &str = "stream/openai-chat/parallel_tools.to-anthropic-messages.sse";
const OPENAI_STREAM: &str = "stream/anthropic-messages/text_parallel_tools.to-openai-chat.sse";

/// Splits every text and argument delta of a client stream into two events.
fn rechunk(protocol: Protocol, sse: &str, at: usize) -> String {
    let mut out = String::new();
    for block in sse.split_inclusive("\n\n") {
        let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) else {
            out.push_str(block);
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            out.push_str(block);
            continue;
        };
        let (pointer, event) = match protocol {
            Protocol::AnthropicMessages => {
                let field = match v["delta"]["type"].as_str() {
                    Some("text_delta") => "/delta/text",
                    Some("input_json_delta") => "/delta/partial_json",
                    _ => "",
                };
                (field, "event: content_block_delta\n")
            }
            Protocol::Gemini => {
                let text = v.pointer("/candidates/0/content/parts/0/text").is_some();
                (if text { "/candidates/0/content/parts/0/text" } else { "" }, "")
            }
            Protocol::OpenAiResponses => {
                let delta = v["type"].as_str().is_some_and(|t| t.ends_with(".delta"));
                (if delta { "/delta" } else { "" }, "")
            }
            Protocol::OpenAiChat => {
                let p =
                    if v.pointer("/choices/0/delta/content").is_some_and(|c| c.as_str().is_some_and(|s| !s.is_empty()))
                    {
                        "/choices/0/delta/content"
                    } else if v
                        .pointer("/choices/0/delta/tool_calls/0/function/arguments")
                        .is_some_and(|a| a.as_str().is_some_and(|s| !s.is_empty()))
                        && v.pointer("/choices/0/delta/tool_calls/0/id").is_none()
                    {
                        "/choices/0/delta/tool_calls/0/function/arguments"
                    } else {
                        ""
                    };
                (p, "")
            }
        };
        let text =
            if pointer.is_empty() { None } else { v.pointer(pointer).and_then(Value::as_str).map(str::to_string) };
        match text {
            Some(t) if t.chars().count() > 1 => {
                let cut = t.char_indices().nth(1 + at % (t.chars().count() - 1)).unwrap().0;
                for part in [&t[..cut], &t[cut..]] {
                    let mut piece = v.clone();
                    *piece.pointer_mut(pointer).unwrap() = json!(part);
                    if protocol == Protocol::OpenAiResponses {
                        out.push_str(&format!("event: {}\n", v["type"].as_str().unwrap()));
                    }
                    out.push_str(&format!("{event}data: {piece}\n\n"));
                }
            }
            _ => out.push_str(block),
        }
    }
    out
}

fn stream(rel: &str) -> String {
    String::from_utf8(fixture(rel)).unwrap()
}

#[test]
fn identical_outputs_match() {
    let d = differ();
    let body = fixture("response/anthropic-messages/thinking_tool_cache.to-openai-chat.json");
    let r = d.compare_json(&scope("compat", Protocol::OpenAiChat, "response"), &body, &body);
    assert_eq!((r.outcome, r.class, r.diff_count), (Outcome::Match, None, 0));
    let s = stream(OPENAI_STREAM);
    let r = d.compare_sse(
        &scope("streaming", Protocol::OpenAiChat, "stream"),
        Protocol::OpenAiChat,
        s.as_bytes(),
        s.as_bytes(),
    );
    assert_eq!(r.outcome, Outcome::Match);
    assert_eq!(r.summary.to_value()["left_token_digest"], r.summary.to_value()["right_token_digest"]);
}

#[test]
fn a_rechunked_stream_matches() {
    let d = differ();
    for (protocol, rel) in [(Protocol::AnthropicMessages, ANTHROPIC_STREAM), (Protocol::OpenAiChat, OPENAI_STREAM)] {
        let s = stream(rel);
        let re = rechunk(protocol, &s, 3);
        assert_ne!(s, re, "{rel}: the re-chunked stream must differ in bytes");
        let r = d.compare_sse(&scope("streaming", protocol, "stream"), protocol, s.as_bytes(), re.as_bytes());
        assert_eq!(r.outcome, Outcome::Match, "{rel}: {}", serde_json::to_string_pretty(&r).unwrap());
    }
}

/// Renumbers the `sequence_number`s of a Responses stream from 0.
fn renumber(sse: &str) -> String {
    let mut out = String::new();
    for (n, block) in sse.split_inclusive("\n\n").enumerate() {
        let (head, data) = block.split_once("data: ").unwrap();
        let mut v: Value = serde_json::from_str(data.trim_end()).unwrap();
        v["sequence_number"] = json!(n);
        out.push_str(&format!("{head}data: {v}\n\n"));
    }
    out
}

#[test]
fn a_rechunked_responses_stream_matches_under_v2_and_a_changed_delta_does_not() {
    let d = Differ::new(Ruleset::load(Some("v2")).unwrap());
    let sc = scope("streaming", Protocol::OpenAiResponses, "stream");
    let s = stream("stream/anthropic-messages/text_parallel_tools.to-openai-responses.sse");
    let re = renumber(&rechunk(Protocol::OpenAiResponses, &s, 3));
    assert_ne!(s, re);
    // Only the renumbered positions differ, and the ruleset says why they do not count.
    let r = d.compare_sse(&sc, Protocol::OpenAiResponses, s.as_bytes(), re.as_bytes());
    assert_eq!((r.outcome, r.rule.as_deref()), (Outcome::Ignored, Some("responses-sequence-number")));
    assert_eq!(r.paths, ["/sequence_number"]);
    let changed = s.replacen("\"delta\":\"{\\\"", "\"delta\":\"{ \\\"", 1);
    assert_ne!(changed, s);
    let r = d.compare_sse(&sc, Protocol::OpenAiResponses, s.as_bytes(), changed.as_bytes());
    assert_eq!(r.outcome, Outcome::Mismatch, "{}", serde_json::to_string_pretty(&r).unwrap());
}

#[test]
fn one_changed_token_is_a_mismatch_at_the_right_event() {
    let s = stream(OPENAI_STREAM);
    let changed = s.replacen("one moment", "one minute", 1);
    let r = differ().compare_sse(
        &scope("streaming", Protocol::OpenAiChat, "stream"),
        Protocol::OpenAiChat,
        s.as_bytes(),
        changed.as_bytes(),
    );
    assert_eq!((r.outcome, r.class), (Outcome::Mismatch, Some(DiffClass::Logic)));
    let f = &r.summary.to_value()["first_divergence"];
    assert_eq!(
        (f["index"].as_u64(), f["event_type"].as_str(), f["path"].as_str()),
        (Some(1), Some("content"), Some("/text"))
    );
    assert!(f["text_diff"].as_str().unwrap().contains("{+i"), "{f}");
    assert_ne!(r.summary.to_value()["left_token_digest"], r.summary.to_value()["right_token_digest"]);
}

#[test]
fn a_dropped_tool_argument_fragment_is_a_mismatch() {
    let s = stream(ANTHROPIC_STREAM);
    let dropped: String =
        s.split_inclusive("\n\n").filter(|b| !b.contains(r#""partial_json":"ty\": \"Paris\"}""#)).collect();
    assert_eq!(
        s.split_inclusive("\n\n").count(),
        dropped.split_inclusive("\n\n").count() + 1,
        "exactly one fragment dropped"
    );
    let r = differ().compare_sse(
        &scope("streaming", Protocol::AnthropicMessages, "stream"),
        Protocol::AnthropicMessages,
        s.as_bytes(),
        dropped.as_bytes(),
    );
    assert_eq!(r.outcome, Outcome::Mismatch);
    assert_eq!(r.summary.to_value()["first_divergence"]["event_type"], "content_block_delta:input_json_delta");
    assert_eq!(r.summary.to_value()["first_divergence"]["path"], "/text");
}

#[test]
fn a_swapped_stop_reason_is_a_compat_mismatch() {
    let s = stream(ANTHROPIC_STREAM);
    let swapped = s.replace(r#""stop_reason":"tool_use""#, r#""stop_reason":"end_turn""#);
    let r = differ().compare_sse(
        &scope("streaming", Protocol::AnthropicMessages, "stream"),
        Protocol::AnthropicMessages,
        s.as_bytes(),
        swapped.as_bytes(),
    );
    assert_eq!(
        (r.outcome, r.class, r.rule.as_deref()),
        (Outcome::Mismatch, Some(DiffClass::Compat), Some("stop-reason-mapping"))
    );
    assert_eq!(r.paths, vec!["/delta/stop_reason"]);

    let envelope: Value =
        serde_json::from_slice(&fixture("response/openai-chat/length_cutoff.to-anthropic-messages.json")).unwrap();
    let body = envelope["ok"].to_string();
    let other = body.replace("\"max_tokens\"", "\"end_turn\"");
    assert_ne!(body, other);
    let r = differ().compare_json(
        &scope("compat", Protocol::AnthropicMessages, "response"),
        body.as_bytes(),
        other.as_bytes(),
    );
    assert_eq!(
        (r.outcome, r.class, r.rule.as_deref()),
        (Outcome::Mismatch, Some(DiffClass::Compat), Some("stop-reason-mapping"))
    );
    assert_eq!(r.paths, vec!["/stop_reason"]);
}

#[test]
fn ids_and_timestamps_are_ignored_with_the_rule_named() {
    let a = json!({"id": "chatcmpl-aaa", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]});
    let mut b = a.clone();
    b["id"] = json!("chatcmpl-bbb");
    b["created"] = json!(2);
    let r = differ().compare_json(
        &scope("compat", Protocol::OpenAiChat, "response"),
        a.to_string().as_bytes(),
        b.to_string().as_bytes(),
    );
    assert_eq!((r.outcome, r.class), (Outcome::Ignored, Some(DiffClass::Nondeterministic)));
    assert_eq!(r.rule.as_deref(), Some("created-timestamp,response-id"));
    assert!(r.agrees());
    // The same change in content is not ignored.
    b["choices"][0]["message"]["content"] = json!("hello");
    let r = differ().compare_json(
        &scope("compat", Protocol::OpenAiChat, "response"),
        a.to_string().as_bytes(),
        b.to_string().as_bytes(),
    );
    assert_eq!((r.outcome, r.paths.clone()), (Outcome::Mismatch, vec!["/choices/0/message/content".to_string()]));
}

const TOLERANT: &str = r#"
version = 99
created_at = "2026-11-23T00:00:00Z"
[tolerance_policy]
absolute = 0.0
relative = 0.01
unordered_arrays = ["/tools/*/input_schema/required"]
[sse_protocol]
version = "sse/1"
"#;

#[test]
fn numbers_within_tolerance_and_unordered_arrays_agree() {
    let d = Differ::new(Ruleset::parse(TOLERANT, "tolerant.toml").unwrap());
    let s = scope("compat", Protocol::AnthropicMessages, "request");
    let a = json!({"usage": {"input_tokens": 1000}, "tools": [{"name": "t", "input_schema": {"required": ["a", "b", "c"]}}]});
    let mut b = a.clone();
    b["usage"]["input_tokens"] = json!(1009);
    b["tools"][0]["input_schema"]["required"] = json!(["c", "a", "b"]);
    let r = d.compare_json(&s, a.to_string().as_bytes(), b.to_string().as_bytes());
    assert_eq!(r.outcome, Outcome::Ignored, "{r:?}");
    assert_eq!(r.rule.as_deref(), Some("tolerance_policy.numeric,tolerance_policy.unordered_arrays"));
    b["usage"]["input_tokens"] = json!(1011);
    let r = d.compare_json(&s, a.to_string().as_bytes(), b.to_string().as_bytes());
    assert_eq!((r.outcome, r.paths.clone()), (Outcome::Mismatch, vec!["/usage/input_tokens".to_string()]));
    // Order still matters outside the listed arrays.
    b["usage"]["input_tokens"] = json!(1000);
    b["tools"] = json!([{"name": "t", "input_schema": {"required": ["a", "b", "c"]}}, {"name": "u"}]);
    assert_eq!(d.compare_json(&s, a.to_string().as_bytes(), b.to_string().as_bytes()).outcome, Outcome::Mismatch);
}

#[test]
fn oversized_inputs_are_compared_by_digest_and_marked_truncated() {
    let d = differ().with_size_cap(1024);
    let s = scope("compat", Protocol::OpenAiChat, "response");
    let big = json!({"text": "x".repeat(4096)}).to_string();
    let r = d.compare_json(&s, big.as_bytes(), big.replace("xx", "xy").as_bytes());
    assert_eq!((r.outcome, r.class, r.truncated), (Outcome::Mismatch, Some(DiffClass::DataQuality), true));
    let twin = big.clone();
    let r = d.compare_json(&s, big.as_bytes(), format!("{twin} ").trim_end().as_bytes());
    assert_eq!((r.outcome, r.truncated), (Outcome::Match, false));
}

#[test]
fn two_one_megabyte_bodies_diff_quickly() {
    let d = differ().with_size_cap(4 << 20);
    let s = scope("compat", Protocol::OpenAiChat, "response");
    let text: String = (0..150_000).map(|i| format!("w{i} ")).collect();
    let a = json!({"choices": [{"message": {"content": text}}], "usage": {"prompt_tokens": 1}}).to_string();
    let b = a.replacen("w149999", "w149998", 1);
    assert!(a.len() > 1_000_000);
    let r = d.compare_json(&s, a.as_bytes(), b.as_bytes());
    assert_eq!(r.outcome, Outcome::Mismatch);
    assert!(r.summary.to_value()["entries"][0]["text_diff"].as_str().unwrap().len() <= 260, "text diffs are capped");
}

#[test]
fn unparsable_outputs_are_data_quality() {
    let r = differ().compare_json(&scope("compat", Protocol::OpenAiChat, "response"), b"{\"a\":1}", b"{\"a\":");
    assert_eq!(
        (r.outcome, r.class, r.rule.as_deref()),
        (Outcome::Mismatch, Some(DiffClass::DataQuality), Some("parse"))
    );
}

#[test]
fn bad_rulesets_are_rejected_with_file_line_and_key() {
    let unknown = "version = 2\ncreated_at = \"x\"\nignore_everything = true\n[sse_protocol]\nversion = \"sse/1\"\n";
    let e = Ruleset::parse(unknown, "r.toml").unwrap_err();
    assert_eq!((e.file.as_str(), e.line, e.key.as_str()), ("r.toml", 3, "ignore_everything"), "{e}");
    let bad_regex = "version = 2\ncreated_at = \"x\"\n[sse_protocol]\nversion = \"sse/1\"\n\n[[nondeterministic_rules]]\nid = \"x\"\npattern = \"(unclosed\"\nreplacement = \"\"\n";
    let e = Ruleset::parse(bad_regex, "r.toml").unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (8, "nondeterministic_rules.pattern"), "{e}");
    let bad_class = "version = 2\ncreated_at = \"x\"\n[sse_protocol]\nversion = \"sse/1\"\n[[classification]]\nid = \"c\"\nclass = \"scary\"\npaths = [\"/a\"]\n";
    assert!(Ruleset::parse(bad_class, "r.toml").unwrap_err().to_string().starts_with("r.toml:7: classification.class"));
    let bad_path = "version = 2\ncreated_at = \"x\"\n[sse_protocol]\nversion = \"sse/1\"\n[[field_whitelist]]\nid = \"p\"\npath = \"id\"\n";
    assert_eq!(Ruleset::parse(bad_path, "r.toml").unwrap_err().line, 7);
}

#[test]
fn published_rulesets_never_change() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rulesets");
    let sums = std::fs::read_to_string(dir.join("CHECKSUMS")).unwrap();
    let mut published = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name.starts_with("diff_ruleset_v") && name.ends_with(".toml") {
            let bytes = std::fs::read(dir.join(&name)).unwrap();
            let sum = shadowgate_core::context::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            assert!(
                sums.lines().any(|l| l == format!("{sum}  {name}")),
                "{name} was edited or is not in CHECKSUMS; publish a new version instead"
            );
            Ruleset::parse(std::str::from_utf8(&bytes).unwrap(), &name).unwrap();
            published += 1;
        }
    }
    assert_eq!(published, sums.lines().count(), "CHECKSUMS lists a file that is gone");
    let current = std::fs::read_to_string(dir.join("CURRENT")).unwrap();
    assert!(dir.join(format!("diff_ruleset_{}.toml", current.trim())).is_file());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn any_rechunking_of_the_same_content_matches(at in any::<usize>(), which in 0usize..4) {
        let cases = [
            (Protocol::AnthropicMessages, ANTHROPIC_STREAM),
            (Protocol::OpenAiChat, OPENAI_STREAM),
            (Protocol::AnthropicMessages, "stream/openai-chat/reasoning.to-anthropic-messages.sse"),
            (Protocol::OpenAiChat, "stream/openai-chat/parallel_tools.to-openai-chat.sse"),
        ];
        let (protocol, rel) = cases[which];
        let s = stream(rel);
        let once = rechunk(protocol, &s, at);
        let twice = rechunk(protocol, &once, at / 7);
        let r = differ().compare_sse(&scope("streaming", protocol, "stream"), protocol, once.as_bytes(), twice.as_bytes());
        prop_assert_eq!(r.outcome, Outcome::Match);
        let r = differ().compare_sse(&scope("streaming", protocol, "stream"), protocol, s.as_bytes(), twice.as_bytes());
        prop_assert_eq!(r.outcome, Outcome::Match);
    }
}
