//! The `convert` and `guest-info` commands, run as the real binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("core/tests/fixtures").join(rel)
}

fn shadowgate(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shadowgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn convert_gives_the_same_output_in_both_runtimes() {
    let cases = [
        ("request/openai-chat/tools_parallel_history.json", "openai-chat", "anthropic-messages", "request"),
        ("response/anthropic-messages/thinking_tool_cache.json", "anthropic-messages", "openai-chat", "response"),
        ("stream/anthropic-messages/text_parallel_tools.sse", "anthropic-messages", "openai-chat", "stream"),
        ("stream/openai-chat/parallel_tools.sse", "openai-chat", "anthropic-messages", "stream"),
    ];
    for (file, from, to, kind) in cases {
        let input = std::fs::read(fixture(file)).unwrap();
        let args =
            |rt| ["convert", "--from", from, "--to", to, "--kind", kind, "--runtime", rt, "--created", "1700000000"];
        let native = shadowgate(&args("native"), &input);
        let wasm = shadowgate(&args("wasm"), &input);
        assert!(native.status.success(), "{file}: {}", String::from_utf8_lossy(&native.stderr));
        assert_eq!(native.stdout, wasm.stdout, "{file}");
        assert!(!native.stdout.is_empty());
    }
}

#[test]
fn bad_input_exits_2_with_one_line_naming_what_and_where() {
    let cases: [(&str, &[&str], &str); 3] = [
        ("request/openai-chat/wrong_types.json", &["--kind", "request"], "at /messages/1/content"),
        ("request/openai-chat/malformed.json", &["--kind", "request"], "malformed JSON at line 2"),
        ("stream/openai-chat/malformed_chunk.sse", &["--kind", "stream"], "malformed upstream event"),
    ];
    for (file, kind, want) in cases {
        for rt in ["native", "wasm"] {
            let mut args = vec!["convert", "--from", "openai-chat", "--to", "anthropic-messages", "--runtime", rt];
            args.extend_from_slice(kind);
            let out = shadowgate(&args, &std::fs::read(fixture(file)).unwrap());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{file} {rt}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.contains(want), "{file} {rt}: {stderr}");
        }
    }
}

#[test]
fn an_upstream_error_event_is_converted_and_not_a_failure() {
    let input = std::fs::read(fixture("stream/anthropic-messages/error_midstream.sse")).unwrap();
    let out =
        shadowgate(&["convert", "--from", "anthropic-messages", "--to", "openai-chat", "--kind", "stream"], &input);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#"{"error":{"message":"Overloaded""#));
}

#[test]
fn guest_info_reports_versions_and_bad_guests_are_refused() {
    let out = shadowgate(&["guest-info"], b"");
    assert!(out.status.success());
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["capabilities"]["abi"], 1);
    assert_eq!(info["capabilities"]["modules"]["streaming"], "streaming/1.0.0");
    assert_eq!(info["module_sha256"].as_str().unwrap().len(), 64);

    let out = shadowgate(&["guest-info", "--guest", "/definitely/not/here.wasm"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let out = shadowgate(
        &["convert", "--from", "openai-chat", "--to", "openai-chat", "--kind", "request", "--guest", "Cargo.toml"],
        b"{}",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a core WebAssembly module"));
}

/// The first stderr line of `mock-upstream` (its start-up log), with `extra` flags.
fn first_log_line(extra: &[&str]) -> String {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_shadowgate"))
        .args(extra)
        .args(["mock-upstream", "--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    line
}

#[test]
fn logs_to_a_pipe_carry_no_colour_and_can_be_json() {
    let text = first_log_line(&[]);
    assert!(text.contains("mock upstream serving"), "{text:?}");
    assert!(!text.contains('\u{1b}'), "ANSI escapes in a log written to a pipe: {text:?}");
    let json: serde_json::Value = serde_json::from_str(&first_log_line(&["--log-format", "json"])).unwrap();
    assert_eq!(json["fields"]["message"], "mock upstream serving");
    assert_eq!(json["level"], "INFO");
}

#[test]
fn noise_probe_reads_parquet_baselines_and_refuses_a_folder_without_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_file = std::env::temp_dir().join(format!("shadowgate-probe-{}.toml", std::process::id()));
    let baseline = root.join("baselines/sample");
    let out = shadowgate(&["noise-probe", baseline.to_str().unwrap(), "--out", out_file.to_str().unwrap()], b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("probed 12 cases"), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let empty = std::env::temp_dir().join(format!("shadowgate-probe-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = shadowgate(&["noise-probe", empty.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cases"), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_file(out_file);
}

#[test]
fn gate_apply_warns_when_a_configured_mode_hides_the_stages() {
    let dir = std::env::temp_dir().join(format!("shadowgate-gate-warn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let report = shadowgate::report::build(&[], &[shadowgate::report::Dim::Module]);
    std::fs::write(dir.join("report.json"), serde_json::to_string(&report).unwrap()).unwrap();
    let base = "[[providers]]\nname = \"p\"\nprotocol = \"openai-chat\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
                [[routes]]\nid = \"r\"\nmodel = \"*\"\nprovider = \"p\"\n";
    for (config, warned) in [(format!("mode = \"shadow\"\n{base}"), true), (base.to_string(), false)] {
        std::fs::write(dir.join("c.toml"), config).unwrap();
        let args = ["gate", "report.json", "--config", "c.toml", "--state", "modules.json", "--apply"];
        let out = Command::new(env!("CARGO_BIN_EXE_shadowgate")).args(args).current_dir(&dir).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.contains("warning: the config sets mode = \"shadow\" globally"), warned, "{stdout}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_and_busy_addresses_say_what_and_where() {
    let out = shadowgate(&["replay", "replay/cases", "--module", "tokenizr"], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown module \"tokenizr\" (known: routing, tools, compat, streaming, tokenizer)"), "{err}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = shadowgate(&["mock-upstream", "--listen", &addr], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("listening on {addr}: ")), "{err}");
}
