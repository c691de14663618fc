//! Builds the wasm guest (`guest/`) for `wasm32-unknown-unknown` with its own
//! target dir and embeds it, so one `cargo build` gives a working binary;
//! likewise the demo candidate guest (feature `demo-candidate`). Paths are
//! the workspace's: this crate sits one folder below its root.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().expect("the runtime crate sits inside the workspace").to_path_buf();
    for p in ["core/src", "core/Cargo.toml", "guest/src", "guest/Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let target = env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    build_guest(&root, &target.join("guest"), &[], &out.join("shadowgate_guest.wasm"));
    // The demo candidate: the same guest with one module changed on purpose
    // (its own target dir, so neither build invalidates the other).
    build_guest(
        &root,
        &target.join("guest-candidate"),
        &["--features", "demo-candidate"],
        &out.join("shadowgate_guest_candidate.wasm"),
    );
}

fn build_guest(root: &Path, target_dir: &Path, extra: &[&str], out: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "-p", "shadowgate-guest", "--release", "--target", "wasm32-unknown-unknown"])
        .args(extra)
        .arg("--target-dir")
        .arg(target_dir)
        // The guest is small and hot: optimize it fully, whatever the host profile.
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort");
    // Host-side flags and wrappers (clippy, coverage, target-cpu) must not reach the wasm build.
    for var in
        ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR"]
    {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("could not run cargo to build the wasm guest");
    if !status.success() {
        panic!(
            "building the wasm guest failed; is the target installed? Run `rustup target add wasm32-unknown-unknown` (or `make test`)."
        );
    }
    let wasm = target_dir.join("wasm32-unknown-unknown/release/shadowgate_guest.wasm");
    std::fs::copy(&wasm, out).unwrap_or_else(|e| panic!("copying {}: {e}", wasm.display()));
}
