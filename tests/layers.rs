//! The host's layers, as ARCHITECTURE.md states them, are the layers the code
//! has: every `crate::<module>` path in a module's files names a module that
//! its row of the layer table lists under "may use", and the table itself has
//! no cycle. `cargo test --test layers` checks it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// module → the modules it may use, from the table between the
/// `<!-- layers -->` markers of ARCHITECTURE.md (`| module | may use | … |`).
fn table() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let start = doc.find("<!-- layers -->").expect("ARCHITECTURE.md has a <!-- layers --> table");
    let end = doc.find("<!-- /layers -->").expect("the layer table ends with <!-- /layers -->");
    let mut out = BTreeMap::new();
    for line in doc[start..end].lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let name = cells[0].trim_matches('`');
        if cells.len() < 2 || name == "module" || name.starts_with('-') {
            continue;
        }
        let uses = cells[1]
            .split(',')
            .map(|u| u.trim().trim_matches('`').to_string())
            .filter(|u| !u.is_empty() && u != "—")
            .collect();
        out.insert(name.to_string(), uses);
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None`: the crate root and the binary).
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root().join("src")).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy().to_string();
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

/// Every `crate::<name>` a file mentions, in code (comments dropped), including `use crate::{a, b}`.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // The first segment of each top-level item of the group.
                let (mut depth, mut item_start) = (0, true);
                let mut name = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            out.insert(std::mem::take(&mut name));
                            item_start = true;
                        }
                        ':' if depth == 0 => item_start = false,
                        c if depth == 0 && item_start && (c.is_alphanumeric() || c == '_') => name.push(c),
                        _ => {}
                    }
                }
                out.insert(name);
            } else {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                out.insert(name);
            }
        }
    }
    out.retain(|n| !n.is_empty() && n != "self");
    out
}

#[test]
fn every_module_uses_only_what_its_layer_may() {
    let table = table();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut seen = BTreeSet::new();
    let mut wrong = Vec::new();
    for f in &files {
        let Some(module) = module_of(f) else { continue };
        seen.insert(module.clone());
        let Some(allowed) = table.get(&module) else {
            wrong.push(format!("src/{module}: not in the layer table of ARCHITECTURE.md"));
            continue;
        };
        for r in crate_refs(&std::fs::read_to_string(f).unwrap()) {
            if r != module && !allowed.contains(&r) {
                wrong.push(format!("{}: uses crate::{r}, which {module} may not", f.display()));
            }
        }
    }
    for m in table.keys().filter(|m| !seen.contains(*m)) {
        wrong.push(format!("ARCHITECTURE.md lists {m}, which src/ does not have"));
    }
    assert!(wrong.is_empty(), "layer violations:\n{}", wrong.join("\n"));
}

#[test]
fn the_layer_table_has_no_cycle() {
    let table = table();
    assert!(table.len() > 10, "the table was not found or is incomplete: {table:?}");
    // Kahn's algorithm: repeatedly remove modules whose uses are all removed.
    let mut left = table.clone();
    while !left.is_empty() {
        let ready: Vec<String> = left
            .iter()
            .filter(|(_, uses)| uses.iter().all(|u| !left.contains_key(u)))
            .map(|(m, _)| m.clone())
            .collect();
        assert!(!ready.is_empty(), "the layer table has a cycle among {:?}", left.keys().collect::<Vec<_>>());
        for m in ready {
            left.remove(&m);
        }
    }
    for (m, uses) in &table {
        for u in uses {
            assert!(table.contains_key(u), "{m} may use {u}, which is not in the table");
        }
    }
}

#[test]
fn the_reference_scanner_sees_grouped_and_nested_paths() {
    let refs =
        crate_refs("use crate::{diff::{Differ, Scope}, plan};\nlet x = crate::record::Dims::new(); // crate::proxy\n");
    assert_eq!(refs, BTreeSet::from(["diff".into(), "plan".into(), "record".into()]));
}
