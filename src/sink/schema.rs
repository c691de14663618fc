//! The Arrow schemas of the `diffs` and `cases` tables, the builders that
//! turn records into record batches, and the decoders that turn batches back
//! into rows (for replay and reports). Column names and types are the public
//! contract: README "Parquet tables" documents them.

use crate::case::{Case, UpstreamResponse};
use crate::record::{CaseRow, DiffRecord, Dims, Versions};
use arrow_array::builder::{
    BooleanBuilder, Int32Builder, Int64Builder, ListBuilder, MapBuilder, StringBuilder, TimestampMicrosecondBuilder,
    UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::Value;
use shadowgate_core::{Context, Protocol};
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

/// A table of the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// One row per module comparison.
    Diffs,
    /// One row per sampled, replayable request.
    Cases,
}

impl Table {
    /// Folder name under the data dir.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Diffs => "diffs",
            Table::Cases => "cases",
        }
    }

    /// The table's schema.
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Diffs => DIFFS.clone(),
            Table::Cases => CASES.clone(),
        }
    }
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn timestamp() -> Field {
    Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false)
}

fn string_list() -> DataType {
    ListBuilder::new(StringBuilder::new()).finish().data_type().clone()
}

fn string_map() -> DataType {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()).finish().data_type().clone()
}

/// Dimension columns shared by both tables.
fn dims_fields() -> Vec<Field> {
    vec![
        utf8("request_id", false),
        timestamp(),
        utf8("tenant", false),
        utf8("route", false),
        utf8("endpoint", false),
        utf8("client_protocol", false),
        utf8("upstream_protocol", false),
        utf8("model", false),
        Field::new("stream", DataType::Boolean, false),
        utf8("mode", false),
        utf8("upstream", true),
        Field::new("attempts", DataType::Int32, true),
    ]
}

/// Version columns shared by both tables.
fn version_fields() -> Vec<Field> {
    vec![
        utf8("ruleset_version", false),
        utf8("core_version", false),
        utf8("guest_sha256", false),
        utf8("compat_profile", false),
        utf8("sse_protocol", false),
        utf8("build_version", false),
        utf8("instance_id", false),
    ]
}

static DIFFS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = dims_fields();
    f.extend([
        utf8("runtime_main", false),
        utf8("runtime_shadow", false),
        utf8("module", false),
        utf8("outcome", false),
        utf8("diff_class", true),
        utf8("rule_id", true),
        Field::new("diff_count", DataType::Int64, false),
        Field::new("diff_paths", string_list(), false),
        utf8("summary", false),
        Field::new("truncated", DataType::Boolean, false),
        Field::new("main_events", DataType::Int32, true),
        Field::new("shadow_events", DataType::Int32, true),
        utf8("main_token_digest", true),
        utf8("shadow_token_digest", true),
        Field::new("latency_main_us", DataType::Int64, false),
        Field::new("latency_shadow_us", DataType::Int64, false),
    ]);
    f.extend(version_fields());
    Arc::new(Schema::new(f))
});

static CASES: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = dims_fields();
    f.extend([
        utf8("case_id", false),
        utf8("description", true),
        utf8("request", false),
        utf8("headers", false),
        utf8("upstream_model", true),
        Field::new("upstream_status", DataType::Int32, true),
        utf8("upstream_response", true),
        utf8("upstream_headers", true),
        utf8("upstream_stream", true),
        Field::new("ctx_created", DataType::Int64, false),
        Field::new("ctx_id_seed", DataType::UInt64, false),
        utf8("primary_runtime", false),
        Field::new("primary_outputs", string_map(), false),
        utf8("sampling_reason", false),
        utf8("redaction_version", false),
        utf8("routing", true),
    ]);
    f.extend(version_fields());
    Arc::new(Schema::new(f))
});

#[derive(Default)]
struct DimsBuilder {
    request_id: StringBuilder,
    timestamp: TimestampMicrosecondBuilder,
    tenant: StringBuilder,
    route: StringBuilder,
    endpoint: StringBuilder,
    client_protocol: StringBuilder,
    upstream_protocol: StringBuilder,
    model: StringBuilder,
    stream: BooleanBuilder,
    mode: StringBuilder,
    upstream: StringBuilder,
    attempts: Int32Builder,
}

impl DimsBuilder {
    fn push(&mut self, d: &Dims) {
        self.request_id.append_value(&d.request_id);
        self.timestamp.append_value(d.timestamp_us);
        self.tenant.append_value(&d.tenant);
        self.route.append_value(&d.route);
        self.endpoint.append_value(&d.endpoint);
        self.client_protocol.append_value(d.client_protocol.as_str());
        self.upstream_protocol.append_value(d.upstream_protocol.map_or("", Protocol::as_str));
        self.model.append_value(&d.model);
        self.stream.append_value(d.stream);
        self.mode.append_value(&d.mode);
        self.upstream.append_value(&d.upstream);
        self.attempts.append_value(i32::try_from(d.attempts).unwrap_or(i32::MAX));
    }

    fn finish(&mut self, out: &mut Vec<ArrayRef>) {
        out.push(Arc::new(self.request_id.finish()));
        out.push(Arc::new(self.timestamp.finish().with_timezone("UTC")));
        for b in [
            &mut self.tenant,
            &mut self.route,
            &mut self.endpoint,
            &mut self.client_protocol,
            &mut self.upstream_protocol,
            &mut self.model,
        ] {
            out.push(Arc::new(b.finish()));
        }
        out.push(Arc::new(self.stream.finish()));
        out.push(Arc::new(self.mode.finish()));
        out.push(Arc::new(self.upstream.finish()));
        out.push(Arc::new(self.attempts.finish()));
    }
}

#[derive(Default)]
struct VersionsBuilder {
    cols: [StringBuilder; 7],
}

impl VersionsBuilder {
    fn push(&mut self, ruleset: &str, compat_profile: &str, v: &Versions) {
        let values = [ruleset, &v.core, &v.guest_sha256, compat_profile, &v.sse_protocol, &v.build, &v.instance];
        for (b, x) in self.cols.iter_mut().zip(values) {
            b.append_value(x);
        }
    }

    fn finish(&mut self, out: &mut Vec<ArrayRef>) {
        out.extend(self.cols.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    }
}

/// Rows of the `diffs` table being collected into a batch.
pub struct DiffBatch {
    dims: DimsBuilder,
    runtime_main: StringBuilder,
    runtime_shadow: StringBuilder,
    module: StringBuilder,
    outcome: StringBuilder,
    class: StringBuilder,
    rule: StringBuilder,
    diff_count: Int64Builder,
    paths: ListBuilder<StringBuilder>,
    summary: StringBuilder,
    truncated: BooleanBuilder,
    main_events: Int32Builder,
    shadow_events: Int32Builder,
    main_digest: StringBuilder,
    shadow_digest: StringBuilder,
    latency_main: Int64Builder,
    latency_shadow: Int64Builder,
    versions: VersionsBuilder,
    rows: usize,
}

impl Default for DiffBatch {
    fn default() -> Self {
        DiffBatch {
            dims: DimsBuilder::default(),
            runtime_main: StringBuilder::new(),
            runtime_shadow: StringBuilder::new(),
            module: StringBuilder::new(),
            outcome: StringBuilder::new(),
            class: StringBuilder::new(),
            rule: StringBuilder::new(),
            diff_count: Int64Builder::new(),
            paths: ListBuilder::new(StringBuilder::new()),
            summary: StringBuilder::new(),
            truncated: BooleanBuilder::new(),
            main_events: Int32Builder::new(),
            shadow_events: Int32Builder::new(),
            main_digest: StringBuilder::new(),
            shadow_digest: StringBuilder::new(),
            latency_main: Int64Builder::new(),
            latency_shadow: Int64Builder::new(),
            versions: VersionsBuilder::default(),
            rows: 0,
        }
    }
}

impl DiffBatch {
    /// Adds a record; its summary and paths must already be redacted.
    pub fn push(&mut self, r: &DiffRecord, v: &Versions) {
        let res = &r.result;
        self.dims.push(&r.dims);
        self.runtime_main.append_value(r.runtime_main.as_str());
        self.runtime_shadow.append_value(r.runtime_shadow.as_str());
        self.module.append_value(res.module.as_str());
        self.outcome.append_value(res.outcome.as_str());
        self.class.append_option(res.class.map(|c| c.as_str()));
        self.rule.append_option(res.rule.as_deref());
        self.diff_count.append_value(i64::try_from(res.diff_count).unwrap_or(i64::MAX));
        for p in &res.paths {
            self.paths.values().append_value(p);
        }
        self.paths.append(true);
        self.summary.append_value(res.summary.to_value().to_string());
        self.truncated.append_value(res.truncated);
        let events = res.summary.events();
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        self.main_events.append_option(events.map(|e| count(e.left_events)));
        self.shadow_events.append_option(events.map(|e| count(e.right_events)));
        self.main_digest.append_option(events.map(|e| e.left_token_digest.as_str()));
        self.shadow_digest.append_option(events.map(|e| e.right_token_digest.as_str()));
        self.latency_main.append_value(i64::try_from(r.latency_main_us).unwrap_or(i64::MAX));
        self.latency_shadow.append_value(i64::try_from(r.latency_shadow_us).unwrap_or(i64::MAX));
        self.versions.push(&res.ruleset_version, &r.dims.compat_profile, v);
        self.rows += 1;
    }

    /// Rows collected.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// No rows collected.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The collected rows as a batch; the builder starts over.
    pub fn finish(&mut self) -> RecordBatch {
        let mut c: Vec<ArrayRef> = Vec::with_capacity(DIFFS.fields().len());
        self.dims.finish(&mut c);
        for b in [&mut self.runtime_main, &mut self.runtime_shadow, &mut self.module, &mut self.outcome] {
            c.push(Arc::new(b.finish()));
        }
        c.push(Arc::new(self.class.finish()));
        c.push(Arc::new(self.rule.finish()));
        c.push(Arc::new(self.diff_count.finish()));
        c.push(Arc::new(self.paths.finish()));
        c.push(Arc::new(self.summary.finish()));
        c.push(Arc::new(self.truncated.finish()));
        c.push(Arc::new(self.main_events.finish()));
        c.push(Arc::new(self.shadow_events.finish()));
        c.push(Arc::new(self.main_digest.finish()));
        c.push(Arc::new(self.shadow_digest.finish()));
        c.push(Arc::new(self.latency_main.finish()));
        c.push(Arc::new(self.latency_shadow.finish()));
        self.versions.finish(&mut c);
        self.rows = 0;
        RecordBatch::try_new(DIFFS.clone(), c).expect("diff columns match the diffs schema")
    }
}

/// Rows of the `cases` table being collected into a batch.
pub struct CaseBatch {
    dims: DimsBuilder,
    strings: [StringBuilder; 9],
    status: Int32Builder,
    created: Int64Builder,
    seed: UInt64Builder,
    outputs: MapBuilder<StringBuilder, StringBuilder>,
    tail: [StringBuilder; 3],
    versions: VersionsBuilder,
    rows: usize,
}

impl Default for CaseBatch {
    fn default() -> Self {
        CaseBatch {
            dims: DimsBuilder::default(),
            strings: Default::default(),
            status: Int32Builder::new(),
            created: Int64Builder::new(),
            seed: UInt64Builder::new(),
            outputs: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
            tail: Default::default(),
            versions: VersionsBuilder::default(),
            rows: 0,
        }
    }
}

impl CaseBatch {
    /// Adds a sampled case (already redacted).
    pub fn push(&mut self, r: &CaseRow, v: &Versions) {
        let case = &r.case;
        let ctx = case.context();
        self.dims.push(&r.dims);
        let up = case.upstream_response.as_ref();
        let json = |x: &Value| x.to_string();
        let headers = serde_json::to_string(&case.headers).unwrap_or_default();
        let up_headers = up.map(|u| serde_json::to_string(&u.headers).unwrap_or_default());
        let values: [Option<String>; 6] = [
            Some(case.id.clone()),
            case.description.clone(),
            Some(json(&case.request)),
            Some(headers),
            case.upstream_model.clone(),
            None,
        ];
        for (b, x) in self.strings.iter_mut().zip(values.iter().take(5)) {
            b.append_option(x.as_deref());
        }
        self.status.append_option(up.map(|u| i32::from(u.status)));
        self.strings[5].append_option(up.map(|u| json(&u.body)));
        self.strings[6].append_option(up_headers);
        self.strings[7].append_option(case.upstream_stream.as_deref());
        self.created.append_value(ctx.created);
        self.seed.append_value(ctx.id_seed);
        self.strings[8].append_value(&r.primary_runtime);
        for (k, out) in &r.outputs {
            self.outputs.keys().append_value(k);
            self.outputs.values().append_value(out);
        }
        self.outputs.append(true).expect("map keys and values are pushed in pairs");
        self.tail[0].append_value(&r.sampling_reason);
        self.tail[1].append_value(super::redact::VERSION);
        self.tail[2].append_option(case.routing.as_ref().map(|r| serde_json::to_string(r).unwrap_or_default()));
        self.versions.push(&r.ruleset_version, &r.dims.compat_profile, v);
        self.rows += 1;
    }

    /// Rows collected.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// No rows collected.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The collected rows as a batch; the builder starts over.
    pub fn finish(&mut self) -> RecordBatch {
        let mut c: Vec<ArrayRef> = Vec::with_capacity(CASES.fields().len());
        self.dims.finish(&mut c);
        let [id, desc, request, headers, upstream_model, response, up_headers, stream, runtime] = &mut self.strings;
        for b in [id, desc, request, headers, upstream_model] {
            c.push(Arc::new(b.finish()));
        }
        c.push(Arc::new(self.status.finish()));
        for b in [response, up_headers, stream] {
            c.push(Arc::new(b.finish()));
        }
        c.push(Arc::new(self.created.finish()));
        c.push(Arc::new(self.seed.finish()));
        c.push(Arc::new(runtime.finish()));
        c.push(Arc::new(self.outputs.finish()));
        for b in &mut self.tail {
            c.push(Arc::new(b.finish()));
        }
        self.versions.finish(&mut c);
        self.rows = 0;
        RecordBatch::try_new(CASES.clone(), c).expect("case columns match the cases schema")
    }
}

/// A batch that does not have a table's columns.
#[derive(Debug, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct DecodeError {
    /// Column at fault.
    pub column: String,
    /// What is wrong.
    pub message: String,
}

struct Cols<'a>(&'a RecordBatch);

impl<'a> Cols<'a> {
    fn get(&self, name: &str) -> Result<&'a ArrayRef, DecodeError> {
        self.0.column_by_name(name).ok_or_else(|| DecodeError { column: name.into(), message: "missing".into() })
    }

    fn wrong(name: &str, want: &str) -> DecodeError {
        DecodeError { column: name.into(), message: format!("expected {want}") }
    }

    fn strings(&self, name: &str) -> Result<Vec<Option<String>>, DecodeError> {
        let a = self.get(name)?.as_string_opt::<i32>().ok_or_else(|| Self::wrong(name, "utf8"))?;
        Ok((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i).to_string())).collect())
    }

    fn required(&self, name: &str) -> Result<Vec<String>, DecodeError> {
        Ok(self.strings(name)?.into_iter().map(Option::unwrap_or_default).collect())
    }

    fn i64s(&self, name: &str) -> Result<Vec<Option<i64>>, DecodeError> {
        let a = self.get(name)?;
        if let Some(a) = a.as_primitive_opt::<Int64Type>() {
            return Ok((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))).collect());
        }
        if let Some(a) = a.as_primitive_opt::<TimestampMicrosecondType>() {
            return Ok((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))).collect());
        }
        if let Some(a) = a.as_primitive_opt::<Int32Type>() {
            return Ok((0..a.len()).map(|i| a.is_valid(i).then(|| i64::from(a.value(i)))).collect());
        }
        if let Some(a) = a.as_primitive_opt::<UInt64Type>() {
            return Ok((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i) as i64)).collect());
        }
        Err(Self::wrong(name, "an integer"))
    }

    fn bools(&self, name: &str) -> Result<Vec<bool>, DecodeError> {
        let a = self.get(name)?.as_boolean_opt().ok_or_else(|| Self::wrong(name, "boolean"))?;
        Ok((0..a.len()).map(|i| a.is_valid(i) && a.value(i)).collect())
    }

    fn dims(&self) -> Result<Vec<Dims>, DecodeError> {
        let [request_id, tenant, route, endpoint, client, upstream, model, mode, profile] = [
            "request_id",
            "tenant",
            "route",
            "endpoint",
            "client_protocol",
            "upstream_protocol",
            "model",
            "mode",
            "compat_profile",
        ]
        .map(|n| self.required(n));
        let ts = self.i64s("timestamp")?;
        let stream = self.bools("stream")?;
        // Written since routing plans attempts; older files have neither.
        let served_by = self.strings("upstream").unwrap_or_default();
        let attempts = self.i64s("attempts").unwrap_or_default();
        let mut cols = [request_id?, tenant?, route?, endpoint?, client?, upstream?, model?, mode?, profile?]
            .map(|v| v.into_iter());
        let protocol = |name: &str, s: String| {
            Protocol::parse(&s, "")
                .map_err(|_| DecodeError { column: name.into(), message: format!("unknown protocol {s:?}") })
        };
        (0..self.0.num_rows())
            .map(|i| {
                let mut next = |k: usize| cols[k].next().unwrap_or_default();
                Ok(Dims {
                    request_id: next(0),
                    timestamp_us: ts[i].unwrap_or(0),
                    tenant: next(1),
                    route: next(2),
                    endpoint: next(3),
                    client_protocol: protocol("client_protocol", next(4))?,
                    upstream_protocol: match next(5) {
                        s if s.is_empty() => None,
                        s => Some(protocol("upstream_protocol", s)?),
                    },
                    model: next(6),
                    stream: stream[i],
                    mode: next(7),
                    compat_profile: next(8),
                    upstream: served_by.get(i).cloned().flatten().unwrap_or_default(),
                    attempts: attempts.get(i).copied().flatten().and_then(|a| u32::try_from(a).ok()).unwrap_or(1),
                })
            })
            .collect()
    }
}

/// One row of the `diffs` table, as reports read it.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffRow {
    /// Request dimensions.
    pub dims: Dims,
    /// Runtime that served.
    pub runtime_main: String,
    /// Runtime that shadowed.
    pub runtime_shadow: String,
    /// Module.
    pub module: String,
    /// Outcome name.
    pub outcome: String,
    /// Class of a divergence.
    pub diff_class: Option<String>,
    /// Deciding rule.
    pub rule_id: Option<String>,
    /// Differing paths.
    pub diff_paths: Vec<String>,
    /// The comparison's summary, as JSON (redacted).
    pub summary: String,
    /// Primary latency (µs).
    pub latency_main_us: i64,
    /// Shadow latency (µs).
    pub latency_shadow_us: i64,
    /// Ruleset version.
    pub ruleset_version: String,
    /// Wasm guest SHA-256.
    pub guest_sha256: String,
    /// Native core version.
    pub core_version: String,
}

/// Decodes a `diffs` batch.
pub fn decode_diffs(batch: &RecordBatch) -> Result<Vec<DiffRow>, DecodeError> {
    let c = Cols(batch);
    let dims = c.dims()?;
    let [main, shadow, module, outcome, ruleset, guest, core] =
        ["runtime_main", "runtime_shadow", "module", "outcome", "ruleset_version", "guest_sha256", "core_version"]
            .map(|n| c.required(n));
    let (class, rule) = (c.strings("diff_class")?, c.strings("rule_id")?);
    let summary = c.required("summary")?;
    let (lm, ls) = (c.i64s("latency_main_us")?, c.i64s("latency_shadow_us")?);
    let paths = c.get("diff_paths")?.as_list_opt::<i32>().ok_or_else(|| Cols::wrong("diff_paths", "list<utf8>"))?;
    let mut cols = [main?, shadow?, module?, outcome?, ruleset?, guest?, core?].map(|v| v.into_iter());
    let mut out = Vec::with_capacity(dims.len());
    for (i, d) in dims.into_iter().enumerate() {
        let mut next = |k: usize| cols[k].next().unwrap_or_default();
        let list = paths.value(i);
        let list = list.as_string_opt::<i32>().ok_or_else(|| Cols::wrong("diff_paths", "list<utf8>"))?;
        out.push(DiffRow {
            dims: d,
            runtime_main: next(0),
            runtime_shadow: next(1),
            module: next(2),
            outcome: next(3),
            ruleset_version: next(4),
            guest_sha256: next(5),
            core_version: next(6),
            diff_class: class[i].clone(),
            rule_id: rule[i].clone(),
            diff_paths: (0..list.len()).map(|j| list.value(j).to_string()).collect(),
            summary: summary.get(i).cloned().unwrap_or_default(),
            latency_main_us: lm[i].unwrap_or(0),
            latency_shadow_us: ls[i].unwrap_or(0),
        });
    }
    Ok(out)
}

/// One row of the `cases` table: the replayable case and what the primary produced.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCase {
    /// The request's dimensions, as recorded.
    pub dims: Dims,
    /// The case, as replay runs it.
    pub case: Case,
    /// Runtime whose outputs were recorded.
    pub primary_runtime: String,
    /// Recorded primary output per call name (`compat.request`, …).
    pub outputs: BTreeMap<String, String>,
    /// Why it was kept.
    pub sampling_reason: String,
    /// Versions it was recorded under: ruleset, core, guest, build.
    pub versions: BTreeMap<String, String>,
}

fn parse_json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// Decodes a `cases` batch.
pub fn decode_cases(batch: &RecordBatch) -> Result<Vec<StoredCase>, DecodeError> {
    let c = Cols(batch);
    let dims = c.dims()?;
    let ids = c.required("case_id")?;
    let desc = c.strings("description")?;
    let request = c.required("request")?;
    let headers = c.required("headers")?;
    let upstream_model = c.strings("upstream_model")?;
    let status = c.i64s("upstream_status")?;
    let response = c.strings("upstream_response")?;
    let up_headers = c.strings("upstream_headers")?;
    let stream = c.strings("upstream_stream")?;
    let created = c.i64s("ctx_created")?;
    let seed = c.i64s("ctx_id_seed")?;
    let runtime = c.required("primary_runtime")?;
    let reason = c.required("sampling_reason")?;
    let routing = c.strings("routing").unwrap_or_default();
    let version_names = ["ruleset_version", "core_version", "guest_sha256", "sse_protocol", "build_version"];
    let versions: Vec<Vec<String>> = version_names.iter().map(|n| c.required(n)).collect::<Result<_, _>>()?;
    let outputs = c.get("primary_outputs")?.as_map_opt().ok_or_else(|| Cols::wrong("primary_outputs", "map"))?;
    let mut out = Vec::with_capacity(dims.len());
    for (i, d) in dims.into_iter().enumerate() {
        let entries = outputs.value(i);
        let (k, v) = (entries.column(0).as_string::<i32>(), entries.column(1).as_string::<i32>());
        let case = Case {
            id: ids[i].clone(),
            description: desc[i].clone(),
            client_protocol: d.client_protocol,
            upstream_protocol: d.upstream_protocol.ok_or_else(|| Cols::wrong("upstream_protocol", "a protocol"))?,
            request: parse_json(&request[i]),
            upstream_response: match status[i] {
                None => None,
                Some(s) => Some(UpstreamResponse {
                    status: u16::try_from(s).map_err(|_| Cols::wrong("upstream_status", "an HTTP status"))?,
                    body: response[i].as_deref().map(parse_json).unwrap_or(Value::Null),
                    headers: up_headers[i].as_deref().and_then(|h| serde_json::from_str(h).ok()).unwrap_or_default(),
                }),
            },
            upstream_stream: stream[i].clone(),
            upstream_model: upstream_model[i].clone(),
            tenant: Some(d.tenant.clone()),
            route: Some(d.route.clone()),
            profile: d.compat_profile.split('/').next().filter(|p| !p.is_empty()).map(str::to_string),
            context: Some(Context {
                request_id: d.request_id.clone(),
                created: created[i].unwrap_or(0),
                id_seed: seed[i].unwrap_or(0) as u64,
            }),
            headers: serde_json::from_str(&headers[i]).unwrap_or_default(),
            routing: routing.get(i).cloned().flatten().and_then(|r| serde_json::from_str(&r).ok()),
        };
        out.push(StoredCase {
            dims: d,
            case,
            primary_runtime: runtime[i].clone(),
            outputs: (0..k.len()).map(|j| (k.value(j).to_string(), v.value(j).to_string())).collect(),
            sampling_reason: reason[i].clone(),
            versions: version_names.iter().zip(&versions).map(|(n, col)| (n.to_string(), col[i].clone())).collect(),
        });
    }
    Ok(out)
}
