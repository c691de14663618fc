//! Where tables live: a local folder, or a prefix in an S3 bucket
//! (`s3://bucket/prefix`; endpoint, region and credentials from the usual
//! `AWS_*` environment variables). The layout is the same in both:
//! `<root>/<table>/date=YYYY-MM-DD/part-<instance>-<seq>.parquet`.

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, RetryConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A table root that cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {message}")]
pub struct StoreError {
    /// The root.
    pub url: String,
    /// What is wrong.
    pub message: String,
}

/// A table root.
#[derive(Debug, Clone)]
pub enum Location {
    /// A local folder.
    Local(PathBuf),
    /// A prefix in an object store.
    Object {
        /// The store (one bucket).
        store: Arc<dyn ObjectStore>,
        /// The prefix inside it.
        prefix: ObjectPath,
        /// As given (`s3://bucket/prefix`).
        url: String,
    },
}

/// Opens an S3 bucket from `s3://bucket[/prefix]`, with the `AWS_*` environment.
pub fn s3(url: &str, allow_http: bool) -> Result<(Arc<dyn ObjectStore>, ObjectPath), StoreError> {
    let err = |message: String| StoreError { url: url.into(), message };
    let rest = url.strip_prefix("s3://").ok_or_else(|| err("not an s3:// URL".into()))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(err("no bucket".into()));
    }
    // Signing uses ring; TLS is the process's rustls with the ring provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // One quick retry inside the client; the uploader's own loop retries with
    // longer backoff and counts each failure.
    let retry = RetryConfig { max_retries: 1, retry_timeout: Duration::from_secs(30), ..RetryConfig::default() };
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry)
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), "5s")
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "120s");
    if allow_http {
        b = b.with_allow_http(true);
    }
    let store = b.build().map_err(|e| err(e.to_string()))?;
    Ok((Arc::new(store), ObjectPath::from(prefix.trim_matches('/'))))
}

impl Location {
    /// `s3://…` or a local path.
    pub fn parse(s: &str) -> Result<Location, StoreError> {
        if s.starts_with("s3://") {
            let allow_http = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true" || v == "1");
            let (store, prefix) = s3(s, allow_http)?;
            return Ok(Location::Object { store, prefix, url: s.trim_end_matches('/').to_string() });
        }
        Ok(Location::Local(PathBuf::from(s)))
    }

    /// From a command-line path argument.
    pub fn of_path(p: &Path) -> Result<Location, StoreError> {
        Location::parse(&p.to_string_lossy())
    }

    /// As given.
    pub fn display(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::Object { url, .. } => url.clone(),
        }
    }

    /// The local folder, if it is one.
    pub fn local(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Object { .. } => None,
        }
    }

    /// The visible Parquet files of `table` (sorted by key; names starting with `.` are never visible).
    pub fn objects(&self, table: &str) -> Result<Vec<(String, u64)>, String> {
        match self {
            Location::Local(dir) => {
                let files =
                    super::files::parquet_files(&dir.join(table)).map_err(|e| format!("{}: {e}", dir.display()))?;
                Ok(files
                    .into_iter()
                    .map(|p| {
                        let size = std::fs::metadata(&p).map_or(0, |m| m.len());
                        (p.display().to_string(), size)
                    })
                    .collect())
            }
            Location::Object { store, prefix, url } => {
                let under = prefix.clone().join(table);
                let metas = block_on(async move {
                    let mut out = Vec::new();
                    let mut list = store.list(Some(&under));
                    while let Some(m) = list.next().await {
                        let m = m.map_err(|e| e.to_string())?;
                        let visible =
                            m.location.filename().is_some_and(|n| n.ends_with(".parquet") && !n.starts_with('.'));
                        if visible {
                            out.push((m.location.to_string(), m.size));
                        }
                    }
                    Ok::<_, String>(out)
                })
                .map_err(|e| format!("{url}/{table}: {e}"))?;
                let mut metas = metas;
                metas.sort();
                Ok(metas)
            }
        }
    }

    /// The bytes of one file `objects` listed.
    pub fn fetch(&self, key: &str) -> Result<Bytes, String> {
        match self {
            Location::Local(_) => std::fs::read(key).map(Bytes::from).map_err(|e| format!("{key}: {e}")),
            Location::Object { store, url, .. } => {
                let path = ObjectPath::from(key);
                block_on(async move { store.get(&path).await?.bytes().await }).map_err(|e| format!("{url}: {key}: {e}"))
            }
        }
    }
}

/// Runs `f` to completion on a runtime of its own, on a thread of its own
/// (so callers may be inside another runtime or none).
pub fn block_on<F: std::future::Future + Send>(f: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime starts").block_on(f)
        })
        .join()
        .expect("the store thread does not panic")
    })
}
