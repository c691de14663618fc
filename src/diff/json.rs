//! Canonicalization under a ruleset, and the structural diff of two JSON values.

use super::path::push;
use super::ruleset::{Ruleset, Scope};
use serde::Serialize;
use serde_json::{Map, Value};
use similar::{ChangeTag, TextDiff};

/// Most entries kept per diff (the count goes on).
pub const MAX_ENTRIES: usize = 32;
/// Longest text diff kept per entry, in characters.
const MAX_TEXT_DIFF: usize = 240;
/// Longest value kept in an entry, in characters of its JSON.
const MAX_VALUE: usize = 512;

/// What kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// Only on the right.
    Added,
    /// Only on the left.
    Removed,
    /// Same type, other value.
    Changed,
    /// Other JSON type.
    TypeChanged,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffEntry {
    /// JSON pointer.
    pub path: String,
    /// Kind.
    pub kind: DiffKind,
    /// Left value (capped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left: Option<Value>,
    /// Right value (capped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right: Option<Value>,
    /// Compact text diff for strings: `[-old-]{+new+}` with context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_diff: Option<String>,
}

/// The differences found, capped.
#[derive(Debug, Default)]
pub struct Diffs {
    /// The first [`MAX_ENTRIES`] differences.
    pub entries: Vec<DiffEntry>,
    /// How many there are in all.
    pub total: usize,
}

impl Diffs {
    fn push(&mut self, path: &str, kind: DiffKind, left: Option<&Value>, right: Option<&Value>) {
        self.total += 1;
        if self.entries.len() >= MAX_ENTRIES {
            return;
        }
        let text_diff = match (left, right) {
            (Some(Value::String(a)), Some(Value::String(b))) => Some(text_diff(a, b)),
            _ => None,
        };
        self.entries.push(DiffEntry {
            path: path.to_string(),
            kind,
            left: left.map(cap),
            right: right.map(cap),
            text_diff,
        });
    }
}

fn cap(v: &Value) -> Value {
    match v {
        Value::String(s) if s.len() > MAX_VALUE => Value::String(format!("{}…", truncate(s, MAX_VALUE))),
        Value::Array(_) | Value::Object(_) => {
            let text = v.to_string();
            if text.len() > MAX_VALUE { Value::String(format!("{}…", truncate(&text, MAX_VALUE))) } else { v.clone() }
        }
        _ => v.clone(),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A compact character diff: equal runs shortened to a little context.
pub fn text_diff(a: &str, b: &str) -> String {
    // Long strings are diffed by words to keep the cost bounded.
    let diff = if a.len() + b.len() > 8192 { TextDiff::from_words(a, b) } else { TextDiff::from_chars(a, b) };
    let mut out = String::new();
    let changes: Vec<_> = diff.iter_all_changes().collect();
    let mut i = 0;
    while i < changes.len() && out.len() < MAX_TEXT_DIFF {
        let tag = changes[i].tag();
        let mut run = String::new();
        while i < changes.len() && changes[i].tag() == tag {
            run.push_str(changes[i].value());
            i += 1;
        }
        match tag {
            ChangeTag::Equal => {
                let chars: Vec<char> = run.chars().collect();
                if chars.len() > 24 {
                    let head: String = chars[..10].iter().collect();
                    let tail: String = chars[chars.len() - 10..].iter().collect();
                    out.push_str(&format!("{head}…{tail}"));
                } else {
                    out.push_str(&run);
                }
            }
            ChangeTag::Delete => out.push_str(&format!("[-{run}-]")),
            ChangeTag::Insert => out.push_str(&format!("{{+{run}+}}")),
        }
    }
    if out.len() > MAX_TEXT_DIFF {
        out = format!("{}…", truncate(&out, MAX_TEXT_DIFF));
    }
    out
}

/// Canonicalizes `v` under the ruleset: whitelisted paths removed,
/// normalizers applied to strings, unordered arrays sorted, whitespace and
/// key order folded as the tolerance policy says.
pub fn canonicalize(v: &Value, rules: &Ruleset, scope: &Scope) -> Value {
    canon(v, &mut Vec::new(), rules, scope)
}

/// Walks with the path as a stack of unescaped segments, so no pointer
/// strings are built and re-split on the way.
fn canon(v: &Value, path: &mut Vec<String>, rules: &Ruleset, scope: &Scope) -> Value {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            if rules.file.tolerance_policy.ignore_key_order {
                keys.sort();
            }
            let mut out = Map::new();
            for k in keys {
                path.push(k.clone());
                if rules.ignored_by_segments(path, scope).is_none() {
                    out.insert(k.clone(), canon(&o[k], path, rules, scope));
                }
                path.pop();
            }
            Value::Object(out)
        }
        Value::Array(a) => {
            let mut items: Vec<Value> = Vec::with_capacity(a.len());
            for (i, x) in a.iter().enumerate() {
                path.push(i.to_string());
                items.push(canon(x, path, rules, scope));
                path.pop();
            }
            if rules.unordered.iter().any(|p| p.matches_segments(path)) {
                items.sort_by_cached_key(|x| x.to_string());
            }
            Value::Array(items)
        }
        Value::String(s) => canon_string(s, path, rules),
        other => other.clone(),
    }
}

fn canon_string(s: &str, path: &[String], rules: &Ruleset) -> Value {
    let mut s = std::borrow::Cow::Borrowed(s);
    for (_, re, replacement, paths) in &rules.normalizers {
        if paths.is_empty() || paths.iter().any(|p| p.matches_segments(path)) {
            // replace_all borrows when nothing matches: no copy in the common case.
            if let std::borrow::Cow::Owned(changed) = re.replace_all(&s, replacement.as_str()) {
                s = std::borrow::Cow::Owned(changed);
            }
        }
    }
    if rules.file.tolerance_policy.ignore_whitespace {
        s = std::borrow::Cow::Owned(s.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    Value::String(s.into_owned())
}

/// Numbers equal within the tolerance (exactly, when `tolerance` is `None`).
fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number, tolerance: Option<(f64, f64)>) -> bool {
    if a == b {
        return true;
    }
    match (tolerance, a.as_f64(), b.as_f64()) {
        (Some((abs, rel)), Some(x), Some(y)) => {
            let d = (x - y).abs();
            d <= abs || d <= rel * x.abs().max(y.abs())
        }
        _ => false,
    }
}

/// The structural diff of `a` and `b`; numbers compare within `tolerance`.
pub fn diff(a: &Value, b: &Value, tolerance: Option<(f64, f64)>) -> Diffs {
    let mut out = Diffs::default();
    walk(a, b, &mut String::new(), tolerance, &mut out);
    out
}

fn walk(a: &Value, b: &Value, path: &mut String, tolerance: Option<(f64, f64)>, out: &mut Diffs) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let len = path.len();
                *path = push(path, k);
                match y.get(k) {
                    Some(vb) => walk(va, vb, path, tolerance, out),
                    None => out.push(path, DiffKind::Removed, Some(va), None),
                }
                path.truncate(len);
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    out.push(&push(path, k), DiffKind::Added, None, Some(vb));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let len = path.len();
                *path = push(path, &i.to_string());
                match (x.get(i), y.get(i)) {
                    (Some(va), Some(vb)) => walk(va, vb, path, tolerance, out),
                    (Some(va), None) => out.push(path, DiffKind::Removed, Some(va), None),
                    (None, Some(vb)) => out.push(path, DiffKind::Added, None, Some(vb)),
                    (None, None) => {}
                }
                path.truncate(len);
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            if !numbers_equal(x, y, tolerance) {
                out.push(path, DiffKind::Changed, Some(a), Some(b));
            }
        }
        _ if std::mem::discriminant(a) != std::mem::discriminant(b) => {
            out.push(path, DiffKind::TypeChanged, Some(a), Some(b))
        }
        _ => {
            if a != b {
                out.push(path, DiffKind::Changed, Some(a), Some(b));
            }
        }
    }
}

/// The rule that makes a raw difference at `entry` go away, for the record.
pub fn explaining_rule(entry: &DiffEntry, rules: &Ruleset, scope: &Scope) -> String {
    if let Some(id) = rules.ignored_by(&entry.path, scope) {
        return id.to_string();
    }
    for (id, re, _, paths) in &rules.normalizers {
        let applies = paths.is_empty() || paths.iter().any(|p| p.matches(&entry.path));
        let hits = |v: &Option<Value>| v.as_ref().and_then(Value::as_str).is_some_and(|s| re.is_match(s));
        if applies && (hits(&entry.left) || hits(&entry.right)) {
            return id.clone();
        }
    }
    let parent = entry.path.rsplit_once('/').map_or("", |(p, _)| p);
    if rules.unordered.iter().any(|p| p.matches(parent) || p.matches(&entry.path)) {
        return "tolerance_policy.unordered_arrays".into();
    }
    if matches!((&entry.left, &entry.right), (Some(Value::Number(_)), Some(Value::Number(_)))) {
        return "tolerance_policy.numeric".into();
    }
    if rules.file.tolerance_policy.ignore_whitespace {
        return "tolerance_policy.ignore_whitespace".into();
    }
    "tolerance_policy".into()
}

/// The outcome of one walk under the ruleset.
#[derive(Debug, Default)]
pub struct RuledDiff {
    /// Differences the ruleset does not explain.
    pub remaining: Diffs,
    /// Rule ids that explained raw differences.
    pub explained: std::collections::BTreeSet<String>,
    /// Raw differences the rules explained.
    pub explained_count: usize,
    /// Their paths.
    pub explained_paths: Vec<String>,
}

/// Diffs `a` and `b` in one walk, applying the ruleset only where raw values
/// differ: no canonical copies of either tree are built.
pub fn diff_under_rules(a: &Value, b: &Value, rules: &Ruleset, scope: &Scope) -> RuledDiff {
    let mut out = RuledDiff::default();
    let mut w = RuledWalk { rules, scope, segs: Vec::new(), out: &mut out };
    w.walk(a, b);
    out
}

struct RuledWalk<'r> {
    rules: &'r Ruleset,
    scope: &'r Scope,
    segs: Vec<String>,
    out: &'r mut RuledDiff,
}

impl RuledWalk<'_> {
    fn pointer(&self) -> String {
        self.segs.iter().fold(String::new(), |p, s| push(&p, s))
    }

    fn explain(&mut self, rule: &str) {
        self.out.explained.insert(rule.to_string());
        self.out.explained_count += 1;
        if self.out.explained_paths.len() < MAX_ENTRIES {
            let p = self.pointer();
            self.out.explained_paths.push(p);
        }
    }

    fn report(&mut self, kind: DiffKind, a: Option<&Value>, b: Option<&Value>) {
        let p = self.pointer();
        self.out.remaining.push(&p, kind, a, b);
    }

    fn walk(&mut self, a: &Value, b: &Value) {
        let tol = &self.rules.file.tolerance_policy;
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                if !tol.ignore_key_order
                    && x.keys().ne(y.keys())
                    && x.len() == y.len()
                    && x.keys().all(|k| y.contains_key(k))
                {
                    self.report(DiffKind::Changed, None, None);
                }
                for (k, va) in x {
                    self.segs.push(k.clone());
                    let vb = y.get(k);
                    if let Some(rule) = self.rules.ignored_by_segments(&self.segs, self.scope) {
                        if vb != Some(va) {
                            self.explain(rule);
                        }
                    } else {
                        match vb {
                            Some(vb) => self.walk(va, vb),
                            None => self.report(DiffKind::Removed, Some(va), None),
                        }
                    }
                    self.segs.pop();
                }
                for (k, vb) in y {
                    if !x.contains_key(k) {
                        self.segs.push(k.clone());
                        match self.rules.ignored_by_segments(&self.segs, self.scope) {
                            Some(rule) => self.explain(rule),
                            None => self.report(DiffKind::Added, None, Some(vb)),
                        }
                        self.segs.pop();
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                if x == y {
                    return;
                }
                if self.rules.unordered.iter().any(|p| p.matches_segments(&self.segs)) {
                    let sorted = |v: &Vec<Value>| {
                        let mut s: Vec<String> = v.iter().map(Value::to_string).collect();
                        s.sort();
                        s
                    };
                    if sorted(x) == sorted(y) {
                        self.explain("tolerance_policy.unordered_arrays");
                    } else {
                        self.report(DiffKind::Changed, Some(a), Some(b));
                    }
                    return;
                }
                for i in 0..x.len().max(y.len()) {
                    self.segs.push(i.to_string());
                    match (x.get(i), y.get(i)) {
                        (Some(va), Some(vb)) => self.walk(va, vb),
                        (Some(va), None) => self.report(DiffKind::Removed, Some(va), None),
                        (None, Some(vb)) => self.report(DiffKind::Added, None, Some(vb)),
                        (None, None) => {}
                    }
                    self.segs.pop();
                }
            }
            (Value::String(x), Value::String(y)) => {
                if x == y {
                    return;
                }
                let rules = self.rules;
                for (id, re, replacement, paths) in &rules.normalizers {
                    if paths.is_empty() || paths.iter().any(|p| p.matches_segments(&self.segs)) {
                        let (nx, ny) =
                            (re.replace_all(x, replacement.as_str()), re.replace_all(y, replacement.as_str()));
                        if nx == ny {
                            self.explain(id);
                            return;
                        }
                    }
                }
                let (cx, cy) = (canon_string(x, &self.segs, rules), canon_string(y, &self.segs, rules));
                if cx == cy {
                    self.explain(if tol.ignore_whitespace {
                        "tolerance_policy.ignore_whitespace"
                    } else {
                        "nondeterministic_rules"
                    });
                } else {
                    self.report(DiffKind::Changed, Some(a), Some(b));
                }
            }
            (Value::Number(x), Value::Number(y)) => {
                if x == y {
                    return;
                }
                if numbers_equal(x, y, Some((tol.absolute, tol.relative))) {
                    self.explain("tolerance_policy.numeric");
                } else {
                    self.report(DiffKind::Changed, Some(a), Some(b));
                }
            }
            _ if std::mem::discriminant(a) != std::mem::discriminant(b) => {
                self.report(DiffKind::TypeChanged, Some(a), Some(b))
            }
            _ => {
                if a != b {
                    self.report(DiffKind::Changed, Some(a), Some(b));
                }
            }
        }
    }
}
