//! Real recorded upstream traffic (`fixtures/corpus/`): every file converts to
//! every client protocol without a panic, text, reasoning and tool arguments survive
//! the conversion, and every stream completes or ends with the documented
//! error. The expectations are extracted here, independently of the core's
//! own decoders.

// Tests read their fixtures from disk; the I/O ban is for the core itself.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use serde_json::{Value, json};
use shadowgate_core::dispatch::open_envelope;
use shadowgate_core::streaming::{StreamOptions, convert_stream};
use shadowgate_core::{Protocol, dispatch};
use std::collections::BTreeMap;

/// What a stream or response says, protocol-independently.
#[derive(Debug, Default, PartialEq)]
struct Content {
    text: String,
    reasoning: String,
    /// Tool calls in order: (name, arguments text).
    tools: Vec<(String, String)>,
}

fn stream_content(protocol: Protocol, sse: &str) -> (Content, bool, Option<String>) {
    let mut c = Content::default();
    let mut completed = false;
    let mut error = None;
    let mut tool_blocks: BTreeMap<u64, usize> = BTreeMap::new();
    for (_, data) in parse_sse(sse) {
        if data == "[DONE]" {
            completed = true;
            continue;
        }
        let v: Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("output event is not JSON ({e}): {data}"));
        if let Some(e) = v.get("error").filter(|_| v.get("type").is_none_or(|t| t == "error")) {
            error = Some(e["message"].as_str().unwrap_or("").to_string());
            continue;
        }
        if protocol == Protocol::OpenAiResponses && v["type"] == "error" {
            error = Some(v["message"].as_str().unwrap_or("").to_string());
            continue;
        }
        match protocol {
            Protocol::AnthropicMessages => match v["type"].as_str().unwrap() {
                "message_start" => {
                    for b in v["message"]["content"].as_array().into_iter().flatten() {
                        match b["type"].as_str() {
                            Some("text") => c.text.push_str(b["text"].as_str().unwrap()),
                            Some("tool_use") => {
                                c.tools.push((b["name"].as_str().unwrap().into(), b["input"].to_string()))
                            }
                            _ => {}
                        }
                    }
                }
                "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                    tool_blocks.insert(v["index"].as_u64().unwrap(), c.tools.len());
                    let input = &v["content_block"]["input"];
                    let given = if input.as_object().is_some_and(|o| !o.is_empty()) {
                        input.to_string()
                    } else {
                        String::new()
                    };
                    c.tools.push((v["content_block"]["name"].as_str().unwrap().into(), given));
                }
                "content_block_delta" => {
                    let d = &v["delta"];
                    match d["type"].as_str().unwrap() {
                        "text_delta" => c.text.push_str(d["text"].as_str().unwrap()),
                        "thinking_delta" => c.reasoning.push_str(d["thinking"].as_str().unwrap()),
                        "input_json_delta" => {
                            if let Some(&t) = tool_blocks.get(&v["index"].as_u64().unwrap()) {
                                c.tools[t].1.push_str(d["partial_json"].as_str().unwrap());
                            }
                        }
                        _ => {}
                    }
                }
                "message_stop" => completed = true,
                _ => {}
            },
            Protocol::Gemini => {
                let Some(cand) = v["candidates"].get(0) else { continue };
                for part in cand["content"]["parts"].as_array().into_iter().flatten() {
                    if let Some(t) = part["text"].as_str() {
                        if part["thought"] == true { c.reasoning.push_str(t) } else { c.text.push_str(t) }
                    }
                    let f = &part["functionCall"];
                    if let Some(name) = f["name"].as_str() {
                        c.tools.push((name.into(), f.get("args").map(Value::to_string).unwrap_or_default()));
                    }
                    for a in f["partialArgs"].as_array().into_iter().flatten() {
                        let last = c.tools.last_mut().unwrap();
                        last.1 = with_partial(&last.1, a);
                    }
                }
                if cand.get("finishReason").is_some() {
                    completed = true;
                }
            }
            Protocol::OpenAiResponses => match v["type"].as_str().unwrap() {
                "response.output_text.delta" => c.text.push_str(v["delta"].as_str().unwrap()),
                "response.reasoning_summary_part.added" if v["summary_index"].as_u64() > Some(0) => {
                    c.reasoning.push_str("\n\n")
                }
                "response.reasoning_summary_text.delta" => c.reasoning.push_str(v["delta"].as_str().unwrap()),
                "response.output_item.added" if v["item"]["type"] == "function_call" => {
                    tool_blocks.insert(v["output_index"].as_u64().unwrap(), c.tools.len());
                    c.tools.push((v["item"]["name"].as_str().unwrap().into(), String::new()));
                }
                "response.function_call_arguments.delta" => {
                    if let Some(&t) = tool_blocks.get(&v["output_index"].as_u64().unwrap()) {
                        c.tools[t].1.push_str(v["delta"].as_str().unwrap());
                    }
                }
                "response.completed" | "response.incomplete" => completed = true,
                "response.failed" => {
                    error.get_or_insert_with(|| v["response"]["error"]["message"].as_str().unwrap_or("").to_string());
                }
                _ => {}
            },
            Protocol::OpenAiChat => {
                let Some(choice) = v["choices"].get(0) else { continue };
                let d = &choice["delta"];
                if let Some(t) = d["content"].as_str() {
                    c.text.push_str(t);
                }
                if let Some(t) = d["reasoning_content"].as_str() {
                    c.reasoning.push_str(t);
                }
                for call in d["tool_calls"].as_array().into_iter().flatten() {
                    let i = call["index"].as_u64().unwrap();
                    let t = *tool_blocks.entry(i).or_insert_with(|| {
                        c.tools.push((String::new(), String::new()));
                        c.tools.len() - 1
                    });
                    if let Some(n) = call["function"]["name"].as_str() {
                        c.tools[t].0 = n.to_string();
                    }
                    if let Some(a) = call["function"]["arguments"].as_str() {
                        c.tools[t].1.push_str(a);
                    }
                }
            }
        }
    }
    (c, completed, error)
}

/// Vertex `partialArgs`: the value at a `$.a[0].b` path, strings appended; via JSON pointers.
fn with_partial(args: &str, a: &Value) -> String {
    let mut v: Value = serde_json::from_str(args).unwrap_or(json!({}));
    let path = a["jsonPath"].as_str().unwrap().trim_start_matches('$');
    let pointer = path.replace(['.', '['], "/").replace(']', "");
    let mut at = String::new();
    let segments: Vec<&str> = pointer.split('/').filter(|s| !s.is_empty()).collect();
    for (i, seg) in segments.iter().enumerate() {
        let next_is_index = segments.get(i + 1).is_some_and(|s| s.parse::<usize>().is_ok());
        let parent = v.pointer_mut(&at).unwrap();
        let child = if next_is_index { json!([]) } else { Value::Null };
        match parent {
            Value::Array(arr) => {
                if arr.len() <= seg.parse::<usize>().unwrap() {
                    arr.push(child);
                }
            }
            p => {
                if !p.is_object() {
                    *p = json!({});
                }
                p.as_object_mut().unwrap().entry(seg.to_string()).or_insert(child);
            }
        }
        at = format!("{at}/{seg}");
    }
    let slot = v.pointer_mut(&at).unwrap();
    if let Some(s) = a["stringValue"].as_str() {
        *slot = json!(format!("{}{s}", slot.as_str().unwrap_or("")));
    } else if let Some(n) = a.get("numberValue").or(a.get("boolValue")) {
        *slot = n.clone();
    }
    v.to_string()
}

fn response_content(protocol: Protocol, v: &Value) -> Content {
    let mut c = Content::default();
    match protocol {
        Protocol::AnthropicMessages => {
            for b in v["content"].as_array().unwrap() {
                match b["type"].as_str().unwrap() {
                    "text" => c.text.push_str(b["text"].as_str().unwrap()),
                    "thinking" => c.reasoning.push_str(b["thinking"].as_str().unwrap()),
                    "tool_use" => {
                        c.tools.push((b["name"].as_str().unwrap().into(), serde_json::to_string(&b["input"]).unwrap()))
                    }
                    _ => {}
                }
            }
        }
        Protocol::Gemini => {
            for part in v["candidates"][0]["content"]["parts"].as_array().into_iter().flatten() {
                if let Some(t) = part["text"].as_str() {
                    if part["thought"] == true { c.reasoning.push_str(t) } else { c.text.push_str(t) }
                }
                if let Some(name) = part["functionCall"]["name"].as_str() {
                    c.tools.push((name.into(), part["functionCall"]["args"].to_string()));
                }
            }
        }
        Protocol::OpenAiResponses => {
            for item in v["output"].as_array().unwrap() {
                match item["type"].as_str().unwrap() {
                    "message" => {
                        for part in item["content"].as_array().into_iter().flatten() {
                            if part["type"] == "output_text" {
                                c.text.push_str(part["text"].as_str().unwrap());
                            }
                        }
                    }
                    "reasoning" => {
                        let texts: Vec<&str> = item["summary"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|s| s["text"].as_str().unwrap())
                            .collect();
                        c.reasoning.push_str(&texts.join("\n\n"));
                    }
                    "function_call" => c
                        .tools
                        .push((item["name"].as_str().unwrap().into(), item["arguments"].as_str().unwrap().to_string())),
                    _ => {}
                }
            }
        }
        Protocol::OpenAiChat => {
            let m = &v["choices"][0]["message"];
            c.text = m["content"].as_str().unwrap_or("").to_string();
            c.reasoning = m["reasoning_content"].as_str().unwrap_or("").to_string();
            for call in m["tool_calls"].as_array().into_iter().flatten() {
                let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
                c.tools
                    .push((call["function"]["name"].as_str().unwrap().into(), serde_json::to_string(&args).unwrap()));
            }
        }
    }
    c
}

/// Tool arguments compared as JSON values (streams may split and space them differently).
fn normalize(mut c: Content) -> Content {
    for t in &mut c.tools {
        let v: Value = serde_json::from_str(&t.1).unwrap_or(json!({}));
        t.1 = serde_json::to_string(&v).unwrap();
    }
    c
}

#[test]
fn every_recorded_stream_converts_both_ways_and_keeps_its_content() {
    let streams = corpus_streams();
    assert!(streams.len() >= 60, "corpus has {} streams", streams.len());
    let mut n = 0;
    for (path, from, bytes, segment) in streams
        .iter()
        .flat_map(|(p, f, b)| split_streams(*f, b).into_iter().enumerate().map(move |(i, s)| (p, *f, s, i)))
    {
        n += 1;
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let name = if segment == 0 { name } else { format!("{name}#{segment}") };
        let broken = name == "parallel-tool-call-wrapper.1.chunks.txt";
        let source =
            if broken { Content::default() } else { stream_content(from, std::str::from_utf8(&bytes).unwrap()).0 };
        let bytes = bytes.as_slice();
        for to in Protocol::ALL {
            let opts = StreamOptions {
                from: from.as_str().into(),
                to: to.as_str().into(),
                include_usage: true,
                max_event_bytes: None,
            };
            let (out, err) = convert_stream(&ctx(), &opts, &[bytes]).unwrap();
            let (converted, completed, error_event) = stream_content(to, &out);
            if broken {
                // Recorded with broken JSON in its first event: a malformed upstream event.
                assert!(err.unwrap().message.contains("malformed upstream event"), "{name}");
                assert!(error_event.is_some(), "{name} → {to}");
                continue;
            }
            if name == "openai-error.1.chunks.txt" {
                // An upstream `error` event ends every client's stream with that error.
                assert!(err.unwrap().message.contains("insufficient_quota"), "{name}");
                assert!(error_event.unwrap().contains("exceeded your current quota"), "{name} → {to}");
                continue;
            }
            if name == "spliced-message-start.chunks.txt" {
                // Documented policy: a restart after content is a visible stream error.
                assert!(err.unwrap().message.contains("spliced message_start"), "{name}");
                assert!(error_event.unwrap().contains("spliced"), "{name} → {to}");
                continue;
            }
            assert!(err.is_none(), "{name} → {to}: {err:?}");
            assert!(completed && error_event.is_none(), "{name} → {to} did not complete");
            assert_eq!(normalize(converted), normalize(source_clone(&source)), "{name} → {to}");
        }
    }
    assert!(n >= 50, "{n} streams");
}

fn source_clone(c: &Content) -> Content {
    Content { text: c.text.clone(), reasoning: c.reasoning.clone(), tools: c.tools.clone() }
}

/// Some recordings hold several HTTP responses back to back (one per round
/// trip of programmatic tool calling or of a shell tool): one stream per terminal event.
fn split_streams(protocol: Protocol, bytes: &[u8]) -> Vec<Vec<u8>> {
    let ends: &[&str] = match protocol {
        Protocol::OpenAiChat | Protocol::Gemini => return vec![bytes.to_vec()],
        Protocol::AnthropicMessages => &["event: message_stop"],
        Protocol::OpenAiResponses => {
            &["event: response.completed", "event: response.incomplete", "event: response.failed"]
        }
    };
    let text = std::str::from_utf8(bytes).unwrap();
    let mut out = vec![String::new()];
    for event in text.split_inclusive("\n\n") {
        out.last_mut().unwrap().push_str(event);
        if ends.iter().any(|e| event.starts_with(e)) {
            out.push(String::new());
        }
    }
    out.into_iter().filter(|s| !s.trim().is_empty()).map(String::into_bytes).collect()
}

#[test]
fn every_recorded_response_converts_both_ways_and_keeps_its_content() {
    let root = fixtures().join("corpus/vercel-ai");
    let mut n = 0;
    for (dir, from) in [
        ("anthropic", Protocol::AnthropicMessages),
        ("openai", Protocol::OpenAiChat),
        ("openai-compatible", Protocol::OpenAiChat),
        ("openai-responses", Protocol::OpenAiResponses),
        ("google", Protocol::Gemini),
    ] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            for to in Protocol::ALL {
                if body.get("error").is_some_and(|e| !e.is_null()) && body.get("output").is_none() {
                    let input = json!({"status": 400, "body": String::from_utf8_lossy(&bytes)});
                    let out = dispatch(
                        "compat.error",
                        &framed(json!({"from": from.as_str(), "to": to.as_str()}), input.to_string().as_bytes()),
                    );
                    let v: Value = serde_json::from_str(open_envelope(&out).unwrap().get()).unwrap();
                    let message = body["error"]["message"].as_str().unwrap();
                    assert_eq!(v["body"]["error"]["message"], message, "{}: {v}", path.display());
                    continue;
                }
                let header = json!({"ctx": ctx(), "from": from.as_str(), "to": to.as_str()});
                let out = dispatch("compat.response", &framed(header, &bytes));
                let raw = open_envelope(&out).unwrap_or_else(|e| panic!("{} → {to}: {e}", path.display()));
                let converted: Value = serde_json::from_str(raw.get()).unwrap();
                let mut got = response_content(to, &converted);
                if to == Protocol::Gemini && converted["candidates"][0]["finishReason"] == "SAFETY" {
                    // Gemini has no refusal field: a refusal's explanation is its text.
                    got.text.clear();
                }
                assert_eq!(normalize(got), normalize(response_content(from, &body)), "{} → {to}", path.display());
                n += 1;
            }
        }
    }
    assert!(n >= 150, "{n}");
}
