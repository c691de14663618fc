//! Streaming aggregation: rows go in one at a time and are never kept.
//! Memory grows with the groups (dimension values, plot buckets, distinct
//! differing paths), not with the rows; latency percentiles come from a
//! mergeable DDSketch (1% relative accuracy) per group.

use super::rows::RowView;
use super::{DataReport, Delta, Dim, Group, Point, TopPath, VersionsSeen};
use crate::owners::Owners;
use sketches_ddsketch::{Config, DDSketch};
use std::collections::{BTreeMap, HashMap};

/// Distinct (module, path) pairs counted; later new ones go to `other_paths`.
const MAX_PATHS: usize = 10_000;
/// Paths listed in a report.
const TOP_PATHS: usize = 20;
/// Longest example summary kept (bytes).
const MAX_EXAMPLE: usize = 64 * 1024;
/// Bucket widths of the plot (s); each divides the next, so buckets coarsen exactly.
const WIDTHS: [i64; 8] = [1, 10, 60, 300, 900, 3600, 21_600, 86_400];
/// Buckets a plot aims for at most.
const BUCKETS: i64 = 40;

/// The figures of one group as they accumulate.
struct Acc {
    key: Vec<String>,
    comparisons: u64,
    mismatches: u64,
    ignored: u64,
    shadow_errors: u64,
    primary_errors: u64,
    drops: u64,
    deltas: DDSketch,
}

impl Acc {
    fn new(key: Vec<String>) -> Acc {
        Acc {
            key,
            comparisons: 0,
            mismatches: 0,
            ignored: 0,
            shadow_errors: 0,
            primary_errors: 0,
            drops: 0,
            deltas: DDSketch::new(Config::defaults()),
        }
    }

    fn add(&mut self, r: &RowView) {
        match r.outcome {
            "dropped" => {
                self.drops += 1;
                return;
            }
            "mismatch" => self.mismatches += 1,
            "ignored" => self.ignored += 1,
            "shadow_error" | "shadow_timeout" => self.shadow_errors += 1,
            "primary_error" => self.primary_errors += 1,
            _ => {}
        }
        self.comparisons += 1;
        if r.latency_main_us > 0 && r.latency_shadow_us > 0 {
            self.deltas.add(r.latency_shadow_us.saturating_sub(r.latency_main_us) as f64);
        }
    }

    fn finish(self, dims: &[Dim]) -> Group {
        let n = self.comparisons.max(1) as f64;
        let q = |p: f64| self.deltas.quantile(p).ok().flatten().map_or(0, |v| v.round() as i64);
        Group {
            key: dims.iter().zip(&self.key).map(|(d, v)| (d.name().to_string(), v.clone())).collect(),
            comparisons: self.comparisons,
            mismatches: self.mismatches,
            diff_rate: self.mismatches as f64 / n,
            ignored: self.ignored,
            shadow_errors: self.shadow_errors,
            shadow_error_rate: self.shadow_errors as f64 / n,
            primary_errors: self.primary_errors,
            drops: self.drops,
            latency_delta_us: Delta { p50: q(0.50), p95: q(0.95), p99: q(0.99) },
        }
    }
}

/// Groups by a list of dimensions, keyed by their values joined with a unit
/// separator (so a lookup needs no allocation).
struct Grouping {
    dims: Vec<Dim>,
    groups: HashMap<String, Acc>,
    buf: String,
}

impl Grouping {
    fn new(dims: &[Dim]) -> Grouping {
        Grouping { dims: dims.to_vec(), groups: HashMap::new(), buf: String::new() }
    }

    fn add(&mut self, r: &RowView) {
        self.buf.clear();
        for d in &self.dims {
            d.write(r, &mut self.buf);
            self.buf.push('\u{1f}');
        }
        if let Some(acc) = self.groups.get_mut(self.buf.as_str()) {
            acc.add(r);
            return;
        }
        let key = self.buf.split('\u{1f}').take(self.dims.len()).map(str::to_string).collect();
        let mut acc = Acc::new(key);
        acc.add(r);
        self.groups.insert(self.buf.clone(), acc);
    }

    fn finish(self) -> Vec<Group> {
        let mut accs: Vec<Acc> = self.groups.into_values().collect();
        accs.sort_by(|a, b| a.key.cmp(&b.key));
        accs.into_iter().map(|a| a.finish(&self.dims)).collect()
    }
}

/// A differing path's count and its first example.
struct PathAcc {
    count: u64,
    request_id: String,
    summary: Option<String>,
}

/// Builds a [`DataReport`] from rows pushed one at a time.
pub struct Aggregator {
    rows: u64,
    span: Option<(i64, i64)>,
    main: Grouping,
    by_tenant: Grouping,
    by_route: Grouping,
    /// Module → bucket start → point, at `width_s` (never wider than the final width).
    series: BTreeMap<String, BTreeMap<i64, Point>>,
    width_s: i64,
    paths: HashMap<(String, String), PathAcc>,
    other_paths: u64,
    versions: BTreeMap<(String, String, String, String, String), u64>,
    /// Module → day start → (comparisons, mismatches).
    daily: BTreeMap<String, BTreeMap<i64, (u64, u64)>>,
    /// (module, core version, guest SHA-256) → its first row's timestamp.
    first_seen: BTreeMap<(String, String, String), i64>,
}

impl Aggregator {
    /// An empty report grouped by `by`.
    pub fn new(by: &[Dim]) -> Aggregator {
        Aggregator {
            rows: 0,
            span: None,
            main: Grouping::new(by),
            by_tenant: Grouping::new(&[Dim::Tenant, Dim::Module]),
            by_route: Grouping::new(&[Dim::Route, Dim::Module]),
            series: BTreeMap::new(),
            width_s: WIDTHS[0],
            paths: HashMap::new(),
            other_paths: 0,
            versions: BTreeMap::new(),
            daily: BTreeMap::new(),
            first_seen: BTreeMap::new(),
        }
    }

    /// Counts one row.
    pub fn push(&mut self, r: &RowView) {
        self.rows += 1;
        let t = r.timestamp_us;
        let span = self.span.map_or((t, t), |(a, b)| (a.min(t), b.max(t)));
        self.span = Some(span);
        self.main.add(r);
        self.by_tenant.add(r);
        self.by_route.add(r);
        let version = (r.runtime_main, r.runtime_shadow, r.core_version, r.guest_sha256, r.ruleset_version);
        match self
            .versions
            .iter_mut()
            .find(|(k, _)| (k.0.as_str(), k.1.as_str(), k.2.as_str(), k.3.as_str(), k.4.as_str()) == version)
        {
            Some((_, n)) => *n += 1,
            None => {
                let v = version;
                self.versions.insert((v.0.into(), v.1.into(), v.2.into(), v.3.into(), v.4.into()), 1);
            }
        }
        if r.outcome == "dropped" {
            return;
        }
        let seen = self
            .first_seen
            .iter_mut()
            .find(|((m, c, g), _)| (m.as_str(), c.as_str(), g.as_str()) == (r.module, r.core_version, r.guest_sha256));
        match seen {
            Some((_, t0)) => *t0 = (*t0).min(t),
            None => {
                self.first_seen.insert((r.module.into(), r.core_version.into(), r.guest_sha256.into()), t);
            }
        }
        let days = match self.daily.get_mut(r.module) {
            Some(d) => d,
            None => self.daily.entry(r.module.to_string()).or_default(),
        };
        let day = days.entry(super::trend::day_of(t)).or_default();
        day.0 += 1;
        day.1 += u64::from(r.outcome == "mismatch");
        let width = width_for(span);
        if width > self.width_s {
            self.coarsen(width);
        }
        let start = super::trend::floor_to(t, self.width_s * 1_000_000);
        let module = match self.series.get_mut(r.module) {
            Some(m) => m,
            None => self.series.entry(r.module.to_string()).or_default(),
        };
        let p = module.entry(start).or_insert(Point { t_us: start, comparisons: 0, mismatches: 0 });
        p.comparisons += 1;
        if r.outcome == "mismatch" {
            p.mismatches += 1;
            for path in &r.diff_paths {
                self.count_path(r, path);
            }
        }
    }

    fn count_path(&mut self, r: &RowView, path: &str) {
        // The lookup key is built only to probe; it is cheap next to decoding.
        let key = (r.module.to_string(), path.to_string());
        if let Some(p) = self.paths.get_mut(&key) {
            p.count += 1;
        } else if self.paths.len() < MAX_PATHS {
            let summary = r.summary.filter(|s| s.len() <= MAX_EXAMPLE).map(str::to_string);
            self.paths.insert(key, PathAcc { count: 1, request_id: r.request_id.to_string(), summary });
        } else {
            self.other_paths += 1;
        }
    }

    /// Re-buckets the plot at a wider `width_s` (a multiple of the current one).
    fn coarsen(&mut self, width_s: i64) {
        let w = width_s * 1_000_000;
        for pts in self.series.values_mut() {
            let mut wider: BTreeMap<i64, Point> = BTreeMap::new();
            for p in pts.values() {
                let t = super::trend::floor_to(p.t_us, w);
                let q = wider.entry(t).or_insert(Point { t_us: t, comparisons: 0, mismatches: 0 });
                q.comparisons += p.comparisons;
                q.mismatches += p.mismatches;
            }
            *pts = wider;
        }
        self.width_s = width_s;
    }

    /// The report.
    pub fn finish(mut self) -> DataReport {
        let span = self.span.unwrap_or((0, 0));
        let width = width_for(span);
        if width > self.width_s {
            self.coarsen(width);
        }
        let mut paths: Vec<TopPath> = self
            .paths
            .into_iter()
            .map(|((module, path), p)| {
                let summary = p.summary.as_deref().and_then(|s| serde_json::from_str(s).ok());
                let example_diff = summary.and_then(|s| crate::diff::example::render(&s, &path));
                TopPath { module, path, count: p.count, example_request_id: p.request_id, example_diff }
            })
            .collect();
        paths.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.module, &a.path).cmp(&(&b.module, &b.path))));
        paths.truncate(TOP_PATHS);
        DataReport {
            rows: self.rows,
            span_us: span,
            by: self.main.dims.clone(),
            groups: self.main.finish(),
            series: self.series.into_iter().map(|(m, pts)| (m, pts.into_values().collect())).collect(),
            by_tenant: self.by_tenant.finish(),
            by_route: self.by_route.finish(),
            top_paths: paths,
            other_paths: self.other_paths,
            versions: self
                .versions
                .into_iter()
                .map(|((main, shadow, core, guest, ruleset), rows)| VersionsSeen {
                    runtime_main: main,
                    runtime_shadow: shadow,
                    core_version: core,
                    guest_sha256: guest,
                    ruleset_version: ruleset,
                    rows,
                })
                .collect(),
            trend: super::trend::trends(self.daily, &self.first_seen),
            owners: Owners::default(),
        }
    }
}

/// The plot's bucket width (s) for a span: the narrowest giving at most [`BUCKETS`] buckets.
fn width_for((from, to): (i64, i64)) -> i64 {
    let span_s = (to.saturating_sub(from) / 1_000_000).max(1);
    WIDTHS.iter().copied().find(|w| span_s / w <= BUCKETS).unwrap_or(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(t: i64, outcome: &'static str, delta: i64) -> RowView<'static> {
        RowView {
            timestamp_us: t,
            module: "compat",
            tenant: "t",
            route: "r",
            outcome,
            runtime_main: "native",
            runtime_shadow: "wasm",
            latency_main_us: 100,
            latency_shadow_us: 100 + delta,
            ..RowView::default()
        }
    }

    #[test]
    fn percentiles_from_the_sketch_are_within_one_percent() {
        let mut a = Aggregator::new(&[Dim::Module]);
        for i in 1..=10_000 {
            a.push(&view(i, "match", i));
        }
        let d = a.finish().groups[0].latency_delta_us;
        for (got, want) in [(d.p50, 5_000), (d.p95, 9_500), (d.p99, 9_900)] {
            assert!((got - want).abs() <= want / 50, "{got} vs {want}");
        }
    }

    #[test]
    fn negative_deltas_keep_their_sign() {
        let mut a = Aggregator::new(&[Dim::Module]);
        for _ in 0..100 {
            a.push(&view(1, "match", -40));
        }
        let d = a.finish().groups[0].latency_delta_us;
        assert!((-41..=-39).contains(&d.p50), "{d:?}");
    }

    #[test]
    fn buckets_coarsened_while_streaming_equal_buckets_cut_at_the_end() {
        // Rows in time order make the width grow step by step; the result must be
        // the buckets a report over all rows at once would cut.
        let start = 1_700_000_000_000_000;
        let stamps: Vec<i64> = (0..500).map(|i| start + i * 997_000_000).collect();
        let mut a = Aggregator::new(&[Dim::Module]);
        for (i, &t) in stamps.iter().enumerate() {
            a.push(&view(t, if i % 7 == 0 { "mismatch" } else { "match" }, 0));
        }
        let r = a.finish();
        let w = width_for((stamps[0], stamps[499])) * 1_000_000;
        let mut want: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        for (i, &t) in stamps.iter().enumerate() {
            let e = want.entry(t.div_euclid(w) * w).or_default();
            e.0 += 1;
            e.1 += u64::from(i % 7 == 0);
        }
        let got: BTreeMap<i64, (u64, u64)> =
            r.series["compat"].iter().map(|p| (p.t_us, (p.comparisons, p.mismatches))).collect();
        assert_eq!(got, want);
        assert!(got.len() <= 41, "{} buckets", got.len());
    }
}
