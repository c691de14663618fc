//! One guest instance in its own `Store`: calls across the ABI, with the
//! deadline and memory cap applied and every failure classified.

use crate::runtime::RuntimeError;
use wasmtime::{Instance as WasmInstance, InstancePre, Memory, ResourceLimiter, Store, Trap, TypedFunc};

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
    stream_open: Option<TypedFunc<(u32, u32), u64>>,
    stream_feed: Option<TypedFunc<(u32, u32, u32), u64>>,
    stream_close: Option<TypedFunc<u32, u64>>,
    panic_message: Option<TypedFunc<(), u64>>,
    abi_version: TypedFunc<(), u32>,
    capabilities: TypedFunc<(), u64>,
    limits: Limits,
    /// Calls served so far (for recycling).
    pub calls: u32,
}

fn export<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    store: &mut Store<Host>,
    inst: &WasmInstance,
    name: &str,
) -> Result<TypedFunc<P, R>, String> {
    inst.get_typed_func::<P, R>(&mut *store, name).map_err(|e| format!("export `{name}`: {e}"))
}

impl Instance {
    /// Instantiates the guest in a fresh store.
    pub fn new(pre: &InstancePre<Host>, limits: Limits) -> Result<Instance, String> {
        let mut store =
            Store::new(pre.module().engine(), Host { limiter: Limiter { cap: limits.memory_bytes, hit: false } });
        store.limiter(|h| &mut h.limiter);
        store.set_epoch_deadline(limits.deadline_ticks);
        store.epoch_deadline_trap();
        let inst = pre.instantiate(&mut store).map_err(|e| format!("instantiation failed: {e}"))?;
        let memory = inst.get_memory(&mut store, "memory").ok_or("export `memory` is missing")?;
        Ok(Instance {
            alloc: export(&mut store, &inst, "sg_alloc")?,
            free: export(&mut store, &inst, "sg_free")?,
            call: export(&mut store, &inst, "sg_call")?,
            abi_version: export(&mut store, &inst, "sg_abi_version")?,
            capabilities: export(&mut store, &inst, "sg_capabilities")?,
            stream_open: export(&mut store, &inst, "sg_stream_open").ok(),
            stream_feed: export(&mut store, &inst, "sg_stream_feed").ok(),
            stream_close: export(&mut store, &inst, "sg_stream_close").ok(),
            panic_message: export(&mut store, &inst, "sg_panic_message").ok(),
            store,
            memory,
            limits,
            calls: 0,
        })
    }

    /// Whether the instance has every export a stream needs.
    pub fn has_streams(&self) -> bool {
        self.stream_open.is_some() && self.stream_feed.is_some() && self.stream_close.is_some()
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
        if let Some(f) = self.panic_message.clone() {
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
        self.calls += 1;
        let (ptr, len) = self.put(input)?;
        self.arm();
        let f = self.call.clone();
        let packed = f.call(&mut self.store, (op, ptr, len)).map_err(|e| self.classify(e))?;
        self.take(packed)
    }

    /// `sg_stream_open(options)`.
    pub fn stream_open(&mut self, options: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        let f = self.stream_open.clone().ok_or_else(|| RuntimeError::Unsupported("streams".into()))?;
        let (ptr, len) = self.put(options)?;
        self.arm();
        let packed = f.call(&mut self.store, (ptr, len)).map_err(|e| self.classify(e))?;
        self.take(packed)
    }

    /// `sg_stream_feed(handle, bytes)`.
    pub fn stream_feed(&mut self, handle: u32, bytes: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        let f = self.stream_feed.clone().ok_or_else(|| RuntimeError::Unsupported("streams".into()))?;
        let (ptr, len) = self.put(bytes)?;
        self.arm();
        let packed = f.call(&mut self.store, (handle, ptr, len)).map_err(|e| self.classify(e))?;
        self.take(packed)
    }

    /// `sg_stream_close(handle)`.
    pub fn stream_close(&mut self, handle: u32) -> Result<Vec<u8>, RuntimeError> {
        let f = self.stream_close.clone().ok_or_else(|| RuntimeError::Unsupported("streams".into()))?;
        self.arm();
        let packed = f.call(&mut self.store, handle).map_err(|e| self.classify(e))?;
        self.take(packed)
    }

    /// `sg_abi_version()`.
    pub fn abi_version(&mut self) -> Result<u32, RuntimeError> {
        self.arm();
        let f = self.abi_version.clone();
        f.call(&mut self.store, ()).map_err(|e| self.classify(e))
    }

    /// `sg_capabilities()`, as raw JSON bytes.
    pub fn capabilities(&mut self) -> Result<Vec<u8>, RuntimeError> {
        self.arm();
        let f = self.capabilities.clone();
        let packed = f.call(&mut self.store, ()).map_err(|e| self.classify(e))?;
        self.take(packed)
    }

    /// Current linear memory size in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }
}
