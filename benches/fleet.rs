//! Reading at fleet scale: `report` and `gate` over 10 million diff rows in
//! 100 files across 10 dates, written by the real sink; wall time and peak
//! RSS of each command (the release binary, as a child process; peak RSS is
//! its `VmHWM`, polled from `/proc` until it exits).
//!
//! `cargo bench --bench fleet` (`FLEET_BENCH_ROWS` to change the 10M rows;
//! `FLEET_BENCH_DIR` to keep and reuse the data set).

#[path = "support/rows.rs"]
mod rows;

use shadowgate::record::Versions;
use shadowgate::sink::files::Rotation;
use shadowgate::sink::redact::Redactor;
use shadowgate::sink::{Sink, SinkOptions, SinkRecord, SinkStats};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY_US: i64 = 86_400_000_000;
const DATES: usize = 10;

/// Writes `n` rows spread evenly from the start of the date `DATES - 1` days ago until now, ten files per date.
fn generate(dir: &Path, n: usize) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
    let start = (now.div_euclid(DAY_US) - (DATES as i64 - 1)) * DAY_US;
    let per_file = n.div_ceil(DATES * 10);
    let opts = SinkOptions {
        data_dir: dir.to_path_buf(),
        instance: "fleet".into(),
        channel_size: 65_536,
        batch_rows: 8192,
        rotation: Rotation {
            row_group_rows: 65_536,
            max_file_rows: per_file,
            max_file_bytes: 1 << 30,
            max_file_age: Duration::from_secs(3600),
        },
        retention_cases_days: 14,
        retention_diffs_days: 90,
        spool_max_bytes: u64::MAX,
    };
    let redactor = Arc::new(Redactor::new(b"bench-key-0123456789", &[]).unwrap());
    let (tx, sink) =
        Sink::start(opts, Versions::current(&"ab".repeat(32), "fleet"), redactor, SinkStats::default(), None).unwrap();
    let step = (now - start) / n as i64;
    for i in 0..n {
        // Day by day, oldest first, as a fleet would have written them.
        let t = start + i as i64 * step;
        let dims = Arc::new(rows::dims(i / 6, format!("req_{i:024x}"), t));
        assert!(tx.send_wait(SinkRecord::Diff(rows::record(i, dims))));
    }
    drop(tx);
    let s = sink.finish();
    assert_eq!(s.errors, 0);
}

/// Wall time (s) and peak RSS (MiB) of one run of the binary.
fn measure(args: &[&str]) -> (f64, f64, String) {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shadowgate"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut hwm_kib = 0u64;
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    loop {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(v) = text.lines().find_map(|l| l.strip_prefix("VmHWM:"))
        {
            hwm_kib = hwm_kib.max(v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0));
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = reader.join().unwrap();
    (start.elapsed().as_secs_f64(), hwm_kib as f64 / 1024.0, out)
}

fn main() {
    let n: usize = std::env::var("FLEET_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let keep = std::env::var("FLEET_BENCH_DIR").ok();
    let dir = keep
        .clone()
        .map_or_else(|| std::env::temp_dir().join(format!("shadowgate-fleet-{}", std::process::id())), Into::into);
    if !dir.join("diffs").is_dir() {
        let start = Instant::now();
        generate(&dir, n);
        eprintln!("fleet: wrote {n} rows in {:.1} s", start.elapsed().as_secs_f64());
    }
    let files = shadowgate::sink::files::parquet_files(&dir.join("diffs")).unwrap();
    let bytes: u64 = files.iter().map(|f| std::fs::metadata(f).map_or(0, |m| m.len())).sum();
    let dates: std::collections::BTreeSet<_> =
        files.iter().filter_map(|f| shadowgate::sink::files::date_of(&f.to_string_lossy())).collect();
    println!(
        "fleet: {n} diff rows, {} files, {} dates, {:.0} MiB on disk",
        files.len(),
        dates.len(),
        bytes as f64 / (1 << 20) as f64
    );
    let d = dir.to_str().unwrap();
    let state = dir.join("bench-state.json");
    let runs: [(&str, Vec<&str>); 4] = [
        ("report --since 24h", vec!["report", d, "--since", "24h", "--format", "json"]),
        ("report (all 10 dates)", vec!["report", d, "--format", "json"]),
        (
            "report --by module,tenant,route --format html",
            vec!["report", d, "--by", "module,tenant,route", "--format", "html"],
        ),
        ("gate --since 10d", vec!["gate", d, "--since", "10d", "--state", state.to_str().unwrap()]),
    ];
    println!("| command | rows read | wall | peak RSS |\n| --- | ---: | ---: | ---: |");
    for (name, args) in runs {
        let (secs, mib, out) = measure(&args);
        // The row count each output states: JSON `rows`, the page's summary, the gate's header.
        let rows = serde_json::from_str::<serde_json::Value>(&out)
            .ok()
            .and_then(|v| v.get("rows").and_then(serde_json::Value::as_u64))
            .map(|r| r.to_string())
            .or_else(|| out.split("<p id=\"summary\">").nth(1).and_then(|s| s.split(' ').next()).map(str::to_string))
            .or_else(|| out.split(" rows)").next().and_then(|s| s.rsplit('(').next()).map(str::to_string))
            .unwrap_or_else(|| "-".into());
        println!("| `{name}` | {rows} | {secs:.1} s | {mib:.0} MiB |");
    }
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
