//! Reading the tables back: every file of a table under a folder or an
//! object store prefix, optionally only the `date=` partitions from a day on
//! (pruned by path, before a file is opened) and only some columns, one
//! record batch at a time so a reader's memory does not grow with the rows.

use super::{files, schema, store};
use arrow_array::RecordBatch;
use chrono::NaiveDate;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::ChunkReader;
use std::path::Path;

/// Decodes a table's rows.
type Decode<T> = fn(&RecordBatch) -> Result<Vec<T>, schema::DecodeError>;

/// Rows per decoded batch.
const BATCH_ROWS: usize = 8192;

/// Calls `visit` with every record batch of `table` under a table root (a
/// folder or an object store prefix), file by file in key order. With
/// `since`, only the `date=` partitions from that day on are opened; with
/// `columns`, only those top-level columns are decoded (names a file lacks
/// are skipped). An object store file is fetched whole, one at a time.
pub fn scan_table_at(
    root: &store::Location,
    table: &str,
    since: Option<NaiveDate>,
    columns: Option<&[&str]>,
    visit: &mut dyn FnMut(&RecordBatch) -> Result<(), String>,
) -> Result<(), String> {
    let inside = |key: &str| since.is_none_or(|day| files::date_of(key).is_none_or(|d| d >= day));
    for (key, _) in root.objects(table)?.into_iter().filter(|(k, _)| inside(k)) {
        let read = match root.local() {
            Some(_) => {
                std::fs::File::open(&key).map_err(|e| e.to_string()).and_then(|f| scan_file(f, columns, &mut *visit))
            }
            None => scan_file(root.fetch(&key)?, columns, &mut *visit),
        };
        read.map_err(|e| format!("{}: {key}: {e}", root.display()))?;
    }
    Ok(())
}

/// Reads the rows of `table` under a table root; with `since`, only the
/// `date=` partitions from that day on are opened.
pub fn read_table_at<T>(
    root: &store::Location,
    table: &str,
    since: Option<NaiveDate>,
    decode: Decode<T>,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    scan_table_at(root, table, since, None, &mut |b| {
        out.extend(decode(b).map_err(|e| e.to_string())?);
        Ok(())
    })?;
    Ok(out)
}

/// Reads every row of `table` from the Parquet files under `dir`.
pub fn read_table<T>(dir: &Path, decode: Decode<T>) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    let paths = files::parquet_files(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for path in paths {
        std::fs::File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|file| {
                scan_file(file, None, &mut |b| {
                    out.extend(decode(b).map_err(|e| e.to_string())?);
                    Ok(())
                })
            })
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(out)
}

/// Visits the batches of one Parquet file, decoding only `columns` when given.
fn scan_file<R: ChunkReader + 'static>(
    file: R,
    columns: Option<&[&str]>,
    visit: &mut dyn FnMut(&RecordBatch) -> Result<(), String>,
) -> Result<(), String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| e.to_string())?;
    let builder = match columns {
        Some(names) => {
            let roots = builder
                .schema()
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| names.contains(&f.name().as_str()))
                .map(|(i, _)| i)
                .collect::<Vec<_>>();
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            builder.with_projection(mask)
        }
        None => builder,
    };
    for batch in builder.with_batch_size(BATCH_ROWS).build().map_err(|e| e.to_string())? {
        visit(&batch.map_err(|e| e.to_string())?)?;
    }
    Ok(())
}
