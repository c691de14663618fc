//! The shadow executor: re-runs the same module calls on the same bytes in
//! the other runtime, off the request path. A bounded queue feeds a fixed
//! pool of worker threads; a full queue drops the job (counted), never
//! blocks. Results go to the record channel, also bounded.

use super::metrics::{KindLabels, Metrics, ModuleRuntimeLabels, OutcomeLabels, ThreadLabels};
use super::recorder::{Exchange, Recorder};
use super::stages::ModuleStages;
use crate::diff::{DiffResult, Differ, Outcome};
use crate::plan::{self, ModuleCall};
use crate::record::{DiffRecord, Dims};
use crate::sink::{SinkRecord, SinkSender};
use serde::{Deserialize, Serialize};
use shadowgate_core::Module;
use shadowgate_runtime::{Runtime, RuntimeError, RuntimeKind, Runtimes};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// One call to shadow.
#[derive(Debug, Clone)]
pub struct ShadowCall {
    /// The call, with its exact input.
    pub call: ModuleCall,
    /// Runtime that served (or serves, when `primary_output` is `None`).
    pub primary: RuntimeKind,
    /// Runtime that shadows.
    pub shadow: RuntimeKind,
    /// What the primary produced; `None`: the worker runs the primary too (calls not needed to serve).
    pub primary_output: Option<Vec<u8>>,
    /// Primary latency (µs), when it ran on the request path.
    pub primary_us: u64,
}

/// A call to shadow that the worker builds first (see [`plan::Deferred`]).
#[derive(Debug, Clone)]
pub struct DeferredCall {
    /// What to build.
    pub call: plan::Deferred,
    /// Runtime that serves.
    pub primary: RuntimeKind,
    /// Runtime that shadows.
    pub shadow: RuntimeKind,
}

impl DeferredCall {
    /// The call, built; both runtimes run in the worker.
    pub fn build(&self) -> ShadowCall {
        ShadowCall {
            call: self.call.build(),
            primary: self.primary,
            shadow: self.shadow,
            primary_output: None,
            primary_us: 0,
        }
    }
}

/// A request's shadow work.
#[derive(Debug, Clone)]
pub struct ShadowJob {
    /// The request.
    pub dims: Arc<Dims>,
    /// Its calls.
    pub calls: Vec<ShadowCall>,
    /// Its calls still to build, run after `calls`.
    pub deferred: Vec<DeferredCall>,
    /// The exchange, for case sampling.
    pub exchange: Option<Box<Exchange>>,
}

/// The executor.
pub struct Shadow {
    tx: Mutex<Option<SyncSender<ShadowJob>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    records: SinkSender,
    metrics: Arc<Metrics>,
}

fn timed(rt: &dyn Runtime, call: &ModuleCall) -> (Result<Vec<u8>, RuntimeError>, u64) {
    let start = Instant::now();
    let r = plan::execute(rt, call);
    (r, start.elapsed().as_micros() as u64)
}

/// Runs one shadow call and compares: the record for it.
pub fn run_call(rts: &Runtimes, differ: &Differ, dims: &Arc<Dims>, c: &ShadowCall, metrics: &Metrics) -> DiffRecord {
    let module = c.call.module();
    let (primary, primary_us) = match &c.primary_output {
        Some(out) => (Ok(out.clone()), c.primary_us),
        None => timed(rts.get(c.primary), &c.call),
    };
    let (shadow, shadow_us) = timed(rts.get(c.shadow), &c.call);
    for (kind, us) in [(c.shadow, shadow_us), (c.primary, primary_us)].into_iter().take(if c.primary_output.is_some() {
        1
    } else {
        2
    }) {
        metrics
            .module_seconds
            .get_or_create(&ModuleRuntimeLabels { module: module.as_str().into(), runtime: kind.as_str().into() })
            .observe(us as f64 / 1e6);
    }
    let version = differ.ruleset().version();
    let result = match (primary, shadow) {
        (Ok(p), Ok(s)) => plan::compare(differ, &c.call, &p, &s),
        (Err(e), _) => DiffResult::failed(module, Outcome::PrimaryError, &e.to_string(), &version),
        (_, Err(e)) => {
            metrics.shadow_errors.get_or_create(&KindLabels { kind: e.kind().into() }).inc();
            let outcome =
                if matches!(e, RuntimeError::Deadline(_)) { Outcome::ShadowTimeout } else { Outcome::ShadowError };
            DiffResult::failed(module, outcome, &e.to_string(), &version)
        }
    };
    DiffRecord {
        dims: dims.clone(),
        result,
        runtime_main: c.primary,
        runtime_shadow: c.shadow,
        latency_main_us: primary_us,
        latency_shadow_us: shadow_us,
    }
}

/// Sends a record without blocking; a full channel drops it (counted).
pub fn emit(records: &SinkSender, metrics: &Metrics, r: DiffRecord) {
    metrics
        .comparisons
        .get_or_create(&OutcomeLabels {
            module: r.result.module.as_str().into(),
            outcome: r.result.outcome.as_str().into(),
        })
        .inc();
    records.send(SinkRecord::Diff(r));
}

impl Shadow {
    /// Starts `cfg.workers` threads behind a queue of `cfg.queue_size` jobs.
    pub fn start(
        cfg: &ShadowConfig,
        rts: Runtimes,
        differ: Arc<Differ>,
        records: SinkSender,
        recorder: Arc<Recorder>,
        stages: Arc<ModuleStages>,
        metrics: Arc<Metrics>,
    ) -> Shadow {
        let (workers, nice) = (cfg.workers, cfg.nice);
        let (tx, rx) = sync_channel::<ShadowJob>(cfg.queue_size);
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..workers)
            .map(|i| {
                let (rx, rts, differ, records, metrics) =
                    (rx.clone(), rts.clone(), differ.clone(), records.clone(), metrics.clone());
                let (recorder, stages) = (recorder.clone(), stages.clone());
                std::thread::Builder::new()
                    .name(format!("shadowgate-shadow-{i}"))
                    .spawn(move || {
                        lower_priority(nice);
                        worker(&rx, &rts, &differ, &records, &recorder, &stages, &metrics)
                    })
                    .expect("spawning a shadow worker")
            })
            .collect();
        Shadow { tx: Mutex::new(Some(tx)), workers: Mutex::new(handles), records, metrics }
    }

    /// Queues a job; when the queue is full the job is dropped, counted, and
    /// each of its calls recorded as `dropped` (so reports show the gap).
    pub fn submit(&self, job: ShadowJob) -> bool {
        let guard = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = guard.as_ref() else { return false };
        match tx.try_send(job) {
            Ok(()) => {
                self.metrics.shadow_queue_depth.inc();
                true
            }
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                drop(guard);
                self.metrics.shadow_dropped.inc();
                let calls = job.calls.iter().map(|c| (c.call.module(), c.primary, c.shadow, c.primary_us));
                let deferred = job.deferred.iter().map(|d| (d.call.module(), d.primary, d.shadow, 0));
                for (module, primary, shadow, primary_us) in calls.chain(deferred) {
                    let record = DiffRecord {
                        dims: job.dims.clone(),
                        result: DiffResult::failed(module, Outcome::Dropped, "shadow queue full", ""),
                        runtime_main: primary,
                        runtime_shadow: shadow,
                        latency_main_us: primary_us,
                        latency_shadow_us: 0,
                    };
                    emit(&self.records, &self.metrics, record);
                }
                false
            }
        }
    }

    /// Stops taking jobs and waits until the queued ones are done.
    pub fn drain(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        for h in self.workers.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = h.join();
        }
    }
}

/// Lowers the calling thread's scheduling priority, so that shadow work only
/// takes CPU time the serving threads leave (Linux: nice is per thread).
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority have no memory-safety preconditions; a
    // failure (e.g. not permitted) leaves the priority as it was.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, nice) != 0 {
            tracing::debug!("could not lower the shadow worker's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

fn worker(
    rx: &Mutex<Receiver<ShadowJob>>,
    rts: &Runtimes,
    differ: &Differ,
    records: &SinkSender,
    recorder: &Recorder,
    stages: &ModuleStages,
    metrics: &Metrics,
) {
    loop {
        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        metrics.shadow_queue_depth.dec();
        // A panic in one job (the harness's bug, not the guest's: guest failures are
        // error values) is counted and logged, and the worker goes on with the next.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_job(&job, rts, differ, records, recorder, stages, metrics)
        }));
        if let Err(p) = run {
            metrics.worker_panics.get_or_create(&ThreadLabels { thread: "shadow".into() }).inc();
            tracing::error!(request_id = %job.dims.request_id, panic = %shadowgate_runtime::panic_message(p.as_ref()),
                "a shadow job panicked; the worker goes on");
        }
    }
}

fn run_job(
    job: &ShadowJob,
    rts: &Runtimes,
    differ: &Differ,
    records: &SinkSender,
    recorder: &Recorder,
    stages: &ModuleStages,
    metrics: &Metrics,
) {
    let mut diverged = false;
    let built: Vec<ShadowCall> = job.deferred.iter().map(DeferredCall::build).collect();
    for c in job.calls.iter().chain(&built) {
        let r = run_call(rts, differ, &job.dims, c, metrics);
        diverged |= !r.result.agrees();
        stages.observe(&r);
        emit(records, metrics, r);
    }
    if let Some(ex) = &job.exchange {
        let primary =
            job.calls.iter().find(|c| c.call.module() == Module::Compat).map_or(RuntimeKind::Native, |c| c.primary);
        recorder.record(rts, primary, &job.dims, ex, diverged, records);
    }
}

fn d_queue() -> usize {
    1024
}
fn d_workers() -> usize {
    2
}
fn d_deadline() -> u64 {
    250
}
fn d_memory() -> usize {
    64
}
fn d_stream_cap() -> usize {
    8 << 20
}
fn d_nice() -> i32 {
    10
}

/// Shadow limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// Jobs waiting; more are dropped (counted).
    #[serde(default = "d_queue")]
    pub queue_size: usize,
    /// Worker threads.
    #[serde(default = "d_workers")]
    pub workers: usize,
    /// Deadline per guest call.
    #[serde(default = "d_deadline")]
    pub deadline_ms: u64,
    /// Guest memory cap.
    #[serde(default = "d_memory")]
    pub memory_limit_mb: usize,
    /// Upstream bytes kept per stream for the shadow; longer streams are not shadowed (counted).
    #[serde(default = "d_stream_cap")]
    pub max_stream_bytes: usize,
    /// A candidate guest instead of the embedded one.
    #[serde(default)]
    pub guest: Option<PathBuf>,
    /// Nice value of the worker threads (Linux): shadow work yields the CPU to serving.
    #[serde(default = "d_nice")]
    pub nice: i32,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        ShadowConfig {
            queue_size: d_queue(),
            workers: d_workers(),
            deadline_ms: d_deadline(),
            memory_limit_mb: d_memory(),
            max_stream_bytes: d_stream_cap(),
            guest: None,
            nice: d_nice(),
        }
    }
}

impl ShadowConfig {
    /// Checks the pool and queue sizes.
    pub fn validate(&self) -> Result<(), crate::toml_error::Invalid> {
        if self.workers == 0 || self.queue_size == 0 {
            return Err(crate::toml_error::Invalid::new("shadow.workers", "workers and queue_size must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::Ruleset;
    use crate::proxy::config::Config;
    use crate::sink::redact::Redactor;
    use crate::sink::sampling::Sampler;
    use crate::sink::{SinkRecord, SinkStats};
    use shadowgate_core::Protocol;
    use shadowgate_runtime::{Capabilities, NativeRuntime, Stream};

    /// The native core, panicking (outside any guard) on input that contains `boom`.
    struct Boom(NativeRuntime);

    impl Runtime for Boom {
        fn kind(&self) -> RuntimeKind {
            RuntimeKind::Wasm
        }
        fn capabilities(&self) -> &Capabilities {
            self.0.capabilities()
        }
        fn call(&self, op: &str, input: &[u8]) -> Result<Vec<u8>, RuntimeError> {
            assert!(!String::from_utf8_lossy(input).contains("boom"), "a harness bug");
            self.0.call(op, input)
        }
        fn open_stream(&self, options: &[u8]) -> Result<Box<dyn Stream>, RuntimeError> {
            self.0.open_stream(options)
        }
    }

    fn job(text: &str, n: usize) -> ShadowJob {
        let dims = Dims {
            request_id: format!("req_{n}"),
            timestamp_us: 0,
            tenant: "t".into(),
            route: "r".into(),
            endpoint: "/v1/messages".into(),
            client_protocol: Protocol::AnthropicMessages,
            upstream_protocol: Some(Protocol::AnthropicMessages),
            model: "m".into(),
            stream: false,
            mode: "shadow".into(),
            compat_profile: String::new(),
            upstream: String::new(),
            attempts: 1,
        };
        let call = ShadowCall {
            call: plan::tokenizer_call(Protocol::AnthropicMessages, text),
            primary: RuntimeKind::Native,
            shadow: RuntimeKind::Wasm,
            primary_output: None,
            primary_us: 0,
        };
        ShadowJob { dims: Arc::new(dims), calls: vec![call], deferred: Vec::new(), exchange: None }
    }

    #[test]
    fn a_job_that_panics_is_counted_and_the_worker_goes_on() {
        let cfg = Config::parse(
            "[[providers]]\nname = \"p\"\nprotocol = \"openai-chat\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
             [[routes]]\nid = \"r\"\nmodel = \"*\"\nprovider = \"p\"\n\
             [modules]\nstate_file = \"/nonexistent/shadowgate-test/modules.json\"\n[shadow]\nworkers = 1\n",
            "t.toml",
        )
        .unwrap();
        let stats = SinkStats::default();
        let metrics = Arc::new(Metrics::new(&stats));
        let (records, rx) = SinkSender::channel(64, stats.clone());
        let recorder = Arc::new(Recorder::new(
            Sampler::new(&cfg.sampling, false),
            Arc::new(Redactor::ephemeral(&[])),
            stats,
            "v1".into(),
        ));
        let stages = Arc::new(ModuleStages::new(&cfg, metrics.clone()).unwrap());
        let rts = Runtimes { native: Arc::new(NativeRuntime::new()), wasm: Arc::new(Boom(NativeRuntime::new())) };
        let differ = Arc::new(Differ::new(Ruleset::load(None).unwrap()));
        let shadow = Shadow::start(&cfg.shadow, rts, differ, records, recorder, stages, metrics.clone());
        assert!(shadow.submit(job("boom", 1)));
        assert!(shadow.submit(job("a fine sentence", 2)));
        shadow.drain();
        let got: Vec<SinkRecord> = rx.try_iter().collect();
        assert_eq!(got.len(), 1, "the second job still ran");
        assert!(matches!(&got[0], SinkRecord::Diff(d) if d.dims.request_id == "req_2" && d.result.agrees()));
        assert_eq!(metrics.worker_panics.get_or_create(&ThreadLabels { thread: "shadow".into() }).get(), 1);
    }
}
