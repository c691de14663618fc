//! The sink with `url = "s3://…"`, against a real S3 server on loopback
//! (moto, started per test on a free port): multipart uploads visible only
//! when complete, a server that fails requests, retention of whole date
//! prefixes, pyarrow reading the bucket as a Hive-partitioned dataset, and
//! the real binary killed with -9 while rows wait in its spool.

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use serde_json::{Value, json};
use shadowgate::sink::schema::{decode_cases, decode_diffs};
use shadowgate::sink::store::Location;
use shadowgate::sink::upload::{UploadOptions, upload};
use shadowgate::sink::{Sink, SinkRecord, SinkStats, read_table, read_table_at};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/sink.rs"]
mod support;
use support::*;

/// A moto S3 server on a free loopback port, stopped on drop.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    async fn start(bucket: &str) -> Moto {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with moto[server] (tests/requirements.txt; make test installs it)");
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.put(format!("{}/{bucket}", moto.endpoint)).send().await {
                assert!(r.status().is_success(), "create bucket: {}", r.status());
                return moto;
            }
            assert!(Instant::now() < deadline, "moto did not start on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bucket at `endpoint`, with no retries inside the client (so each failure is seen).
fn bucket(endpoint: &str, name: &str) -> Arc<dyn ObjectStore> {
    let store = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(name)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_allow_http(true)
        .with_retry(RetryConfig { max_retries: 0, ..RetryConfig::default() })
        .build()
        .unwrap();
    Arc::new(store)
}

async fn keys(store: &dyn ObjectStore, prefix: &str) -> Vec<(String, u64)> {
    let prefix = ObjectPath::from(prefix);
    let listed: Vec<_> = store.list(Some(&prefix)).collect().await;
    let mut out: Vec<_> = listed.into_iter().map(|m| m.map(|m| (m.location.to_string(), m.size)).unwrap()).collect();
    out.sort();
    out
}

/// Which requests the failing proxy answers 503 instead of forwarding.
struct FailRule {
    method: Option<reqwest::Method>,
    query_contains: Option<&'static str>,
    remaining: usize,
}

/// An HTTP proxy in front of moto that fails the requests its rule picks.
struct FailProxy {
    upstream: String,
    rule: Mutex<FailRule>,
    failed: AtomicUsize,
    http: reqwest::Client,
}

impl FailProxy {
    async fn start(upstream: &str, rule: FailRule) -> (String, Arc<FailProxy>) {
        let proxy = Arc::new(FailProxy {
            upstream: upstream.into(),
            rule: Mutex::new(rule),
            failed: AtomicUsize::new(0),
            http: reqwest::Client::new(),
        });
        let app = axum::Router::new().fallback(forward).with_state(proxy.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), proxy)
    }

    fn fails(&self, method: &reqwest::Method, query: &str) -> bool {
        let mut rule = self.rule.lock().unwrap();
        let picked = rule.method.as_ref().is_none_or(|m| m == method)
            && rule.query_contains.is_none_or(|q| query.contains(q))
            && rule.remaining > 0;
        if picked {
            rule.remaining -= 1;
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        picked
    }
}

async fn forward(
    axum::extract::State(p): axum::extract::State<Arc<FailProxy>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    // Read the whole body first, even of a request about to fail: answering
    // before the client has sent it resets the connection, and the client
    // would see a send error instead of the 503.
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    if p.fails(&parts.method, parts.uri.query().unwrap_or("")) {
        let body = "<Error><Code>SlowDown</Code><Message>injected</Message></Error>";
        return (reqwest::StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    let url = format!("{}{}", p.upstream, parts.uri.path_and_query().map_or("/", |x| x.as_str()));
    let mut up = p.http.request(parts.method, url).body(body);
    for (k, v) in &parts.headers {
        if k != reqwest::header::HOST && k != reqwest::header::CONTENT_LENGTH {
            up = up.header(k, v);
        }
    }
    let resp = up.send().await.unwrap();
    let mut out = axum::response::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if k != reqwest::header::TRANSFER_ENCODING && k != reqwest::header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    out.body(axum::body::Body::from(resp.bytes().await.unwrap())).unwrap()
}

async fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_is_visible_only_once_complete_and_a_failed_part_leaves_nothing() {
    let moto = Moto::start("parts").await;
    let (via, proxy) =
        FailProxy::start(&moto.endpoint, FailRule { method: None, query_contains: Some("partNumber=2"), remaining: 1 })
            .await;
    let direct = bucket(&moto.endpoint, "parts");
    let flaky = bucket(&via, "parts");
    // 12 MiB in 5 MiB parts: three parts.
    let data: Bytes = (0..12u32 << 20).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
    let key = ObjectPath::from("diffs/date=2026-12-05/part-node-a-000001.parquet");

    let err = upload(flaky.as_ref(), &key, data.clone(), 5 << 20).await.unwrap_err();
    assert!(err.to_string().contains("503") || err.to_string().contains("SlowDown"), "{err}");
    assert_eq!(proxy.failed.load(Ordering::Relaxed), 1);
    assert!(keys(direct.as_ref(), "").await.is_empty(), "no partial object is visible");
    let pending = reqwest::get(format!("{}/parts?uploads", moto.endpoint)).await.unwrap().text().await.unwrap();
    assert!(!pending.contains("<UploadId>"), "the failed multipart upload was aborted: {pending}");

    upload(flaky.as_ref(), &key, data.clone(), 5 << 20).await.unwrap();
    let meta = direct.head(&key).await.unwrap();
    assert_eq!(meta.size, 12 << 20);
    assert!(meta.e_tag.as_deref().is_some_and(|t| t.trim_matches('"').ends_with("-3")), "{:?}", meta.e_tag);
    assert_eq!(direct.get(&key).await.unwrap().bytes().await.unwrap(), data);

    // Small files are a single PUT.
    let small = ObjectPath::from("cases/date=2026-12-05/part-node-a-000002.parquet");
    upload(direct.as_ref(), &small, Bytes::from_static(b"PAR1"), 5 << 20).await.unwrap();
    assert!(direct.head(&small).await.unwrap().e_tag.is_some_and(|t| !t.contains('-')));
}

/// Sinks of two instances, uploading through a server that fails their first PUTs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_sinks_loses_no_row_to_a_failing_server_and_pyarrow_reads_the_bucket() {
    let moto = Moto::start("fleet").await;
    let direct = bucket(&moto.endpoint, "fleet");
    // Retention removes whole date prefixes past the window, and nothing newer.
    let old = ObjectPath::from("prod/diffs/date=2020-01-01/part-old-000001.parquet");
    direct.put(&old, PutPayload::from_static(b"old")).await.unwrap();
    let (via, proxy) = FailProxy::start(
        &moto.endpoint,
        FailRule { method: Some(reqwest::Method::PUT), query_contains: None, remaining: 3 },
    )
    .await;
    let today = now_us();
    let yesterday = today - DAY_US;
    let mut sinks = Vec::new();
    for node in ["node-a", "node-b"] {
        let spool = tmp(&format!("s3-{node}"));
        let remote = UploadOptions {
            store: bucket(&via, "fleet"),
            prefix: ObjectPath::from("prod"),
            part_bytes: 5 << 20,
            interval: Duration::from_millis(50),
            retention_days: [("cases", 14), ("diffs", 90)],
        };
        let redactor = Arc::new(shadowgate::sink::redact::Redactor::new(b"0123456789abcdef0123", &[]).unwrap());
        let stats = SinkStats::default();
        let (tx, sink) =
            Sink::start(options(&spool, node), versions(node), redactor, stats.clone(), Some(remote)).unwrap();
        for i in 0..300 {
            assert!(tx.send(SinkRecord::Diff(diff_record(i, if i % 2 == 0 { today } else { yesterday }))));
        }
        for i in 0..15 {
            assert!(tx.send(SinkRecord::Case(Box::new(case_row(i, today)))));
        }
        sinks.push((spool, stats, tx, sink));
    }
    // The diffs files close at 150 rows and go up, failures retried with backoff.
    let all_stats: Vec<SinkStats> = sinks.iter().map(|s| s.1.clone()).collect();
    wait_for("both instances' diffs files uploaded", 60, || {
        all_stats.iter().all(|s| s.uploads.get_or_create(&label("diffs")).get() == 2)
    })
    .await;
    assert_eq!(proxy.failed.load(Ordering::Relaxed), 3);
    let mut failures = 0;
    for (spool, stats, tx, sink) in sinks {
        drop(tx);
        let summary = sink.finish();
        assert_eq!(summary.errors, 0);
        assert!(shadowgate::sink::files::parquet_files(&spool).unwrap().is_empty(), "spool of {spool:?} emptied");
        assert_eq!(stats.spool_bytes.get(), 0);
        failures += stats.upload_failures.get_or_create(&label("diffs")).get();
        assert_eq!(stats.uploads.get_or_create(&label("diffs")).get(), 2);
        assert_eq!(stats.uploads.get_or_create(&label("cases")).get(), 1);
    }
    assert_eq!(failures, 3, "each injected failure is counted once");

    // Layout in the bucket; the 2020 prefix is gone.
    let objects = keys(direct.as_ref(), "prod").await;
    let re = regex::Regex::new(r"^prod/(diffs|cases)/date=\d{4}-\d{2}-\d{2}/part-node-[ab]-\d{6}\.parquet$").unwrap();
    assert!(objects.iter().all(|(k, _)| re.is_match(k)), "{objects:?}");
    assert_eq!(objects.len(), 6, "{objects:?}");

    // Our reader over the bucket: every row of both instances.
    let root =
        Location::Object { store: direct.clone(), prefix: ObjectPath::from("prod"), url: "s3://fleet/prod".into() };
    let diffs = read_table_at(&root, "diffs", None, decode_diffs).unwrap();
    let cases = read_table_at(&root, "cases", None, decode_cases).unwrap();
    assert_eq!(diffs.len(), 600);
    assert_eq!(cases.len(), 30);

    // pyarrow, independently: the bucket as one Hive-partitioned dataset.
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/read_bucket.py"))
        .args([&moto.endpoint, "fleet/prod"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["diffs"]["rows"], 600);
    assert_eq!(v["cases"]["rows"], 30);
    assert_eq!(v["diffs"]["instances"], json!({"node-a": 300, "node-b": 300}));
    assert_eq!(v["cases"]["instances"], json!({"node-a": 15, "node-b": 15}));
    let dates = |us: i64| shadowgate::sink::files::partition_date(us).to_string();
    assert_eq!(v["diffs"]["dates"], json!({dates(yesterday): 300, dates(today): 300}));
}

fn label(table: &str) -> shadowgate::sink::TableLabels {
    shadowgate::sink::TableLabels { table: table.into() }
}

async fn metric(http: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// The real binary: rows closed into the spool while the bucket is unreachable
/// survive a kill -9, and the next start uploads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_in_the_spool_survive_kill_9_and_the_restart_uploads_them() {
    let moto = Moto::start("shadow").await;
    let dir = tmp("s3-kill");
    let bin = env!("CARGO_BIN_EXE_shadowgate");
    let (mock_port, proxy_port, dead_port) = (free_port(), free_port(), free_port());
    let _mock = mock_upstream(mock_port);
    let data = dir.join("spool");
    let config = local_config(mock_port, proxy_port)
        .replace(
            "data_dir = \"./shadowgate-data\"",
            &format!(
                "data_dir = {data:?}\nurl = \"s3://shadow/prod\"\nallow_http = true\n\
                 flush_interval_ms = 300\nupload_interval_ms = 100"
            ),
        )
        .replace("deadline_ms = 250", "deadline_ms = 5000");
    let cfg_path = dir.join("config.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let serve = |endpoint: String| {
        tokio::process::Command::new(bin)
            .args(["serve", "--config"])
            .arg(&cfg_path)
            .env("SHADOWGATE_REDACTION_KEY", "deployment-key-0123456789")
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let base = format!("http://127.0.0.1:{proxy_port}");
    let http = reqwest::Client::new();
    let ready = |http: reqwest::Client, base: String| async move {
        for _ in 0..600 {
            if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("serve did not become ready");
    };

    // First life: the bucket's endpoint is a closed port.
    let mut first = serve(format!("http://127.0.0.1:{dead_port}"));
    ready(http.clone(), base.clone()).await;
    let mut ids = BTreeSet::new();
    for i in 0..20 {
        let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("hello {i}")}]});
        let resp = http.post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        ids.insert(resp.headers()["x-shadowgate-request-id"].to_str().unwrap().to_string());
    }
    let spooled = || {
        let diffs = read_table(&data.join("diffs"), decode_diffs).unwrap_or_default();
        let cases = read_table(&data.join("cases"), decode_cases).unwrap_or_default();
        let d: BTreeSet<_> = diffs.into_iter().map(|d| d.dims.request_id).collect();
        let c: BTreeSet<_> = cases.into_iter().map(|c| c.case.id).collect();
        (d, c)
    };
    wait_for("every request's rows closed into the spool", 60, || {
        let (d, c) = spooled();
        ids.is_subset(&d) && ids.is_subset(&c)
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&http, &base, "shadowgate_sink_upload_failures_total").await < 1.0 {
        assert!(Instant::now() < deadline, "no upload failure counted against a closed port");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metric(&http, &base, "shadowgate_sink_spool_bytes").await > 0.0);
    first.kill().await.unwrap(); // SIGKILL: no shutdown, no last upload pass.
    let _ = first.wait().await;
    let direct = bucket(&moto.endpoint, "shadow");
    assert!(keys(direct.as_ref(), "prod").await.is_empty());

    // Second life: the bucket is there; the spool goes up.
    let mut second = serve(moto.endpoint.clone());
    ready(http.clone(), base.clone()).await;
    wait_for("the spool to empty", 60, || {
        shadowgate::sink::files::parquet_files(&data.join("diffs")).unwrap_or_default().is_empty()
            && shadowgate::sink::files::parquet_files(&data.join("cases")).unwrap_or_default().is_empty()
    })
    .await;
    assert!(metric(&http, &base, "shadowgate_sink_uploads_total").await >= 2.0);
    let root =
        Location::Object { store: direct.clone(), prefix: ObjectPath::from("prod"), url: "s3://shadow/prod".into() };
    let diffs: BTreeSet<_> =
        read_table_at(&root, "diffs", None, decode_diffs).unwrap().into_iter().map(|d| d.dims.request_id).collect();
    let cases: BTreeSet<_> =
        read_table_at(&root, "cases", None, decode_cases).unwrap().into_iter().map(|c| c.case.id).collect();
    assert!(ids.is_subset(&diffs), "every request's diffs reached the bucket");
    assert!(ids.is_subset(&cases), "every request's case reached the bucket");

    // The offline tools read the bucket as they read a folder.
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let report = Command::new(bin).args(["report", "s3://shadow/prod", "--format", "json"]).envs(env).output().unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let r: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert!(r["rows"].as_u64().unwrap() >= ids.len() as u64 * 5, "{r}");
    let replay = Command::new(bin).args(["replay", "s3://shadow/prod"]).envs(env).output().unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stdout));
    let state = dir.join("modules.json");
    let gate = Command::new(bin)
        .args(["gate", "s3://shadow/prod", "--format", "json", "--state"])
        .arg(&state)
        .envs(env)
        .output()
        .unwrap();
    assert_ne!(gate.status.code(), Some(2), "{}", String::from_utf8_lossy(&gate.stderr));
    let verdict: Value = serde_json::from_slice(&gate.stdout).unwrap();
    assert!(verdict.is_object() || verdict.is_array(), "{verdict}");
    // The fix-loop commands read the bucket too.
    let id = ids.iter().next().unwrap();
    let show = Command::new(bin)
        .args(["show", id, "--url", "s3://shadow/prod", "--format", "json"])
        .envs(env)
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", String::from_utf8_lossy(&show.stderr));
    let shown: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown[0]["case_recorded"], true, "{shown}");
    let listed = Command::new(bin)
        .args(["show", "--url", "s3://shadow/prod", "--outcome", "match", "--module", "compat", "--format", "json"])
        .envs(env)
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(listed["total"].as_u64().unwrap() >= ids.len() as u64, "{listed}");
    let curated = dir.join("curated");
    let curate = Command::new(bin)
        .args(["baseline", "curate", "s3://shadow/prod", "--size", "5", "--out"])
        .arg(&curated)
        .envs(env)
        .output()
        .unwrap();
    assert!(curate.status.success(), "{}", String::from_utf8_lossy(&curate.stderr));
    assert_eq!(read_table(&curated.join("cases"), decode_cases).unwrap().len(), 5);

    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(second.id().unwrap() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(60), second.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `baseline build --out s3://…` puts the new table before deleting the old one; replay reads it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_built_into_a_bucket_replaces_the_last_one_and_replays_clean() {
    let moto = Moto::start("baselines").await;
    let direct = bucket(&moto.endpoint, "baselines");
    // A file of an older build under another date: the new build must remove it.
    let stale = ObjectPath::from("sample/cases/date=2026-01-01/part-baseline-000001.parquet");
    direct.put(&stale, PutPayload::from_static(b"PAR1")).await.unwrap();
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
        ("SHADOWGATE_REDACTION_KEY", "baseline-test-key-0123456789"),
    ];
    let bin = env!("CARGO_BIN_EXE_shadowgate");
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("replay/cases");
    let build = Command::new(bin)
        .args(["baseline", "build"])
        .arg(&cases)
        .args(["--out", "s3://baselines/sample"])
        .envs(env)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", String::from_utf8_lossy(&build.stderr));
    let stdout = String::from_utf8_lossy(&build.stdout);
    assert!(stdout.contains("12 cases → s3://baselines/sample/cases/date="), "{stdout}");
    let listed = keys(direct.as_ref(), "sample").await;
    assert_eq!(listed.len(), 1, "only the new build is left: {listed:?}");
    assert!(listed[0].0.starts_with("sample/cases/date=") && listed[0].0.ends_with(".parquet"), "{listed:?}");

    let replay = Command::new(bin).args(["replay", "s3://baselines/sample"]).envs(env).output().unwrap();
    let out = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "{out}{}", String::from_utf8_lossy(&replay.stderr));
    assert!(out.contains("replayed 12 of 12 cases"), "{out}");
}
