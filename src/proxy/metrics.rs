//! Prometheus metrics (`shadowgate_` prefix), served at `/metrics`.

use crate::sink::SinkStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use shadowgate_core::Module;
use shadowgate_runtime::WasmStats;
use std::sync::atomic::AtomicU64;

/// Labels of a served request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `openai-chat` or `anthropic-messages`.
    pub endpoint: String,
    /// Resolved mode (or `stages`).
    pub mode: String,
    /// Primary runtime of the conversion.
    pub runtime: String,
    /// HTTP status.
    pub status: u16,
}

/// A runtime.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuntimeLabels {
    /// `native` or `wasm`.
    pub runtime: String,
}

/// A module in a runtime.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModuleRuntimeLabels {
    /// Module.
    pub module: String,
    /// Runtime.
    pub runtime: String,
}

/// A module.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModuleLabels {
    /// Module.
    pub module: String,
}

/// A comparison outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Module.
    pub module: String,
    /// Outcome.
    pub outcome: String,
}

/// A shadow error kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `trap`, `deadline`, `memory`, `abi`, `panic`, …
    pub kind: String,
}

fn latency() -> Histogram {
    // 20 µs to ~20 s.
    Histogram::new(exponential_buckets(0.00002, 2.0, 20))
}

/// An upstream key and what happened on it (`ok` or a failure class).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// Provider name.
    pub provider: String,
    /// Key name (never the key).
    pub key: String,
    /// `ok`, or the failure class.
    pub class: String,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Requests served.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by primary runtime.
    pub request_seconds: Family<RuntimeLabels, Histogram, fn() -> Histogram>,
    /// Module call latency by runtime (primary and shadow).
    pub module_seconds: Family<ModuleRuntimeLabels, Histogram, fn() -> Histogram>,
    /// Upstream latency (to the response head).
    pub upstream_seconds: Histogram,
    /// Jobs waiting for a shadow worker.
    pub shadow_queue_depth: Gauge,
    /// Shadow jobs dropped because the queue was full or the stream too long.
    pub shadow_dropped: Counter,
    /// Shadow failures by kind.
    pub shadow_errors: Family<KindLabels, Counter>,
    /// Explicit wasm-primary → native fallbacks by module.
    pub fallbacks: Family<ModuleLabels, Counter>,
    /// Comparisons by module and outcome.
    pub comparisons: Family<OutcomeLabels, Counter>,
    /// Guest module load (compile or cache) time.
    pub wasm_load_seconds: Gauge<f64, AtomicU64>,
    /// Guest instances created.
    pub wasm_instantiations: Gauge,
    /// Average instantiation time.
    pub wasm_instantiate_seconds: Gauge<f64, AtomicU64>,
    /// Largest guest linear memory seen.
    pub wasm_memory_bytes: Gauge,
    /// Epoch ticks made (the ticker only ticks while a guest call runs).
    pub wasm_epoch_ticks: Gauge,
    /// Stage index per module (0 shadow … 4 removed).
    pub module_stage: Family<ModuleLabels, Gauge>,
    /// Rolling diff rate per module.
    pub module_diff_rate: Family<ModuleLabels, Gauge<f64, AtomicU64>>,
    /// Rolling shadow error rate per module.
    pub module_error_rate: Family<ModuleLabels, Gauge<f64, AtomicU64>>,
    /// Rolling p95 of shadow-minus-main latency per module (seconds).
    pub module_latency_delta: Family<ModuleLabels, Gauge<f64, AtomicU64>>,
    /// Automatic rollbacks per module.
    pub rollbacks: Family<ModuleLabels, Counter>,
    /// Whether a module's circuit breaker is open (native serves it).
    pub breaker_open: Family<ModuleLabels, Gauge>,
    /// Times a module's breaker opened.
    pub breaker_trips: Family<ModuleLabels, Counter>,
    /// Panics caught in background threads (`shadow`), which then went on.
    pub worker_panics: Family<ThreadLabels, Counter>,
    /// Upstream attempts by provider, key and outcome.
    pub upstream_attempts: Family<UpstreamLabels, Counter>,
    /// Retries after a failed attempt, by the failed key and class.
    pub upstream_retries: Family<UpstreamLabels, Counter>,
    /// Retries that went to another target, by the failed key and class.
    pub upstream_failovers: Family<UpstreamLabels, Counter>,
    /// Keys put to rest, by key and class.
    pub upstream_cooldowns: Family<UpstreamLabels, Counter>,
}

/// A background thread's label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThreadLabels {
    /// `shadow`.
    pub thread: String,
}

impl Metrics {
    /// All metrics, registered, with the sink's counters.
    pub fn new(sink: &SinkStats) -> Metrics {
        let mut registry = Registry::with_prefix("shadowgate");
        let m = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency),
            module_seconds: Family::new_with_constructor(latency),
            upstream_seconds: latency(),
            shadow_queue_depth: Gauge::default(),
            shadow_dropped: Counter::default(),
            shadow_errors: Family::default(),
            fallbacks: Family::default(),
            comparisons: Family::default(),
            wasm_load_seconds: Gauge::default(),
            wasm_instantiations: Gauge::default(),
            wasm_instantiate_seconds: Gauge::default(),
            wasm_memory_bytes: Gauge::default(),
            wasm_epoch_ticks: Gauge::default(),
            module_stage: Family::default(),
            module_diff_rate: Family::default(),
            module_error_rate: Family::default(),
            module_latency_delta: Family::default(),
            rollbacks: Family::default(),
            worker_panics: Family::default(),
            breaker_open: Family::default(),
            breaker_trips: Family::default(),
            upstream_attempts: Family::default(),
            upstream_retries: Family::default(),
            upstream_failovers: Family::default(),
            upstream_cooldowns: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("requests", "Requests served, by endpoint, mode, primary runtime and status", m.requests.clone());
        r.register("request_duration_seconds", "Request latency by primary runtime", m.request_seconds.clone());
        r.register("module_duration_seconds", "Module call latency by module and runtime", m.module_seconds.clone());
        r.register("upstream_duration_seconds", "Upstream latency to the response head", m.upstream_seconds.clone());
        r.register("upstream_attempts", "Upstream attempts by provider, key and outcome", m.upstream_attempts.clone());
        r.register("upstream_retries", "Retries after a failed attempt, by key and class", m.upstream_retries.clone());
        r.register("upstream_failovers", "Retries to another target, by key and class", m.upstream_failovers.clone());
        r.register("upstream_cooldowns", "Keys put to rest, by key and class", m.upstream_cooldowns.clone());
        r.register("shadow_queue_depth", "Shadow jobs waiting for a worker", m.shadow_queue_depth.clone());
        r.register(
            "shadow_jobs_dropped",
            "Shadow jobs dropped (queue full or stream over the cap)",
            m.shadow_dropped.clone(),
        );
        r.register("shadow_errors", "Shadow runtime failures by kind", m.shadow_errors.clone());
        r.register("fallbacks", "Explicit wasm-primary to native fallbacks by module", m.fallbacks.clone());
        r.register("comparisons", "Shadow comparisons by module and outcome", m.comparisons.clone());
        r.register("sink_rows_written", "Rows written to Parquet, by table", sink.rows.clone());
        r.register(
            "sink_records_dropped",
            "Records dropped before the sink (channel full), by table",
            sink.dropped.clone(),
        );
        r.register("sink_files_written", "Parquet files made visible, by table", sink.files.clone());
        r.register("sink_rows_failed", "Rows lost to write errors, by table", sink.errors.clone());
        r.register("sink_uploads", "Files uploaded to the object store, by table", sink.uploads.clone());
        r.register(
            "sink_upload_failures",
            "Failed uploads (retried; the file stays in the spool), by table",
            sink.upload_failures.clone(),
        );
        r.register("sink_spool_bytes", "Bytes in the spool waiting for upload", sink.spool_bytes.clone());
        r.register(
            "sink_writer_panics",
            "Sink writer panics (the proxy then fails readiness)",
            sink.writer_panics.clone(),
        );
        r.register("cases_sampled", "Cases kept, by sampling reason", sink.sampled.clone());
        r.register(
            "wasm_load_seconds",
            "Guest module load time (compile or artifact cache)",
            m.wasm_load_seconds.clone(),
        );
        r.register("wasm_instantiations", "Guest instances created", m.wasm_instantiations.clone());
        r.register("wasm_instantiate_seconds", "Average guest instantiation time", m.wasm_instantiate_seconds.clone());
        r.register("wasm_memory_bytes", "Largest guest linear memory seen", m.wasm_memory_bytes.clone());
        r.register("wasm_epoch_ticks", "Epoch ticks made; zero growth while idle", m.wasm_epoch_ticks.clone());
        r.register(
            "module_stage",
            "Stage per module (0 shadow, 1 canary, 2 default, 3 deprecated, 4 removed)",
            m.module_stage.clone(),
        );
        r.register("module_diff_rate", "Rolling diff rate per module", m.module_diff_rate.clone());
        r.register("module_shadow_error_rate", "Rolling shadow error rate per module", m.module_error_rate.clone());
        r.register(
            "module_latency_delta_seconds",
            "Rolling p95 of shadow minus main latency per module",
            m.module_latency_delta.clone(),
        );
        r.register("module_rollbacks", "Automatic rollbacks per module", m.rollbacks.clone());
        r.register(
            "breaker_open",
            "Whether a module's circuit breaker is open (1: native serves)",
            m.breaker_open.clone(),
        );
        r.register("breaker_trips", "Times a module's circuit breaker opened", m.breaker_trips.clone());
        r.register(
            "worker_panics",
            "Panics caught in background threads, which were logged and went on",
            m.worker_panics.clone(),
        );
        drop(m.worker_panics.get_or_create(&ThreadLabels { thread: "shadow".into() }));
        // Every per-module and per-table series an alert may watch exists from the start, at zero.
        for module in Module::ALL {
            let labels = ModuleLabels { module: module.as_str().into() };
            drop(m.fallbacks.get_or_create(&labels));
            drop(m.rollbacks.get_or_create(&labels));
            drop(m.breaker_open.get_or_create(&labels));
            drop(m.breaker_trips.get_or_create(&labels));
        }
        for kind in ["deadline", "memory", "panic", "trap", "abi", "unsupported", "unavailable"] {
            drop(m.shadow_errors.get_or_create(&KindLabels { kind: kind.into() }));
        }
        sink.register_tables();
        Metrics { registry, ..m }
    }

    /// Copies the wasm runtime's counters into gauges.
    pub fn observe_wasm(&self, s: &WasmStats) {
        self.wasm_load_seconds.set(s.load_us as f64 / 1e6);
        self.wasm_instantiations.set(s.instantiations as i64);
        if s.instantiations > 0 {
            self.wasm_instantiate_seconds.set(s.instantiate_us as f64 / 1e6 / s.instantiations as f64);
        }
        self.wasm_memory_bytes.set(s.peak_memory_bytes as i64);
        self.wasm_epoch_ticks.set(i64::try_from(s.epoch_ticks).unwrap_or(i64::MAX));
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
