//! Sink throughput: diff rows a second through the whole writer (redaction,
//! Arrow builders, Snappy Parquet, fsync + rename) and the writer's peak
//! memory. `cargo bench --bench sink` (plain harness: one timed run per size).

#[path = "support/rows.rs"]
mod rows;

use shadowgate::record::Versions;
use shadowgate::record::{DiffRecord, Dims};
use shadowgate::sink::files::Rotation;
use shadowgate::sink::redact::Redactor;
use shadowgate::sink::{Sink, SinkOptions, SinkRecord, SinkStats};
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

fn main() {
    let rows: usize = std::env::var("SINK_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("shadowgate-sink-bench-{}", std::process::id()));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
    let dims: Vec<Arc<Dims>> = (0..4096).map(|i| Arc::new(rows::dims(i, format!("req_{i:024x}"), now))).collect();
    let records: Vec<DiffRecord> = (0..rows).map(|i| rows::record(i, dims[i / 6 % dims.len()].clone())).collect();
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
