//! Partitioned Parquet files: `<data_dir>/<table>/date=YYYY-MM-DD/part-<instance>-<seq>.parquet`.
//!
//! A file is written as `.part-….parquet.tmp`, closed, fsynced, renamed and
//! the folder fsynced, so a reader never sees a partial file. A file stays
//! open until it holds `max_file_rows` rows or `max_file_bytes` bytes, or is
//! `max_file_age` old; a kill -9 loses at most that open file's rows.

use super::schema::Table;
use arrow_array::RecordBatch;
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use prometheus_client::metrics::counter::Counter;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// When files close.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// Rows per row group.
    pub row_group_rows: usize,
    /// Rows per file.
    pub max_file_rows: usize,
    /// Bytes per file (checked after each batch).
    pub max_file_bytes: usize,
    /// Age at which a file is closed and becomes visible.
    pub max_file_age: Duration,
}

struct Open {
    tmp: PathBuf,
    path: PathBuf,
    writer: ArrowWriter<File>,
    rows: usize,
    opened: Instant,
}

/// The open files of one table, one per date partition.
pub struct TableFiles {
    table: Table,
    root: PathBuf,
    instance: String,
    rotation: Rotation,
    open: BTreeMap<NaiveDate, Open>,
    seq: u64,
    files_written: Counter,
}

/// `date=YYYY-MM-DD` of a UTC timestamp in µs.
pub fn partition_date(timestamp_us: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_micros(timestamp_us).map(|t| t.date_naive()).unwrap_or_default()
}

/// The partition date in a file's path (`…/date=YYYY-MM-DD/…`).
pub fn date_of(path: &str) -> Option<NaiveDate> {
    let at = path.rfind("/date=")? + "/date=".len();
    NaiveDate::parse_from_str(path.get(at..at + 10)?, "%Y-%m-%d").ok()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl TableFiles {
    /// The files of `table` under `data_dir`; `files_written` counts the files made visible.
    pub fn new(
        data_dir: &Path,
        table: Table,
        instance: &str,
        rotation: Rotation,
        files_written: Counter,
    ) -> TableFiles {
        TableFiles {
            table,
            root: data_dir.join(table.as_str()),
            instance: instance.to_string(),
            rotation,
            open: BTreeMap::new(),
            seq: 0,
            files_written,
        }
    }

    /// Files made visible so far.
    pub fn files_written(&self) -> u64 {
        self.files_written.get()
    }

    fn props(&self) -> WriterProperties {
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(self.rotation.row_group_rows.max(1)))
            .set_created_by(format!("shadowgate {}", env!("CARGO_PKG_VERSION")))
            .build()
    }

    fn create(&mut self, date: NaiveDate) -> io::Result<Open> {
        let dir = self.root.join(format!("date={date}"));
        std::fs::create_dir_all(&dir)?;
        loop {
            self.seq += 1;
            let name = format!("part-{}-{:06}.parquet", self.instance, self.seq);
            let (path, tmp) = (dir.join(&name), dir.join(format!(".{name}.tmp")));
            if path.exists() {
                continue;
            }
            let file = match File::options().write(true).create_new(true).open(&tmp) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            let writer =
                ArrowWriter::try_new(file, self.table.schema(), Some(self.props())).map_err(io::Error::other)?;
            return Ok(Open { tmp, path, writer, rows: 0, opened: Instant::now() });
        }
    }

    /// Appends a batch to the file of `date`, closing it when it is full.
    pub fn write(&mut self, date: NaiveDate, batch: &RecordBatch) -> io::Result<()> {
        if !self.open.contains_key(&date) {
            let f = self.create(date)?;
            self.open.insert(date, f);
        }
        let f = self.open.get_mut(&date).expect("opened above");
        f.writer.write(batch).map_err(io::Error::other)?;
        f.rows += batch.num_rows();
        let full = f.rows >= self.rotation.max_file_rows
            || f.writer.bytes_written() + f.writer.in_progress_size() >= self.rotation.max_file_bytes;
        if full {
            self.close(date)?;
        }
        Ok(())
    }

    /// Closes the files that are old enough.
    pub fn close_aged(&mut self) -> io::Result<()> {
        let aged: Vec<NaiveDate> = self
            .open
            .iter()
            .filter(|(_, f)| f.opened.elapsed() >= self.rotation.max_file_age)
            .map(|(d, _)| *d)
            .collect();
        aged.into_iter().try_for_each(|d| self.close(d))
    }

    /// Closes every open file.
    pub fn close_all(&mut self) -> io::Result<()> {
        let dates: Vec<NaiveDate> = self.open.keys().copied().collect();
        let mut first_err = None;
        for d in dates {
            if let Err(e) = self.close(d) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn close(&mut self, date: NaiveDate) -> io::Result<()> {
        let Some(f) = self.open.remove(&date) else { return Ok(()) };
        let result = (|| {
            let file = f.writer.into_inner().map_err(io::Error::other)?;
            file.sync_all()?;
            std::fs::rename(&f.tmp, &f.path)?;
            sync_dir(f.path.parent().unwrap_or(Path::new(".")))
        })();
        match result {
            Ok(()) => {
                self.files_written.inc();
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&f.tmp);
                Err(e)
            }
        }
    }
}

/// Date partitions of a table folder: (date, path).
fn partitions(table_dir: &Path) -> Vec<(NaiveDate, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(table_dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let date = NaiveDate::parse_from_str(name.strip_prefix("date=")?, "%Y-%m-%d").ok()?;
            Some((date, e.path()))
        })
        .collect()
}

/// Removes temporary files left by a writer that died: this instance's, and
/// any older than `stale` (a live writer renames its files sooner). Returns how many.
pub fn clean_temp_files(data_dir: &Path, instance: &str, stale: Duration) -> usize {
    let own = format!(".part-{instance}-");
    let mut removed = 0;
    for table in [Table::Diffs, Table::Cases] {
        for (_, dir) in partitions(&data_dir.join(table.as_str())) {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                if !(name.starts_with(".part-") && name.ends_with(".tmp")) {
                    continue;
                }
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(crate::clock::age)
                    .is_some_and(|age| age >= stale);
                if (name.starts_with(&own) || old) && std::fs::remove_file(e.path()).is_ok() {
                    removed += 1;
                }
            }
        }
    }
    removed
}

/// Removes date partitions of `table` older than `days` days before `today`. Returns the removed dates.
pub fn apply_retention(data_dir: &Path, table: Table, days: u32, today: NaiveDate) -> Vec<NaiveDate> {
    let oldest = today - chrono::Days::new(u64::from(days));
    let mut removed = Vec::new();
    for (date, dir) in partitions(&data_dir.join(table.as_str())) {
        if date < oldest && std::fs::remove_dir_all(&dir).is_ok() {
            removed.push(date);
        }
    }
    removed.sort();
    removed
}

/// Every visible Parquet file under `dir` (recursively), sorted; temporary and hidden files are skipped.
pub fn parquet_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let p = e.path();
            if e.file_type()?.is_dir() {
                stack.push(p);
            } else if name.ends_with(".parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}
