//! The README's shell blocks work as written: each ```sh block after the
//! quick start (which is `make demo`/`make test` themselves) runs in a fresh
//! `bash -e` in the checkout, with no shadowgate variables set. Two
//! substitutions keep the test inside `cargo test`, which holds the build
//! lock: `cargo build --release` is the binary this test was built with, and
//! `cargo run -q --` is that binary too.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn blocks() -> Vec<(usize, String)> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some((i + 1, String::new())),
            (Some(_), "```") => out.extend(current.take()),
            (Some((_, text)), l) => {
                text.push_str(l);
                text.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_readme_shell_block_runs() {
    let exe = Path::new(env!("CARGO_BIN_EXE_shadowgate"));
    let bin = exe.parent().unwrap().display().to_string();
    let blocks = blocks();
    assert!(blocks.len() >= 3, "{blocks:?}");
    assert!(blocks[0].1.contains("make demo") && blocks[0].1.contains("make test"), "the quick start comes first");
    for (line, text) in &blocks[1..] {
        let script = text
            .replace(
                "cargo build --release && export PATH=\"$PWD/target/release:$PATH\"",
                &format!("export PATH=\"{bin}:$PATH\""),
            )
            .replace("cargo run -q --", &exe.display().to_string());
        assert!(!script.contains("cargo "), "README.md:{line}: a cargo command the test cannot run inside cargo test");
        let start = Instant::now();
        let out = Command::new("bash")
            .args(["-e", "-c", &format!("set -o pipefail\n{script}")])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("SHADOWGATE_REDACTION_KEY")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success(),
            "README.md:{line} failed ({:?}):\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
        assert!(start.elapsed() < Duration::from_secs(120), "README.md:{line} took {:?}", start.elapsed());
        assert!(!stdout.trim().is_empty(), "README.md:{line} printed nothing");
    }
}
