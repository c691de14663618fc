//! The wasm runtime: the guest in wasmtime.
//!
//! One `Engine` (pooling allocator, epoch interruption ticked by a thread
//! while a guest call runs),
//! the module compiled once (precompiled artifact cached on disk), one
//! `InstancePre`, and a `Store` per instance with a memory cap and an epoch
//! deadline. Instances are warm by default: reused across calls, recycled
//! after N calls, and always dropped after any failure. Streams hold an
//! instance for their lifetime.

mod cache;
mod epoch;
mod instance;

use crate::{Capabilities, FailedStream, Runtime, RuntimeError, RuntimeKind, Stream};
use epoch::{TICK, Ticker};
use instance::{Exports, Host, Instance, Limits};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shadowgate_core::dispatch;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, OptLevel, PoolingAllocationConfig};

/// The guest built from `guest/` by this package's build script.
pub static EMBEDDED_GUEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shadowgate_guest.wasm"));

/// The demo candidate: the guest built with the core's `demo-candidate`
/// feature (its tokenizer splits words differently). Used only where asked
/// for: `shadowgate demo` and the replay tests, to show a real divergence.
pub static CANDIDATE_GUEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shadowgate_guest_candidate.wasm"));

/// Largest guest file accepted by `--guest`.
pub const MAX_GUEST_BYTES: u64 = 64 << 20;

/// Whether calls reuse instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceMode {
    /// Reuse instances, recycled after `recycle_after` calls and after any failure.
    Warm,
    /// A fresh instance for every call.
    Fresh,
}

/// Sandbox and pooling settings.
#[derive(Debug, Clone)]
pub struct WasmConfig {
    /// Linear memory cap per instance.
    pub memory_limit_bytes: usize,
    /// Wall-clock deadline per guest call.
    pub deadline: Duration,
    /// Warm instances are replaced after this many calls.
    pub recycle_after: u32,
    /// Instance slots in the pooling allocator (concurrent calls and open streams).
    pub max_instances: u32,
    /// Warm or fresh instances.
    pub instance_mode: InstanceMode,
    /// Where precompiled artifacts are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
}

impl Default for WasmConfig {
    fn default() -> Self {
        WasmConfig {
            memory_limit_bytes: 64 << 20,
            deadline: Duration::from_millis(250),
            recycle_after: 10_000,
            max_instances: 256,
            instance_mode: InstanceMode::Warm,
            cache_dir: cache::default_dir(),
        }
    }
}

/// Why a guest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading the file failed.
    #[error("{path}: {reason}")]
    File {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Not a core wasm module.
    #[error("{0}: not a core WebAssembly module ({1})")]
    NotWasm(String, &'static str),
    /// Compilation or validation failed.
    #[error("{0}: invalid WebAssembly: {1}")]
    Invalid(String, String),
    /// The guest imports something; ABI v1 guests import nothing.
    #[error("{0}: ABI v1 guests import nothing, but this one imports {1}")]
    Imports(String, String),
    /// A required export is missing or has the wrong type.
    #[error("{0}: {1}")]
    Exports(String, String),
    /// The guest speaks another ABI version.
    #[error("{source_name}: guest ABI version {found} is not supported (this host speaks {expected})")]
    AbiVersion {
        /// Guest source.
        source_name: String,
        /// Version the guest reported.
        found: u32,
        /// Version the host speaks.
        expected: u32,
    },
    /// The capabilities are missing or inconsistent.
    #[error("{0}: bad capabilities: {1}")]
    Capabilities(String, String),
    /// The engine could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
}

/// Reads and checks a guest file given with `--guest`: it exists, is a
/// file, is at most [`MAX_GUEST_BYTES`], and starts like a core wasm module.
pub fn load_guest_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    let name = path.display().to_string();
    let err = |reason: String| LoadError::File { path: name.clone(), reason };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(err("not a file".into()));
    }
    if meta.len() > MAX_GUEST_BYTES {
        return Err(err(format!("{} bytes is over the {} byte limit for guests", meta.len(), MAX_GUEST_BYTES)));
    }
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    check_header(&name, &bytes)?;
    Ok(bytes)
}

fn check_header(name: &str, bytes: &[u8]) -> Result<(), LoadError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => {
            Err(LoadError::NotWasm(name.into(), "it is a component; guests are core modules"))
        }
        Some([0, b'a', b's', b'm', ..]) => Err(LoadError::NotWasm(name.into(), "unknown wasm version")),
        _ => Err(LoadError::NotWasm(name.into(), "no \\0asm header")),
    }
}

/// Counters of one runtime, for metrics.
#[derive(Debug, Default)]
struct Counters {
    instantiations: AtomicU64,
    instantiate_ns: AtomicU64,
    deadline: AtomicU64,
    memory: AtomicU64,
    panic: AtomicU64,
    trap: AtomicU64,
    abi: AtomicU64,
    peak_memory: AtomicU64,
}

/// A snapshot of a runtime's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WasmStats {
    /// Instances created.
    pub instantiations: u64,
    /// Total time spent instantiating, in microseconds.
    pub instantiate_us: u64,
    /// Calls stopped at the deadline.
    pub deadline: u64,
    /// Calls stopped at the memory cap.
    pub memory: u64,
    /// Guest panics.
    pub panic: u64,
    /// Other traps.
    pub trap: u64,
    /// ABI violations.
    pub abi: u64,
    /// Largest linear memory seen, in bytes.
    pub peak_memory_bytes: u64,
    /// Module load time (compile or cache load), in microseconds.
    pub load_us: u64,
    /// Whether the module came from the artifact cache.
    pub from_cache: bool,
    /// Epoch ticks so far: the ticker ticks only while a guest call runs.
    pub epoch_ticks: u64,
}

struct Inner {
    pre: InstancePre<Host>,
    exports: Exports,
    limits: Limits,
    mode: InstanceMode,
    recycle_after: u32,
    max_pooled: usize,
    pool: Mutex<Vec<Instance>>,
    caps: Capabilities,
    sha256: String,
    source: String,
    counters: Counters,
    load_us: u64,
    from_cache: bool,
    ticker: Arc<Ticker>,
}

impl Inner {
    fn checkout(&self) -> Result<Instance, RuntimeError> {
        if self.mode == InstanceMode::Warm
            && let Some(i) = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop()
        {
            return Ok(i);
        }
        let start = Instant::now();
        let inst =
            Instance::new(&self.pre, &self.exports, self.limits, &self.ticker).map_err(RuntimeError::Unavailable)?;
        self.counters.instantiations.fetch_add(1, Ordering::Relaxed);
        self.counters.instantiate_ns.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(inst)
    }

    /// Returns a healthy instance to the pool; failed or worn-out ones are dropped.
    fn checkin(&self, inst: Instance) {
        self.counters.peak_memory.fetch_max(inst.memory_bytes() as u64, Ordering::Relaxed);
        if self.mode == InstanceMode::Warm && inst.calls < self.recycle_after {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < self.max_pooled {
                pool.push(inst);
            }
        }
    }

    fn record(&self, e: &RuntimeError) {
        let c = match e {
            RuntimeError::Deadline(_) => &self.counters.deadline,
            RuntimeError::MemoryLimit(_) => &self.counters.memory,
            RuntimeError::Panic(_) => &self.counters.panic,
            RuntimeError::Trap(_) => &self.counters.trap,
            RuntimeError::Abi(_) => &self.counters.abi,
            RuntimeError::Unsupported(_) | RuntimeError::Unavailable(_) => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn with_instance<T>(&self, f: impl FnOnce(&mut Instance) -> Result<T, RuntimeError>) -> Result<T, RuntimeError> {
        let mut inst = self.checkout()?;
        let r = f(&mut inst);
        match &r {
            Ok(_) => self.checkin(inst),
            Err(e) => self.record(e),
        }
        r
    }
}

/// `deadline` in whole epoch ticks, rounded up (at least one).
fn ticks(deadline: Duration) -> u64 {
    u64::try_from(deadline.as_nanos().div_ceil(TICK.as_nanos())).unwrap_or(u64::MAX).max(1)
}

/// The guest, sandboxed in wasmtime. Handles made by [`WasmRuntime::with_deadline`]
/// share the engine, module, instance pool and counters, each with its own deadline.
pub struct WasmRuntime {
    inner: Arc<Inner>,
    deadline: (u64, u64),
}

impl WasmRuntime {
    /// Loads the embedded guest.
    pub fn embedded(config: WasmConfig) -> Result<WasmRuntime, LoadError> {
        WasmRuntime::new(EMBEDDED_GUEST, "embedded", config)
    }

    /// Loads a guest from `path` (validated as in [`load_guest_file`]).
    pub fn from_file(path: &Path, config: WasmConfig) -> Result<WasmRuntime, LoadError> {
        WasmRuntime::new(&load_guest_file(path)?, &path.display().to_string(), config)
    }

    /// Compiles (or loads from the cache), checks the ABI version and the
    /// capabilities, and starts the epoch ticker.
    pub fn new(bytes: &[u8], source: &str, config: WasmConfig) -> Result<WasmRuntime, LoadError> {
        check_header(source, bytes)?;
        let mut cfg = Config::new();
        cfg.epoch_interruption(true);
        cfg.cranelift_opt_level(OptLevel::Speed);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(config.max_instances)
            .total_memories(config.max_instances)
            .total_tables(config.max_instances)
            .max_memory_size(config.memory_limit_bytes);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg).map_err(|e| LoadError::Engine(e.to_string()))?;

        let sha256 = shadowgate_core::context::hex(&Sha256::digest(bytes));
        let start = Instant::now();
        let (module, origin) = cache::load(&engine, bytes, &sha256, config.cache_dir.as_deref())
            .map_err(|e| LoadError::Invalid(source.into(), format!("{e:#}")))?;
        let load_us = start.elapsed().as_micros() as u64;
        let imports: Vec<String> = module.imports().map(|i| format!("{}::{}", i.module(), i.name())).collect();
        if !imports.is_empty() {
            return Err(LoadError::Imports(source.into(), imports.join(", ")));
        }
        let exports = Exports::new(&module);
        let pre = Linker::new(&engine)
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Invalid(source.into(), e.to_string()))?;
        let deadline_ms = config.deadline.as_millis().max(1) as u64;
        let limits =
            Limits { deadline_ticks: ticks(config.deadline), deadline_ms, memory_bytes: config.memory_limit_bytes };

        // The ticker exists before the first guest call, so a guest that
        // loops in its ABI probe is stopped too.
        let ticker = Arc::new(
            Ticker::start(engine.clone())
                .map_err(|e| LoadError::Engine(format!("cannot start the epoch thread: {e}")))?,
        );
        let probe = (|| {
            let mut probe =
                Instance::new(&pre, &exports, limits, &ticker).map_err(|e| LoadError::Exports(source.into(), e))?;
            let found = probe
                .abi_version()
                .map_err(|e| LoadError::Exports(source.into(), format!("sg_abi_version failed: {e}")))?;
            if found != dispatch::ABI_VERSION {
                return Err(LoadError::AbiVersion {
                    source_name: source.into(),
                    found,
                    expected: dispatch::ABI_VERSION,
                });
            }
            let raw = probe.capabilities().map_err(|e| LoadError::Capabilities(source.into(), e.to_string()))?;
            let caps: Capabilities =
                serde_json::from_slice(&raw).map_err(|e| LoadError::Capabilities(source.into(), e.to_string()))?;
            if caps.abi != found {
                return Err(LoadError::Capabilities(
                    source.into(),
                    format!("capabilities say ABI {} but sg_abi_version says {found}", caps.abi),
                ));
            }
            if caps.has_feature("streams") && !probe.has_streams() {
                return Err(LoadError::Capabilities(
                    source.into(),
                    "claims streams but lacks the sg_stream_* exports".into(),
                ));
            }
            Ok((probe, caps))
        })();
        let (probe, caps) = probe?;

        let inner = Arc::new(Inner {
            pre,
            exports,
            limits,
            mode: config.instance_mode,
            recycle_after: config.recycle_after.max(1),
            max_pooled: config.max_instances as usize / 2,
            pool: Mutex::new(Vec::new()),
            caps,
            sha256,
            source: source.into(),
            counters: Counters::default(),
            load_us,
            from_cache: origin == cache::Origin::Cached,
            ticker,
        });
        inner.checkin(probe);
        let deadline = (limits.deadline_ticks, limits.deadline_ms);
        Ok(WasmRuntime { inner, deadline })
    }

    /// Another handle on the same guest whose calls get `deadline` instead.
    pub fn with_deadline(&self, deadline: Duration) -> WasmRuntime {
        let ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX).max(1);
        WasmRuntime { inner: self.inner.clone(), deadline: (ticks(deadline), ms) }
    }

    /// SHA-256 (hex) of the guest module: the wasm guest's version in records.
    pub fn module_sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// Where the guest came from (`embedded` or its path).
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> WasmStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WasmStats {
            instantiations: get(&c.instantiations),
            instantiate_us: get(&c.instantiate_ns) / 1000,
            deadline: get(&c.deadline),
            memory: get(&c.memory),
            panic: get(&c.panic),
            trap: get(&c.trap),
            abi: get(&c.abi),
            peak_memory_bytes: get(&c.peak_memory),
            load_us: self.inner.load_us,
            from_cache: self.inner.from_cache,
            epoch_ticks: self.inner.ticker.ticks(),
        }
    }
}

impl Runtime for WasmRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Wasm
    }

    fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }

    fn call(&self, op: &str, input: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        let code = dispatch::op_code(op).filter(|_| self.inner.caps.has_op(op));
        let code = code.ok_or_else(|| RuntimeError::Unsupported(format!("op {op:?}")))?;
        let (ticks, ms) = self.deadline;
        self.inner.with_instance(|i| {
            i.set_deadline(ticks, ms);
            i.call(code, input)
        })
    }

    fn open_stream(&self, options: &[u8]) -> Result<Box<dyn Stream>, RuntimeError> {
        if !self.inner.caps.has_feature("streams") {
            return Err(RuntimeError::Unsupported("streams".into()));
        }
        let mut inst = self.inner.checkout()?;
        inst.set_deadline(self.deadline.0, self.deadline.1);
        let env = match inst.stream_open(options) {
            Ok(env) => env,
            Err(e) => {
                self.inner.record(&e);
                return Err(e);
            }
        };
        match dispatch::open_envelope(&env).map(|raw| raw.get().parse::<u32>()) {
            Ok(Ok(handle)) => {
                Ok(Box::new(WasmStream { inner: self.inner.clone(), inst: Some(inst), handle, failed: None }))
            }
            Ok(Err(_)) => {
                Err(RuntimeError::Abi(format!("sg_stream_open returned {:?}", String::from_utf8_lossy(&env))))
            }
            Err(_) => {
                self.inner.checkin(inst);
                Ok(Box::new(FailedStream { envelope: env }))
            }
        }
    }
}

/// A stream session inside one guest instance.
struct WasmStream {
    inner: Arc<Inner>,
    inst: Option<Instance>,
    handle: u32,
    failed: Option<RuntimeError>,
}

impl WasmStream {
    fn run(
        &mut self,
        f: impl FnOnce(&mut Instance, u32) -> Result<Vec<u8>, RuntimeError>,
    ) -> Result<Vec<u8>, RuntimeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let inst = self.inst.as_mut().ok_or_else(|| RuntimeError::Unavailable("stream already closed".into()))?;
        let r = f(inst, self.handle);
        if let Err(e) = &r {
            // The instance is suspect after any failure: drop it and its session.
            self.inner.record(e);
            self.inst = None;
            self.failed = Some(e.clone());
        }
        r
    }
}

impl Stream for WasmStream {
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        self.run(|i, h| i.stream_feed(h, bytes))
    }

    fn close(mut self: Box<Self>) -> Result<Vec<u8>, RuntimeError> {
        let out = self.run(|i, h| i.stream_close(h))?;
        if let Some(inst) = self.inst.take() {
            self.inner.checkin(inst);
        }
        Ok(out)
    }
}
