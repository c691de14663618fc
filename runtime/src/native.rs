//! The native runtime: the core linked into the host, through the same
//! dispatch entry point the guest exports.

use crate::{Capabilities, FailedStream, Runtime, RuntimeError, RuntimeKind, Stream};
use shadowgate_core::dispatch;
use shadowgate_core::streaming::StreamSession;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The core, called directly.
#[derive(Debug)]
pub struct NativeRuntime {
    caps: Capabilities,
}

impl Default for NativeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl NativeRuntime {
    /// The native runtime.
    pub fn new() -> NativeRuntime {
        let caps = serde_json::from_value(dispatch::capabilities()).expect("the core's own capabilities parse");
        NativeRuntime { caps }
    }
}

/// Runs `f`, turning a panic into [`RuntimeError::Panic`] (the core should never
/// panic; if it does, the host must not go down with it).
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, RuntimeError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| RuntimeError::Panic(crate::panic_message(p.as_ref())))
}

impl Runtime for NativeRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Native
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn call(&self, op: &str, input: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        guarded(|| dispatch::dispatch(op, input))
    }

    fn open_stream(&self, options: &[u8]) -> Result<Box<dyn Stream>, RuntimeError> {
        match guarded(|| dispatch::stream_open(options))? {
            Ok(session) => Ok(Box::new(NativeStream { session })),
            Err(e) => Ok(Box::new(FailedStream { envelope: dispatch::envelope(Err(e)) })),
        }
    }
}

struct NativeStream {
    session: StreamSession,
}

impl Stream for NativeStream {
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        guarded(|| dispatch::stream_feed(&mut self.session, bytes))
    }

    fn close(mut self: Box<Self>) -> Result<Vec<u8>, RuntimeError> {
        guarded(|| dispatch::stream_close(&mut self.session))
    }
}
