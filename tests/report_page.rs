//! Reports read the way a fleet needs them: the streamed, column-projected
//! report equals the one built from fully decoded rows; and the HTML page of
//! a report and of a replay, rendered by headless Chromium (Debian package
//! `chromium`; `make test` installs it) to a PNG with no console errors, has
//! the structure a reader relies on.

use shadowgate::report::{self, Dim};
use shadowgate::sink::redact::Redactor;
use shadowgate::sink::schema::decode_diffs;
use shadowgate::sink::{Sink, SinkRecord, SinkStats, read_table};
use shadowgate_runtime::CANDIDATE_GUEST;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

// Shared with the sink tests; this file uses the sink helpers only.
#[allow(dead_code)]
#[path = "support/sink.rs"]
mod support;
use support::*;

/// 600 rows of every shape over the last three hours, for tenants acme and globex.
fn data_dir(name: &str) -> std::path::PathBuf {
    let dir = tmp(name);
    let redactor = Arc::new(Redactor::new(b"0123456789abcdef0123", &[]).unwrap());
    let (tx, sink) =
        Sink::start(options(&dir, "node-a"), versions("node-a"), redactor, SinkStats::default(), None).unwrap();
    let now = now_us();
    for i in 0..600 {
        assert!(tx.send(SinkRecord::Diff(diff_record(i, now - i as i64 * 18_000_000))));
    }
    drop(tx);
    assert_eq!(sink.finish().errors, 0);
    dir
}

#[test]
fn the_streamed_report_equals_the_report_of_decoded_rows() {
    let dir = data_dir("streamed");
    let rows = read_table(&dir.join("diffs"), decode_diffs).unwrap();
    for by in [vec![Dim::Module], vec![Dim::Tenant, Dim::Route, Dim::Runtime, Dim::Ruleset]] {
        let streamed = report::load(&dir, None, &by).unwrap();
        let decoded = report::build(&rows, &by);
        assert_eq!(streamed.rows, 600);
        assert_eq!(streamed.groups, decoded.groups);
        assert_eq!(streamed.series, decoded.series);
        assert_eq!(
            (streamed.by_tenant.clone(), streamed.by_route.clone()),
            (decoded.by_tenant.clone(), decoded.by_route.clone())
        );
        assert_eq!(streamed.versions, decoded.versions);
        assert_eq!(streamed.top_paths, decoded.top_paths);
        assert_eq!(streamed.trend, decoded.trend);
    }
    let r = report::load(&dir, None, &[Dim::Module]).unwrap();
    // Rows 1, 5, 9, … are mismatches at two paths; the first entry's values are in the summary.
    let top = &r.top_paths[0];
    assert_eq!(top.count, 30, "{:?}", r.top_paths);
    let finish = r.top_paths.iter().find(|p| p.path == "/choices/0/finish_reason").unwrap();
    assert_eq!(finish.example_diff.as_deref(), Some("/choices/0/finish_reason: \"stop\" → \"length\""));
    assert!(finish.example_request_id.starts_with("req_"));
    let total = r.top_paths.iter().find(|p| p.path == "/usage/total_tokens").unwrap();
    assert_eq!(total.example_diff, None, "the summary holds no entry for this path");

    // A window keeps the rows inside it: 18 s apart, the last 30 minutes hold 100 of them (±1 at the edge).
    let cut = now_us() - 30 * 60 * 1_000_000;
    let recent = report::load(&dir, Some(cut), &[Dim::Module]).unwrap();
    assert!((99..=101).contains(&recent.rows), "{}", recent.rows);
}

/// Runs headless Chromium on `page`: the DOM after load, the console lines, and a PNG at `png`.
fn chromium(page: &Path, png: &Path) -> (String, Vec<String>) {
    let bin = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("headless Chromium (Debian package chromium; make test installs it)");
    let url = format!("file://{}", page.display());
    let common =
        ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"];
    let shot = Command::new(bin)
        .args(common)
        .arg("--window-size=1200,2400")
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    let dom = Command::new(bin).args(common).arg("--dump-dom").arg(&url).output().unwrap();
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let console = [shot.stderr, dom.stderr]
        .iter()
        .flat_map(|e| String::from_utf8_lossy(e).lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("net::ERR_"))
        .collect();
    (String::from_utf8(dom.stdout).unwrap(), console)
}

/// A PNG's width and height, from its IHDR chunk.
fn png_size(png: &Path) -> (u32, u32) {
    let b = std::fs::read(png).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

/// The text of each `<tag …>…</tag>` following `marker` in `html`, up to `end`.
fn cells_after<'a>(html: &'a str, marker: &str, end: &str) -> Vec<&'a str> {
    let from = html.find(marker).unwrap_or_else(|| panic!("{marker} not in the page"));
    let part = &html[from..];
    let part = &part[..part.find(end).unwrap_or(part.len())];
    part.split("<td>").skip(1).map(|c| c.split("</td>").next().unwrap_or("")).collect()
}

fn shadowgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shadowgate")).args(args).output().unwrap()
}

#[test]
fn the_report_page_renders_in_chromium_with_verdicts_plots_tables_paths_and_versions() {
    let dir = data_dir("page");
    let page = dir.join("report.html");
    let out = shadowgate(&["report", dir.to_str().unwrap(), "--format", "html", "--out", page.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"), "self-contained");

    let png = dir.join("report.png");
    let (dom, console) = chromium(&page, &png);
    assert!(console.is_empty(), "console: {console:?}");
    assert_eq!(png_size(&png), (1200, 2400));
    assert!(std::fs::metadata(&png).unwrap().len() > 20_000, "a page with content, not a blank image");

    // Verdicts: one row per module, each with a decision.
    let verdicts = cells_after(&dom, "id=\"verdict-table\"", "</table>");
    for m in ["routing", "compat", "streaming", "tools", "tokenizer"] {
        assert!(verdicts.contains(&m), "{m} has no verdict: {verdicts:?}");
    }
    // compat's mismatches are far above the default 0.5% threshold: it fails.
    assert!(dom.contains("<span class=\"fail\">fail</span>"), "{dom}");
    // A plot per module, each with a labelled time axis and the threshold drawn.
    for m in ["routing", "compat", "streaming", "tools", "tokenizer"] {
        let at = dom
            .find(&format!("<figure class=\"plot\" data-module=\"{m}\">"))
            .unwrap_or_else(|| panic!("no plot of {m}"));
        let fig = &dom[at..at + dom[at..].find("</figure>").unwrap()];
        assert!(fig.contains("class=\"threshold\""), "{m}: no threshold line");
        assert!(fig.contains("time (UTC, from "), "{m}: no time axis title");
        let ticks = fig.split("class=\"tick\"").count() - 1;
        assert!(ticks >= 5 + 3, "{m}: {ticks} tick labels");
    }
    // Tables by tenant and by route.
    let tenants = cells_after(&dom, "id=\"tenant-table\"", "</table>");
    assert!(tenants.iter().any(|c| c.starts_with("acme / ")) && tenants.iter().any(|c| c.starts_with("globex / ")));
    let routes = cells_after(&dom, "id=\"route-table\"", "</table>");
    assert!(routes.iter().any(|c| c.starts_with("claude / compat")), "{routes:?}");
    // Top paths with an example request and its rendered diff.
    let paths = cells_after(&dom, "id=\"path-table\"", "</table>");
    assert!(paths.iter().any(|c| c.contains("/choices/0/finish_reason")), "{paths:?}");
    assert!(paths.iter().any(|c| c.contains("class=\"request\">req_")), "{paths:?}");
    assert!(paths.iter().any(|c| c.contains("\"stop\" → \"length\"")), "{paths:?}");
    // The versions compared.
    let versions = cells_after(&dom, "id=\"version-table\"", "</table>");
    assert!(versions.iter().any(|c| c.contains(&"ab".repeat(32))), "{versions:?}");
    assert!(versions.contains(&"native→wasm"), "{versions:?}");
}

#[test]
fn a_replay_page_shows_the_candidates_divergence() {
    let dir = tmp("replay-page");
    let guest = dir.join("candidate.wasm");
    std::fs::write(&guest, CANDIDATE_GUEST).unwrap();
    let page = dir.join("replay.html");
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("baselines/sample");
    let out = shadowgate(&[
        "replay",
        cases.to_str().unwrap(),
        "--guest",
        guest.to_str().unwrap(),
        "--report-html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let png = dir.join("replay.png");
    let (dom, console) = chromium(&page, &png);
    assert!(console.is_empty(), "console: {console:?}");
    assert_eq!(png_size(&png), (1200, 2400));
    let verdicts = cells_after(&dom, "id=\"verdict-table\"", "</table>");
    let row = verdicts.iter().position(|c| *c == "tokenizer").expect("a tokenizer row");
    assert_eq!(verdicts[row + 1], "<span class=\"fail\">fail</span>", "{verdicts:?}");
    let compat = verdicts.iter().position(|c| *c == "compat").expect("a compat row");
    assert_eq!(verdicts[compat + 1], "<span class=\"pass\">pass</span>", "{verdicts:?}");
    assert!(dom.contains("class=\"bar\" data-module=\"tokenizer\""));
    let paths = cells_after(&dom, "id=\"path-table\"", "</table>");
    assert!(paths.first() == Some(&"tokenizer"), "{paths:?}");
    assert!(paths.iter().any(|c| c.contains("<pre class=\"diff\">") && c.contains('→')), "{paths:?}");
    let versions = cells_after(&dom, "id=\"version-table\"", "</table>");
    assert!(versions.iter().any(|c| c.contains("tokenizer") || c.contains("candidate")), "{versions:?}");
}
