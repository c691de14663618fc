//! The HTML report: one self-contained page (inline CSS and SVG; no
//! scripts, no external resources) for a report over the `diffs` table with
//! its gate verdicts, or for a replay. Sections carry stable ids
//! (`verdicts`, `plots`, `trend`, `groups`, `by-tenant`, `by-route`,
//! `top-paths`, `versions`) so tests and people can find them.

use crate::gate::{Decision, Verdict};
use crate::owners::Owner;
use crate::replay;
use crate::report::{DataReport, Dim, Group, Point, key_text, pct};
use chrono::DateTime;
use serde_json::Value;
use std::fmt::Write;

const COLORS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}\
    table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}\
    td:first-child,th:first-child,#verdict-table td:nth-last-child(-n+2),#verdict-table th:nth-last-child(-n+2),#trend-table :is(td,th),#path-table :is(td,th),#version-table :is(td,th){text-align:left}th{background:#f4f4f4}\
    .pass,.trend-falling{color:#1a7f37;font-weight:600}.trend-rising{color:#cf222e;font-weight:600}.fail{color:#cf222e;font-weight:600}.inconclusive{color:#9a6700;font-weight:600}\
    pre.diff{margin:0;white-space:pre-wrap;word-break:break-all;font-size:12px;max-width:520px}\
    figure{margin:0 0 1em}figcaption{font-weight:600;margin-bottom:.2em}svg text{font-size:11px;fill:#333}";

/// Plot geometry: width, height, and the margins around the axes.
const W: f64 = 860.0;
const H: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 44.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn utc(t_us: i64, format: &str) -> String {
    DateTime::from_timestamp_micros(t_us).map(|d| d.format(format).to_string()).unwrap_or_default()
}

fn page(title: &str, subtitle: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head>\
         <body><h1>{t}</h1><p id=\"summary\">{subtitle}</p>{body}</body></html>\n",
        t = escape(title)
    )
}

/// A table: `id`, header cells, rows of already escaped cells; the first column is text.
fn table(id: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("<table id=\"{id}\"><thead><tr>");
    for h in head {
        let _ = write!(s, "<th>{}</th>", escape(h));
    }
    s += "</tr></thead><tbody>";
    for r in rows {
        s += "<tr>";
        for c in r {
            let _ = write!(s, "<td>{c}</td>");
        }
        s += "</tr>";
    }
    s + "</tbody></table>"
}

fn section(id: &str, title: &str, inner: &str) -> String {
    format!("<section id=\"{id}\"><h2>{}</h2>{inner}</section>", escape(title))
}

fn verdict_cell(d: Decision) -> String {
    let name = match d {
        Decision::Pass => "pass",
        Decision::Fail => "fail",
        Decision::Inconclusive => "inconclusive",
    };
    format!("<span class=\"{name}\">{name}</span>")
}

/// Team, fix path and runbook link.
fn owner_cell(o: &Owner) -> String {
    let mut s = escape(&o.team);
    if let Some(p) = &o.fix_path {
        let _ = write!(s, " <code>{}</code>", escape(p));
    }
    if let Some(r) = &o.runbook {
        let _ = write!(s, " <a href=\"{}\">runbook</a>", escape(r));
    }
    s
}

fn group_rows(by: &[Dim], groups: &[Group]) -> Vec<Vec<String>> {
    groups
        .iter()
        .map(|g| {
            let d = g.latency_delta_us;
            vec![
                escape(&key_text(by, g)),
                g.comparisons.to_string(),
                g.mismatches.to_string(),
                pct(g.diff_rate),
                pct(g.shadow_error_rate),
                g.primary_errors.to_string(),
                g.drops.to_string(),
                format!("{} / {} / {}", d.p50, d.p95, d.p99),
            ]
        })
        .collect()
}

fn group_table(id: &str, by: &[Dim], groups: &[Group]) -> String {
    let key = by.iter().map(|d| d.name()).collect::<Vec<_>>().join(" / ");
    let head = [
        key.as_str(),
        "comparisons",
        "mismatches",
        "diff rate",
        "shadow error rate",
        "primary errors",
        "drops",
        "latency Δ µs p50 / p95 / p99",
    ];
    table(id, &head, &group_rows(by, groups))
}

/// A tick step (s) giving at most six ticks over `span_s`, and the label format for it.
fn time_ticks(span_s: i64) -> (i64, &'static str) {
    const STEPS: [i64; 15] = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800];
    // Past six weeks, steps of whole weeks keep six ticks.
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span_s / s <= 6)
        .unwrap_or_else(|| (span_s / 6 / 604_800).saturating_add(1).saturating_mul(604_800));
    let format = if step < 60 {
        "%H:%M:%S"
    } else if step < 86_400 {
        "%H:%M"
    } else {
        "%m-%d"
    };
    (step, format)
}

/// The diff rate of one module over time: labelled time and rate axes, the
/// gate's threshold as a dashed line.
fn plot(module: &str, color: &str, points: &[Point], threshold: Option<f64>) -> String {
    let rate = |p: &Point| p.mismatches as f64 / p.comparisons.max(1) as f64;
    let (t0, t1) = (points.first().map_or(0, |p| p.t_us), points.last().map_or(0, |p| p.t_us));
    let top_rate = points.iter().map(rate).fold(threshold.unwrap_or(0.0) * 1.25, f64::max).max(0.01);
    // In f64: timestamps from a damaged table may span all of i64.
    let span = t1 as f64 - t0 as f64;
    let x = |t: i64| {
        if span > 0.0 { LEFT + (t as f64 - t0 as f64) / span * (W - LEFT - RIGHT) } else { (LEFT + W - RIGHT) / 2.0 }
    };
    let y = |r: f64| H - BOTTOM - r / top_rate * (H - TOP - BOTTOM);
    let mut s = format!(
        "<svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
         aria-label=\"diff rate of {m} over time\">",
        m = escape(module)
    );
    // Axes with ticks.
    let _ = write!(
        s,
        "<g class=\"y-axis\"><line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\" stroke=\"#888\"/>",
        H - BOTTOM
    );
    for i in 0..=4 {
        let r = top_rate * f64::from(i) / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT,
            W - RIGHT,
            LEFT - 6.0,
            y(r) + 4.0,
            pct(r),
            y = y(r)
        );
    }
    let _ = write!(
        s,
        "<text class=\"axis-title\" x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">diff rate</text></g>",
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0
    );
    let _ = write!(
        s,
        "<g class=\"x-axis\"><line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{}\" y2=\"{b}\" stroke=\"#888\"/>",
        W - RIGHT,
        b = H - BOTTOM
    );
    let (step, format) = time_ticks((span / 1e6) as i64);
    let step_us = step.saturating_mul(1_000_000);
    // The first whole step at or after t0.
    let mut tick = match crate::report::trend::floor_to(t0, step_us) {
        t if t < t0 && span > 0.0 => t.saturating_add(step_us),
        t if span > 0.0 => t,
        _ => t0,
    };
    while tick <= t1 {
        let _ = write!(
            s,
            "<line x1=\"{tx:.1}\" y1=\"{b}\" x2=\"{tx:.1}\" y2=\"{}\" stroke=\"#888\"/>\
             <text class=\"tick\" x=\"{tx:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            H - BOTTOM + 5.0,
            H - BOTTOM + 18.0,
            utc(tick, if span > 0.0 { format } else { "%H:%M:%S" }),
            tx = x(tick),
            b = H - BOTTOM
        );
        match tick.checked_add(step_us) {
            Some(next) if span > 0.0 => tick = next,
            _ => break,
        }
    }
    let _ = write!(
        s,
        "<text class=\"axis-title\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">time (UTC, from {})</text></g>",
        (LEFT + W - RIGHT) / 2.0,
        H - 6.0,
        utc(t0, "%Y-%m-%d %H:%M:%S")
    );
    if let Some(t) = threshold {
        let _ = write!(
            s,
            "<line class=\"threshold\" data-rate=\"{t}\" x1=\"{LEFT}\" y1=\"{ty:.1}\" x2=\"{}\" y2=\"{ty:.1}\" stroke=\"#cf222e\" \
             stroke-dasharray=\"6 4\"/><text class=\"threshold-label\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#cf222e\">\
             gate threshold {}</text>",
            W - RIGHT,
            W - RIGHT - 4.0,
            y(t) - 4.0,
            pct(t),
            ty = y(t)
        );
    }
    let coords: Vec<String> = points.iter().map(|p| format!("{:.1},{:.1}", x(p.t_us), y(rate(p)))).collect();
    let _ = write!(
        s,
        "<polyline class=\"series\" data-module=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
        escape(module),
        coords.join(" ")
    );
    for (c, p) in coords.iter().zip(points) {
        let (cx, cy) = c.split_once(',').unwrap_or(("0", "0"));
        let _ = write!(
            s,
            "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"2.5\" fill=\"{color}\"><title>{}: {} of {} ({})</title></circle>",
            utc(p.t_us, "%Y-%m-%d %H:%M:%S UTC"),
            p.mismatches,
            p.comparisons,
            pct(rate(p))
        );
    }
    s + "</svg>"
}

/// The page for a report over the `diffs` table of `source`, with the gate's verdicts (may be empty).
pub fn data(r: &DataReport, source: &str, verdicts: &[Verdict]) -> String {
    let mut body = String::new();
    if !verdicts.is_empty() {
        let rows: Vec<Vec<String>> = verdicts
            .iter()
            .map(|v| {
                vec![
                    escape(v.module.as_str()),
                    v.stage.to_string(),
                    verdict_cell(v.verdict),
                    v.next_stage.to_string(),
                    v.comparisons.to_string(),
                    pct(v.diff_rate),
                    pct(v.thresholds.max_diff_rate),
                    escape(&v.reason),
                    v.owner.as_ref().map_or_else(String::new, owner_cell),
                ]
            })
            .collect();
        let head =
            ["module", "stage", "verdict", "next stage", "comparisons", "diff rate", "threshold", "reason", "owner"];
        body += &section("verdicts", "Gate verdict per module", &table("verdict-table", &head, &rows));
    }
    let threshold = |m: &str| verdicts.iter().find(|v| v.module.as_str() == m).map(|v| v.thresholds.max_diff_rate);
    let mut plots = String::new();
    for (i, (module, points)) in r.series.iter().enumerate() {
        let _ = write!(
            plots,
            "<figure class=\"plot\" data-module=\"{m}\"><figcaption>{m}</figcaption>{}</figure>",
            plot(module, COLORS[i % COLORS.len()], points, threshold(module)),
            m = escape(module)
        );
    }
    if r.series.is_empty() {
        plots += "<p>No comparisons in the window.</p>";
    }
    body += &section("plots", "Diff rate over time per module", &plots);
    let rows: Vec<Vec<String>> = r
        .trend
        .iter()
        .map(|t| {
            let days: Vec<String> =
                t.days.iter().map(|d| format!("{} {}", d.date.get(5..).unwrap_or(&d.date), pct(d.diff_rate))).collect();
            vec![
                escape(&t.module),
                format!("<span class=\"trend-{0}\">{0}</span>", t.direction.as_str()),
                t.version_change_us.map_or_else(|| "the window's start".into(), |c| utc(c, "%Y-%m-%d %H:%M UTC")),
                escape(&days.join(" · ")),
                r.owners.named(&t.module).map_or_else(String::new, owner_cell),
            ]
        })
        .collect();
    let head = ["module", "direction", "since (last version change)", "diff rate per UTC day", "owner"];
    body += &section("trend", "Trend per module", &table("trend-table", &head, &rows));
    let by = r.by.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ");
    body += &section("groups", &format!("By {by}"), &group_table("group-table", &r.by, &r.groups));
    body += &section("by-tenant", "By tenant", &group_table("tenant-table", &[Dim::Tenant, Dim::Module], &r.by_tenant));
    body += &section("by-route", "By route", &group_table("route-table", &[Dim::Route, Dim::Module], &r.by_route));
    let rows: Vec<Vec<String>> = r
        .top_paths
        .iter()
        .map(|p| {
            vec![
                escape(&p.module),
                format!("<code>{}</code>", escape(&p.path)),
                p.count.to_string(),
                format!("<code class=\"request\">{}</code>", escape(&p.example_request_id)),
                format!(
                    "<pre class=\"diff\">{}</pre>",
                    escape(p.example_diff.as_deref().unwrap_or("(not in the summary)"))
                ),
            ]
        })
        .collect();
    let mut paths = table("path-table", &["module", "path", "mismatches", "example request", "example diff"], &rows);
    if r.other_paths > 0 {
        let _ = write!(paths, "<p>{} more mismatch paths beyond the distinct ones counted.</p>", r.other_paths);
    }
    body += &section("top-paths", "Top differing paths", &paths);
    let rows: Vec<Vec<String>> = r
        .versions
        .iter()
        .map(|v| {
            vec![
                escape(&format!("{}→{}", v.runtime_main, v.runtime_shadow)),
                escape(&v.core_version),
                format!("<code>{}</code>", escape(&v.guest_sha256)),
                escape(&v.ruleset_version),
                v.rows.to_string(),
            ]
        })
        .collect();
    let head = ["runtimes", "native core", "wasm guest SHA-256", "ruleset", "rows"];
    body += &section("versions", "Versions compared", &table("version-table", &head, &rows));
    let subtitle = format!(
        "{} rows of {} from {} to {}",
        r.rows,
        escape(source),
        utc(r.span_us.0, "%Y-%m-%d %H:%M:%S UTC"),
        utc(r.span_us.1, "%Y-%m-%d %H:%M:%S UTC")
    );
    page("shadowgate report", &subtitle, &body)
}

/// Bars of each module's diff and regression rates, with the threshold drawn.
fn replay_bars(r: &replay::Report, threshold: f64) -> String {
    let n = r.modules.len().max(1) as f64;
    let top = r.modules.iter().map(|m| m.diff_rate.max(m.regression_rate)).fold(threshold * 1.25, f64::max).max(0.01);
    let y = |v: f64| H - BOTTOM - v / top * (H - TOP - BOTTOM);
    let slot = (W - LEFT - RIGHT) / n;
    let mut s = format!(
        "<svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
         aria-label=\"diff and regression rate per module\"><g class=\"y-axis\">\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\" stroke=\"#888\"/>",
        b = H - BOTTOM
    );
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        let _ = write!(
            s,
            "<text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y(v) + 4.0,
            pct(v)
        );
    }
    let _ = write!(
        s,
        "</g><g class=\"x-axis\"><line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{}\" y2=\"{b}\" stroke=\"#888\"/>",
        W - RIGHT,
        b = H - BOTTOM
    );
    for (i, m) in r.modules.iter().enumerate() {
        let x0 = LEFT + slot * i as f64;
        let _ = write!(
            s,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x0 + slot / 2.0,
            H - BOTTOM + 18.0,
            m.module
        );
        for (k, (v, color, what)) in
            [(m.diff_rate, COLORS[0], "diff rate"), (m.regression_rate, COLORS[1], "regression rate")]
                .into_iter()
                .enumerate()
        {
            let bx = x0 + slot * (0.2 + 0.3 * k as f64);
            let _ = write!(
                s,
                "<rect class=\"bar\" data-module=\"{}\" x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\">\
                 <title>{}: {what} {}</title></rect>",
                m.module,
                y(v),
                slot * 0.28,
                H - BOTTOM - y(v),
                m.module,
                pct(v)
            );
        }
    }
    let _ = write!(
        s,
        "</g><line class=\"threshold\" data-rate=\"{threshold}\" x1=\"{LEFT}\" y1=\"{ty:.1}\" x2=\"{}\" y2=\"{ty:.1}\" \
         stroke=\"#cf222e\" stroke-dasharray=\"6 4\"/><text class=\"threshold-label\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" \
         fill=\"#cf222e\">threshold {}</text>",
        W - RIGHT,
        W - RIGHT - 4.0,
        y(threshold) - 4.0,
        pct(threshold),
        ty = y(threshold)
    );
    s + "</svg>"
}

/// The page for a replay: its verdict per module against its thresholds,
/// the rates, the top differing paths with an example each, and the versions.
pub fn replay(r: &replay::Report) -> String {
    let max_diff = r.thresholds.get("max_diff_rate").and_then(Value::as_f64).unwrap_or(0.0);
    let mut body = String::new();
    let rows: Vec<Vec<String>> = r
        .modules
        .iter()
        .map(|m| {
            let over: Vec<&str> = r
                .exceeded
                .iter()
                .filter_map(|e| e.strip_prefix(m.module.as_str()).and_then(|e| e.strip_prefix(": ")))
                .collect();
            let verdict = if over.is_empty() { Decision::Pass } else { Decision::Fail };
            vec![
                escape(m.module.as_str()),
                verdict_cell(verdict),
                m.calls.to_string(),
                m.mismatches.to_string(),
                pct(m.diff_rate),
                m.regressions.to_string(),
                pct(m.regression_rate),
                m.errors.to_string(),
                escape(&over.join("; ")),
            ]
        })
        .collect();
    let head = [
        "module",
        "verdict",
        "calls",
        "mismatches",
        "diff rate",
        "regressions",
        "regression rate",
        "errors",
        "exceeded",
    ];
    body += &section("verdicts", "Verdict per module", &table("verdict-table", &head, &rows));
    let plot = format!(
        "<figure class=\"plot\" data-module=\"all\"><figcaption>diff rate (blue) and regression rate (red) per module</figcaption>{}</figure>",
        replay_bars(r, max_diff)
    );
    body += &section("plots", "Rates per module", &plot);
    let rows: Vec<Vec<String>> = r
        .modules
        .iter()
        .flat_map(|m| {
            m.top_paths.iter().map(move |p| {
                vec![
                    escape(m.module.as_str()),
                    format!("<code>{}</code>", escape(&p.path)),
                    p.count.to_string(),
                    p.examples
                        .iter()
                        .map(|e| format!("<code class=\"request\">{}</code>", escape(e)))
                        .collect::<Vec<_>>()
                        .join(" "),
                    format!(
                        "<pre class=\"diff\">{}</pre>",
                        escape(p.example_diff.as_deref().unwrap_or("(not in the summary)"))
                    ),
                ]
            })
        })
        .collect();
    body += &section(
        "top-paths",
        "Top differing paths",
        &table("path-table", &["module", "path", "divergences", "example cases", "example diff"], &rows),
    );
    let v = &r.versions;
    let text = |x: &Value| escape(&x.as_str().map_or_else(|| x.to_string(), str::to_string));
    let mut rows = vec![
        vec!["native core".to_string(), text(&v["native"]["core_version"])],
        vec![
            "candidate".to_string(),
            format!("{} ({})", text(&v["candidate"]["source"]), text(&v["candidate"]["core_version"])),
        ],
        vec!["candidate guest SHA-256".to_string(), format!("<code>{}</code>", text(&v["candidate"]["guest_sha256"]))],
        vec!["ruleset".to_string(), escape(&r.ruleset)],
    ];
    if let Some(b) = v["baseline"].as_object() {
        rows.extend(b.iter().map(|(k, x)| vec![format!("baseline {}", escape(k)), text(x)]));
    }
    body += &section("versions", "Versions compared", &table("version-table", &["what", "version"], &rows));
    let subtitle = format!(
        "{} of {} cases of {} replayed, {} module calls{}",
        r.replayed,
        r.cases,
        escape(&r.input),
        r.calls,
        r.shard.map_or(String::new(), |s| format!(", shard {s}"))
    );
    page("shadowgate replay", &subtitle, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(stamps: &[i64]) -> Vec<Point> {
        stamps.iter().map(|&t| Point { t_us: t, comparisons: 10, mismatches: 1 }).collect()
    }

    #[test]
    fn every_plotted_point_is_inside_the_axes() {
        for stamps in [
            vec![1_700_000_000_000_000],
            vec![1_700_000_000_400_000, 1_700_000_000_900_000],
            (0..50).map(|i| 1_700_000_000_000_000 + i * 7_300_000_000).collect(),
        ] {
            let svg = plot("compat", "#000", &points(&stamps), Some(0.005));
            let coords = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
            for p in coords.split(' ') {
                let (x, y) = p.split_once(',').unwrap();
                let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                assert!((LEFT..=W - RIGHT).contains(&x), "x = {x} is outside the plot: {coords}");
                assert!((TOP..=H - BOTTOM).contains(&y), "y = {y} is outside the plot: {coords}");
            }
        }
    }

    #[test]
    fn timestamps_at_the_ends_of_i64_plot_without_overflow_and_with_few_ticks() {
        let svg = plot("compat", "#000", &points(&[i64::MIN, 0, i64::MAX]), Some(0.005));
        let ticks = svg.matches("text-anchor=\"middle\">").count();
        assert!(ticks <= 10, "{ticks} x ticks: {svg}");
        let mut agg = crate::report::Aggregator::new(&[Dim::Module]);
        for t in [i64::MIN, -1, 0, i64::MAX] {
            let row =
                crate::report::RowView { timestamp_us: t, module: "compat", outcome: "match", ..Default::default() };
            agg.push(&row);
        }
        let r = agg.finish();
        assert_eq!(r.series["compat"].iter().map(|p| p.comparisons).sum::<u64>(), 4);
        assert!(data(&r, "d", &[]).contains("id=\"trend-table\""));
        assert!(crate::report::render_table(&r).contains("trend"));
        assert!(crate::report::render_markdown(&r).contains("| compat |"));
    }

    #[test]
    fn the_time_axis_is_labelled_in_steps_that_fit_the_span() {
        // 2023-11-14 22:13:20 UTC and six hours later.
        let (t0, t1) = (1_700_000_000_000_000, 1_700_021_600_000_000);
        let svg = plot("compat", "#000", &points(&[t0, t1]), None);
        let ticks: Vec<&str> =
            svg.split("class=\"tick\"").skip(1).filter_map(|s| s.split('>').nth(1)?.split('<').next()).collect();
        assert!(ticks.contains(&"23:00") && ticks.contains(&"03:00"), "{ticks:?}");
        assert!(svg.contains("time (UTC, from 2023-11-14 22:13:20)"), "{svg}");
        assert!(!svg.contains("class=\"threshold\""));
        let svg = plot("compat", "#000", &points(&[t0, t1]), Some(0.02));
        assert!(svg.contains("gate threshold 2.00%"));
    }
}
