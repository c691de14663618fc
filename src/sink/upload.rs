//! The uploader: with `[sink] url = "s3://…"`, the local data dir is a spool.
//! The writer closes files there as always (only closed files have a visible
//! name); this thread uploads each to the same key under the bucket prefix —
//! one PUT, or a multipart upload completed only once every part is in, so no
//! reader ever sees a partial object — and deletes the local copy only then.
//! A failed upload is counted and retried with backoff; its rows stay in the
//! spool (bounded: past `spool_max_mb` the writer drops new rows, counted), and
//! a restart uploads what the spool holds.

use super::files::parquet_files;
use super::{SinkStats, TableLabels};
use chrono::NaiveDate;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Uploader settings.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// The bucket.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix inside it.
    pub prefix: ObjectPath,
    /// Files up to this size go in one PUT; larger ones in parts of this size.
    pub part_bytes: usize,
    /// How often the spool is scanned.
    pub interval: Duration,
    /// Days of `cases` / `diffs` date prefixes kept in the bucket.
    pub retention_days: [(&'static str, u32); 2],
}

/// The running uploader.
pub struct Uploader {
    handle: JoinHandle<()>,
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

const TABLES: [&str; 2] = ["diffs", "cases"];
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

impl Uploader {
    /// Starts uploading what `spool` holds and what the writer closes there; `spool_bytes` tracks its size.
    pub fn start(
        opts: UploadOptions,
        spool: PathBuf,
        stats: SinkStats,
        spool_bytes: Arc<AtomicU64>,
    ) -> std::io::Result<Uploader> {
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Notify::new());
        let (s, w) = (stop.clone(), wake.clone());
        let handle = std::thread::Builder::new().name("shadowgate-upload".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime starts");
            rt.block_on(run(opts, spool, stats, spool_bytes, s, w));
        })?;
        Ok(Uploader { handle, stop, wake })
    }

    /// Uploads what is left (one last pass; what fails stays in the spool for the next start) and stops.
    pub fn finish(self) {
        self.stop.store(true, Ordering::Release);
        self.wake.notify_one();
        let _ = self.handle.join();
    }
}

/// The object key of a spool file: its path under the spool, under the prefix.
fn key(prefix: &ObjectPath, spool: &Path, file: &Path) -> Option<ObjectPath> {
    let rel = file.strip_prefix(spool).ok()?;
    let mut key = prefix.clone();
    for part in rel.components() {
        key = key.join(part.as_os_str().to_str()?);
    }
    Some(key)
}

/// Uploads one file: a PUT, or a multipart upload that is completed only when every part is in.
pub async fn upload(
    store: &dyn ObjectStore,
    key: &ObjectPath,
    data: bytes::Bytes,
    part_bytes: usize,
) -> object_store::Result<()> {
    if data.len() <= part_bytes {
        store.put(key, PutPayload::from_bytes(data)).await?;
        return Ok(());
    }
    let mut up = store.put_multipart(key).await?;
    let mut offset = 0;
    while offset < data.len() {
        let end = (offset + part_bytes).min(data.len());
        if let Err(e) = up.put_part(PutPayload::from_bytes(data.slice(offset..end))).await {
            let _ = up.abort().await;
            return Err(e);
        }
        offset = end;
    }
    match up.complete().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let _ = up.abort().await;
            Err(e)
        }
    }
}

/// Puts the Parquet files of `from/<table>/` at the same keys under the
/// bucket prefix, then deletes the objects of that table the new set does
/// not hold, so readers see the old table or the new one, never none. The
/// keys written, sorted.
pub fn publish_table(
    store: Arc<dyn ObjectStore>,
    prefix: &ObjectPath,
    table: &str,
    from: &Path,
) -> Result<Vec<String>, String> {
    let files = parquet_files(&from.join(table)).map_err(|e| format!("{}: {e}", from.display()))?;
    let mut put = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(from).map_err(|e| e.to_string())?;
        let key = rel.iter().fold(prefix.clone(), |k, part| k.join(part.to_string_lossy().as_ref()));
        let data = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let store = store.clone();
        let k = key.clone();
        super::store::block_on(async move { upload(store.as_ref(), &k, data.into(), 8 << 20).await })
            .map_err(|e| format!("{key}: {e}"))?;
        put.push(key.to_string());
    }
    let under = prefix.clone().join(table);
    let kept = put.clone();
    super::store::block_on(async move {
        let listed: Vec<_> = store.list(Some(&under)).collect().await;
        for m in listed {
            let m = m?;
            if !kept.contains(&m.location.to_string()) {
                store.delete(&m.location).await?;
            }
        }
        Ok::<_, object_store::Error>(())
    })
    .map_err(|e| e.to_string())?;
    put.sort();
    Ok(put)
}

fn label(table: &str) -> TableLabels {
    TableLabels { table: table.into() }
}

/// The spool's files by table, and its size.
fn scan(spool: &Path) -> (Vec<(&'static str, PathBuf)>, u64) {
    let mut out = Vec::new();
    let mut bytes = 0;
    for t in TABLES {
        for f in parquet_files(&spool.join(t)).unwrap_or_default() {
            bytes += std::fs::metadata(&f).map_or(0, |m| m.len());
            out.push((t, f));
        }
    }
    (out, bytes)
}

async fn run(
    opts: UploadOptions,
    spool: PathBuf,
    stats: SinkStats,
    spool_bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
) {
    // Per file: failures so far and when to try again.
    let mut backoff: HashMap<PathBuf, (u32, Instant)> = HashMap::new();
    let mut last_retention: Option<Instant> = None;
    loop {
        let stopping = stop.load(Ordering::Acquire);
        if last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
            last_retention = Some(Instant::now());
            retention(&opts).await;
        }
        let (files, bytes) = scan(&spool);
        spool_bytes.store(bytes, Ordering::Relaxed);
        stats.spool_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        for (table, file) in files {
            if !stopping && backoff.get(&file).is_some_and(|(_, at)| Instant::now() < *at) {
                continue;
            }
            let Some(key) = key(&opts.prefix, &spool, &file) else { continue };
            let data = match std::fs::read(&file) {
                Ok(d) => bytes::Bytes::from(d),
                Err(_) => continue, // removed meanwhile (retention)
            };
            match upload(opts.store.as_ref(), &key, data, opts.part_bytes).await {
                Ok(()) => {
                    let _ = std::fs::remove_file(&file);
                    if let Some(dir) = file.parent() {
                        let _ = std::fs::remove_dir(dir); // only when empty
                    }
                    backoff.remove(&file);
                    stats.uploads.get_or_create(&label(table)).inc();
                }
                Err(e) => {
                    stats.upload_failures.get_or_create(&label(table)).inc();
                    let n = backoff.get(&file).map_or(0, |b| b.0) + 1;
                    let wait = Duration::from_secs(1u64 << n.min(6)).min(MAX_BACKOFF);
                    tracing::warn!(file = %file.display(), error = %e, retry_in_s = wait.as_secs(), "upload failed; the file stays in the spool");
                    backoff.insert(file, (n, Instant::now() + wait));
                }
            }
        }
        if stopping {
            let (_, bytes) = scan(&spool);
            spool_bytes.store(bytes, Ordering::Relaxed);
            stats.spool_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
            break;
        }
        // Asleep until the next scan, or woken at once by `finish`.
        let _ = tokio::time::timeout(opts.interval, wake.notified()).await;
    }
}

/// Deletes whole `date=` prefixes older than each table's retention.
async fn retention(opts: &UploadOptions) {
    let today = super::files::partition_date(crate::clock::now_us());
    for (table, days) in opts.retention_days {
        let oldest = today - chrono::Days::new(u64::from(days));
        let under = opts.prefix.clone().join(table);
        let Ok(listing) = opts.store.list_with_delimiter(Some(&under)).await else { continue };
        for dir in listing.common_prefixes {
            let Some(date) = dir
                .filename()
                .and_then(|n| n.strip_prefix("date="))
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            else {
                continue;
            };
            if date >= oldest {
                continue;
            }
            let objects = opts.store.list(Some(&dir)).map(|m| m.map(|m| m.location)).boxed();
            let deleted = opts.store.delete_stream(objects).filter(|r| std::future::ready(r.is_ok())).count().await;
            tracing::info!(table, date = %date, objects = deleted, "retention removed a date prefix from the bucket");
        }
    }
}
