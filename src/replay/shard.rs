//! Sharded replay: `replay --shard K/N` takes the cases whose id hashes to
//! shard K of N (so N shards cover every case exactly once), and `replay
//! merge` adds the shards' JSON reports up into one report with one verdict.

use super::{ModuleReport, Report, exceeded};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    /// Which shard, from 1.
    pub index: u32,
    /// How many.
    pub count: u32,
}

impl Shard {
    /// Whether the case `id` belongs to this shard (by the first 8 bytes of its SHA-256).
    pub fn holds(&self, id: &str) -> bool {
        let d = Sha256::digest(id.as_bytes());
        let h = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        h % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("{s:?} is not a shard: give K/N with 1 ≤ K ≤ N, e.g. 2/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (k.trim().parse::<u32>().map_err(|_| bad())?, n.trim().parse::<u32>().map_err(|_| bad())?);
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Serialize for Shard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Shard, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Reports that cannot be added up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MergeError(pub String);

fn same<'a>(reports: &'a [Report], what: &str, get: impl Fn(&'a Report) -> String) -> Result<String, MergeError> {
    let first = get(&reports[0]);
    match reports.iter().map(&get).find(|v| *v != first) {
        Some(other) => Err(MergeError(format!("the reports differ in {what}: {first} and {other}"))),
        None => Ok(first),
    }
}

/// Checks that sharded reports are the N shards of one replay, each once.
fn check_shards(reports: &[Report]) -> Result<(), MergeError> {
    let shards: Vec<Option<Shard>> = reports.iter().map(|r| r.shard).collect();
    if shards.iter().all(Option::is_none) {
        return Ok(());
    }
    let Some(n) = shards.iter().flatten().map(|s| s.count).next() else { return Ok(()) };
    let mut seen = BTreeSet::new();
    for s in &shards {
        let s = s.ok_or_else(|| MergeError("some reports are of one shard and some of the whole input".into()))?;
        if s.count != n {
            return Err(MergeError(format!("shard {s} is not one of {n}")));
        }
        if !seen.insert(s.index) {
            return Err(MergeError(format!("shard {s} is given twice")));
        }
    }
    let missing: Vec<String> = (1..=n).filter(|k| !seen.contains(k)).map(|k| format!("{k}/{n}")).collect();
    if !missing.is_empty() {
        return Err(MergeError(format!("shards missing: {}", missing.join(", "))));
    }
    Ok(())
}

fn merge_module(into: &mut ModuleReport, m: &ModuleReport) {
    into.calls += m.calls;
    into.mismatches += m.mismatches;
    into.errors += m.errors;
    into.regressions += m.regressions;
    for (k, v) in &m.classes {
        *into.classes.entry(k.clone()).or_default() += v;
    }
    for (k, v) in &m.regression_classes {
        *into.regression_classes.entry(k.clone()).or_default() += v;
    }
    for p in &m.top_paths {
        match into.top_paths.iter_mut().find(|q| q.path == p.path) {
            Some(q) => {
                q.count += p.count;
                for e in &p.examples {
                    if q.examples.len() < 3 && !q.examples.contains(e) {
                        q.examples.push(e.clone());
                    }
                }
            }
            None => into.top_paths.push(p.clone()),
        }
    }
    for e in &m.examples {
        if into.examples.len() < 5 && !into.examples.contains(e) {
            into.examples.push(e.clone());
        }
    }
}

/// The reports of one replay's shards (or of several inputs) as one report;
/// the thresholds, ruleset and candidate must be the same in all.
pub fn merge(reports: Vec<Report>) -> Result<Report, MergeError> {
    if reports.is_empty() {
        return Err(MergeError("no reports to merge".into()));
    }
    check_shards(&reports)?;
    same(&reports, "ruleset", |r| r.ruleset.clone())?;
    same(&reports, "thresholds", |r| r.thresholds.to_string())?;
    same(&reports, "candidate guest", |r| r.versions["candidate"]["guest_sha256"].to_string())?;
    let baseline_outputs = reports.iter().any(|r| r.baseline_outputs);
    let mut modules: BTreeMap<shadowgate_core::Module, ModuleReport> = BTreeMap::new();
    for m in reports.iter().flat_map(|r| &r.modules) {
        match modules.get_mut(&m.module) {
            Some(into) => merge_module(into, m),
            None => drop(modules.insert(m.module, m.clone())),
        }
    }
    let modules: Vec<ModuleReport> = modules
        .into_values()
        .map(|mut m| {
            let rate = |n: u64| if m.calls == 0 { 0.0 } else { n as f64 / m.calls as f64 };
            (m.diff_rate, m.error_rate) = (rate(m.mismatches), rate(m.errors));
            m.regression_rate = if baseline_outputs { rate(m.regressions) } else { 0.0 };
            m.top_paths.sort_by(|a, b| b.count.cmp(&a.count).then(a.path.cmp(&b.path)));
            m.top_paths.truncate(10);
            m
        })
        .collect();
    let limit = |k: &str| reports[0].thresholds[k].as_f64().unwrap_or(0.0);
    let exceeded = exceeded(&modules, limit("max_diff_rate"), limit("max_error_rate"));
    let mut baseline: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &reports {
        for (k, vs) in r.versions["baseline"].as_object().into_iter().flatten() {
            let set = baseline.entry(k.clone()).or_default();
            set.extend(vs.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string));
        }
    }
    let inputs: BTreeSet<&str> = reports.iter().map(|r| r.input.as_str()).collect();
    // The shards ran side by side: the slowest is the wall time.
    let elapsed = reports.iter().map(|r| r.elapsed_s).fold(0.0, f64::max);
    let replayed = reports.iter().map(|r| r.replayed).sum::<usize>();
    let first = &reports[0];
    Ok(Report {
        input: inputs.into_iter().collect::<Vec<_>>().join(", "),
        cases: reports.iter().map(|r| r.cases).sum(),
        replayed,
        failed: reports.iter().flat_map(|r| r.failed.clone()).collect(),
        calls: modules.iter().map(|m| m.calls).sum(),
        baseline_outputs,
        ruleset: first.ruleset.clone(),
        versions: json!({"native": first.versions["native"], "candidate": first.versions["candidate"], "baseline": baseline}),
        thresholds: first.thresholds.clone(),
        modules,
        exceeded,
        shard: None,
        elapsed_s: elapsed,
        cases_per_s: replayed as f64 / elapsed.max(1e-9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_cover_every_id_exactly_once() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "2", "a/b", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let shards: Vec<Shard> = (1..=4).map(|k| Shard { index: k, count: 4 }).collect();
        let mut sizes = [0; 4];
        for i in 0..2000 {
            let id = format!("req_{i}");
            let holders: Vec<usize> = (0..4).filter(|&k| shards[k].holds(&id)).collect();
            assert_eq!(holders.len(), 1, "{id}");
            sizes[holders[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| (400..600).contains(&n)), "{sizes:?}");
        assert_eq!(serde_json::to_string(&shards[1]).unwrap(), "\"2/4\"");
    }
}
