//! `shadowgate baseline build`: a folder of readable cases → a redacted,
//! versioned Parquet `cases` table that replay checks in CI.

use crate::case::{self, Case, CaseError};
use crate::plan;
use crate::record::{CaseRow, Dims, Versions};
use crate::sink::files::{Rotation, TableFiles, parquet_files, partition_date};
use crate::sink::redact::Redactor;
use crate::sink::redact_case;
use crate::sink::schema::{CaseBatch, Table};
use shadowgate_runtime::{NativeRuntime, Runtime};
use std::path::Path;
use std::time::Duration;

/// Sampling reason of baseline rows.
pub const REASON: &str = "baseline";

/// The dimensions of a readable case (no live request behind it).
pub fn dims_of(case: &Case, timestamp_us: i64, mode: &str) -> Dims {
    let (client, upstream) = (case.client_protocol, case.upstream_protocol);
    Dims {
        request_id: case.id.clone(),
        timestamp_us,
        tenant: case.tenant.clone().unwrap_or_else(|| "default".into()),
        route: case.route.clone().unwrap_or_else(|| "case".into()),
        endpoint: client.endpoint().into(),
        client_protocol: client,
        upstream_protocol: Some(upstream),
        model: case.request["model"].as_str().unwrap_or("").into(),
        stream: case.request["stream"].as_bool().unwrap_or(false),
        mode: mode.into(),
        compat_profile: Dims::profile_version(case.profile.as_deref(), upstream),
        upstream: String::new(),
        attempts: case
            .routing
            .as_ref()
            .map_or(1, |r| u32::try_from(r.next.len()).unwrap_or(u32::MAX).saturating_add(1)),
    }
}

/// Why a baseline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The cases do not load.
    #[error(transparent)]
    Cases(#[from] CaseError),
    /// The folder holds no cases.
    #[error("{0}: no cases (.json or .jsonl files)")]
    Empty(String),
    /// Writing the table failed.
    #[error("{path}: {source}")]
    Write {
        /// The folder written to.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What a build wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// Cases written.
    pub cases: usize,
    /// The file written.
    pub files: Vec<std::path::PathBuf>,
}

/// Builds `<out>/cases/date=…/part-baseline-….parquet` from the cases in
/// `cases_dir`, replacing an earlier build in `out`. The primary outputs are
/// the native core's on the redacted cases.
pub fn build(
    cases_dir: &Path,
    out: &Path,
    redactor: &Redactor,
    versions: &Versions,
    ruleset: &str,
) -> Result<Built, BaselineError> {
    let cases = case::load(cases_dir)?;
    if cases.is_empty() {
        return Err(BaselineError::Empty(cases_dir.display().to_string()));
    }
    let table_dir = out.join(Table::Cases.as_str());
    let write_err = |source| BaselineError::Write { path: out.display().to_string(), source };
    if table_dir.exists() {
        for f in parquet_files(&table_dir).map_err(write_err)? {
            std::fs::remove_file(f).map_err(write_err)?;
        }
    }
    let now = crate::clock::now_us();
    let native = NativeRuntime::new();
    let mut batch = CaseBatch::default();
    for mut case in cases {
        redact_case(redactor, &mut case);
        case.context = Some(case.context());
        let outputs = plan::outputs(&native, &case);
        let row = CaseRow {
            dims: dims_of(&case, now, "baseline"),
            case,
            primary_runtime: native.kind().as_str().into(),
            outputs,
            sampling_reason: REASON.into(),
            ruleset_version: ruleset.into(),
        };
        batch.push(&row, versions);
    }
    let n = batch.len();
    let rotation = Rotation {
        row_group_rows: 65_536,
        max_file_rows: usize::MAX,
        max_file_bytes: usize::MAX,
        max_file_age: Duration::MAX,
    };
    let mut files = TableFiles::new(out, Table::Cases, &versions.instance, rotation, Default::default());
    files.write(partition_date(now), &batch.finish()).map_err(write_err)?;
    files.close_all().map_err(write_err)?;
    Ok(Built { cases: n, files: parquet_files(&table_dir).map_err(write_err)? })
}
