//! The fields of a `diffs` row that reports and the gate read, borrowed
//! either from a decoded [`DiffRow`] or straight from a record batch's
//! columns (no per-row allocation but the paths of a mismatch).

use crate::sink::schema::DiffRow;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, GenericStringArray, RecordBatch};

/// The columns a report reads (the rest of the table is never decoded).
pub const COLUMNS: &[&str] = &[
    "request_id",
    "timestamp",
    "tenant",
    "route",
    "module",
    "outcome",
    "diff_class",
    "runtime_main",
    "runtime_shadow",
    "ruleset_version",
    "core_version",
    "guest_sha256",
    "diff_paths",
    "summary",
    "latency_main_us",
    "latency_shadow_us",
];

/// One row as a report sees it.
#[derive(Debug, Clone, Default)]
pub struct RowView<'a> {
    /// Request id.
    pub request_id: &'a str,
    /// Timestamp (µs).
    pub timestamp_us: i64,
    /// Tenant.
    pub tenant: &'a str,
    /// Route id.
    pub route: &'a str,
    /// Module.
    pub module: &'a str,
    /// Outcome name.
    pub outcome: &'a str,
    /// Class of a divergence.
    pub diff_class: Option<&'a str>,
    /// Runtime that served.
    pub runtime_main: &'a str,
    /// Runtime that shadowed.
    pub runtime_shadow: &'a str,
    /// Ruleset version.
    pub ruleset_version: &'a str,
    /// Native core version.
    pub core_version: &'a str,
    /// Wasm guest SHA-256.
    pub guest_sha256: &'a str,
    /// Differing paths (filled for mismatches).
    pub diff_paths: Vec<&'a str>,
    /// The comparison's summary JSON.
    pub summary: Option<&'a str>,
    /// Primary latency (µs).
    pub latency_main_us: i64,
    /// Shadow latency (µs).
    pub latency_shadow_us: i64,
}

impl<'a> From<&'a DiffRow> for RowView<'a> {
    fn from(r: &'a DiffRow) -> Self {
        RowView {
            request_id: &r.dims.request_id,
            timestamp_us: r.dims.timestamp_us,
            tenant: &r.dims.tenant,
            route: &r.dims.route,
            module: &r.module,
            outcome: &r.outcome,
            diff_class: r.diff_class.as_deref(),
            runtime_main: &r.runtime_main,
            runtime_shadow: &r.runtime_shadow,
            ruleset_version: &r.ruleset_version,
            core_version: &r.core_version,
            guest_sha256: &r.guest_sha256,
            diff_paths: r.diff_paths.iter().map(String::as_str).collect(),
            summary: Some(&r.summary),
            latency_main_us: r.latency_main_us,
            latency_shadow_us: r.latency_shadow_us,
        }
    }
}

/// A batch whose columns are not those of the `diffs` table.
fn wrong(column: &str, want: &str) -> String {
    format!("column {column}: expected {want}")
}

fn strings<'b>(b: &'b RecordBatch, name: &str) -> Result<&'b GenericStringArray<i32>, String> {
    b.column_by_name(name)
        .ok_or_else(|| format!("column {name}: missing"))?
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong(name, "utf8"))
}

/// Integer values of a column (Int64 or a µs timestamp), 0 where null.
fn integers(b: &RecordBatch, name: &str) -> Result<Vec<i64>, String> {
    let a = b.column_by_name(name).ok_or_else(|| format!("column {name}: missing"))?;
    let values: Vec<i64> = if let Some(a) = a.as_primitive_opt::<Int64Type>() {
        (0..a.len()).map(|i| if a.is_valid(i) { a.value(i) } else { 0 }).collect()
    } else if let Some(a) = a.as_primitive_opt::<TimestampMicrosecondType>() {
        (0..a.len()).map(|i| if a.is_valid(i) { a.value(i) } else { 0 }).collect()
    } else {
        return Err(wrong(name, "int64"));
    };
    Ok(values)
}

/// Calls `visit` with each row of a `diffs` batch read with [`COLUMNS`].
pub fn each_row<'b>(b: &'b RecordBatch, visit: &mut dyn FnMut(&RowView<'b>)) -> Result<(), String> {
    let class = strings(b, "diff_class")?;
    let [request_id, tenant, route, module, outcome, main, shadow, ruleset, core, guest, summary] = [
        "request_id",
        "tenant",
        "route",
        "module",
        "outcome",
        "runtime_main",
        "runtime_shadow",
        "ruleset_version",
        "core_version",
        "guest_sha256",
        "summary",
    ]
    .map(|n| strings(b, n));
    let [request_id, tenant, route, module, outcome, main, shadow, ruleset, core, guest, summary] =
        [request_id?, tenant?, route?, module?, outcome?, main?, shadow?, ruleset?, core?, guest?, summary?];
    let (ts, lm, ls) = (integers(b, "timestamp")?, integers(b, "latency_main_us")?, integers(b, "latency_shadow_us")?);
    let paths = b
        .column_by_name("diff_paths")
        .ok_or_else(|| "column diff_paths: missing".to_string())?
        .as_list_opt::<i32>()
        .ok_or_else(|| wrong("diff_paths", "list<utf8>"))?;
    let items = paths.values().as_string_opt::<i32>().ok_or_else(|| wrong("diff_paths", "list<utf8>"))?;
    let offsets = paths.value_offsets();
    let at = |k: usize| offsets.get(k).and_then(|&o| usize::try_from(o).ok()).unwrap_or(0);
    let text = |a: &'b GenericStringArray<i32>, i: usize| if a.is_valid(i) { a.value(i) } else { "" };
    let mut row = RowView::default();
    for i in 0..b.num_rows() {
        row.request_id = text(request_id, i);
        row.timestamp_us = ts[i];
        row.tenant = text(tenant, i);
        row.route = text(route, i);
        row.module = text(module, i);
        row.outcome = text(outcome, i);
        row.diff_class = class.is_valid(i).then(|| class.value(i));
        row.runtime_main = text(main, i);
        row.runtime_shadow = text(shadow, i);
        row.ruleset_version = text(ruleset, i);
        row.core_version = text(core, i);
        row.guest_sha256 = text(guest, i);
        row.summary = summary.is_valid(i).then(|| summary.value(i));
        row.latency_main_us = lm[i];
        row.latency_shadow_us = ls[i];
        row.diff_paths.clear();
        if row.outcome == "mismatch" {
            row.diff_paths.extend((at(i)..at(i + 1)).filter(|&j| j < items.len()).map(|j| items.value(j)));
        }
        visit(&row);
    }
    Ok(())
}
