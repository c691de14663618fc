//! One guest instance in its own `Store`: calls across the ABI, with the
//! deadline and memory cap applied and every failure classified.

use super::epoch::Ticker;
use crate::RuntimeError;
use std::sync::Arc;
use wasmtime::{
    Func, Instance as WasmInstance, InstancePre, Memory, Module, ModuleExport, ResourceLimiter, Store, Trap, TypedFunc,
};

/// Caps memory growth and remembers whether the cap was hit.
pub struct Limiter {
    cap: usize,
    hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// Per-store host state.
pub struct Host {
    limiter: Limiter,
}

/// Deadline and cap applied to every call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Epoch ticks a call may run.
    pub deadline_ticks: u64,
    /// Deadline in milliseconds, for error messages.
    pub deadline_ms: u64,
    /// Linear memory cap in bytes.
    pub memory_bytes: usize,
}

/// A live guest instance.
pub struct Instance {
    store: Store<Host>,
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    free: TypedFunc<(u32, u32), ()>,
    call: TypedFunc<(u32, u32, u32), u64>,
    // Exports used rarely are typed when used, keeping instantiation cheap.
    stream_open: Option<Func>,
    stream_feed: Option<Func>,
    stream_close: Option<Func>,
    panic_message: Option<Func>,
    abi_version: Option<Func>,
    capabilities: Option<Func>,
    limits: Limits,
    ticker: Arc<Ticker>,
    /// Calls served so far (for recycling).
    pub calls: u32,
}

/// The guest's exports, resolved once per module so each instantiation skips
/// the name lookups.
pub struct Exports {
    memory: Option<ModuleExport>,
    alloc: Option<ModuleExport>,
    free: Option<ModuleExport>,
    call: Option<ModuleExport>,
    abi_version: Option<ModuleExport>,
    capabilities: Option<ModuleExport>,
    stream_open: Option<ModuleExport>,
    stream_feed: Option<ModuleExport>,
    stream_close: Option<ModuleExport>,
    panic_message: Option<ModuleExport>,
}

impl Exports {
    /// Resolves the ABI exports of `module` (missing ones are reported at instantiation).
    pub fn new(module: &Module) -> Exports {
        let get = |name| module.get_export_index(name);
        Exports {
            memory: get("memory"),
            alloc: get("sg_alloc"),
            free: get("sg_free"),
            call: get("sg_call"),
            abi_version: get("sg_abi_version"),
            capabilities: get("sg_capabilities"),
            stream_open: get("sg_stream_open"),
            stream_feed: get("sg_stream_feed"),
            stream_close: get("sg_stream_close"),
            panic_message: get("sg_panic_message"),
        }
    }
}

fn func(store: &mut Store<Host>, inst: &WasmInstance, index: &Option<ModuleExport>) -> Option<Func> {
    index.as_ref().and_then(|i| inst.get_module_export(&mut *store, i)).and_then(|e| e.into_func())
}

fn typed<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    store: &Store<Host>,
    func: Option<&Func>,
    name: &str,
) -> Result<TypedFunc<P, R>, String> {
    let func = func.ok_or_else(|| format!("export `{name}` is missing or not a function"))?;
    func.typed::<P, R>(store).map_err(|e| format!("export `{name}`: {e}"))
}

impl Instance {
    /// Instantiates the guest in a fresh store.
    pub fn new(
        pre: &InstancePre<Host>,
        exports: &Exports,
        limits: Limits,
        ticker: &Arc<Ticker>,
    ) -> Result<Instance, String> {
        let mut store =
            Store::new(pre.module().engine(), Host { limiter: Limiter { cap: limits.memory_bytes, hit: false } });
        store.limiter(|h| &mut h.limiter);
        store.set_epoch_deadline(limits.deadline_ticks);
        store.epoch_deadline_trap();
        let inst = pre.instantiate(&mut store).map_err(|e| format!("instantiation failed: {e}"))?;
        let memory = exports
            .memory
            .as_ref()
            .and_then(|i| inst.get_module_export(&mut store, i))
            .and_then(|e| e.into_memory())
            .ok_or("export `memory` is missing or not a memory")?;
        let e = exports;
        let (alloc, free, call) =
            (func(&mut store, &inst, &e.alloc), func(&mut store, &inst, &e.free), func(&mut store, &inst, &e.call));
        Ok(Instance {
            alloc: typed(&store, alloc.as_ref(), "sg_alloc")?,
            free: typed(&store, free.as_ref(), "sg_free")?,
            call: typed(&store, call.as_ref(), "sg_call")?,
            abi_version: func(&mut store, &inst, &e.abi_version),
            capabilities: func(&mut store, &inst, &e.capabilities),
            stream_open: func(&mut store, &inst, &e.stream_open),
            stream_feed: func(&mut store, &inst, &e.stream_feed),
            stream_close: func(&mut store, &inst, &e.stream_close),
            panic_message: func(&mut store, &inst, &e.panic_message),
            store,
            memory,
            limits,
            ticker: ticker.clone(),
            calls: 0,
        })
    }

    /// Whether the instance has every export a stream needs.
    pub fn has_streams(&self) -> bool {
        let s = &self.store;
        typed::<(u32, u32), u64>(s, self.stream_open.as_ref(), "").is_ok()
            && typed::<(u32, u32, u32), u64>(s, self.stream_feed.as_ref(), "").is_ok()
            && typed::<u32, u64>(s, self.stream_close.as_ref(), "").is_ok()
    }

    /// Types a lazily-resolved export, as an ABI error when it does not fit.
    fn lazy<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
        &self,
        f: &Option<Func>,
        name: &str,
    ) -> Result<TypedFunc<P, R>, RuntimeError> {
        match f {
            None => Err(RuntimeError::Unsupported(name.into())),
            Some(f) => typed(&self.store, Some(f), name).map_err(RuntimeError::Abi),
        }
    }

    /// Gives the next calls `deadline_ticks` (the runtime handle's deadline).
    pub fn set_deadline(&mut self, deadline_ticks: u64, deadline_ms: u64) {
        self.limits.deadline_ticks = deadline_ticks;
        self.limits.deadline_ms = deadline_ms;
    }

    fn arm(&mut self) {
        self.store.set_epoch_deadline(self.limits.deadline_ticks);
    }

    /// Classifies a failed call. The instance must be dropped afterwards.
    fn classify(&mut self, err: wasmtime::Error) -> RuntimeError {
        if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return RuntimeError::Deadline(self.limits.deadline_ms);
        }
        if self.store.data().limiter.hit {
            return RuntimeError::MemoryLimit(self.limits.memory_bytes);
        }
        if let Ok(f) = self.lazy::<(), u64>(&self.panic_message, "sg_panic_message") {
            self.arm();
            if let Ok(packed) = f.call(&mut self.store, ())
                && let Ok(msg) = self.read(packed)
                && !msg.is_empty()
            {
                return RuntimeError::Panic(String::from_utf8_lossy(&msg).into_owned());
            }
        }
        let trap = err.downcast_ref::<Trap>().map(|t| t.to_string());
        RuntimeError::Trap(trap.unwrap_or_else(|| err.to_string()))
    }

    /// Copies a guest buffer (`ptr << 32 | len`) out of linear memory.
    fn read(&self, packed: u64) -> Result<Vec<u8>, RuntimeError> {
        let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        self.memory
            .data(&self.store)
            .get(ptr..ptr + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| RuntimeError::Abi(format!("result {ptr}+{len} is outside guest memory")))
    }

    /// Copies a result out and frees it in the guest.
    fn take(&mut self, packed: u64) -> Result<Vec<u8>, RuntimeError> {
        let out = self.read(packed)?;
        let (ptr, len) = ((packed >> 32) as u32, (packed & 0xffff_ffff) as u32);
        self.arm();
        self.free.clone().call(&mut self.store, (ptr, len)).map_err(|e| self.classify(e))?;
        Ok(out)
    }

    /// Copies `input` into a guest buffer from `sg_alloc`.
    fn put(&mut self, input: &[u8]) -> Result<(u32, u32), RuntimeError> {
        let len = u32::try_from(input.len()).map_err(|_| RuntimeError::Abi("input larger than 4 GiB".into()))?;
        if len == 0 {
            return Ok((0, 0));
        }
        self.arm();
        let ptr = self.alloc.clone().call(&mut self.store, len).map_err(|e| self.classify(e))?;
        self.memory
            .write(&mut self.store, ptr as usize, input)
            .map_err(|_| RuntimeError::Abi(format!("sg_alloc returned {ptr}, outside guest memory")))?;
        Ok((ptr, len))
    }

    /// `sg_call(op, input)`.
    pub fn call(&mut self, op: u32, input: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        let ticker = self.ticker.clone();
        let _busy = ticker.busy();
        self.calls += 1;
        let (ptr, len) = self.put(input)?;
        self.arm();
        let packed = self.call.call(&mut self.store, (op, ptr, len)).map_err(|e| self.classify(e))?;
        self.take(packed)
    }

    /// `sg_stream_open(options)`.
    pub fn stream_open(&mut self, options: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        let ticker = self.ticker.clone();
        let _busy = ticker.busy();
        let f = self.lazy::<(u32, u32), u64>(&self.stream_open, "sg_stream_open")?;
        let (ptr, len) = self.put(options)?;
        self.arm();
        let packed = f.call(&mut self.store, (ptr, len)).map_err(|e| self.classify(e))?;
        self.take(packed)
    }

    /// `sg_stream_feed(handle, bytes)`.
    pub fn stream_feed(&mut self, handle: u32, bytes: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        let ticker = self.ticker.clone();
        let _busy = ticker.busy();
        let f = self.lazy::<(u32, u32, u32), u64>(&self.stream_feed, "sg_stream_feed")?;
        let (ptr, len) = self.put(bytes)?;
        self.arm();
        let packed = f.call(&mut self.store, (handle, ptr, len)).map_err(|e| self.classify(e))?;
        self.take(packed)
    }

    /// `sg_stream_close(handle)`.
    pub fn stream_close(&mut self, handle: u32) -> Result<Vec<u8>, RuntimeError> {
        let ticker = self.ticker.clone();
        let _busy = ticker.busy();
        let f = self.lazy::<u32, u64>(&self.stream_close, "sg_stream_close")?;
        self.arm();
        let packed = f.call(&mut self.store, handle).map_err(|e| self.classify(e))?;
        self.take(packed)
    }

    /// `sg_abi_version()`.
    pub fn abi_version(&mut self) -> Result<u32, RuntimeError> {
        let ticker = self.ticker.clone();
        let _busy = ticker.busy();
        self.arm();
        let f = self.lazy::<(), u32>(&self.abi_version, "sg_abi_version")?;
        f.call(&mut self.store, ()).map_err(|e| self.classify(e))
    }

    /// `sg_capabilities()`, as raw JSON bytes.
    pub fn capabilities(&mut self) -> Result<Vec<u8>, RuntimeError> {
        let ticker = self.ticker.clone();
        let _busy = ticker.busy();
        self.arm();
        let f = self.lazy::<(), u64>(&self.capabilities, "sg_capabilities")?;
        let packed = f.call(&mut self.store, ()).map_err(|e| self.classify(e))?;
        self.take(packed)
    }

    /// Current linear memory size in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }
}
