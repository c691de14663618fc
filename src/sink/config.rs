//! The `[sink]` config section: where records go, how files rotate, what is kept.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

fn d_data_dir() -> PathBuf {
    "./shadowgate-data".into()
}

/// Where records are written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Folder of the `diffs/` and `cases/` tables.
    #[serde(default = "d_data_dir")]
    pub data_dir: PathBuf,
    /// Instance id in file names (default `<hostname>-<pid>`).
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Records waiting for the writer; more are dropped (counted).
    #[serde(default = "d_channel")]
    pub channel_size: usize,
    /// Rows collected before they are handed to the file.
    #[serde(default = "d_batch_rows")]
    pub batch_rows: usize,
    /// Rows per Parquet row group.
    #[serde(default = "d_row_group")]
    pub row_group_rows: usize,
    /// A file closes (becomes visible) at this many rows…
    #[serde(default = "d_file_rows")]
    pub max_file_rows: usize,
    /// …or this size…
    #[serde(default = "d_file_mb")]
    pub max_file_mb: usize,
    /// …or this age: the most a kill -9 can lose.
    #[serde(default = "d_flush_ms")]
    pub flush_interval_ms: u64,
    /// Days of `cases` partitions kept.
    #[serde(default = "d_keep_cases")]
    pub retention_days_cases: u32,
    /// Days of `diffs` partitions kept.
    #[serde(default = "d_keep_diffs")]
    pub retention_days_diffs: u32,
    /// JSON-pointer patterns (`*`, `**`) whose values are always hashed as PII.
    #[serde(default)]
    pub pii_paths: Vec<String>,
    /// Where the tables go: `s3://bucket/prefix` (then `data_dir` is the
    /// local spool), or a folder (`file://…` or a path; default: `data_dir`).
    #[serde(default)]
    pub url: Option<String>,
    /// Allow plain HTTP to the object store (a local S3 server).
    #[serde(default)]
    pub allow_http: bool,
    /// Largest spool (closed files not yet uploaded); past it new rows are dropped, counted.
    #[serde(default = "d_spool_mb")]
    pub spool_max_mb: u64,
    /// Files up to this size are one PUT; larger ones a multipart upload in parts of this size (S3: at least 5).
    #[serde(default = "d_part_mb")]
    pub upload_part_mb: usize,
    /// How often the spool is scanned for closed files.
    #[serde(default = "d_upload_ms")]
    pub upload_interval_ms: u64,
}

fn d_spool_mb() -> u64 {
    1024
}
fn d_part_mb() -> usize {
    8
}
fn d_upload_ms() -> u64 {
    1000
}

fn d_channel() -> usize {
    65_536
}
fn d_batch_rows() -> usize {
    8192
}
fn d_row_group() -> usize {
    65_536
}
fn d_file_rows() -> usize {
    1_000_000
}
fn d_file_mb() -> usize {
    256
}
fn d_flush_ms() -> u64 {
    30_000
}
fn d_keep_cases() -> u32 {
    14
}
fn d_keep_diffs() -> u32 {
    90
}

impl Default for SinkConfig {
    fn default() -> Self {
        toml::from_str("").expect("the sink defaults parse")
    }
}

impl SinkConfig {
    /// The writer's options.
    pub fn options(&self) -> super::SinkOptions {
        super::SinkOptions {
            data_dir: self.data_dir.clone(),
            instance: super::instance_id(self.instance_id.as_deref()),
            channel_size: self.channel_size.max(1),
            batch_rows: self.batch_rows.max(1),
            rotation: super::files::Rotation {
                row_group_rows: self.row_group_rows.max(1),
                max_file_rows: self.max_file_rows.max(1),
                max_file_bytes: self.max_file_mb.max(1) << 20,
                max_file_age: std::time::Duration::from_millis(self.flush_interval_ms.max(1)),
            },
            retention_cases_days: self.retention_days_cases,
            retention_diffs_days: self.retention_days_diffs,
            spool_max_bytes: self.spool_max_mb.saturating_mul(1 << 20),
        }
    }

    /// The object store the tables go to, if `url` names one (`None`: local files).
    pub fn remote(&self) -> Result<Option<super::upload::UploadOptions>, super::store::StoreError> {
        let Some(url) = self.url.as_deref().filter(|u| u.starts_with("s3://")) else { return Ok(None) };
        let (store, prefix) = super::store::s3(url, self.allow_http)?;
        Ok(Some(super::upload::UploadOptions {
            store,
            prefix,
            part_bytes: self.upload_part_mb.max(5) << 20,
            interval: std::time::Duration::from_millis(self.upload_interval_ms.max(10)),
            retention_days: [("cases", self.retention_days_cases), ("diffs", self.retention_days_diffs)],
        }))
    }

    /// Checks the PII path patterns and the URL.
    pub fn validate(&self) -> Result<(), crate::toml_error::Invalid> {
        if let Some(url) = &self.url {
            if let Some(path) = url.strip_prefix("file://") {
                if self.data_dir != Path::new(path) {
                    return Err(crate::toml_error::Invalid::new(
                        "sink.url",
                        "a file:// url must name data_dir (or leave url out)",
                    ));
                }
            } else if !url.starts_with("s3://") || url.len() <= "s3://".len() {
                return Err(crate::toml_error::Invalid::new(
                    "sink.url",
                    format!("{url:?}: give s3://bucket/prefix or file://<data_dir>"),
                ));
            }
        }
        for (i, p) in self.pii_paths.iter().enumerate() {
            crate::diff::path::PathPattern::parse(p)
                .map_err(|e| crate::toml_error::Invalid::new(format!("sink.pii_paths[{i}]"), e.to_string()))?;
        }
        Ok(())
    }
}
