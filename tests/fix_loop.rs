//! From divergence to fix, with the real binary: a proxy shadowing with a
//! candidate guest records divergent requests; `show` finds one and renders
//! its diff; `case export` → `baseline build` → `replay --guest candidate`
//! fails on exactly that case and passes with the embedded guest; owners
//! appear in `show`, `report` and the gate's JSON. And `baseline curate` over
//! 20,000 recorded cases with known strata.

use serde_json::{Value, json};
use shadowgate::sink::files::{self, TableFiles};
use shadowgate::sink::read_table;
use shadowgate::sink::schema::{CaseBatch, DiffBatch, Table, decode_cases};
use shadowgate_runtime::CANDIDATE_GUEST;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

// Shared with the sink tests; this file does not use every helper.
#[allow(dead_code)]
#[path = "support/sink.rs"]
mod support;
use support::*;

fn shadowgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shadowgate")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_divergent_request_becomes_a_failing_fixture_and_owners_say_who_fixes_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tmp("fix-loop");
    let (mock_port, proxy_port) = (free_port(), free_port());
    let _mock = mock_upstream(mock_port);
    let guest = dir.join("candidate.wasm");
    std::fs::write(&guest, CANDIDATE_GUEST).unwrap();
    let data = dir.join("data");
    let config = local_config(mock_port, proxy_port)
        .replace("data_dir = \"./shadowgate-data\"", &format!("data_dir = {data:?}"))
        .replace("[shadow]\n", &format!("[shadow]\nguest = {guest:?}\n"))
        .replace("deadline_ms = 250", "deadline_ms = 5000")
        + "\n[owners.tokenizer]\nteam = \"core-team\"\nfix_path = \"core/src/tokenizer.rs\"\n\
           runbook = \"https://runbooks.example.com/tokenizer\"\n";
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_shadowgate"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("SHADOWGATE_REDACTION_KEY", "deployment-key-0123456789")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{proxy_port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..600 {
        if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "serve did not become ready");
    let mut ids = Vec::new();
    for i in 0..3 {
        let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("count the words of sentence {i}")}]});
        let resp = http.post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        ids.push(resp.headers()["x-shadowgate-request-id"].to_str().unwrap().to_string());
    }
    // SIGTERM drains the shadow queue and the sink.
    let pid = serve.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(30), serve.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");

    let d = data.to_str().unwrap();
    // The list: the candidate's tokenizer diverged on every request.
    let out = shadowgate(&["show", "--data-dir", d, "--module", "tokenizer", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed_ids: BTreeSet<&str> =
        listed["rows"].as_array().unwrap().iter().map(|r| r["request_id"].as_str().unwrap()).collect();
    for id in &ids {
        assert!(listed_ids.contains(id.as_str()), "{id} not listed: {listed}");
    }
    assert!(
        listed["rows"].as_array().unwrap().iter().all(|r| r["outcome"] == "mismatch" && r["module"] == "tokenizer")
    );
    let out = shadowgate(&["show", "--data-dir", d, "--module", "tokenizer", "--ruleset", "v999"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("0 rows picked"), "{}", text(&out));

    // One request: its calls, the tokenizer's differing values, the versions, the case, the owner.
    let id = &ids[0];
    let out = shadowgate(&["show", id, "--config", cfg.to_str().unwrap()]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.starts_with(&format!("request {id}\n")), "{shown}");
    assert!(shown.contains("route gpt") && shown.contains("model gpt-4o-mini"), "{shown}");
    let line = shown.lines().find(|l| l.trim_start().starts_with("tokenizer ")).expect("a tokenizer call");
    assert!(line.contains("mismatch"), "{shown}");
    assert!(shown.contains(" → "), "the differing values: {shown}");
    assert!(shown.contains("compat ") && shown.contains("match"), "{shown}");
    assert!(shown.contains("native core ") && shown.contains("ruleset v"), "{shown}");
    assert!(shown.contains("case       recorded"), "{shown}");
    assert!(
        shown.contains("tokenizer  core-team (core/src/tokenizer.rs) https://runbooks.example.com/tokenizer"),
        "{shown}"
    );
    let out = shadowgate(&["show", id, "--data-dir", d, "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let calls = v[0]["calls"].as_array().unwrap();
    let tok = calls.iter().find(|c| c["module"] == "tokenizer").unwrap();
    assert_eq!(tok["outcome"], "mismatch");
    assert!(tok["summary"]["entries"].as_array().is_some_and(|e| !e.is_empty()), "{tok}");
    assert_eq!(v[0]["case_recorded"], true);
    let out = shadowgate(&["show", id, "--data-dir", d, "--since", "1h"]);
    assert!(out.status.success() && text(&out).contains("tokenizer"), "{}", text(&out));
    let out = shadowgate(&["show", "no-such-request", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no diff rows or case for request no-such-request"));

    // Export → baseline → replay: the candidate fails on exactly this case; the embedded guest passes.
    let cases = dir.join("fixtures");
    let out = shadowgate(&["case", "export", id, "--data-dir", d, "--out", cases.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(cases.join(format!("{id}.json"))).unwrap()).unwrap();
    assert_eq!(fixture["id"], id.as_str());
    let description = fixture["description"].as_str().unwrap();
    assert!(
        description.contains(&format!("production request {id}")) && description.contains("tokenizer at /"),
        "{description}"
    );
    let baseline = dir.join("baseline");
    let out = shadowgate(&["baseline", "build", cases.to_str().unwrap(), "--out", baseline.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let b = baseline.to_str().unwrap();
    let report = dir.join("replay.json");
    let out = shadowgate(&["replay", b, "--guest", guest.to_str().unwrap(), "--report-json", report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["cases"], 1);
    let tokenizer = r["modules"].as_array().unwrap().iter().find(|m| m["module"] == "tokenizer").unwrap();
    assert!(tokenizer["mismatches"].as_u64().unwrap() >= 1);
    assert_eq!(tokenizer["examples"], json!([id]));
    let out = shadowgate(&["replay", b]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = shadowgate(&["case", "export", "no-such-request", "--data-dir", d, "--out", cases.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no recorded case for request no-such-request"), "{}", text(&out));

    // Owners in the report and the gate's verdict.
    let c = cfg.to_str().unwrap();
    let out = shadowgate(&["report", d, "--config", c]);
    assert!(text(&out).contains("owners:\n  tokenizer  core-team (core/src/tokenizer.rs)"), "{}", text(&out));
    let out = shadowgate(&["report", d, "--config", c, "--format", "json"]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["owners"]["tokenizer"]["team"], "core-team");
    let trend = r["trend"].as_array().unwrap().iter().find(|t| t["module"] == "tokenizer").unwrap();
    assert_eq!(trend["days"][0]["diff_rate"], 1.0, "{trend}");
    let page = dir.join("report.html");
    let out = shadowgate(&["report", d, "--config", c, "--format", "html", "--out", page.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    let trend = &html[html.find("id=\"trend-table\"").expect("a trend table")..];
    let row = &trend[trend.find("<td>tokenizer</td>").expect("tokenizer's trend")..];
    assert!(row[..row.find("</tr>").unwrap()].contains("core-team <code>core/src/tokenizer.rs</code>"), "{row}");
    let verdicts = &html[html.find("id=\"verdict-table\"").unwrap()..html.find("id=\"plots\"").unwrap()];
    assert!(verdicts.contains("<a href=\"https://runbooks.example.com/tokenizer\">runbook</a>"), "{verdicts}");
    let out = shadowgate(&["gate", d, "--config", c, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "the candidate's tokenizer fails: {}", text(&out));
    let verdicts: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tok = verdicts.as_array().unwrap().iter().find(|v| v["module"] == "tokenizer").unwrap();
    assert_eq!(tok["verdict"], "fail");
    assert_eq!(
        tok["owner"],
        json!({"team": "core-team", "fix_path": "core/src/tokenizer.rs", "runbook": "https://runbooks.example.com/tokenizer"})
    );
    assert!(
        verdicts.as_array().unwrap().iter().filter(|v| v["module"] != "tokenizer").all(|v| v.get("owner").is_none())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The route of recorded case `i`: most on `main`, some on five others, three on `rare`.
fn route(i: usize) -> String {
    match i {
        7 | 7777 | 19_999 => "rare".into(),
        _ if i.is_multiple_of(20) => format!("r{}", i / 20 % 5),
        _ => "main".into(),
    }
}

#[test]
fn curation_covers_every_stratum_drops_duplicates_and_is_stable() {
    let dir = tmp("curate");
    // Written straight through the table writer (these rows need no redaction).
    let (mut cases, mut diffs) = (CaseBatch::default(), DiffBatch::default());
    let v = versions("node-a");
    let now = now_us();
    for i in 0..20_000 {
        let mut row = case_row(i, now);
        // 15,000 distinct requests: case i and case i + 15,000 send the same one.
        row.case.request["metadata"] = json!({"user_id": format!("u{}", i % 5000)});
        row.dims.route = route(i);
        cases.push(&row, &v);
        let mut diff = diff_record(i, now);
        Arc::make_mut(&mut diff.dims).route = route(i);
        diffs.push(&diff, &v);
    }
    for (table, batch) in [(Table::Cases, cases.finish()), (Table::Diffs, diffs.finish())] {
        let mut files = TableFiles::new(&dir, table, "node-a", options(&dir, "node-a").rotation, Default::default());
        files.write(files::partition_date(now), &batch).unwrap();
        files.close_all().unwrap();
    }
    let d = dir.to_str().unwrap();
    let out_a = dir.join("curated-a");
    let started = std::time::Instant::now();
    let out = shadowgate(&["baseline", "curate", d, "--out", out_a.to_str().unwrap(), "--size", "1000", "--seed", "7"]);
    assert!(out.status.success(), "{}", text(&out));
    eprintln!("curate: {:.1} s", started.elapsed().as_secs_f64());
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(out_a.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["recorded"], 20_000);
    assert_eq!(manifest["duplicates"], 5000);
    assert_eq!(manifest["selected"], 1000);
    let strata = manifest["strata"].as_array().unwrap();
    assert!(strata.len() > 7 && strata.len() < 1000, "{} strata", strata.len());
    assert!(strata.iter().all(|s| s["selected"].as_u64().unwrap() >= 1), "every stratum represented");
    let outcomes: BTreeSet<&str> = strata.iter().map(|s| s["outcome"].as_str().unwrap()).collect();
    // The diff rows' outcomes, and the recorded upstream errors among the sample cases.
    assert_eq!(outcomes, BTreeSet::from(["ignored", "match", "mismatch", "shadow_error", "upstream_error"]));

    let cases = read_table(&out_a.join("cases"), decode_cases).unwrap();
    assert_eq!(cases.len(), 1000);
    let routes: BTreeSet<&str> = cases.iter().map(|c| c.dims.route.as_str()).collect();
    assert_eq!(routes, BTreeSet::from(["main", "r0", "r1", "r2", "r3", "r4", "rare"]));
    assert_eq!(cases.iter().filter(|c| c.dims.route == "rare").count(), 3, "the rare route's three cases all kept");
    let ids: BTreeSet<&str> = cases.iter().map(|c| c.case.id.as_str()).collect();
    assert_eq!(ids.len(), 1000, "no case twice");
    let digests: BTreeSet<[u8; 32]> = cases.iter().map(|c| shadowgate::curate::request_digest(&c.case)).collect();
    assert_eq!(digests.len(), 1000, "no request twice");
    // main holds ~95% of the cases but, by √size, far less of the baseline.
    let main = cases.iter().filter(|c| c.dims.route == "main").count();
    assert!((300..950).contains(&main), "{main} on main");

    // Stable: the same inputs and seed give the same cases; another seed, another draw.
    let out_b = dir.join("curated-b");
    assert!(
        shadowgate(&["baseline", "curate", d, "--out", out_b.to_str().unwrap(), "--size", "1000", "--seed", "7"])
            .status
            .success()
    );
    let again: Value = serde_json::from_str(&std::fs::read_to_string(out_b.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(again["case_ids"], manifest["case_ids"]);
    assert_eq!(again["strata"], manifest["strata"]);
    let out_c = dir.join("curated-c");
    assert!(
        shadowgate(&["baseline", "curate", d, "--out", out_c.to_str().unwrap(), "--size", "1000", "--seed", "8"])
            .status
            .success()
    );
    let other: Value = serde_json::from_str(&std::fs::read_to_string(out_c.join("manifest.json")).unwrap()).unwrap();
    assert_ne!(other["case_ids"], manifest["case_ids"]);
    assert!(Path::new(&out_c).join("cases").is_dir());
    let _ = std::fs::remove_dir_all(&dir);
}
