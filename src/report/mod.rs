//! `shadowgate report`: diff-rate reports from the `diffs` table, per
//! dimension (module, tenant, route, runtime pair, ruleset), as a table,
//! JSON or Markdown (the HTML page is `page`'s). Rows stream through an
//! [`Aggregator`]: only the columns in [`rows::COLUMNS`] and the date
//! partitions inside the window are read.

mod aggregate;
pub mod rows;
pub mod trend;

pub use aggregate::Aggregator;
pub use rows::RowView;
pub use trend::{Direction, Trend};

use crate::owners::Owners;
use crate::sink::scan_table_at;
use crate::sink::schema::DiffRow;
use crate::sink::store::Location;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A grouping dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// Module.
    Module,
    /// Tenant.
    Tenant,
    /// Route id.
    Route,
    /// `main→shadow` runtime pair.
    Runtime,
    /// Ruleset version.
    Ruleset,
}

impl Dim {
    /// The dimension's name (a group key's key).
    pub fn name(self) -> &'static str {
        match self {
            Dim::Module => "module",
            Dim::Tenant => "tenant",
            Dim::Route => "route",
            Dim::Runtime => "runtime",
            Dim::Ruleset => "ruleset",
        }
    }

    /// Appends this dimension's value of `r`.
    fn write(self, r: &RowView, out: &mut String) {
        match self {
            Dim::Module => out.push_str(r.module),
            Dim::Tenant => out.push_str(r.tenant),
            Dim::Route => out.push_str(r.route),
            Dim::Runtime => {
                out.push_str(r.runtime_main);
                out.push('→');
                out.push_str(r.runtime_shadow);
            }
            Dim::Ruleset => out.push_str(r.ruleset_version),
        }
    }
}

/// Shadow-minus-main latency percentiles (µs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Median.
    pub p50: i64,
    /// 95th percentile.
    pub p95: i64,
    /// 99th percentile.
    pub p99: i64,
}

/// The figures of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Dimension values.
    pub key: BTreeMap<String, String>,
    /// Comparisons made (dropped jobs excluded).
    pub comparisons: u64,
    /// Mismatches after the ruleset.
    pub mismatches: u64,
    /// `mismatches / comparisons`.
    pub diff_rate: f64,
    /// Differences the ruleset explained.
    pub ignored: u64,
    /// Shadow errors and timeouts.
    pub shadow_errors: u64,
    /// `shadow_errors / comparisons`.
    pub shadow_error_rate: f64,
    /// Wasm-primary failures served by native.
    pub primary_errors: u64,
    /// Shadow calls dropped (queue full).
    pub drops: u64,
    /// Latency of the shadow minus the main side, per call.
    pub latency_delta_us: Delta,
}

/// One time bucket of one module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Bucket start (µs since the epoch, UTC).
    pub t_us: i64,
    /// Comparisons.
    pub comparisons: u64,
    /// Mismatches.
    pub mismatches: u64,
}

/// A report over the `diffs` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataReport {
    /// Rows read (after `--since`).
    pub rows: u64,
    /// First and last timestamp (µs).
    pub span_us: (i64, i64),
    /// Grouping.
    pub by: Vec<Dim>,
    /// Groups, sorted by key.
    pub groups: Vec<Group>,
    /// Diff rate over time per module.
    pub series: BTreeMap<String, Vec<Point>>,
    /// Groups by tenant and module.
    #[serde(default)]
    pub by_tenant: Vec<Group>,
    /// Groups by route and module.
    #[serde(default)]
    pub by_route: Vec<Group>,
    /// The most frequent differing paths of mismatches, with an example each.
    #[serde(default)]
    pub top_paths: Vec<TopPath>,
    /// Mismatch paths not counted once too many distinct ones were seen.
    #[serde(default)]
    pub other_paths: u64,
    /// The versions compared, with their rows.
    #[serde(default)]
    pub versions: Vec<VersionsSeen>,
    /// Each module's diff rate per day, and its direction since the last version change.
    #[serde(default)]
    pub trend: Vec<Trend>,
    /// Who fixes each module and where (from the config, when given).
    #[serde(default, skip_serializing_if = "owners_empty")]
    pub owners: Owners,
}

fn owners_empty(o: &Owners) -> bool {
    o.0.is_empty()
}

/// A differing path of one module, how often, and its first example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopPath {
    /// Module.
    pub module: String,
    /// JSON pointer (or `/events/<type>`).
    pub path: String,
    /// Mismatches it differed in.
    pub count: u64,
    /// The request id of the first one.
    pub example_request_id: String,
    /// That mismatch's values at the path, when its summary shows them.
    pub example_diff: Option<String>,
}

/// One combination of versions the rows were compared under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionsSeen {
    /// Runtime that served.
    pub runtime_main: String,
    /// Runtime that shadowed.
    pub runtime_shadow: String,
    /// Native core version.
    pub core_version: String,
    /// Wasm guest SHA-256.
    pub guest_sha256: String,
    /// Ruleset version.
    pub ruleset_version: String,
    /// Rows.
    pub rows: u64,
}

/// A window that is not `<number><s|m|h|d>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WindowError(String);

/// Parses `30m`, `24h`, `7d` (or plain seconds).
pub fn parse_since(s: &str) -> Result<std::time::Duration, WindowError> {
    let err = |m: String| WindowError(m);
    let (n, unit) = s.trim().split_at(s.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(s.trim().len()));
    let n: u64 = n.parse().map_err(|_| err(format!("{s:?}: expected a number with s, m, h or d")))?;
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(err(format!("{s:?}: unknown unit {unit:?} (s, m, h, d)"))),
    };
    let secs = n.checked_mul(unit_secs).ok_or_else(|| err(format!("{s:?}: too long a window")))?;
    Ok(std::time::Duration::from_secs(secs))
}

/// The timestamp (µs) `window` (`30m`, `24h`, `7d`) before now.
pub fn cutoff_us(window: &str) -> Result<i64, WindowError> {
    let back = i64::try_from(parse_since(window)?.as_micros()).unwrap_or(i64::MAX);
    Ok(crate::clock::now_us().saturating_sub(back))
}

/// A `diffs` table that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

/// Calls `visit` with each `diffs` row under `data_dir` (a folder, or
/// `s3://bucket/prefix`) newer than `since_us`, batch by batch: partitions
/// before the window are never opened, and only [`rows::COLUMNS`] are decoded.
pub fn scan(data_dir: &Path, since_us: Option<i64>, visit: &mut dyn FnMut(&RowView)) -> Result<(), ReadError> {
    let root = Location::of_path(data_dir).map_err(|e| ReadError(e.to_string()))?;
    if let Some(local) = root.local() {
        let dir = local.join("diffs");
        if !dir.is_dir() {
            return Err(ReadError(format!(
                "{}: no diffs table (expected {}/date=…/*.parquet)",
                data_dir.display(),
                dir.display()
            )));
        }
    }
    let since = since_us.map(crate::sink::files::partition_date);
    let cut = since_us.unwrap_or(i64::MIN);
    scan_table_at(&root, "diffs", since, Some(rows::COLUMNS), &mut |batch| {
        rows::each_row(batch, &mut |r| {
            if r.timestamp_us >= cut {
                visit(r);
            }
        })
    })
    .map_err(ReadError)
}

/// The report over the `diffs` rows under `data_dir` newer than `since_us`.
pub fn load(data_dir: &Path, since_us: Option<i64>, by: &[Dim]) -> Result<DataReport, ReadError> {
    let mut agg = Aggregator::new(by);
    scan(data_dir, since_us, &mut |r| agg.push(r))?;
    Ok(agg.finish())
}

/// The report over decoded rows.
pub fn build(rows: &[DiffRow], by: &[Dim]) -> DataReport {
    let mut agg = Aggregator::new(by);
    for r in rows {
        agg.push(&RowView::from(r));
    }
    agg.finish()
}

/// A rate as a percentage with two decimals.
pub fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// A group's key values in the order the report was grouped by (its header's order).
pub fn key_text(by: &[Dim], g: &Group) -> String {
    by.iter().map(|d| g.key.get(d.name()).map_or("", String::as_str)).collect::<Vec<_>>().join(" / ")
}

/// An aligned text table.
pub fn render_table(r: &DataReport) -> String {
    let head = r.by.iter().map(|d| d.name()).collect::<Vec<_>>().join(" / ");
    let w = r.groups.iter().map(|g| key_text(&r.by, g).chars().count()).max().unwrap_or(0).max(head.len());
    let mut s = format!(
        "{:<w$} {:>11} {:>9} {:>9} {:>9} {:>7} {:>27}\n",
        head, "comparisons", "diff", "shadow_err", "primary_err", "drops", "latency Δ µs p50/p95/p99"
    );
    for g in &r.groups {
        let d = g.latency_delta_us;
        s += &format!(
            "{:<w$} {:>11} {:>9} {:>10} {:>11} {:>7} {:>27}\n",
            key_text(&r.by, g),
            g.comparisons,
            pct(g.diff_rate),
            pct(g.shadow_error_rate),
            g.primary_errors,
            g.drops,
            format!("{}/{}/{}", d.p50, d.p95, d.p99)
        );
    }
    s + &render_trend_text(r)
}

/// The days a trend line shows (the latest ones).
const TREND_DAYS: usize = 14;

/// Trend and owner lines under the table.
fn render_trend_text(r: &DataReport) -> String {
    let mut s = String::new();
    if !r.trend.is_empty() {
        s += "\ntrend (diff rate per UTC day; direction since the last version change):\n";
        for t in &r.trend {
            let days: Vec<String> = t
                .days
                .iter()
                .rev()
                .take(TREND_DAYS)
                .rev()
                .map(|d| format!("{} {}", d.date.get(5..).unwrap_or(&d.date), pct(d.diff_rate)))
                .collect();
            let since = t
                .version_change_us
                .map_or_else(String::new, |c| format!(" (new version since {})", crate::clock::rfc3339(c)));
            s += &format!("  {:<10} {:<8} {}{since}\n", t.module, t.direction.as_str(), days.join(" · "));
        }
    }
    if !r.owners.0.is_empty() {
        s += "\nowners:\n";
        for (m, o) in &r.owners.0 {
            s += &format!("  {:<10} {}\n", m.as_str(), o.text());
        }
    }
    s
}

/// Markdown.
pub fn render_markdown(r: &DataReport) -> String {
    let head = r.by.iter().map(|d| d.name()).collect::<Vec<_>>().join(" / ");
    let mut s = format!("## shadowgate report ({} comparisons rows)\n\n", r.rows);
    s += &format!(
        "| {head} | comparisons | diff rate | shadow error rate | primary errors | drops | latency Δ p50 / p95 / p99 (µs) |\n"
    );
    s += "|---|---:|---:|---:|---:|---:|---:|\n";
    for g in &r.groups {
        let d = g.latency_delta_us;
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} / {} / {} |\n",
            key_text(&r.by, g),
            g.comparisons,
            pct(g.diff_rate),
            pct(g.shadow_error_rate),
            g.primary_errors,
            g.drops,
            d.p50,
            d.p95,
            d.p99
        );
    }
    if !r.trend.is_empty() {
        s += "\n| module | trend | since | diff rate per day |\n|---|---|---|---|\n";
        for t in &r.trend {
            let days: Vec<String> = t
                .days
                .iter()
                .rev()
                .take(TREND_DAYS)
                .rev()
                .map(|d| format!("{} {}", d.date, pct(d.diff_rate)))
                .collect();
            let since = t.version_change_us.map_or_else(|| "window start".to_string(), crate::clock::rfc3339);
            s += &format!("| {} | {} | {since} | {} |\n", t.module, t.direction.as_str(), days.join(", "));
        }
    }
    if !r.owners.0.is_empty() {
        s += "\n| module | team | fix path | runbook |\n|---|---|---|---|\n";
        for (m, o) in &r.owners.0 {
            let opt = |x: &Option<String>| x.clone().unwrap_or_default();
            s += &format!("| {} | {} | {} | {} |\n", m.as_str(), o.team, opt(&o.fix_path), opt(&o.runbook));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Dims;
    use shadowgate_core::Protocol;

    fn row(module: &str, tenant: &str, route: &str) -> DiffRow {
        DiffRow {
            dims: Dims {
                request_id: "r".into(),
                timestamp_us: 1,
                tenant: tenant.into(),
                route: route.into(),
                endpoint: "/v1/messages".into(),
                client_protocol: Protocol::AnthropicMessages,
                upstream_protocol: Some(Protocol::AnthropicMessages),
                model: "m".into(),
                stream: false,
                mode: "shadow".into(),
                compat_profile: String::new(),
                upstream: String::new(),
                attempts: 1,
            },
            runtime_main: "native".into(),
            runtime_shadow: "wasm".into(),
            module: module.into(),
            outcome: "match".into(),
            diff_class: None,
            rule_id: None,
            diff_paths: Vec::new(),
            summary: "null".into(),
            latency_main_us: 10,
            latency_shadow_us: 12,
            ruleset_version: "v1".into(),
            guest_sha256: String::new(),
            core_version: String::new(),
        }
    }

    #[test]
    fn rows_list_their_values_in_the_order_of_the_header() {
        let by = [Dim::Module, Dim::Tenant, Dim::Route, Dim::Runtime, Dim::Ruleset];
        let r = build(&[row("compat", "claude-team", "claude")], &by);
        let table = render_table(&r);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("module / tenant / route / runtime / ruleset"), "{table}");
        assert!(lines[1].starts_with("compat / claude-team / claude / native→wasm / v1"), "{table}");
        assert!(render_markdown(&r).contains("compat / claude-team / claude / native→wasm / v1"));
        let r = build(&[row("compat", "claude-team", "claude")], &[Dim::Route, Dim::Module]);
        assert!(render_table(&r).lines().nth(1).unwrap().starts_with("claude / compat"));
    }
}
