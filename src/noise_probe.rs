//! Noise learning, as Diffy does with a primary and a secondary: run the same
//! runtime twice with different contexts — whatever differs is
//! nondeterministic by construction — and compare it with the raw
//! primary-vs-candidate differences. Paths that are noisy and not yet covered
//! by the ruleset are proposed as a new ruleset version; a published ruleset
//! is never edited.

use crate::case::Case;
use crate::diff::json::{canonicalize, diff};
use crate::diff::{Ruleset, sse};
use crate::plan::{self, ModuleCall, OutputKind};
use serde::Serialize;
use serde_json::Value;
use shadowgate_core::{Context, Module, Protocol};
use shadowgate_runtime::Runtime;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Counts for one (module, kind, protocol, path).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathStat {
    /// Module.
    pub module: Module,
    /// `request`, `response`, `stream`, …
    pub kind: String,
    /// Output protocol.
    pub protocol: Protocol,
    /// Generalized JSON pointer (array indices as `*`).
    pub path: String,
    /// Comparisons in this group.
    pub comparisons: usize,
    /// Primary vs candidate differences here (same context).
    pub raw: usize,
    /// Primary vs primary differences here (different contexts).
    pub noise: usize,
    /// Whether the current ruleset already explains the noise.
    pub covered: bool,
}

impl PathStat {
    /// raw / comparisons.
    pub fn raw_rate(&self) -> f64 {
        self.raw as f64 / self.comparisons.max(1) as f64
    }
    /// noise / comparisons.
    pub fn noise_rate(&self) -> f64 {
        self.noise as f64 / self.comparisons.max(1) as f64
    }
}

/// What the probe found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProbeReport {
    /// Cases probed.
    pub cases: usize,
    /// Module calls probed.
    pub calls: usize,
    /// Calls whose output changed when repeated with the same context (must be 0).
    pub unstable_calls: usize,
    /// Per path.
    pub paths: Vec<PathStat>,
}

fn generalize(path: &str) -> String {
    path.split('/')
        .map(|s| if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) { "*" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Paths at which `a` and `b` differ, raw and after the ruleset.
fn differing_paths(call: &ModuleCall, rules: &Ruleset, a: &[u8], b: &[u8]) -> (Vec<String>, Vec<String>) {
    if a == b {
        return (Vec::new(), Vec::new());
    }
    let pairs: Vec<(Value, Value)> = match call.kind {
        OutputKind::Json => {
            let parse = |x: &[u8]| {
                serde_json::from_slice::<Value>(x).map(|v| v.get("ok").cloned().unwrap_or(v)).unwrap_or(Value::Null)
            };
            vec![(parse(a), parse(b))]
        }
        OutputKind::Stream(p) => match (sse::canonical_events(p, a, true), sse::canonical_events(p, b, true)) {
            (Ok(x), Ok(y)) if x.events.len() == y.events.len() => {
                x.events.into_iter().zip(y.events).map(|(l, r)| (l.normalized_payload, r.normalized_payload)).collect()
            }
            _ => return (vec!["/events".into()], vec!["/events".into()]),
        },
    };
    let (mut raw, mut uncovered) = (Vec::new(), Vec::new());
    for (x, y) in pairs {
        raw.extend(diff(&x, &y, None).entries.into_iter().map(|e| generalize(&e.path)));
        let (cx, cy) = (canonicalize(&x, rules, &call.scope), canonicalize(&y, rules, &call.scope));
        uncovered.extend(diff(&cx, &cy, None).entries.into_iter().map(|e| generalize(&e.path)));
    }
    raw.sort();
    raw.dedup();
    uncovered.sort();
    uncovered.dedup();
    (raw, uncovered)
}

/// Probes `cases`: `primary` twice with different contexts, and against `candidate`.
pub fn probe(cases: &[Case], primary: &dyn Runtime, candidate: &dyn Runtime, rules: &Ruleset) -> ProbeReport {
    let mut report = ProbeReport { cases: cases.len(), ..ProbeReport::default() };
    let mut stats: BTreeMap<(&str, String, &str, String), PathStat> = BTreeMap::new();
    let mut groups: BTreeMap<(&str, String, &str), usize> = BTreeMap::new();
    for case in cases {
        let ctx1 = Context { request_id: case.id.clone(), created: 1_700_000_000, id_seed: 1 };
        let ctx2 = Context { request_id: format!("{}-probe", case.id), created: 1_700_000_777, id_seed: 2 };
        let (plan1, plan2) = (plan::plan(case, &ctx1), plan::plan(case, &ctx2));
        for (c1, c2) in plan1.iter().zip(&plan2) {
            report.calls += 1;
            let run = |rt: &dyn Runtime, c: &ModuleCall| {
                plan::execute(rt, c).unwrap_or_else(|e| format!("runtime error: {e}").into_bytes())
            };
            let (p1, p1again, p2, cand) = (run(primary, c1), run(primary, c1), run(primary, c2), run(candidate, c1));
            if p1 != p1again {
                report.unstable_calls += 1;
            }
            // Keyed by names, so the report lists modules alphabetically.
            let group = (c1.scope.module.as_str(), c1.scope.kind.clone(), c1.scope.protocol.as_str());
            *groups.entry(group.clone()).or_default() += 1;
            let (noise, uncovered) = differing_paths(c1, rules, &p1, &p2);
            let (raw, _) = differing_paths(c1, rules, &p1, &cand);
            let mut bump = |path: &String, f: &dyn Fn(&mut PathStat)| {
                let key = (group.0, group.1.clone(), group.2, path.clone());
                let s = stats.entry(key).or_insert_with(|| PathStat {
                    module: c1.scope.module,
                    kind: group.1.clone(),
                    protocol: c1.scope.protocol,
                    path: path.clone(),
                    comparisons: 0,
                    raw: 0,
                    noise: 0,
                    covered: true,
                });
                f(s);
            };
            for p in &noise {
                bump(p, &|s| s.noise += 1);
            }
            for p in &uncovered {
                bump(p, &|s| s.covered = false);
            }
            for p in &raw {
                bump(p, &|s| s.raw += 1);
            }
        }
    }
    report.paths = stats
        .into_values()
        .map(|mut s| {
            s.comparisons = groups[&(s.module.as_str(), s.kind.clone(), s.protocol.as_str())];
            s
        })
        .collect();
    report
}

/// The proposed ruleset: the current one, one version up, with a whitelist
/// entry for every noisy path it does not cover yet, and the statistics.
pub fn proposal(report: &ProbeReport, rules: &Ruleset, created_at: &str) -> Option<String> {
    let new: Vec<&PathStat> =
        report.paths.iter().filter(|s| s.noise > 0 && !s.covered && s.path != "/events").collect();
    if new.is_empty() {
        return None;
    }
    let next = rules.file.version + 1;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# PROPOSED by `shadowgate noise-probe` over {} cases ({} module calls).",
        report.cases, report.calls
    );
    let _ = writeln!(out, "# Review, then publish as diff_ruleset_v{next}.toml, add it to CHECKSUMS and move CURRENT.");
    let _ = writeln!(
        out,
        "#\n# raw   = primary vs candidate differences (same context)\n# noise = primary vs primary differences (different contexts)"
    );
    let _ = writeln!(
        out,
        "#\n# module     kind      protocol            path                                 raw  noise  raw%   noise%"
    );
    for s in &report.paths {
        let _ = writeln!(
            out,
            "# {:<10} {:<9} {:<19} {:<36} {:>4} {:>6} {:>5.1} {:>7.1}{}",
            s.module,
            s.kind,
            s.protocol,
            s.path,
            s.raw,
            s.noise,
            100.0 * s.raw_rate(),
            100.0 * s.noise_rate(),
            if s.noise > 0 && !s.covered { "  <- proposed" } else { "" }
        );
    }
    out.push('\n');
    let mut top_level = true;
    for line in rules.text.lines() {
        top_level &= !line.trim_start().starts_with('[');
        if top_level && line.starts_with("version = ") {
            let _ = writeln!(out, "version = {next}");
        } else if top_level && line.starts_with("created_at = ") {
            let _ = writeln!(out, "created_at = \"{created_at}\"");
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    for (i, s) in new.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n[[field_whitelist]]\nid = \"probe-{}-{}\"\npath = \"{}\"\nmodule = \"{}\"\nprotocol = \"{}\"\nkind = \"{}\"\nreason = \"noise-probe: differs between contexts in {} of {} comparisons\"",
            i + 1,
            s.module,
            s.path,
            s.module,
            s.protocol,
            s.kind,
            s.noise,
            s.comparisons
        );
    }
    Some(out)
}
