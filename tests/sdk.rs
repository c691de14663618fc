//! The official OpenAI and Anthropic Python SDKs as real clients of the
//! proxy (non-streaming, streaming, tool calls, errors), in front of the mock.
//! Needs `python3` with `tests/requirements.txt` installed (`make test` does it).

use shadowgate::mock::spawn as spawn_mock;
use shadowgate::proxy::config::Config;
use shadowgate::proxy::{Recording, build, spawn};
use shadowgate::sink::SinkRecord;
use shadowgate_runtime::{WasmConfig, WasmRuntime};
use std::path::Path;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_work_through_the_proxy() {
    let mock = spawn_mock(Vec::new(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/local.toml")).unwrap();
    // The mock's 429s are scripted per request and must reach the SDKs as they are: no retries, no cooldowns.
    let once = "\n[routing]\nretry_on = []\n[routing.cooldown]\nrate_limited_ms = 0\n";
    // A data dir of its own: upstream cooldowns persist there, and other runs' must not leak in.
    let dir = std::env::temp_dir().join(format!("shadowgate-sdk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let text = text
        .replace("127.0.0.1:9000", &mock.to_string())
        .replace("data_dir = \"./shadowgate-data\"", &format!("data_dir = {dir:?}"))
        + once;
    let cfg = Config::parse(&text, "local.toml").unwrap();
    let wasm = Arc::new(WasmRuntime::embedded(WasmConfig { cache_dir: None, ..WasmConfig::default() }).unwrap());
    let (rec, records) = Recording::channel(4096);
    let addr = spawn(build(cfg, wasm, rec).unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/sdk_clients.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(format!("http://{addr}"))
        .output()
        .await
        .expect("python3 is needed for the SDK tests");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "SDK clients failed (install them with `pip install -r tests/requirements.txt`):\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    // The shadow compared what the SDKs were served, and agreed.
    let recs: Vec<_> = std::iter::from_fn(|| records.recv_timeout(std::time::Duration::from_secs(2)).ok())
        .filter_map(|r| match r {
            SinkRecord::Diff(d) => Some(d),
            SinkRecord::Case(_) => None,
        })
        .take(20)
        .collect();
    assert!(
        recs.len() >= 20 && recs.iter().all(|r| r.result.agrees()),
        "{:?}",
        recs.iter().find(|r| !r.result.agrees())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
