//! Sink throughput: diff rows a second through the whole writer (redaction,
//! Arrow builders, Snappy Parquet, fsync + rename) and the writer's peak
//! memory. `cargo bench --bench sink` (plain harness: one timed run per size).

use shadowgate::diff::{DiffClass, DiffEntry, DiffKind, DiffResult, Events, Outcome, Summary};
use shadowgate::record::Versions;
use shadowgate::record::{DiffRecord, Dims};
use shadowgate::sink::files::Rotation;
use shadowgate::sink::redact::Redactor;
use shadowgate::sink::{Sink, SinkOptions, SinkRecord, SinkStats};
use shadowgate_core::Module;
use shadowgate_runtime::RuntimeKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// A realistic mix: 90% match (SSE and JSON), 7% ignored, 3% mismatch with entries.
fn record(i: usize, dims: &[Arc<Dims>]) -> DiffRecord {
    let module = [Module::Routing, Module::Compat, Module::Streaming, Module::Tools, Module::Tokenizer][i % 5];
    let result = match i % 100 {
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
    };
    DiffRecord {
        dims: dims[i / 6 % dims.len()].clone(),
        result,
        runtime_main: RuntimeKind::Native,
        runtime_shadow: RuntimeKind::Wasm,
        latency_main_us: 30 + (i % 50) as u64,
        latency_shadow_us: 45 + (i % 70) as u64,
    }
}

fn main() {
    let rows: usize = std::env::var("SINK_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("shadowgate-sink-bench-{}", std::process::id()));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
    let dims: Vec<Arc<Dims>> = (0..4096)
        .map(|i| {
            Arc::new(Dims {
                request_id: format!("req_{i:024x}"),
                timestamp_us: now,
                tenant: ["acme", "globex", "initech"][i % 3].into(),
                route: ["gpt", "claude", "gpt-via-anthropic"][i % 3].into(),
                endpoint: "/v1/chat/completions".into(),
                client_protocol: shadowgate_core::Protocol::OpenAiChat,
                upstream_protocol: Some(shadowgate_core::Protocol::AnthropicMessages),
                model: "gpt-via-anthropic".into(),
                stream: i % 2 == 0,
                mode: "shadow".into(),
                compat_profile: "anthropic/1".into(),
                upstream: String::new(),
                attempts: 1,
            })
        })
        .collect();
    let records: Vec<DiffRecord> = (0..rows).map(|i| record(i, &dims)).collect();
    let rss_before = kib("VmRSS:");
    let opts = SinkOptions {
        data_dir: dir.clone(),
        instance: "bench".into(),
        channel_size: 65_536,
        batch_rows: 8192,
        rotation: Rotation {
            row_group_rows: 65_536,
            max_file_rows: 1_000_000,
            max_file_bytes: 256 << 20,
            max_file_age: Duration::from_secs(30),
        },
        retention_cases_days: 14,
        retention_diffs_days: 90,
        spool_max_bytes: u64::MAX,
    };
    let redactor = Arc::new(Redactor::new(b"bench-key-0123456789", &[]).unwrap());
    let stats = SinkStats::default();
    let start = Instant::now();
    let (tx, sink) =
        Sink::start(opts, Versions::current(&"ab".repeat(32), "bench"), redactor, stats.clone(), None).unwrap();
    let mut sent = 0usize;
    for r in records {
        // The bench waits where the proxy would drop, to time the writer itself.
        assert!(tx.send_wait(SinkRecord::Diff(r)));
        sent += 1;
    }
    drop(tx);
    let summary = sink.finish();
    let secs = start.elapsed().as_secs_f64();
    let bytes: u64 = shadowgate::sink::files::parquet_files(&dir)
        .unwrap()
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let hwm = kib("VmHWM:");
    println!(
        "sink: {sent} diff rows in {secs:.2} s = {:.0} rows/s; {} files, {:.1} MiB on disk ({:.1} B/row); \
         peak RSS {:.1} MiB, {:.1} MiB above the pre-built records",
        sent as f64 / secs,
        summary.files.values().sum::<u64>(),
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / sent as f64,
        hwm as f64 / 1024.0,
        hwm.saturating_sub(rss_before) as f64 / 1024.0,
    );
    assert_eq!(summary.rows.get("diffs").copied().unwrap_or(0) as usize, sent);
    let _ = std::fs::remove_dir_all(&dir);
}
