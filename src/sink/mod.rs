//! What leaves the process: redacted diff records and sampled cases, written
//! to the Parquet `diffs/` and `cases/` tables by one writer thread.
//!
//! The writer is fed by a bounded channel; senders never block (a full
//! channel drops the record and counts it). Rows are collected per date
//! partition, handed to the open file every second or every `batch_rows`
//! rows, and files close by size or age (see [`files`]). Dropping every
//! sender drains the channel and closes every file.

mod config;
pub mod files;
mod read;
pub mod redact;
pub mod sampling;
pub mod schema;
pub mod store;
pub mod upload;

use crate::case::Case;
use crate::diff::{DiffResult, Summary};
use crate::record::{CaseRow, DiffRecord, Versions};
use chrono::NaiveDate;
pub use config::SinkConfig;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
pub use read::{read_table, read_table_at, scan_table_at};
use redact::Redactor;
pub use sampling::SamplingConfig;
use schema::{CaseBatch, DiffBatch, Table};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// This instance's id: the configured one, else `<hostname>-<pid>`; only `[A-Za-z0-9_.-]` kept.
pub fn instance_id(configured: Option<&str>) -> String {
    let raw = match configured {
        Some(c) => c.to_string(),
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .or_else(|_| std::env::var("HOSTNAME"))
                .unwrap_or_else(|_| "host".into());
            format!("{}-{}", host.trim(), std::process::id())
        }
    };
    let id: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' }).collect();
    if id.is_empty() { "instance".into() } else { id }
}

/// One record for the writer. Diff records, the hot path, are not boxed.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum SinkRecord {
    /// A module comparison.
    Diff(DiffRecord),
    /// A sampled case.
    Case(Box<CaseRow>),
}

impl SinkRecord {
    fn table(&self) -> Table {
        match self {
            SinkRecord::Diff(_) => Table::Diffs,
            SinkRecord::Case(_) => Table::Cases,
        }
    }
}

/// A table label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    /// `diffs` or `cases`.
    pub table: String,
}

/// A sampling reason label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `mismatch`, `new_version`, `rate`.
    pub reason: String,
}

/// The sink's counters (registered by the proxy's metrics).
#[derive(Clone, Default)]
pub struct SinkStats {
    /// Rows written, by table.
    pub rows: Family<TableLabels, Counter>,
    /// Records dropped because the channel was full, by table.
    pub dropped: Family<TableLabels, Counter>,
    /// Files made visible, by table.
    pub files: Family<TableLabels, Counter>,
    /// Rows lost to write errors, by table.
    pub errors: Family<TableLabels, Counter>,
    /// Cases kept, by sampling reason.
    pub sampled: Family<ReasonLabels, Counter>,
    /// The writer thread died (a panic): nothing more is written, so the proxy is not ready.
    pub writer_down: Arc<AtomicBool>,
    /// Writer panics (0 or 1: the writer does not restart, it fails readiness).
    pub writer_panics: Counter,
    /// Files uploaded to the object store, by table.
    pub uploads: Family<TableLabels, Counter>,
    /// Failed uploads (each retried; the file stays in the spool), by table.
    pub upload_failures: Family<TableLabels, Counter>,
    /// Bytes in the spool waiting for upload.
    pub spool_bytes: prometheus_client::metrics::gauge::Gauge,
}

/// Marks the writer down if its thread unwinds.
struct DownOnPanic(SinkStats);

impl Drop for DownOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.writer_down.store(true, Ordering::Release);
            self.0.writer_panics.inc();
            tracing::error!("the sink writer panicked: records are no longer written; /readyz now fails");
        }
    }
}

impl SinkStats {
    fn label(t: Table) -> TableLabels {
        TableLabels { table: t.as_str().into() }
    }

    /// Creates every per-table series at zero, so alert rules have a series from the start.
    pub fn register_tables(&self) {
        for t in [Table::Diffs, Table::Cases] {
            let l = Self::label(t);
            for family in [&self.rows, &self.dropped, &self.files, &self.errors, &self.uploads, &self.upload_failures] {
                drop(family.get_or_create(&l));
            }
        }
    }

    /// Rows written to `table` so far.
    pub fn rows_written(&self, t: Table) -> u64 {
        self.rows.get_or_create(&Self::label(t)).get()
    }
}

/// Sends records to the writer without ever blocking.
#[derive(Clone)]
pub struct SinkSender {
    tx: SyncSender<SinkRecord>,
    stats: SinkStats,
}

impl SinkSender {
    /// Queues a record; a full channel drops it (counted). Returns whether it was queued.
    pub fn send(&self, r: SinkRecord) -> bool {
        let table = r.table();
        if self.tx.try_send(r).is_err() {
            self.stats.dropped.get_or_create(&SinkStats::label(table)).inc();
            return false;
        }
        true
    }

    /// Queues a record, waiting while the channel is full: for load
    /// generators and batch jobs, never for the serving path.
    pub fn send_wait(&self, r: SinkRecord) -> bool {
        self.tx.send(r).is_ok()
    }

    /// A sender whose records arrive at the returned receiver (tests, embedding).
    pub fn channel(capacity: usize, stats: SinkStats) -> (SinkSender, Receiver<SinkRecord>) {
        let (tx, rx) = sync_channel(capacity);
        (SinkSender { tx, stats }, rx)
    }
}

/// Writer settings.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// Folder of the tables.
    pub data_dir: PathBuf,
    /// Instance id in file names.
    pub instance: String,
    /// Records waiting for the writer; more are dropped.
    pub channel_size: usize,
    /// Rows collected before they go to the file.
    pub batch_rows: usize,
    /// File rotation.
    pub rotation: files::Rotation,
    /// Days of `cases` kept.
    pub retention_cases_days: u32,
    /// Days of `diffs` kept.
    pub retention_diffs_days: u32,
    /// With an object store: the largest spool; past it new rows are dropped (counted).
    pub spool_max_bytes: u64,
}

/// What the writer did, when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkSummary {
    /// Rows written per table.
    pub rows: BTreeMap<&'static str, u64>,
    /// Files written per table.
    pub files: BTreeMap<&'static str, u64>,
    /// Rows lost to write errors.
    pub errors: u64,
}

/// The running writer (and, with an object store, the uploader).
pub struct Sink {
    handle: JoinHandle<SinkSummary>,
    stop: Arc<AtomicBool>,
    uploader: Option<upload::Uploader>,
}

impl Sink {
    /// Starts the writer: cleans temporary files left by dead writers, applies
    /// retention, then writes what arrives until every sender is dropped.
    pub fn start(
        opts: SinkOptions,
        versions: Versions,
        redactor: Arc<Redactor>,
        stats: SinkStats,
        remote: Option<upload::UploadOptions>,
    ) -> std::io::Result<(SinkSender, Sink)> {
        std::fs::create_dir_all(&opts.data_dir)?;
        let stale = opts.rotation.max_file_age * 2 + Duration::from_secs(60);
        let cleaned = files::clean_temp_files(&opts.data_dir, &opts.instance, stale);
        if cleaned > 0 {
            tracing::warn!(files = cleaned, "removed temporary files left by a writer that stopped");
        }
        let (sender, rx) = SinkSender::channel(opts.channel_size, stats.clone());
        let down = DownOnPanic(stats.clone());
        let spool_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let uploader = match remote {
            Some(r) => Some(upload::Uploader::start(r, opts.data_dir.clone(), stats.clone(), spool_bytes.clone())?),
            None => None,
        };
        let spooling = uploader.is_some();
        let mut w = Writer::new(opts, versions, redactor, stats);
        if spooling {
            w.spool = Some(spool_bytes);
        }
        w.retention();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new().name("shadowgate-sink".into()).spawn(move || {
            let _down = down;
            w.run(rx, &s)
        })?;
        Ok((sender, Sink { handle, stop, uploader }))
    }

    /// Writes what is queued, closes every file and stops. Call it once the
    /// producers are done (a sender kept elsewhere does not hold it up).
    pub fn finish(self) -> SinkSummary {
        self.stop.store(true, Ordering::Release);
        let summary = self.handle.join().unwrap_or_default();
        // The files just closed go up too; what cannot stays in the spool for the next start.
        if let Some(u) = self.uploader {
            u.finish();
        }
        summary
    }
}

fn today() -> NaiveDate {
    files::partition_date(crate::clock::now_us())
}

struct Writer {
    opts: SinkOptions,
    versions: Versions,
    redactor: Arc<Redactor>,
    stats: SinkStats,
    diffs: BTreeMap<NaiveDate, DiffBatch>,
    cases: BTreeMap<NaiveDate, CaseBatch>,
    diff_files: files::TableFiles,
    case_files: files::TableFiles,
    summary: SinkSummary,
    last_retention: Instant,
    /// With an object store: the spool's size, as the uploader last saw it.
    spool: Option<Arc<std::sync::atomic::AtomicU64>>,
}

const TICK: Duration = Duration::from_secs(1);
/// How long records gather in the channel after a wake-up (the channel holds
/// `channel_size` of them, 65,536 by default: far more than arrive meanwhile).
const GATHER: Duration = Duration::from_millis(10);
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

impl Writer {
    fn new(opts: SinkOptions, versions: Versions, redactor: Arc<Redactor>, stats: SinkStats) -> Writer {
        let files = |t| {
            let counter = stats.files.get_or_create(&SinkStats::label(t)).clone();
            files::TableFiles::new(&opts.data_dir, t, &opts.instance, opts.rotation.clone(), counter)
        };
        Writer {
            diff_files: files(Table::Diffs),
            case_files: files(Table::Cases),
            opts,
            versions,
            redactor,
            stats,
            diffs: BTreeMap::new(),
            cases: BTreeMap::new(),
            summary: SinkSummary::default(),
            last_retention: Instant::now(),
            spool: None,
        }
    }

    fn run(mut self, rx: Receiver<SinkRecord>, stop: &AtomicBool) -> SinkSummary {
        let mut last_tick = Instant::now();
        loop {
            let stopping = stop.load(Ordering::Acquire);
            match rx.recv_timeout(if stopping { Duration::from_millis(20) } else { TICK / 4 }) {
                Ok(r) => {
                    // Records come in bursts (one per module call of a request): take
                    // what is queued, then let the next ones gather, so that the
                    // thread wakes at most once per GATHER under load, not per record.
                    self.push(r);
                    while let Ok(r) = rx.try_recv() {
                        self.push(r);
                    }
                    if !stopping {
                        std::thread::sleep(GATHER);
                    }
                }
                Err(RecvTimeoutError::Timeout) if stopping => break,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.flush_pending();
                self.check(Table::Diffs, |w| w.diff_files.close_aged());
                self.check(Table::Cases, |w| w.case_files.close_aged());
                if self.last_retention.elapsed() >= RETENTION_EVERY {
                    self.retention();
                }
            }
        }
        self.flush_pending();
        self.check(Table::Diffs, |w| w.diff_files.close_all());
        self.check(Table::Cases, |w| w.case_files.close_all());
        self.summary.files.insert("diffs", self.diff_files.files_written());
        self.summary.files.insert("cases", self.case_files.files_written());
        self.summary
    }

    fn retention(&mut self) {
        self.last_retention = Instant::now();
        let today = today();
        for (t, days) in
            [(Table::Cases, self.opts.retention_cases_days), (Table::Diffs, self.opts.retention_diffs_days)]
        {
            let removed = files::apply_retention(&self.opts.data_dir, t, days, today);
            if !removed.is_empty() {
                tracing::info!(table = t.as_str(), partitions = removed.len(), "retention removed old partitions");
            }
        }
    }

    fn check(&mut self, t: Table, f: impl FnOnce(&mut Writer) -> std::io::Result<()>) {
        if let Err(e) = f(self) {
            tracing::error!(table = t.as_str(), error = %e, "closing a Parquet file failed; its rows are lost");
            self.summary.errors += 1;
            self.stats.errors.get_or_create(&SinkStats::label(t)).inc();
        }
    }

    fn push(&mut self, r: SinkRecord) {
        match r {
            SinkRecord::Diff(mut d) => {
                redact_result(&self.redactor, &mut d.result);
                let date = files::partition_date(d.dims.timestamp_us);
                let b = self.diffs.entry(date).or_default();
                b.push(&d, &self.versions);
                if b.len() >= self.opts.batch_rows {
                    self.write(Table::Diffs, date);
                }
            }
            SinkRecord::Case(c) => {
                let date = files::partition_date(c.dims.timestamp_us);
                let b = self.cases.entry(date).or_default();
                b.push(&c, &self.versions);
                if b.len() >= self.opts.batch_rows {
                    self.write(Table::Cases, date);
                }
            }
        }
    }

    fn flush_pending(&mut self) {
        let dates: Vec<NaiveDate> = self.diffs.keys().copied().collect();
        dates.into_iter().for_each(|d| self.write(Table::Diffs, d));
        let dates: Vec<NaiveDate> = self.cases.keys().copied().collect();
        dates.into_iter().for_each(|d| self.write(Table::Cases, d));
    }

    fn write(&mut self, t: Table, date: NaiveDate) {
        let batch = match t {
            Table::Diffs => self.diffs.remove(&date).map(|mut b| b.finish()),
            Table::Cases => self.cases.remove(&date).map(|mut b| b.finish()),
        };
        let Some(batch) = batch.filter(|b| b.num_rows() > 0) else { return };
        let rows = batch.num_rows() as u64;
        let label = SinkStats::label(t);
        if self.spool.as_ref().is_some_and(|b| b.load(Ordering::Relaxed) >= self.opts.spool_max_bytes) {
            tracing::error!(table = t.as_str(), rows, "the upload spool is full; these rows are dropped");
            self.stats.dropped.get_or_create(&label).inc_by(rows);
            return;
        }
        let result = match t {
            Table::Diffs => self.diff_files.write(date, &batch),
            Table::Cases => self.case_files.write(date, &batch),
        };
        match result {
            Ok(()) => {
                self.stats.rows.get_or_create(&label).inc_by(rows);
                *self.summary.rows.entry(t.as_str()).or_default() += rows;
            }
            Err(e) => {
                tracing::error!(table = t.as_str(), error = %e, rows, "writing Parquet rows failed; they are lost");
                self.stats.errors.get_or_create(&label).inc_by(rows);
                self.summary.errors += rows;
            }
        }
    }
}

/// Redacts what a diff record carries from the payloads: entry values and
/// texts, parse errors, the first divergence, and paths. Token digests and
/// SHA-256s are hashes already and stay comparable.
pub fn redact_result(r: &Redactor, res: &mut DiffResult) {
    let text = |s: &mut String| {
        if let Cow::Owned(o) = r.text(s) {
            *s = o;
        }
    };
    let value = |v: &mut Option<serde_json::Value>| {
        if let Some(v) = v {
            r.json(v);
        }
    };
    match &mut res.summary {
        Summary::None | Summary::Ignored { .. } | Summary::Digests { .. } => {}
        Summary::Failed { error } => text(error),
        Summary::Unparsable { left_error, right_error } => {
            left_error.iter_mut().chain(right_error.iter_mut()).for_each(text);
        }
        Summary::Entries { entries, .. } => {
            for e in entries {
                text(&mut e.path);
                value(&mut e.left);
                value(&mut e.right);
                e.text_diff.iter_mut().for_each(text);
            }
        }
        Summary::Events(events) => {
            if let Some(f) = events.divergence.as_mut().and_then(|d| d.first_divergence.as_mut()) {
                f.path.iter_mut().for_each(text);
                value(&mut f.left);
                value(&mut f.right);
                f.text_diff.iter_mut().for_each(text);
            }
        }
    }
    res.paths.iter_mut().for_each(text);
}

/// Redacts a case in place: request, upstream body or stream, headers.
pub fn redact_case(r: &Redactor, case: &mut Case) {
    r.json(&mut case.request);
    if let Some(u) = &mut case.upstream_response {
        r.json(&mut u.body);
        u.headers = r.headers(&u.headers);
    }
    if let Some(s) = &mut case.upstream_stream {
        *s = r.sse(s);
    }
    case.headers = r.headers(&case.headers);
    // Routing queries carry the model, tenant and upstream error bodies.
    if let Some(routing) = &mut case.routing {
        r.json(&mut routing.resolve);
        routing.next.iter_mut().for_each(|q| r.json(q));
    }
}

/// Whether `versions` (core and guest) differ from those the last run under
/// `data_dir` recorded; records the current ones.
pub fn versions_changed(data_dir: &Path, versions: &Versions) -> bool {
    let file = data_dir.join("state").join("versions.json");
    let key = |v: &Versions| (v.core.clone(), v.guest_sha256.clone());
    let previous: Option<Versions> = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let changed = previous.as_ref().map(key) != Some(key(versions));
    if changed {
        let _ = std::fs::create_dir_all(file.parent().unwrap_or(data_dir));
        let _ = std::fs::write(&file, serde_json::to_vec_pretty(versions).unwrap_or_default());
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_that_panics_is_marked_down_and_counted() {
        let stats = SinkStats::default();
        let down = DownOnPanic(stats.clone());
        let quiet = DownOnPanic(stats.clone());
        drop(quiet);
        assert!(!stats.writer_down.load(Ordering::Acquire), "a normal stop is not a failure");
        let t = std::thread::spawn(move || {
            let _down = down;
            panic!("writer bug");
        });
        assert!(t.join().is_err());
        assert!(stats.writer_down.load(Ordering::Acquire));
        assert_eq!(stats.writer_panics.get(), 1);
    }
}
