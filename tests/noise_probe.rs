//! The noise probe on the sample cases: it finds the context-derived paths,
//! proposes them as the next ruleset version, and the proposal covers them.

use shadowgate::case;
use shadowgate::diff::Ruleset;
use shadowgate::noise_probe::{probe, proposal};
use shadowgate_runtime::{NativeRuntime, WasmConfig, WasmRuntime};
use std::path::Path;

const BARE: &str = "version = 7\ncreated_at = \"2026-11-23T00:00:00Z\"\n[sse_protocol]\nversion = \"sse/1\"\n";

#[test]
fn noise_is_found_proposed_and_then_covered() {
    let cases = case::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("replay/cases")).unwrap();
    assert!(cases.len() >= 10);
    let native = NativeRuntime::new();
    let wasm = WasmRuntime::embedded(WasmConfig::default()).unwrap();
    let bare = Ruleset::parse(BARE, "bare.toml").unwrap();

    let report = probe(&cases, &native, &wasm, &bare);
    assert_eq!(report.unstable_calls, 0, "a repeated context must give identical output");
    assert!(report.paths.iter().all(|p| p.raw == 0), "native and wasm agree on the sample cases: {:?}", report.paths);
    let noisy: Vec<(&str, &str)> =
        report.paths.iter().filter(|p| p.noise > 0).map(|p| (p.kind.as_str(), p.path.as_str())).collect();
    for want in [("response", "/id"), ("response", "/created"), ("stream", "/message/id"), ("stream", "/id")] {
        assert!(noisy.contains(&want), "{want:?} not in {noisy:?}");
    }

    let text = proposal(&report, &bare, "2026-11-23T01:00:00Z").expect("something to propose");
    assert!(text.contains("raw   = primary vs candidate"));
    let proposed = Ruleset::parse(&text, "proposed-v8.toml").unwrap();
    assert_eq!(proposed.file.version, 8);
    let again = probe(&cases, &native, &wasm, &proposed);
    assert!(again.paths.iter().all(|p| p.noise == 0 || p.covered), "{:?}", again.paths);
    assert!(proposal(&again, &proposed, "x").is_none());

    // The published ruleset already covers everything.
    let v1 = Ruleset::load(Some("v1")).unwrap();
    assert!(proposal(&probe(&cases, &native, &wasm, &v1), &v1, "x").is_none());
}
