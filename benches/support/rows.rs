//! The diff rows the sink and fleet benches write: a realistic mix of
//! outcomes over five modules, three tenants and three routes.

use shadowgate::diff::{DiffClass, DiffEntry, DiffKind, DiffResult, Events, Outcome, Summary};
use shadowgate::record::{DiffRecord, Dims};
use shadowgate_core::Module;
use shadowgate_runtime::RuntimeKind;
use std::sync::Arc;

const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// A realistic mix: 90% match (SSE and JSON), 7% ignored, 3% mismatch with entries.
pub fn result(i: usize) -> DiffResult {
    let module = [Module::Routing, Module::Compat, Module::Streaming, Module::Tools, Module::Tokenizer][i % 5];
    match i % 100 {
        0..=89 if module == Module::Streaming => DiffResult {
            module,
            outcome: Outcome::Match,
            class: None,
            rule: None,
            diff_count: 0,
            paths: vec![],
            summary: Summary::Events(Events {
                left_events: 42,
                right_events: 42,
                left_token_digest: DIGEST.into(),
                right_token_digest: DIGEST.into(),
                divergence: None,
            }),
            ruleset_version: "v1".into(),
            truncated: false,
        },
        0..=89 => DiffResult { summary: Summary::None, ..DiffResult::failed(module, Outcome::Match, "", "v1") },
        90..=96 => DiffResult {
            module,
            outcome: Outcome::Ignored,
            class: Some(DiffClass::Nondeterministic),
            rule: Some("ids".into()),
            diff_count: 2,
            paths: vec!["/id".into(), "/created".into()],
            summary: Summary::Ignored { ignored: 2 },
            ruleset_version: "v1".into(),
            truncated: false,
        },
        _ => DiffResult {
            module,
            outcome: Outcome::Mismatch,
            class: Some(DiffClass::Logic),
            rule: None,
            diff_count: 1,
            paths: vec!["/choices/0/message/content".into()],
            summary: Summary::Entries {
                entries: vec![DiffEntry {
                    path: "/choices/0/message/content".into(),
                    kind: DiffKind::Changed,
                    left: None,
                    right: None,
                    text_diff: Some(
                        "-Shadow traffic lets you compare two runtimes\n+Shadow traffic lets you compare 2 runtimes"
                            .into(),
                    ),
                }],
                ignored: 0,
            },
            ruleset_version: "v1".into(),
            truncated: false,
        },
    }
}

/// Request dimensions: tenant, route and streaming vary with `i`.
pub fn dims(i: usize, request_id: String, timestamp_us: i64) -> Dims {
    Dims {
        request_id,
        timestamp_us,
        tenant: ["acme", "globex", "initech"][i % 3].into(),
        route: ["gpt", "claude", "gpt-via-anthropic"][i % 3].into(),
        endpoint: "/v1/chat/completions".into(),
        client_protocol: shadowgate_core::Protocol::OpenAiChat,
        upstream_protocol: Some(shadowgate_core::Protocol::AnthropicMessages),
        model: "gpt-via-anthropic".into(),
        stream: i.is_multiple_of(2),
        mode: "shadow".into(),
        compat_profile: "anthropic/1".into(),
        upstream: String::new(),
        attempts: 1,
    }
}

/// Row `i` of the mix, with its dimensions.
pub fn record(i: usize, dims: Arc<Dims>) -> DiffRecord {
    DiffRecord {
        dims,
        result: result(i),
        runtime_main: RuntimeKind::Native,
        runtime_shadow: RuntimeKind::Wasm,
        latency_main_us: 30 + (i % 50) as u64,
        latency_shadow_us: 45 + (i % 70) as u64,
    }
}
