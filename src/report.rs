//! `shadowgate report`: diff-rate reports from the `diffs` table, per
//! dimension (module, tenant, route, runtime pair, ruleset), as a table,
//! JSON, Markdown, or one self-contained HTML file with a plot of the diff
//! rate over time per module.

use crate::sink::read_table_at;
use crate::sink::schema::{DiffRow, decode_diffs};
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
    fn name(self) -> &'static str {
        match self {
            Dim::Module => "module",
            Dim::Tenant => "tenant",
            Dim::Route => "route",
            Dim::Runtime => "runtime",
            Dim::Ruleset => "ruleset",
        }
    }

    fn of(self, r: &DiffRow) -> String {
        match self {
            Dim::Module => r.module.clone(),
            Dim::Tenant => r.dims.tenant.clone(),
            Dim::Route => r.dims.route.clone(),
            Dim::Runtime => format!("{}→{}", r.runtime_main, r.runtime_shadow),
            Dim::Ruleset => r.ruleset_version.clone(),
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

/// Reads the `diffs` rows under `data_dir` (a folder, or `s3://bucket/prefix`) newer than `since_us`.
pub fn load(data_dir: &Path, since_us: Option<i64>) -> Result<Vec<DiffRow>, ReadError> {
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
    let mut rows = read_table_at(&root, "diffs", since, decode_diffs).map_err(ReadError)?;
    if let Some(cut) = since_us {
        rows.retain(|r| r.dims.timestamp_us >= cut);
    }
    Ok(rows)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Builds the report.
pub fn build(rows: &[DiffRow], by: &[Dim]) -> DataReport {
    #[derive(Default)]
    struct Acc {
        g: Option<Group>,
        deltas: Vec<i64>,
    }
    let mut groups: BTreeMap<Vec<String>, Acc> = BTreeMap::new();
    for r in rows {
        let key: Vec<String> = by.iter().map(|d| d.of(r)).collect();
        let acc = groups.entry(key.clone()).or_default();
        let g = acc.g.get_or_insert_with(|| Group {
            key: by.iter().zip(&key).map(|(d, v)| (d.name().to_string(), v.clone())).collect(),
            comparisons: 0,
            mismatches: 0,
            diff_rate: 0.0,
            ignored: 0,
            shadow_errors: 0,
            shadow_error_rate: 0.0,
            primary_errors: 0,
            drops: 0,
            latency_delta_us: Delta::default(),
        });
        match r.outcome.as_str() {
            "dropped" => {
                g.drops += 1;
                continue;
            }
            "mismatch" => g.mismatches += 1,
            "ignored" => g.ignored += 1,
            "shadow_error" | "shadow_timeout" => g.shadow_errors += 1,
            "primary_error" => g.primary_errors += 1,
            _ => {}
        }
        g.comparisons += 1;
        if r.latency_main_us > 0 && r.latency_shadow_us > 0 {
            acc.deltas.push(r.latency_shadow_us - r.latency_main_us);
        }
    }
    let groups = groups
        .into_values()
        .filter_map(|mut acc| {
            let mut g = acc.g?;
            let n = g.comparisons.max(1) as f64;
            g.diff_rate = g.mismatches as f64 / n;
            g.shadow_error_rate = g.shadow_errors as f64 / n;
            acc.deltas.sort_unstable();
            g.latency_delta_us = Delta {
                p50: percentile(&acc.deltas, 0.50),
                p95: percentile(&acc.deltas, 0.95),
                p99: percentile(&acc.deltas, 0.99),
            };
            Some(g)
        })
        .collect();
    let span =
        rows.iter().fold((i64::MAX, i64::MIN), |(a, b), r| (a.min(r.dims.timestamp_us), b.max(r.dims.timestamp_us)));
    let span = if rows.is_empty() { (0, 0) } else { span };
    DataReport { rows: rows.len() as u64, span_us: span, by: by.to_vec(), groups, series: series(rows, span) }
}

/// Diff rate per module over about 40 buckets of a round width.
fn series(rows: &[DiffRow], (from, to): (i64, i64)) -> BTreeMap<String, Vec<Point>> {
    const WIDTHS: [i64; 8] = [1, 10, 60, 300, 900, 3600, 21_600, 86_400];
    let span_s = ((to - from) / 1_000_000).max(1);
    let width = WIDTHS.iter().copied().find(|w| span_s / w <= 40).unwrap_or(86_400) * 1_000_000;
    let mut out: BTreeMap<String, BTreeMap<i64, Point>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.outcome != "dropped") {
        let t = r.dims.timestamp_us.div_euclid(width) * width;
        let p = out.entry(r.module.clone()).or_default().entry(t).or_insert(Point {
            t_us: t,
            comparisons: 0,
            mismatches: 0,
        });
        p.comparisons += 1;
        p.mismatches += u64::from(r.outcome == "mismatch");
    }
    out.into_iter().map(|(m, pts)| (m, pts.into_values().collect())).collect()
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// A group's key values in the order the report was grouped by (its header's order).
fn key_text(by: &[Dim], g: &Group) -> String {
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
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const COLORS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// One self-contained HTML page: the table and an SVG plot of the diff rate
/// over time per module (no scripts, no external resources).
pub fn render_html(r: &DataReport) -> String {
    let (w, h, pad) = (860.0_f64, 320.0_f64, 48.0_f64);
    // The x axis spans the plotted buckets (whose starts can precede the first row);
    // a single bucket sits in the middle.
    let starts = || r.series.values().flatten().map(|p| p.t_us);
    let (t0, t1) = (starts().min().unwrap_or(0), starts().max().unwrap_or(0));
    let span = (t1 - t0) as f64;
    let max_rate = r
        .series
        .values()
        .flatten()
        .map(|p| p.mismatches as f64 / p.comparisons.max(1) as f64)
        .fold(0.0_f64, f64::max)
        .max(0.01);
    let x = |t: i64| if span > 0.0 { pad + (t - t0) as f64 / span * (w - 2.0 * pad) } else { w / 2.0 };
    let y = |rate: f64| h - pad - rate / max_rate * (h - 2.0 * pad);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"diff rate over time per module\">\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"#888\"/>\
         <text x=\"4\" y=\"{}\" font-size=\"11\">{}</text><text x=\"4\" y=\"{}\" font-size=\"11\">0%</text>",
        h - pad,
        w - pad,
        h - pad,
        h - pad,
        pad + 4.0,
        pct(max_rate),
        h - pad
    );
    for (i, (module, pts)) in r.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let coords: Vec<String> = pts
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.t_us), y(p.mismatches as f64 / p.comparisons.max(1) as f64)))
            .collect();
        svg += &format!(
            "<polyline class=\"series\" data-module=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            escape(module),
            coords.join(" ")
        );
        for c in &coords {
            let (cx, cy) = c.split_once(',').unwrap_or(("0", "0"));
            svg += &format!("<circle cx=\"{cx}\" cy=\"{cy}\" r=\"2.5\" fill=\"{color}\"/>");
        }
        // The legend sits below the x axis, where no line can cross it.
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{color}\">{}</text>",
            pad + 120.0 * i as f64,
            h - 12.0,
            escape(module)
        );
    }
    svg += "</svg>";
    let fmt_t = |t: i64| {
        chrono::DateTime::from_timestamp_micros(t)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default()
    };
    let mut rows = String::new();
    for g in &r.groups {
        let d = g.latency_delta_us;
        rows += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {} / {}</td></tr>",
            escape(&key_text(&r.by, g)),
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
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>shadowgate report</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}</style></head>\
         <body><h1>shadowgate report</h1><p>{} rows from {} to {}</p><h2>Diff rate over time per module</h2>{svg}\
         <h2>By {}</h2><table><thead><tr><th>{}</th><th>comparisons</th><th>diff rate</th><th>shadow error rate</th>\
         <th>primary errors</th><th>drops</th><th>latency Δ µs p50 / p95 / p99</th></tr></thead><tbody>{rows}</tbody></table></body></html>\n",
        r.rows,
        fmt_t(r.span_us.0),
        fmt_t(r.span_us.1),
        r.by.iter().map(|d| d.name()).collect::<Vec<_>>().join(", "),
        r.by.iter().map(|d| d.name()).collect::<Vec<_>>().join(" / ")
    )
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
            latency_main_us: 10,
            latency_shadow_us: 12,
            ruleset_version: "v1".into(),
            guest_sha256: String::new(),
            core_version: String::new(),
        }
    }

    #[test]
    fn every_plotted_point_is_inside_the_axes() {
        for stamps in [
            vec![1_700_000_000_400_000, 1_700_000_000_900_000],
            (0..50).map(|i| 1_700_000_000_000_000 + i * 7_300_000_000).collect(),
        ] {
            let rows: Vec<DiffRow> = stamps
                .iter()
                .map(|&t| {
                    let mut r = row("compat", "t", "r");
                    r.dims.timestamp_us = t;
                    r
                })
                .collect();
            let html = render_html(&build(&rows, &[Dim::Module]));
            let points = html.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
            for p in points.split(' ') {
                let x: f64 = p.split(',').next().unwrap().parse().unwrap();
                assert!((48.0..=812.0).contains(&x), "x = {x} is outside the plot: {points}");
            }
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
