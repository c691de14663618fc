//! On-disk cache of precompiled guest artifacts, keyed by the module's
//! SHA-256 and the engine's compatibility hash (wasmtime version and
//! settings), so a restart skips cranelift.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::{Engine, Module};

/// The default cache folder: `$SHADOWGATE_CACHE_DIR`, else `$XDG_CACHE_HOME/shadowgate`, else `~/.cache/shadowgate`.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SHADOWGATE_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("shadowgate"))
}

fn key(engine: &Engine, module_sha256: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let mut d = Sha256::new();
    d.update(module_sha256.as_bytes());
    d.update(h.finish().to_le_bytes());
    shadowgate_core::context::hex(&d.finalize()[..16])
}

/// How the module was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Deserialized from the cache.
    Cached,
    /// Compiled now (and written to the cache when it has one).
    Compiled,
}

/// Loads the compiled module from `dir`, or compiles `bytes` and stores the result.
pub fn load(
    engine: &Engine,
    bytes: &[u8],
    module_sha256: &str,
    dir: Option<&Path>,
) -> wasmtime::Result<(Module, Origin)> {
    let Some(dir) = dir else { return Ok((Module::new(engine, bytes)?, Origin::Compiled)) };
    let path = dir.join(format!("{}.cwasm", key(engine, module_sha256)));
    if path.is_file() {
        // SAFETY: the file was written by `Module::serialize` into our own cache
        // folder, under a key that includes the engine's compatibility hash;
        // wasmtime still checks the header and refuses a mismatched artifact.
        if let Ok(m) = unsafe { Module::deserialize_file(engine, &path) } {
            return Ok((m, Origin::Cached));
        }
    }
    let module = Module::new(engine, bytes)?;
    // The cache is an optimization: failing to write it is not an error.
    if let Ok(artifact) = module.serialize() {
        let tmp =
            dir.join(format!(".{}.{}.tmp", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
        let written = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&tmp, &artifact))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok((module, Origin::Compiled))
}
