//! Shared by the sink tests: a diff record and a case row of every shape the
//! proxy writes, sink options that rotate files often, scratch folders, and
//! the mock upstream plus the example config for runs of the real binary.

use serde_json::json;
use shadowgate::diff::{DiffClass, DiffEntry, DiffKind, DiffResult, Events, Outcome, Summary};
use shadowgate::record::{CaseRow, DiffRecord, Dims, Versions};
use shadowgate::sink::SinkOptions;
use shadowgate::sink::files::Rotation;
use shadowgate_core::Module;
use shadowgate_runtime::RuntimeKind;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shadowgate-sink-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn options(dir: &Path, instance: &str) -> SinkOptions {
    SinkOptions {
        data_dir: dir.to_path_buf(),
        instance: instance.into(),
        channel_size: 100_000,
        batch_rows: 100,
        rotation: Rotation {
            row_group_rows: 1000,
            max_file_rows: 150,
            max_file_bytes: 64 << 20,
            max_file_age: Duration::from_secs(60),
        },
        retention_cases_days: 14,
        retention_diffs_days: 90,
        spool_max_bytes: u64::MAX,
    }
}

pub fn versions(instance: &str) -> Versions {
    Versions::current(&"ab".repeat(32), instance)
}

pub fn dims(i: usize, ts: i64) -> Dims {
    Dims {
        request_id: format!("req_{i:04}"),
        timestamp_us: ts,
        tenant: ["acme", "globex"][i % 2].into(),
        route: "claude".into(),
        endpoint: "/v1/chat/completions".into(),
        client_protocol: shadowgate_core::Protocol::OpenAiChat,
        upstream_protocol: Some(shadowgate_core::Protocol::AnthropicMessages),
        model: "gpt-via-anthropic".into(),
        stream: i.is_multiple_of(3),
        mode: "shadow".into(),
        compat_profile: "anthropic/1".into(),
        upstream: String::new(),
        attempts: 1,
    }
}

pub fn result(i: usize) -> DiffResult {
    let module = [Module::Routing, Module::Compat, Module::Streaming, Module::Tools, Module::Tokenizer][i % 5];
    match i % 4 {
        0 => DiffResult {
            module,
            outcome: Outcome::Match,
            class: None,
            rule: None,
            diff_count: 0,
            paths: vec![],
            summary: Summary::Events(Events {
                left_events: 12,
                right_events: 12,
                left_token_digest: "d1".into(),
                right_token_digest: "d1".into(),
                divergence: None,
            }),
            ruleset_version: "v1".into(),
            truncated: false,
        },
        1 => DiffResult {
            module,
            outcome: Outcome::Mismatch,
            class: Some(DiffClass::Compat),
            rule: Some("compat/stop-reason-mapping".into()),
            diff_count: 2,
            paths: vec!["/choices/0/finish_reason".into(), "/usage/total_tokens".into()],
            summary: Summary::Entries {
                entries: vec![DiffEntry {
                    path: "/choices/0/finish_reason".into(),
                    kind: DiffKind::Changed,
                    left: Some(json!("stop")),
                    right: Some(json!("length")),
                    text_diff: None,
                }],
                ignored: 0,
            },
            ruleset_version: "v1".into(),
            truncated: false,
        },
        2 => DiffResult::failed(module, Outcome::ShadowTimeout, "deadline of 250 ms exceeded", "v1"),
        _ => DiffResult {
            module,
            outcome: Outcome::Ignored,
            class: Some(DiffClass::Nondeterministic),
            rule: Some("ids".into()),
            diff_count: 1,
            paths: vec!["/id".into()],
            summary: Summary::Ignored { ignored: 1 },
            ruleset_version: "v1".into(),
            truncated: false,
        },
    }
}

pub fn diff_record(i: usize, ts: i64) -> DiffRecord {
    DiffRecord {
        dims: Arc::new(dims(i, ts)),
        result: result(i),
        runtime_main: RuntimeKind::Native,
        runtime_shadow: RuntimeKind::Wasm,
        latency_main_us: 40 + i as u64,
        latency_shadow_us: 55 + i as u64,
    }
}

pub fn case_row(i: usize, ts: i64) -> CaseRow {
    static CASES: std::sync::OnceLock<Vec<shadowgate::case::Case>> = std::sync::OnceLock::new();
    let cases = CASES
        .get_or_init(|| shadowgate::case::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("replay/cases")).unwrap());
    let mut case = cases[i % 12].clone();
    // As the proxy records them: the case id and context carry the request id.
    case.id = format!("req_{i:04}");
    case.context =
        Some(shadowgate_core::Context { request_id: case.id.clone(), created: 1_763_800_000, id_seed: i as u64 });
    CaseRow {
        dims: dims(i, ts),
        case,
        primary_runtime: "native".into(),
        outputs: BTreeMap::from([("compat.request".into(), format!("{{\"ok\":{i}}}"))]),
        sampling_reason: "rate".into(),
        ruleset_version: "v1".into(),
    }
}

pub const DAY_US: i64 = 86_400_000_000;

pub fn now_us() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_micros() as i64
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The mock upstream on `port`, killed on drop.
pub fn mock_upstream(port: u16) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_shadowgate"))
        .args(["mock-upstream", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// `examples/local.toml` pointed at the mock on `mock_port`, listening on `proxy_port`.
pub fn local_config(mock_port: u16, proxy_port: u16) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/local.toml"))
        .unwrap()
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{mock_port}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{proxy_port}"))
}
