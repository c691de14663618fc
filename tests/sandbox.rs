//! Sandbox: guests that loop, exhaust memory, trap, panic, break the ABI or
//! report a wrong ABI version each yield their own typed error within the
//! deadline, and the host keeps serving other calls.

use shadowgate_runtime::{LoadError, NativeRuntime, Runtime, RuntimeError, WasmConfig, WasmRuntime, load_guest_file};
use std::path::Path;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_millis(50);

fn guest(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests").join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn config() -> WasmConfig {
    WasmConfig {
        deadline: DEADLINE,
        memory_limit_bytes: 4 << 20,
        max_instances: 8,
        cache_dir: None,
        ..WasmConfig::default()
    }
}

fn load(name: &str) -> Result<WasmRuntime, LoadError> {
    WasmRuntime::new(&guest(name), name, config())
}

/// Runs the misbehaving op twice (a fresh instance replaces the failed one),
/// then a good op, which must still be answered.
fn misbehave(name: &str) -> RuntimeError {
    let rt = load(name).unwrap();
    let start = Instant::now();
    let first = rt.call("routing.resolve", b"{}").unwrap_err();
    let second = rt.call("routing.resolve", b"{}").unwrap_err();
    assert_eq!(first, second, "{name}: the same misbehaviour gives the same error");
    assert!(start.elapsed() < Duration::from_secs(2), "{name}: took {:?}", start.elapsed());
    assert_eq!(rt.call("capabilities", b"").unwrap(), br#"{"ok":"pong"}"#, "{name}: host still serves");
    first
}

#[test]
fn an_endless_loop_hits_the_deadline() {
    let rt = load("loop").unwrap();
    let start = Instant::now();
    assert_eq!(rt.call("routing.resolve", b"{}").unwrap_err(), RuntimeError::Deadline(50));
    let took = start.elapsed();
    assert!(took >= DEADLINE && took < DEADLINE * 10, "stopped after {took:?}");
    assert_eq!(misbehave("loop"), RuntimeError::Deadline(50));
    assert_eq!(rt.stats().deadline, 1);
}

#[test]
fn unbounded_memory_growth_hits_the_cap() {
    assert_eq!(misbehave("grow"), RuntimeError::MemoryLimit(4 << 20));
}

#[test]
fn a_trap_is_a_trap_error() {
    match misbehave("trap") {
        RuntimeError::Trap(msg) => assert!(msg.contains("divide by zero"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_guest_panic_surfaces_with_its_message() {
    match misbehave("panic") {
        RuntimeError::Panic(msg) => {
            assert!(msg.contains("index out of bounds") && msg.contains("openai.rs:42"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn out_of_bounds_results_are_abi_errors() {
    assert!(matches!(misbehave("bad_result"), RuntimeError::Abi(m) if m.contains("outside guest memory")));
}

#[test]
fn incompatible_guests_are_refused_at_load() {
    match load("abi2") {
        Err(LoadError::AbiVersion { found: 2, expected: 1, .. }) => {}
        other => panic!("{:?}", other.err()),
    }
    match load("imports") {
        Err(e @ LoadError::Imports(..)) => assert!(e.to_string().contains("env::clock_ms"), "{e}"),
        other => panic!("{:?}", other.err()),
    }
    let component = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];
    assert!(
        matches!(WasmRuntime::new(&component, "c.wasm", config()), Err(LoadError::NotWasm(_, m)) if m.contains("component"))
    );
}

#[test]
fn guest_paths_are_validated() {
    let dir = std::env::temp_dir().join(format!("sg-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not wasm").unwrap();
    for (path, want) in
        [(dir.join("missing.wasm"), "cannot read"), (dir.clone(), "not a file"), (text, "no \\0asm header")]
    {
        let err = load_guest_file(&path).unwrap_err().to_string();
        assert!(err.contains(want), "{}: {err}", path.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ops_and_features_a_guest_lacks_are_refused_without_calling_it() {
    let rt = load("trap").unwrap();
    assert_eq!(rt.call("compat.request", b"").unwrap_err().kind(), "unsupported");
    assert!(matches!(rt.open_stream(b"{}"), Err(RuntimeError::Unsupported(_))));
    assert_eq!(rt.stats().trap, 0);
}

#[test]
fn misbehaving_guests_do_not_disturb_other_runtimes_meanwhile() {
    let native = NativeRuntime::new();
    let good = WasmRuntime::embedded(WasmConfig { cache_dir: None, ..WasmConfig::default() }).unwrap();
    let looping = load("loop").unwrap();
    std::thread::scope(|s| {
        let bad =
            s.spawn(|| (0..5).map(|_| looping.call("routing.resolve", b"{}").unwrap_err().kind()).collect::<Vec<_>>());
        for _ in 0..200 {
            let a = native.call("tokenizer.count", b"{}\nhello world").unwrap();
            let b = good.call("tokenizer.count", b"{}\nhello world").unwrap();
            assert_eq!(a, b);
        }
        assert_eq!(bad.join().unwrap(), vec!["deadline"; 5]);
    });
}
