//! Shared helpers for the core's fixture-driven tests.
#![allow(dead_code)]

use shadowgate_core::{Context, Protocol};
use std::path::{Path, PathBuf};

/// The fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Input files of `kind/from/` (those not named `*.to-*`), sorted.
pub fn inputs(kind: &str, from: Protocol, ext: &str) -> Vec<PathBuf> {
    let dir = fixtures().join(kind).join(from.as_str());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == ext) && !p.file_name().unwrap().to_string_lossy().contains(".to-")
        })
        .collect();
    files.sort();
    files
}

/// The expected-output path for `input` converted to `to`.
pub fn expected_path(input: &Path, to: Protocol) -> PathBuf {
    let stem = input.file_stem().unwrap().to_string_lossy();
    let ext = input.extension().unwrap().to_string_lossy();
    input.with_file_name(format!("{stem}.to-{}.{ext}", to.as_str()))
}

/// Compares `actual` with the golden file, or writes it when `SHADOWGATE_BLESS=1`.
pub fn check_golden(path: &Path, actual: &str) {
    if std::env::var_os("SHADOWGATE_BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!("missing golden file {} (run with SHADOWGATE_BLESS=1 to create it)", path.display())
    });
    if expected != actual {
        panic!("{} differs from the output:\n--- expected\n{expected}\n--- actual\n{actual}", path.display());
    }
}

/// The fixed context every golden uses.
pub fn ctx() -> Context {
    Context::fixed()
}

/// Pretty-prints an envelope for a golden file.
pub fn pretty(envelope: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(envelope).expect("envelope is JSON");
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

/// The op input: a header line and the payload.
pub fn framed(header: serde_json::Value, payload: &[u8]) -> Vec<u8> {
    let mut v = serde_json::to_vec(&header).unwrap();
    v.push(b'\n');
    v.extend_from_slice(payload);
    v
}

/// Stream fixture inputs of both protocols: (path, upstream protocol, bytes).
pub fn stream_inputs() -> Vec<(PathBuf, Protocol, Vec<u8>)> {
    let mut out = Vec::new();
    for from in Protocol::ALL {
        for p in inputs("stream", from, "sse") {
            let bytes = std::fs::read(&p).unwrap();
            out.push((p, from, bytes));
        }
    }
    out
}

/// Recorded corpus streams, framed as the upstream sends them: (path, protocol, bytes).
pub fn corpus_streams() -> Vec<(PathBuf, Protocol, Vec<u8>)> {
    let root = fixtures().join("corpus/vercel-ai");
    let mut out = Vec::new();
    for (dir, protocol) in [
        ("anthropic", Protocol::AnthropicMessages),
        ("openai", Protocol::OpenAiChat),
        ("openai-compatible", Protocol::OpenAiChat),
        ("openai-responses", Protocol::OpenAiResponses),
        ("google", Protocol::Gemini),
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for p in files {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&p).unwrap();
            let bytes = if name.ends_with(".sse") {
                text.into_bytes()
            } else if name.ends_with(".chunks.txt") {
                frame_chunks(&text, protocol).into_bytes()
            } else {
                continue;
            };
            out.push((p, protocol, bytes));
        }
    }
    out
}

/// Frames one-JSON-per-line chunks as the protocol's SSE.
pub fn frame_chunks(text: &str, protocol: Protocol) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match protocol {
            Protocol::AnthropicMessages | Protocol::OpenAiResponses => {
                // A recorded line may be broken JSON: its type is read from the text then.
                let ty = match serde_json::from_str::<serde_json::Value>(line) {
                    Ok(v) => v["type"].as_str().unwrap_or("unknown").to_string(),
                    Err(_) => line.split('"').nth(3).unwrap_or("unknown").to_string(),
                };
                out.push_str(&format!("event: {ty}\ndata: {line}\n\n"));
            }
            Protocol::OpenAiChat => out.push_str(&format!("data: {line}\n\n")),
            // Gemini's own framing.
            Protocol::Gemini => out.push_str(&format!("data: {line}\r\n\r\n")),
        }
    }
    if protocol == Protocol::OpenAiChat {
        out.push_str("data: [DONE]\n\n");
    }
    out
}

/// Parses client SSE output into (event name, data) pairs.
pub fn parse_sse(text: &str) -> Vec<(Option<String>, String)> {
    let mut p = shadowgate_core::streaming::SseParser::new(usize::MAX);
    let mut events = Vec::new();
    p.feed(text.as_bytes(), &mut events).unwrap();
    p.finish(&mut events).unwrap();
    events.into_iter().map(|e| (e.event, e.data)).collect()
}
