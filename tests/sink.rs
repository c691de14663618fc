//! The Parquet sink: schema round trip through our reader and through
//! pyarrow + DuckDB, temporary-file cleanup, retention, and the real binary
//! under load: SIGTERM loses nothing, and a seeded corpus of secrets and PII
//! leaves no trace in the files or the logs.

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use serde_json::{Value, json};
use shadowgate::record::Dims;
use shadowgate::sink::files;
use shadowgate::sink::redact::Redactor;
use shadowgate::sink::schema::{Table, decode_cases, decode_diffs};
use shadowgate::sink::{Sink, SinkRecord, SinkStats, read_table, read_table_at};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[path = "support/sink.rs"]
mod support;
use support::*;

#[test]
fn tables_round_trip_through_our_reader_and_through_pyarrow_and_duckdb() {
    let dir = tmp("roundtrip");
    let redactor = Arc::new(Redactor::new(b"0123456789abcdef0123", &[]).unwrap());
    let stats = SinkStats::default();
    let (tx, sink) = Sink::start(options(&dir, "node-a"), versions("node-a"), redactor, stats.clone(), None).unwrap();
    let today = now_us();
    let yesterday = today - DAY_US;
    // 600 diff rows over two dates (a file closes at 150 rows, checked per 100-row batch), 30 cases.
    for i in 0..600 {
        assert!(tx.send(SinkRecord::Diff(diff_record(i, if i % 2 == 0 { today } else { yesterday }))));
    }
    for i in 0..30 {
        assert!(tx.send(SinkRecord::Case(Box::new(case_row(i, today)))));
    }
    drop(tx);
    let summary = sink.finish();
    assert_eq!(summary.rows, BTreeMap::from([("cases", 30), ("diffs", 600)]));
    assert_eq!(summary.errors, 0);
    assert_eq!(stats.rows_written(Table::Diffs), 600);

    // Layout: <dir>/<table>/date=YYYY-MM-DD/part-<instance>-<seq>.parquet, nothing temporary left.
    let all = files::parquet_files(&dir).unwrap();
    let re = regex::Regex::new(r"/(diffs|cases)/date=\d{4}-\d{2}-\d{2}/part-node-a-\d{6}\.parquet$").unwrap();
    assert!(all.iter().all(|p| re.is_match(&p.to_string_lossy())), "{all:?}");
    assert_eq!(all.iter().filter(|p| p.to_string_lossy().contains("/diffs/")).count(), 4, "{all:?}");
    let day = |us: i64| format!("date={}", files::partition_date(us));
    assert!(all.iter().any(|p| p.to_string_lossy().contains(&day(yesterday))));

    let diffs = read_table(&dir.join("diffs"), decode_diffs).unwrap();
    assert_eq!(diffs.len(), 600);
    let by_id: BTreeMap<&str, _> = diffs.iter().map(|d| (d.dims.request_id.as_str(), d)).collect();
    for i in [0usize, 1, 2, 3, 598, 599] {
        let (want, got) = (diff_record(i, 0), by_id[format!("req_{i:04}").as_str()]);
        assert_eq!(got.dims, Dims { timestamp_us: got.dims.timestamp_us, ..(*want.dims).clone() });
        assert_eq!(got.module, want.result.module.as_str());
        assert_eq!(got.outcome, want.result.outcome.as_str());
        assert_eq!(got.diff_class.as_deref(), want.result.class.map(|c| c.as_str()));
        assert_eq!(got.rule_id, want.result.rule);
        assert_eq!(got.diff_paths, want.result.paths);
        assert_eq!((got.latency_main_us, got.latency_shadow_us), (40 + i as i64, 55 + i as i64));
        assert_eq!((got.runtime_main.as_str(), got.guest_sha256.as_str()), ("native", "ab".repeat(32).as_str()));
    }
    // A window from today on opens only today's partition.
    let root = shadowgate::sink::store::Location::Local(dir.clone());
    let recent = read_table_at(&root, "diffs", Some(files::partition_date(today)), decode_diffs).unwrap();
    assert_eq!(recent.len(), 300);
    assert!(recent.iter().all(|d| d.dims.timestamp_us == today));
    assert_eq!(read_table_at(&root, "diffs", None, decode_diffs).unwrap().len(), 600);
    // Pruned by path, never opened: an unreadable file in an old partition does not matter.
    let old = dir.join("diffs/date=2020-01-01");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("part-x-000001.parquet"), b"not parquet").unwrap();
    assert_eq!(read_table_at(&root, "diffs", Some(files::partition_date(today)), decode_diffs).unwrap().len(), 300);
    let err = read_table_at(&root, "diffs", None, decode_diffs).unwrap_err();
    assert!(err.contains("date=2020-01-01/part-x-000001.parquet"), "{err}");
    std::fs::remove_dir_all(&old).unwrap();
    let cases = read_table(&dir.join("cases"), decode_cases).unwrap();
    assert_eq!(cases.len(), 30);
    for (i, c) in cases.iter().enumerate() {
        let want = case_row(i, 0);
        assert_eq!(c.case.request, want.case.request);
        assert_eq!(c.case.upstream_response, want.case.upstream_response);
        assert_eq!(c.case.upstream_stream, want.case.upstream_stream);
        assert_eq!(c.case.context, want.case.context);
        assert_eq!(c.outputs, want.outputs);
        assert_eq!(c.versions["ruleset_version"], "v1");
    }

    // An independent reader: pyarrow (hive partitions) and DuckDB.
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/read_tables.py"))
        .arg(&dir)
        .output()
        .expect("python3 with tests/requirements.txt (make test installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["diffs"]["rows"], 600);
    assert_eq!(v["cases"]["rows"], 30);
    assert_eq!(v["diffs"]["columns"]["timestamp"], "timestamp[us, tz=UTC]");
    assert_eq!(v["diffs"]["columns"]["diff_paths"], "list<item: string>");
    assert_eq!(v["cases"]["columns"]["primary_outputs"], "map<string, string ('primary_outputs')>");
    for col in ["request_id", "module", "outcome", "summary", "latency_shadow_us", "ruleset_version", "instance_id"] {
        assert!(v["diffs"]["columns"].get(col).is_some(), "{col}");
    }
    let mismatches: i64 = v["duckdb_diffs_by_module_outcome"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r[1] == "mismatch")
        .map(|r| r[2].as_i64().unwrap())
        .sum();
    assert_eq!(mismatches, 150);
    assert_eq!(v["duckdb_cases"], json!([30, 30]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn temporary_files_of_dead_writers_are_removed_and_retention_prunes_old_partitions() {
    let dir = tmp("cleanup");
    let today = files::partition_date(now_us());
    let part = |table: &str, days_ago: u64| {
        let d = dir.join(table).join(format!("date={}", today - chrono::Days::new(days_ago)));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("part-old-000001.parquet"), b"x").unwrap();
        d
    };
    let (c10, c20, d20, d100) = (part("cases", 10), part("cases", 20), part("diffs", 20), part("diffs", 100));
    // Left by this instance after a kill -9; by another dead one long ago; by a live one just now.
    let own = c10.join(".part-node-b-000007.parquet.tmp");
    let stale = d20.join(".part-node-z-000001.parquet.tmp");
    let live = d20.join(".part-node-y-000001.parquet.tmp");
    for f in [&own, &stale, &live] {
        std::fs::write(f, b"PAR1 partial").unwrap();
    }
    let old = SystemTime::now() - Duration::from_secs(3 * 3600);
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();

    let redactor = Arc::new(Redactor::ephemeral(&[]));
    let (tx, sink) =
        Sink::start(options(&dir, "node-b"), versions("node-b"), redactor, SinkStats::default(), None).unwrap();
    drop(tx);
    sink.finish();
    assert!(!own.exists() && !stale.exists(), "dead writers' temporary files are removed");
    assert!(live.exists(), "a live writer's temporary file is left alone");
    assert!(c10.exists() && !c20.exists(), "cases keep 14 days");
    assert!(d20.exists() && !d100.exists(), "diffs keep 90 days");
    let _ = std::fs::remove_dir_all(&dir);
}

const SECRETS: &[&str] = &[
    "sk-proj-Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0Lz",
    "sk-ant-api03-Q1w2E3r4T5y6U7i8O9p0AaSsDdFf",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "AKIAIOSFODNN7EXAMPLE",
    "hunter2-correct-horse",
    "client-key-9f8e7d6c5b4a",
    "jane.doe@example.com",
    "+1 415-555-0132",
    "203.0.113.42",
    "4111 1111 1111 1111",
];

fn request(i: usize) -> (&'static str, Value) {
    let text = format!(
        "Request {i}. I'm Jane (jane.doe@example.com, +1 415-555-0132) on 203.0.113.42, card 4111 1111 1111 1111. \
         My key is sk-proj-Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0Lz and sk-ant-api03-Q1w2E3r4T5y6U7i8O9p0AaSsDdFf, \
         token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U, aws AKIAIOSFODNN7EXAMPLE."
    );
    let stream = i.is_multiple_of(3);
    if i.is_multiple_of(2) {
        let body = json!({"model": "gpt-4.1", "stream": stream, "user": "jane.doe@example.com",
            "metadata": {"password": "hunter2-correct-horse"},
            "messages": [{"role": "user", "content": text}]});
        ("/v1/chat/completions", body)
    } else {
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 200, "stream": stream,
            "metadata": {"user_id": "jane.doe@example.com"},
            "messages": [{"role": "user", "content": text}]});
        ("/v1/messages", body)
    }
}

/// Every string a Parquet file holds, list and map children included.
fn strings(a: &ArrayRef, out: &mut Vec<String>) {
    if let Some(s) = a.as_string_opt::<i32>() {
        out.extend((0..s.len()).filter(|i| s.is_valid(*i)).map(|i| s.value(i).to_string()));
    } else if let Some(l) = a.as_list_opt::<i32>() {
        strings(l.values(), out);
    } else if let Some(m) = a.as_map_opt() {
        strings(m.keys(), out);
        strings(m.values(), out);
    }
}

fn all_strings(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in files::parquet_files(dir).unwrap() {
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
                .unwrap()
                .build()
                .unwrap();
        for batch in reader {
            for col in batch.unwrap().columns() {
                strings(col, &mut out);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_nothing_and_no_secret_reaches_disk_or_logs() {
    let dir = tmp("sigterm");
    let bin = env!("CARGO_BIN_EXE_shadowgate");
    let (mock_port, proxy_port) = (free_port(), free_port());
    let mut mock = mock_upstream(mock_port);
    let config = local_config(mock_port, proxy_port)
        .replace(
            "data_dir = \"./shadowgate-data\"",
            &format!("data_dir = {:?}\nflush_interval_ms = 600000", dir.join("data")),
        )
        .replace("rate = 1.0", "rate = 1.0\ncap_per_minute = 100000")
        // The shadow workers run niced: on a loaded CI machine 250 ms is not enough, and a
        // shadow timeout here would say nothing about what this test checks.
        .replace("deadline_ms = 250", "deadline_ms = 5000");
    let cfg_path = dir.join("config.toml");
    std::fs::write(&cfg_path, config).unwrap();

    // No key: a clear start-up error.
    let out = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&cfg_path)
        .env_remove("SHADOWGATE_REDACTION_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHADOWGATE_REDACTION_KEY is not set"), "{out:?}");

    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    let mut serve = tokio::process::Command::new(bin)
        .args(["serve", "--config"])
        .arg(&cfg_path)
        .env("SHADOWGATE_REDACTION_KEY", "deployment-key-0123456789")
        .env("RUST_LOG", "debug")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{proxy_port}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 16 clients send as fast as they can; SIGTERM arrives in the middle.
    let done = Arc::new(std::sync::Mutex::new(Vec::<(String, bool)>::new()));
    let mut clients = Vec::new();
    for c in 0..16 {
        let (http, base, done) = (http.clone(), base.clone(), done.clone());
        clients.push(tokio::spawn(async move {
            for n in 0.. {
                let i = c * 10_000 + n;
                let (path, body) = request(i);
                let sent = http
                    .post(format!("{base}{path}"))
                    .header("authorization", format!("Bearer {}", SECRETS[0]))
                    .header("x-api-key", SECRETS[5])
                    .json(&body)
                    .send()
                    .await;
                let Ok(resp) = sent else { return };
                let id = resp.headers()["x-shadowgate-request-id"].to_str().unwrap().to_string();
                let ok = resp.status().is_success();
                if resp.bytes().await.is_ok() && ok {
                    done.lock().unwrap().push((id, body["stream"].as_bool().unwrap()));
                }
            }
        }));
    }
    while done.lock().unwrap().len() < 150 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(serve.id().unwrap() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(60), serve.wait()).await.unwrap().unwrap();
    for c in clients {
        let _ = c.await;
    }
    let _ = mock.kill().await;
    assert!(status.success(), "serve exits 0 after SIGTERM: {status:?}");

    let data = dir.join("data");
    let completed = done.lock().unwrap().clone();
    assert!(completed.len() >= 150);
    let diffs = read_table(&data.join("diffs"), decode_diffs).unwrap();
    let cases = read_table(&data.join("cases"), decode_cases).unwrap();
    let mut rows: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &diffs {
        *rows.entry(d.dims.request_id.as_str()).or_default() += 1;
    }
    let case_ids: BTreeSet<&str> = cases.iter().map(|c| c.case.id.as_str()).collect();
    for (id, stream) in &completed {
        // Non-streaming: routing, compat request + response, tools request + response, tokenizer.
        let want = if *stream { 5 } else { 6 };
        assert_eq!(rows.get(id.as_str()), Some(&want), "diff rows of {id} (stream {stream})");
        assert!(case_ids.contains(id.as_str()), "case of {id}");
    }
    let disagree: Vec<_> = diffs
        .iter()
        .filter(|d| d.outcome != "match" && d.outcome != "ignored")
        .map(|d| (d.module.as_str(), d.outcome.as_str(), d.diff_paths.clone()))
        .collect();
    assert!(disagree.is_empty(), "native and wasm agree: {disagree:?}");
    let leftovers: Vec<_> = walk(&data).into_iter().filter(|p| p.to_string_lossy().ends_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The seeded secrets and PII: nowhere in the files, nowhere in the log.
    let text = all_strings(&data);
    assert!(text.iter().any(|s| s.contains("sha256:")), "PII is hashed, not dropped");
    assert!(text.iter().any(|s| s.contains("__redacted__")));
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
    assert!(log.contains("sink closed"), "{log}");
    for secret in SECRETS {
        assert!(!text.iter().any(|s| s.contains(secret)), "{secret} reached a Parquet file");
        assert!(!log.contains(secret), "{secret} reached the log");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
