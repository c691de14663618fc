//! One request, from divergence to fixture: its diff rows (every module
//! call's outcome, class, deciding rule, differing paths with both sides'
//! values), the versions it was compared under, whether its case was
//! recorded; the request ids a filter picks; and the recorded cases of
//! request ids, as readable fixtures with a description of what diverged.

use crate::case::Case;
use crate::owners::Owners;
use crate::record::Dims;
use crate::report::RowView;
use crate::sink::scan_table_at;
use crate::sink::schema::{DiffRow, StoredCase, decode_cases, decode_diffs};
use crate::sink::store::Location;
use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// A lookup that could not be done.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ShowError(pub String);

/// Everything recorded about one request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Its diff rows, one per module call compared, in table order.
    pub calls: Vec<DiffRow>,
    /// Its recorded case, if it was sampled.
    pub case: Option<StoredCase>,
}

/// The rows of `table` whose `column` is one of `ids`, decoded; batches without one are skipped undecoded.
fn rows_of<T>(
    root: &Location,
    since: Option<NaiveDate>,
    table: &str,
    column: &str,
    ids: &BTreeSet<&str>,
    decode: fn(&RecordBatch) -> Result<Vec<T>, crate::sink::schema::DecodeError>,
    id_of: fn(&T) -> &str,
) -> Result<Vec<T>, ShowError> {
    let mut out = Vec::new();
    let scanned = scan_table_at(root, table, since, None, &mut |b| {
        let col = b.column_by_name(column).and_then(|c| c.as_string_opt::<i32>());
        let hit = col.is_some_and(|c| (0..c.len()).any(|i| c.is_valid(i) && ids.contains(c.value(i))));
        if hit {
            out.extend(decode(b).map_err(|e| e.to_string())?.into_iter().filter(|r| ids.contains(id_of(r))));
        }
        Ok(())
    });
    match scanned {
        Ok(()) => Ok(out),
        // A data dir without a cases table (nothing sampled yet) has no cases.
        Err(_) if root.local().is_some_and(|d| !d.join(table).is_dir()) => Ok(Vec::new()),
        Err(e) => Err(ShowError(e)),
    }
}

/// The diff rows and recorded cases of `ids`, by request id (ids with neither are absent);
/// with `since`, only the date partitions from that day on are read.
pub fn find(root: &Location, ids: &[String], since: Option<NaiveDate>) -> Result<BTreeMap<String, Request>, ShowError> {
    let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let mut out: BTreeMap<String, Request> = BTreeMap::new();
    for row in rows_of(root, since, "diffs", "request_id", &wanted, decode_diffs, |r| &r.dims.request_id)? {
        out.entry(row.dims.request_id.clone()).or_default().calls.push(row);
    }
    for case in rows_of(root, since, "cases", "case_id", &wanted, decode_cases, |c| &c.case.id)? {
        let id = case.case.id.clone();
        out.entry(id).or_default().case = Some(case);
    }
    Ok(out)
}

/// Which rows `list` picks.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this module.
    pub module: Option<String>,
    /// Only rows compared under this ruleset version.
    pub ruleset: Option<String>,
    /// Only this outcome (`None`: every outcome but `match`).
    pub outcome: Option<String>,
}

impl Filter {
    fn picks(&self, r: &RowView) -> bool {
        self.module.as_deref().is_none_or(|m| m == r.module)
            && self.ruleset.as_deref().is_none_or(|v| v == r.ruleset_version)
            && self.outcome.as_deref().map_or(r.outcome != "match", |o| o == r.outcome)
    }
}

/// One row `list` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    /// Request id.
    pub request_id: String,
    /// Timestamp (µs).
    pub timestamp_us: i64,
    /// Module.
    pub module: String,
    /// Outcome.
    pub outcome: String,
    /// Class of a divergence.
    pub diff_class: Option<String>,
    /// Ruleset version.
    pub ruleset_version: String,
    /// Differing paths of a mismatch.
    pub diff_paths: Vec<String>,
}

/// The newest `limit` rows the filter picks (newest first) and how many it picked in all.
pub fn list(
    data_dir: &std::path::Path,
    since_us: Option<i64>,
    filter: &Filter,
    limit: usize,
) -> Result<(Vec<Listed>, u64), ShowError> {
    let mut picked: Vec<Listed> = Vec::new();
    let mut total = 0u64;
    crate::report::scan(data_dir, since_us, &mut |r| {
        if !filter.picks(r) {
            return;
        }
        total += 1;
        // Keep the newest `limit`: a bounded buffer, trimmed when it doubles.
        picked.push(Listed {
            request_id: r.request_id.into(),
            timestamp_us: r.timestamp_us,
            module: r.module.into(),
            outcome: r.outcome.into(),
            diff_class: r.diff_class.map(str::to_string),
            ruleset_version: r.ruleset_version.into(),
            diff_paths: r.diff_paths.iter().map(|p| p.to_string()).collect(),
        });
        if picked.len() >= limit.max(1) * 2 {
            newest(&mut picked, limit);
        }
    })
    .map_err(|e| ShowError(e.to_string()))?;
    newest(&mut picked, limit);
    Ok((picked, total))
}

fn newest(rows: &mut Vec<Listed>, limit: usize) {
    rows.sort_by(|a, b| b.timestamp_us.cmp(&a.timestamp_us).then_with(|| a.request_id.cmp(&b.request_id)));
    rows.truncate(limit);
}

/// One module call as `show --format json` gives it.
#[derive(Debug, Serialize)]
struct CallView<'a> {
    module: &'a str,
    outcome: &'a str,
    diff_class: Option<&'a str>,
    rule_id: Option<&'a str>,
    diff_paths: &'a [String],
    summary: Value,
    runtime_main: &'a str,
    runtime_shadow: &'a str,
    latency_main_us: i64,
    latency_shadow_us: i64,
    ruleset_version: &'a str,
    core_version: &'a str,
    guest_sha256: &'a str,
}

/// `show --format json`.
#[derive(Debug, Serialize)]
pub struct RequestView<'a> {
    request_id: &'a str,
    dims: Option<&'a Dims>,
    calls: Vec<CallView<'a>>,
    case_recorded: bool,
    sampling_reason: Option<&'a str>,
    owners: BTreeMap<&'a str, &'a crate::owners::Owner>,
}

/// The JSON view of a request.
pub fn view<'a>(id: &'a str, r: &'a Request, owners: &'a Owners) -> RequestView<'a> {
    let calls: Vec<CallView> = r
        .calls
        .iter()
        .map(|c| CallView {
            module: &c.module,
            outcome: &c.outcome,
            diff_class: c.diff_class.as_deref(),
            rule_id: c.rule_id.as_deref(),
            diff_paths: &c.diff_paths,
            summary: serde_json::from_str(&c.summary).unwrap_or(Value::Null),
            runtime_main: &c.runtime_main,
            runtime_shadow: &c.runtime_shadow,
            latency_main_us: c.latency_main_us,
            latency_shadow_us: c.latency_shadow_us,
            ruleset_version: &c.ruleset_version,
            core_version: &c.core_version,
            guest_sha256: &c.guest_sha256,
        })
        .collect();
    let owners = r.calls.iter().filter_map(|c| owners.named(&c.module).map(|o| (c.module.as_str(), o))).collect();
    RequestView {
        request_id: id,
        dims: r.calls.first().map(|c| &c.dims),
        calls,
        case_recorded: r.case.is_some(),
        sampling_reason: r.case.as_ref().map(|c| c.sampling_reason.as_str()),
        owners,
    }
}

/// The request as text: dims, versions, whether a case was recorded, each
/// call with its differences, and the owners of the modules that diverged.
pub fn render(id: &str, r: &Request, owners: &Owners) -> String {
    let mut s = format!("request {id}\n");
    if let Some(d) = r.calls.first().map(|c| &c.dims) {
        let upstream = d.upstream_protocol.map_or_else(|| "-".to_string(), |p| p.as_str().to_string());
        let _ = writeln!(s, "  time       {}", crate::clock::rfc3339(d.timestamp_us));
        let _ = writeln!(s, "  tenant     {}   route {}   model {}", d.tenant, d.route, d.model);
        let _ = writeln!(
            s,
            "  protocols  {} → {} ({})   stream {}   mode {}",
            d.client_protocol.as_str(),
            upstream,
            d.endpoint,
            d.stream,
            d.mode
        );
        if !d.upstream.is_empty() {
            let _ = writeln!(s, "  served by  {} after {} attempt(s)", d.upstream, d.attempts);
        }
    }
    let versions: BTreeSet<(&str, &str, &str)> = r
        .calls
        .iter()
        .map(|c| (c.core_version.as_str(), c.guest_sha256.as_str(), c.ruleset_version.as_str()))
        .collect();
    for (core, guest, ruleset) in versions {
        let _ = writeln!(s, "  versions   native core {core}   wasm guest {guest}   ruleset {ruleset}");
    }
    match &r.case {
        Some(c) => {
            let _ = writeln!(
                s,
                "  case       recorded (sampling reason: {}; `case export {id}` writes it)",
                c.sampling_reason
            );
        }
        None => s += "  case       not recorded (the sampler did not keep it)\n",
    }
    if r.calls.is_empty() {
        s += "no diff rows (the request was not compared)\n";
    } else {
        s += "module calls:\n";
    }
    for c in &r.calls {
        let class = c
            .diff_class
            .as_deref()
            .map_or_else(String::new, |k| format!("   class {k} (rule {})", c.rule_id.as_deref().unwrap_or("-")));
        let _ = writeln!(
            s,
            "  {:<10} {:<14} {}→{} {} µs / {} µs{class}",
            c.module, c.outcome, c.runtime_main, c.runtime_shadow, c.latency_main_us, c.latency_shadow_us
        );
        if c.outcome != "match" {
            let summary: Value = serde_json::from_str(&c.summary).unwrap_or(Value::Null);
            let lines = crate::diff::example::lines(&summary);
            if lines.is_empty() && !c.diff_paths.is_empty() {
                let _ = writeln!(s, "      paths: {}", c.diff_paths.join(", "));
            }
            for l in lines {
                for (i, part) in l.lines().enumerate() {
                    let _ = writeln!(s, "      {}{part}", if i > 0 { "  " } else { "" });
                }
            }
        }
    }
    let diverged: BTreeSet<&str> =
        r.calls.iter().filter(|c| c.outcome != "match" && c.outcome != "ignored").map(|c| c.module.as_str()).collect();
    let owned: Vec<_> = diverged.iter().filter_map(|m| owners.named(m).map(|o| (m, o))).collect();
    if !owned.is_empty() {
        s += "owners:\n";
        for (m, o) in owned {
            let _ = writeln!(s, "  {m:<10} {}", o.text());
        }
    }
    s
}

/// The recorded case as a fixture: its description says where it came from and what diverged.
pub fn fixture(id: &str, r: &Request) -> Option<Case> {
    let stored = r.case.as_ref()?;
    let mut case = stored.case.clone();
    let diverged: Vec<String> = r
        .calls
        .iter()
        .filter(|c| c.outcome == "mismatch")
        .map(|c| {
            let class = c.diff_class.as_deref().map_or_else(String::new, |k| format!(", {k}"));
            format!("{} at {}{class}", c.module, c.diff_paths.join(", "))
        })
        .collect();
    let when =
        r.calls.first().map_or_else(String::new, |c| format!(" on {}", crate::clock::rfc3339(c.dims.timestamp_us)));
    let what = if diverged.is_empty() {
        "no module diverged".to_string()
    } else {
        format!("diverged: {}", diverged.join("; "))
    };
    let versions = ["core_version", "guest_sha256", "ruleset_version"]
        .iter()
        .filter_map(|k| stored.versions.get(*k).map(|v| format!("{k} {v}")))
        .collect::<Vec<_>>()
        .join(", ");
    case.description = Some(format!("production request {id}{when} ({versions}): {what}"));
    Some(case)
}
