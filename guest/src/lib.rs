//! The wasm guest: a thin ABI over `shadowgate_core::dispatch` (see issue: dual runtime).
