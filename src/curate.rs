//! `baseline curate`: a stable baseline of N cases from recorded production
//! cases, stratified so the long tail is in it.
//!
//! Each case falls in a stratum: model, client and upstream protocol, tool
//! use (none / tools / parallel calls), streaming, route, and outcome (the
//! worst comparison of the request, or the upstream's error). Cases whose
//! redacted request is the same (a SHA-256 of its canonical JSON: keys
//! sorted) count once. Every stratum gets one case first (when N allows);
//! the rest is shared in proportion to the square root of each stratum's
//! size, so common strata get more but rare ones are not drowned. Within a
//! stratum the cases with the smallest `SHA-256(seed ‖ digest)` are taken:
//! the same inputs and seed give the same baseline, and new traffic changes
//! it only where it must.

use crate::case::Case;
use crate::record::{CaseRow, Versions};
use crate::sink::files::{Rotation, TableFiles, parquet_files, partition_date};
use crate::sink::schema::{CaseBatch, StoredCase, Table, decode_cases};
use crate::sink::store::Location;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// A curation that could not be done.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CurateError(pub String);

/// How a case uses tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolUse {
    /// No tools offered or called.
    None,
    /// Tools offered or one call at a time.
    Tools,
    /// Two or more calls in one message or response.
    Parallel,
}

/// A stratum.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Stratum {
    /// Model the client asked for.
    pub model: String,
    /// Client protocol.
    pub client_protocol: String,
    /// Upstream protocol.
    pub upstream_protocol: String,
    /// Tool use.
    pub tools: ToolUse,
    /// Streaming.
    pub stream: bool,
    /// Route id.
    pub route: String,
    /// `match`, `ignored`, `mismatch`, `shadow_error`, `primary_error`, `upstream_error` or `not_compared`.
    pub outcome: String,
}

/// One stratum's figures in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StratumCount {
    /// The stratum.
    #[serde(flatten)]
    pub stratum: Stratum,
    /// Distinct cases recorded in it.
    pub available: usize,
    /// Cases taken.
    pub selected: usize,
}

/// What a curation took and from what (written as `manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    /// Where the cases came from.
    pub source: String,
    /// Cases asked for.
    pub size: usize,
    /// Cases taken.
    pub selected: usize,
    /// Cases read.
    pub recorded: usize,
    /// Cases dropped as duplicates of another's request.
    pub duplicates: usize,
    /// The seed of the order within strata.
    pub seed: u64,
    /// Every stratum, by size (largest first).
    pub strata: Vec<StratumCount>,
    /// The versions and rulesets the taken cases were recorded under, with counts.
    pub versions: BTreeMap<String, BTreeMap<String, usize>>,
    /// The ids taken, sorted.
    pub case_ids: Vec<String>,
}

/// Sorted-key JSON text: the same value gives the same digest whatever its key order.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The content digest of a case's (redacted) request and protocols.
pub fn request_digest(case: &Case) -> [u8; 32] {
    let mut text = format!("{}\n{}\n", case.client_protocol.as_str(), case.upstream_protocol.as_str());
    canonical(&case.request, &mut text);
    Sha256::digest(text.as_bytes()).into()
}

/// Tool calls in one array of messages, content blocks, output items or parts.
fn calls_in(items: &[Value]) -> usize {
    items
        .iter()
        .map(|x| match x.get("type").and_then(Value::as_str) {
            Some("tool_use" | "function_call") => 1,
            _ if x.get("functionCall").is_some() => 1,
            _ => 0,
        })
        .sum()
}

/// The most tool calls any one array under `v` holds (`tool_calls` arrays count every element).
fn most_calls(v: &Value) -> usize {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| match x {
                Value::Array(a) if k == "tool_calls" => a.len().max(a.iter().map(most_calls).max().unwrap_or(0)),
                _ => most_calls(x),
            })
            .max()
            .unwrap_or(0),
        Value::Array(a) => calls_in(a).max(a.iter().map(most_calls).max().unwrap_or(0)),
        _ => 0,
    }
}

/// How a case uses tools: from its request and its upstream answer.
pub fn tool_use(case: &Case) -> ToolUse {
    let body = case.upstream_response.as_ref().map_or(&Value::Null, |r| &r.body);
    let calls = most_calls(&case.request).max(most_calls(body));
    let streamed = case.upstream_stream.as_deref().map_or(0, |s| {
        // Each streamed call opens with its own start event.
        ["\"type\":\"tool_use\"", "\"type\": \"tool_use\"", "\"type\":\"function_call\"", "\"functionCall\""]
            .iter()
            .map(|p| s.matches(p).count())
            .sum()
    });
    let offered = case.request.get("tools").and_then(Value::as_array).is_some_and(|t| !t.is_empty());
    match calls.max(streamed) {
        n if n >= 2 => ToolUse::Parallel,
        n if n == 1 || offered => ToolUse::Tools,
        _ => ToolUse::None,
    }
}

/// How bad an outcome is, for the worst of a request's comparisons.
fn rank(outcome: &str) -> u8 {
    match outcome {
        "match" => 1,
        "ignored" => 2,
        "dropped" => 0,
        "primary_error" => 3,
        "shadow_error" | "shadow_timeout" => 4,
        "mismatch" => 5,
        _ => 0,
    }
}

/// The worst comparison outcome of each of `ids` in the `diffs` table (absent: never compared).
fn outcomes(root: &Location, ids: &HashMap<String, usize>) -> Result<HashMap<String, String>, CurateError> {
    let mut worst: HashMap<String, (u8, String)> = HashMap::new();
    let scanned = crate::sink::scan_table_at(root, "diffs", None, Some(&["request_id", "outcome"]), &mut |b| {
        use arrow_array::Array;
        use arrow_array::cast::AsArray;
        let (Some(id), Some(out)) = (
            b.column_by_name("request_id").and_then(|c| c.as_string_opt::<i32>()),
            b.column_by_name("outcome").and_then(|c| c.as_string_opt::<i32>()),
        ) else {
            return Err("diffs: no request_id and outcome columns".into());
        };
        for i in 0..b.num_rows() {
            if !id.is_valid(i) || !ids.contains_key(id.value(i)) {
                continue;
            }
            let o = out.value(i);
            let e = worst.entry(id.value(i).to_string()).or_insert((0, String::new()));
            if rank(o) > e.0 {
                *e = (rank(o), o.to_string());
            }
        }
        Ok(())
    });
    match scanned {
        Ok(()) => {}
        Err(_) if root.local().is_some_and(|d| !d.join("diffs").is_dir()) => {}
        Err(e) => return Err(CurateError(e)),
    }
    Ok(worst.into_iter().map(|(k, (_, o))| (k, o)).collect())
}

/// A request's outcome stratum: the upstream's error, else its worst comparison.
fn outcome(upstream_failed: bool, worst: Option<&String>) -> String {
    match (upstream_failed, worst) {
        (true, _) => "upstream_error".to_string(),
        (false, Some(o)) if o == "shadow_timeout" => "shadow_error".to_string(),
        (false, Some(o)) => o.clone(),
        (false, None) => "not_compared".to_string(),
    }
}

/// A case's stratum, its outcome still to be filled in.
fn stratum(c: &StoredCase) -> Stratum {
    Stratum {
        model: c.dims.model.clone(),
        client_protocol: c.case.client_protocol.as_str().into(),
        upstream_protocol: c.case.upstream_protocol.as_str().into(),
        tools: tool_use(&c.case),
        stream: c.case.upstream_stream.is_some(),
        route: c.dims.route.clone(),
        outcome: String::new(),
    }
}

/// How many of `sizes` each stratum gets for `n` in all: one each first, the
/// rest by the square root of the size (largest remainders), never more than a stratum holds.
pub fn allocate(sizes: &[usize], n: usize) -> Vec<usize> {
    let total: usize = sizes.iter().sum();
    if n >= total {
        return sizes.to_vec();
    }
    let mut take = vec![0; sizes.len()];
    let mut left = n;
    // One each, largest strata first if n cannot cover them all.
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    for &i in &order {
        if left == 0 {
            break;
        }
        if sizes[i] > 0 {
            take[i] = 1;
            left -= 1;
        }
    }
    while left > 0 {
        let open: Vec<usize> = (0..sizes.len()).filter(|&i| take[i] < sizes[i]).collect();
        let weight: f64 = open.iter().map(|&i| (sizes[i] as f64).sqrt()).sum();
        if open.is_empty() || weight <= 0.0 {
            break;
        }
        let round = left;
        let mut shares: Vec<(usize, usize, f64)> = open
            .iter()
            .map(|&i| {
                let exact = round as f64 * (sizes[i] as f64).sqrt() / weight;
                let room = sizes[i] - take[i];
                let whole = (exact.floor() as usize).min(room);
                (i, whole, exact - exact.floor())
            })
            .collect();
        for &(i, whole, _) in &shares {
            take[i] += whole;
            left -= whole;
        }
        // The remainder one by one, largest fraction first (ties: the larger stratum, then the first).
        shares.sort_by(|a, b| b.2.total_cmp(&a.2).then(sizes[b.0].cmp(&sizes[a.0])).then(a.0.cmp(&b.0)));
        for &(i, _, _) in &shares {
            if left == 0 {
                break;
            }
            if take[i] < sizes[i] {
                take[i] += 1;
                left -= 1;
            }
        }
    }
    take
}

/// What the first pass keeps of a distinct case: its id and where it falls.
struct Seen {
    id: String,
    stratum: Stratum,
    upstream_failed: bool,
}

/// Visits the cases of the `cases` table, batch by batch.
fn each_case(root: &Location, visit: &mut dyn FnMut(StoredCase)) -> Result<(), CurateError> {
    crate::sink::scan_table_at(root, Table::Cases.as_str(), None, None, &mut |b| {
        for c in decode_cases(b).map_err(|e| e.to_string())? {
            visit(c);
        }
        Ok(())
    })
    .map_err(|e| CurateError(format!("{}: {e}", root.display())))
}

/// Curates `size` cases from the `cases` table under `source` into the baseline folder `out`.
/// Two passes over the table: the first keeps an id, digest and stratum per
/// distinct request (not the case), the second reads only the cases taken.
pub fn curate(source: &Path, out: &Path, size: usize, seed: u64) -> Result<Manifest, CurateError> {
    let root = Location::of_path(source).map_err(|e| CurateError(e.to_string()))?;
    let mut recorded = 0usize;
    // One case per request digest: the smallest id keeps it (stable whatever the file order).
    let mut distinct: HashMap<[u8; 32], Seen> = HashMap::new();
    each_case(&root, &mut |c| {
        recorded += 1;
        let d = request_digest(&c.case);
        if distinct.get(&d).is_some_and(|kept| kept.id <= c.case.id) {
            return;
        }
        let upstream_failed = c.case.upstream_response.as_ref().is_some_and(|r| r.status >= 400);
        distinct.insert(d, Seen { id: c.case.id.clone(), stratum: stratum(&c), upstream_failed });
    })?;
    if recorded == 0 {
        return Err(CurateError(format!("{}: no recorded cases", source.display())));
    }
    let duplicates = recorded - distinct.len();
    let ids: HashMap<String, usize> = distinct.values().enumerate().map(|(i, c)| (c.id.clone(), i)).collect();
    let worst = outcomes(&root, &ids)?;
    let mut strata: BTreeMap<Stratum, Vec<([u8; 32], String)>> = BTreeMap::new();
    for (digest, seen) in distinct {
        let order: [u8; 32] = Sha256::new().chain_update(seed.to_be_bytes()).chain_update(digest).finalize().into();
        let mut key = seen.stratum;
        key.outcome = outcome(seen.upstream_failed, worst.get(&seen.id));
        strata.entry(key).or_default().push((order, seen.id));
    }
    let sizes: Vec<usize> = strata.values().map(Vec::len).collect();
    let take = allocate(&sizes, size);
    let mut counts = Vec::new();
    let mut taken: HashSet<String> = HashSet::new();
    for ((s, mut members), k) in strata.into_iter().zip(take) {
        members.sort();
        counts.push(StratumCount { stratum: s, available: members.len(), selected: k });
        taken.extend(members.into_iter().take(k).map(|(_, id)| id));
    }
    counts.sort_by(|a, b| b.available.cmp(&a.available).then_with(|| a.stratum.cmp(&b.stratum)));
    let mut chosen: Vec<StoredCase> = Vec::with_capacity(taken.len());
    each_case(&root, &mut |c| {
        if taken.remove(&c.case.id) {
            chosen.push(c);
        }
    })?;
    chosen.sort_by(|a, b| a.case.id.cmp(&b.case.id));
    let manifest = Manifest {
        source: root.display(),
        size,
        selected: chosen.len(),
        recorded,
        duplicates,
        seed,
        strata: counts,
        versions: version_counts(&chosen),
        case_ids: chosen.iter().map(|c| c.case.id.clone()).collect(),
    };
    write(out, &chosen)?;
    let path = out.join("manifest.json");
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| CurateError(e.to_string()))? + "\n";
    std::fs::write(&path, text).map_err(|e| CurateError(format!("{}: {e}", path.display())))?;
    Ok(manifest)
}

fn version_counts(cases: &[StoredCase]) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for c in cases {
        for (k, v) in &c.versions {
            *out.entry(k.clone()).or_default().entry(v.clone()).or_default() += 1;
        }
    }
    out
}

/// Writes the cases as `<out>/cases/date=…/part-curated-….parquet`, as recorded (versions included), replacing an earlier curation.
fn write(out: &Path, cases: &[StoredCase]) -> Result<(), CurateError> {
    let err = |e: std::io::Error| CurateError(format!("{}: {e}", out.display()));
    let table_dir = out.join(Table::Cases.as_str());
    if table_dir.exists() {
        for f in parquet_files(&table_dir).map_err(err)? {
            std::fs::remove_file(f).map_err(err)?;
        }
    }
    let mut batch = CaseBatch::default();
    for c in cases {
        let v = |k: &str| c.versions.get(k).cloned().unwrap_or_default();
        let versions = Versions {
            core: v("core_version"),
            guest_sha256: v("guest_sha256"),
            sse_protocol: v("sse_protocol"),
            build: v("build_version"),
            instance: "curated".into(),
        };
        let row = CaseRow {
            dims: c.dims.clone(),
            case: c.case.clone(),
            primary_runtime: c.primary_runtime.clone(),
            outputs: c.outputs.clone(),
            sampling_reason: c.sampling_reason.clone(),
            ruleset_version: v("ruleset_version"),
        };
        batch.push(&row, &versions);
    }
    let rotation = Rotation {
        row_group_rows: 65_536,
        max_file_rows: usize::MAX,
        max_file_bytes: usize::MAX,
        max_file_age: Duration::MAX,
    };
    let mut files = TableFiles::new(out, Table::Cases, "curated", rotation, Default::default());
    files.write(partition_date(crate::clock::now_us()), &batch.finish()).map_err(err)?;
    files.close_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn allocation_gives_every_stratum_one_and_the_rest_by_square_root() {
        // One each (4), then 46 by √size: 100, 10 and 1.7 of 111.7 → 41, 4 and 0, and the
        // last one to the largest remainder (0.71, the stratum of 3); the stratum of 1 is full.
        assert_eq!(allocate(&[10_000, 100, 1, 3], 50), vec![42, 5, 1, 2]);
        assert_eq!(allocate(&[5, 2], 100), vec![5, 2]);
        // Fewer cases than strata: the largest strata first.
        assert_eq!(allocate(&[5, 2, 9], 2), vec![1, 0, 1]);
        assert_eq!(allocate(&[3, 3, 3], 9), vec![3, 3, 3]);
        assert_eq!(allocate(&[3, 3, 3], 8).iter().sum::<usize>(), 8);
    }

    /// A case with `request`, answered by `body` (JSON) or, without one, by an empty stream.
    fn case(request: Value, body: Option<Value>) -> Case {
        Case {
            id: "c".into(),
            description: None,
            client_protocol: shadowgate_core::Protocol::OpenAiChat,
            upstream_protocol: shadowgate_core::Protocol::AnthropicMessages,
            request,
            upstream_stream: body.is_none().then(String::new),
            upstream_response: body.map(|body| crate::case::UpstreamResponse {
                status: 200,
                body,
                headers: BTreeMap::new(),
            }),
            upstream_model: None,
            tenant: None,
            route: None,
            profile: None,
            context: None,
            headers: BTreeMap::new(),
            routing: None,
        }
    }

    #[test]
    fn tool_use_reads_each_protocols_calls() {
        let case = |request: Value, body: Value| case(request, Some(body));
        let plain = json!({"messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(tool_use(&case(plain.clone(), json!({"content": [{"type": "text", "text": "x"}]}))), ToolUse::None);
        let offered = json!({"messages": [], "tools": [{"name": "f"}]});
        assert_eq!(tool_use(&case(offered, json!({}))), ToolUse::Tools);
        let two = json!({"content": [{"type": "tool_use", "id": "a"}, {"type": "tool_use", "id": "b"}]});
        assert_eq!(tool_use(&case(plain.clone(), two)), ToolUse::Parallel);
        let openai = json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "a"}, {"id": "b"}]}]});
        assert_eq!(tool_use(&case(openai, json!({}))), ToolUse::Parallel);
        let gemini = json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f"}}]}}]});
        assert_eq!(tool_use(&case(plain, gemini)), ToolUse::Tools);
    }

    #[test]
    fn the_digest_ignores_key_order_but_not_content() {
        let c = |request: Value| case(request, None);
        let a: Value = serde_json::from_str(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"messages":[{"content":"hi","role":"user"}],"model":"m"}"#).unwrap();
        assert_eq!(request_digest(&c(a.clone())), request_digest(&c(b)));
        assert_ne!(request_digest(&c(a)), request_digest(&c(json!({"model": "m", "messages": []}))));
    }
}
