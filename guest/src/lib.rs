//! The wasm guest: ABI version 1 over `shadowgate_core::dispatch`, with no
//! logic of its own and no imports.
//!
//! Exports (all pointers and lengths are `u32` offsets into `memory`; a
//! `u64` result packs `ptr << 32 | len` of a buffer the host frees with
//! `sg_free` after reading it):
//!
//! - `sg_abi_version() -> u32`
//! - `sg_alloc(len) -> ptr`, `sg_free(ptr, len)`
//! - `sg_call(op, ptr, len) -> u64`: `op` is the position of the op in
//!   `shadowgate_core::dispatch::OPS`; the guest takes ownership of the input
//!   buffer; the result is the JSON envelope.
//! - `sg_stream_open(ptr, len) -> u64` (envelope with the handle),
//!   `sg_stream_feed(handle, ptr, len) -> u64`, `sg_stream_close(handle) -> u64`
//! - `sg_capabilities() -> u64`: the capabilities JSON.
//! - `sg_panic_message() -> u64`: after a trap, the message of the panic
//!   that caused it (empty if none); the buffer is static, not to be freed.

use shadowgate_core::dispatch::{self, ABI_VERSION, CORE_VERSION};
use shadowgate_core::streaming::StreamSession;
use shadowgate_core::{CoreError, ErrorKind};
use std::cell::RefCell;

thread_local! {
    static SESSIONS: RefCell<Vec<Option<StreamSession>>> = const { RefCell::new(Vec::new()) };
}

fn pack(bytes: Vec<u8>) -> u64 {
    let boxed = bytes.into_boxed_slice();
    let len = boxed.len() as u64;
    let ptr = Box::into_raw(boxed) as *mut u8 as usize as u64;
    (ptr << 32) | len
}

/// Takes back a buffer the host filled after `sg_alloc`.
///
/// # Safety
/// `ptr`/`len` must come from `sg_alloc(len)`.
unsafe fn take_input(ptr: u32, len: u32) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    // SAFETY: the caller passes a buffer `sg_alloc(len)` made: a Vec of
    // capacity `len` leaked at `ptr`, which the host filled with `len` bytes.
    unsafe { Vec::from_raw_parts(ptr as usize as *mut u8, len as usize, len as usize) }
}

fn error_envelope(kind: ErrorKind, message: &str) -> Vec<u8> {
    dispatch::envelope(Err(CoreError::new(kind, "", message)))
}

#[unsafe(no_mangle)]
pub extern "C" fn sg_abi_version() -> u32 {
    panic_hook::install();
    ABI_VERSION
}

#[unsafe(no_mangle)]
pub extern "C" fn sg_alloc(len: u32) -> u32 {
    panic_hook::install();
    if len == 0 {
        return 0;
    }
    let mut v = Vec::<u8>::with_capacity(len as usize);
    let ptr = v.as_mut_ptr();
    std::mem::forget(v);
    ptr as usize as u32
}

/// # Safety
/// `ptr`/`len` must come from `sg_alloc(len)` or from a packed result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sg_free(ptr: u32, len: u32) {
    if len != 0 {
        // SAFETY: per the contract above, `ptr` is a leaked Vec or boxed slice of exactly `len` bytes.
        drop(unsafe { Vec::from_raw_parts(ptr as usize as *mut u8, len as usize, len as usize) });
    }
}

/// # Safety
/// `ptr`/`len` must come from `sg_alloc(len)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sg_call(op: u32, ptr: u32, len: u32) -> u64 {
    panic_hook::install();
    // SAFETY: the caller upholds `take_input`'s contract (see above).
    let input = unsafe { take_input(ptr, len) };
    pack(match dispatch::op_name(op) {
        Some(name) => dispatch::dispatch(name, &input),
        None => error_envelope(ErrorKind::UnknownOp, &format!("unknown op code {op}")),
    })
}

/// # Safety
/// `ptr`/`len` must come from `sg_alloc(len)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sg_stream_open(ptr: u32, len: u32) -> u64 {
    panic_hook::install();
    // SAFETY: the caller upholds `take_input`'s contract (see above).
    let input = unsafe { take_input(ptr, len) };
    pack(match dispatch::stream_open(&input) {
        Ok(session) => SESSIONS.with_borrow_mut(|s| {
            let handle = match s.iter().position(Option::is_none) {
                Some(free) => {
                    s[free] = Some(session);
                    free
                }
                None => {
                    s.push(Some(session));
                    s.len() - 1
                }
            };
            dispatch::envelope(Ok(handle.into()))
        }),
        Err(e) => dispatch::envelope(Err(e)),
    })
}

/// # Safety
/// `ptr`/`len` must come from `sg_alloc(len)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sg_stream_feed(handle: u32, ptr: u32, len: u32) -> u64 {
    // SAFETY: the caller upholds `take_input`'s contract (see above).
    let input = unsafe { take_input(ptr, len) };
    pack(SESSIONS.with_borrow_mut(|s| match s.get_mut(handle as usize).and_then(Option::as_mut) {
        Some(session) => dispatch::stream_feed(session, &input),
        None => error_envelope(ErrorKind::UnknownOp, &format!("unknown stream handle {handle}")),
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn sg_stream_close(handle: u32) -> u64 {
    pack(SESSIONS.with_borrow_mut(|s| match s.get_mut(handle as usize).and_then(Option::take) {
        Some(mut session) => dispatch::stream_close(&mut session),
        None => error_envelope(ErrorKind::UnknownOp, &format!("unknown stream handle {handle}")),
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn sg_capabilities() -> u64 {
    panic_hook::install();
    let mut caps = dispatch::capabilities();
    caps["abi"] = ABI_VERSION.into();
    caps["core_version"] = CORE_VERSION.into();
    pack(caps.to_string().into_bytes())
}

#[unsafe(no_mangle)]
pub extern "C" fn sg_panic_message() -> u64 {
    panic_hook::message()
}

/// Records a panic's message in a static buffer, without allocating, so the
/// host can read it after the resulting trap.
mod panic_hook {
    use std::fmt::Write;
    use std::sync::Once;

    const CAP: usize = 1024;

    struct Buf {
        bytes: [u8; CAP],
        len: usize,
    }

    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = CAP - self.len;
            let mut n = s.len().min(room);
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            Ok(())
        }
    }

    static mut BUF: Buf = Buf { bytes: [0; CAP], len: 0 };
    static INSTALL: Once = Once::new();

    pub fn install() {
        INSTALL.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                // SAFETY: wasm32 guests are single-threaded and the hook runs once before abort.
                let buf = unsafe { &mut *std::ptr::addr_of_mut!(BUF) };
                buf.len = 0;
                let _ = write!(buf, "{}", info.payload_as_str().unwrap_or("panic"));
                if let Some(loc) = info.location() {
                    let _ = write!(buf, " at {}:{}", loc.file(), loc.line());
                }
            }));
        });
    }

    pub fn message() -> u64 {
        // SAFETY: see `install`.
        let buf = unsafe { &*std::ptr::addr_of!(BUF) };
        ((buf.bytes.as_ptr() as usize as u64) << 32) | buf.len as u64
    }
}
