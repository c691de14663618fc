//! The diff engine: decides whether two runtimes agree, under a versioned
//! noise ruleset, without crying wolf and without missing a real divergence.
//!
//! Identical bytes are a match without parsing (the common case on the shadow
//! path). Otherwise both sides are compared raw and, if they differ,
//! canonicalized under the ruleset: what the ruleset explains is `ignored`
//! (with the rule named), the rest is a `mismatch`, classified by the
//! ruleset's classification rules. Inputs over the size cap are compared by
//! digest and marked truncated.

pub mod example;
pub mod json;
pub mod path;
pub mod ruleset;
pub mod sse;
pub mod summary;

pub use json::{DiffEntry, DiffKind};
pub use ruleset::{Ruleset, RulesetError, Scope};
pub use summary::{Divergence, EventChange, Events, FirstDivergence, Summary};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use shadowgate_core::{Module, Protocol};
use std::collections::BTreeSet;

/// Inputs larger than this are compared by digest only.
pub const DEFAULT_SIZE_CAP: usize = 1 << 20;

/// How a comparison came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Identical, or equal without any rule.
    Match,
    /// Different after the ruleset.
    Mismatch,
    /// Different, but every difference is explained by the ruleset.
    Ignored,
    /// The shadow runtime failed.
    ShadowError,
    /// The shadow runtime ran out of time.
    ShadowTimeout,
    /// The primary runtime failed (and native served the request).
    PrimaryError,
    /// The shadow job was dropped (queue full): no comparison was made.
    Dropped,
}

impl Outcome {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Mismatch => "mismatch",
            Outcome::Ignored => "ignored",
            Outcome::ShadowError => "shadow_error",
            Outcome::ShadowTimeout => "shadow_timeout",
            Outcome::PrimaryError => "primary_error",
            Outcome::Dropped => "dropped",
        }
    }
}

/// What kind of divergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffClass {
    /// Protocol mapping details: usage, stop reasons, carried-through fields.
    Compat,
    /// The conversion logic itself.
    Logic,
    /// Nondeterministic values (explained by the ruleset).
    Nondeterministic,
    /// Unparsable, truncated or malformed output.
    DataQuality,
}

impl DiffClass {
    fn parse(s: &str) -> DiffClass {
        match s {
            "compat" => DiffClass::Compat,
            "nondeterministic" => DiffClass::Nondeterministic,
            "data_quality" => DiffClass::DataQuality,
            _ => DiffClass::Logic,
        }
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DiffClass::Compat => "compat",
            DiffClass::Logic => "logic",
            DiffClass::Nondeterministic => "nondeterministic",
            DiffClass::DataQuality => "data_quality",
        }
    }
}

/// The result of one module comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffResult {
    /// Module compared.
    pub module: Module,
    /// How it came out.
    pub outcome: Outcome,
    /// Class, for anything but a match.
    pub class: Option<DiffClass>,
    /// The rule that decided the class or the ignore.
    pub rule: Option<String>,
    /// Number of differences (after the ruleset, or before it when ignored).
    pub diff_count: usize,
    /// Distinct differing paths (capped).
    pub paths: Vec<String>,
    /// Details: entries for JSON, event counts and first divergence for SSE.
    pub summary: Summary,
    /// Ruleset version applied.
    pub ruleset_version: String,
    /// Compared by digest because an input was over the size cap.
    pub truncated: bool,
}

impl DiffResult {
    /// A result for a comparison that could not happen (a runtime failed).
    pub fn failed(module: Module, outcome: Outcome, message: &str, ruleset_version: &str) -> DiffResult {
        DiffResult {
            module,
            outcome,
            class: None,
            rule: None,
            diff_count: 0,
            paths: Vec::new(),
            summary: Summary::Failed { error: message.into() },
            ruleset_version: ruleset_version.into(),
            truncated: false,
        }
    }

    /// Exit-code view: does this count as agreement?
    pub fn agrees(&self) -> bool {
        matches!(self.outcome, Outcome::Match | Outcome::Ignored)
    }
}

/// A compiled ruleset with the size cap.
#[derive(Debug, Clone)]
pub struct Differ {
    rules: Ruleset,
    size_cap: usize,
}

fn distinct_paths(entries: &[DiffEntry]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    entries.iter().filter(|e| seen.insert(e.path.clone())).map(|e| e.path.clone()).collect()
}

fn digest(bytes: &[u8]) -> String {
    shadowgate_core::context::hex(&Sha256::digest(bytes))
}

impl Differ {
    /// A differ for `rules`, with the default size cap.
    pub fn new(rules: Ruleset) -> Differ {
        Differ { rules, size_cap: DEFAULT_SIZE_CAP }
    }

    /// Changes the size cap.
    pub fn with_size_cap(mut self, cap: usize) -> Differ {
        self.size_cap = cap;
        self
    }

    /// The ruleset.
    pub fn ruleset(&self) -> &Ruleset {
        &self.rules
    }

    fn result(&self, scope: &Scope, outcome: Outcome) -> DiffResult {
        DiffResult {
            module: scope.module,
            outcome,
            class: None,
            rule: None,
            diff_count: 0,
            paths: Vec::new(),
            summary: Summary::None,
            ruleset_version: self.rules.version(),
            truncated: false,
        }
    }

    fn tolerance(&self) -> Option<(f64, f64)> {
        let t = &self.rules.file.tolerance_policy;
        Some((t.absolute, t.relative))
    }

    /// Over the cap: equal digests match, different digests mismatch as data quality.
    fn by_digest(&self, scope: &Scope, left: &[u8], right: &[u8]) -> DiffResult {
        let (l, r) = (digest(left), digest(right));
        let mut res = self.result(scope, if l == r { Outcome::Match } else { Outcome::Mismatch });
        res.truncated = true;
        res.summary = Summary::Digests {
            left_sha256: l.clone(),
            right_sha256: r.clone(),
            left_bytes: left.len(),
            right_bytes: right.len(),
        };
        if l != r {
            res.class = Some(DiffClass::DataQuality);
            res.rule = Some("size_cap".into());
            res.diff_count = 1;
            res.paths = vec!["/__truncated".into()];
        }
        res
    }

    /// A side that does not parse: a data-quality mismatch naming the parse errors.
    fn unparsable(&self, scope: &Scope, left_error: Option<String>, right_error: Option<String>) -> DiffResult {
        let mut res = self.result(scope, Outcome::Mismatch);
        res.class = Some(DiffClass::DataQuality);
        res.rule = Some("parse".into());
        res.diff_count = 1;
        res.paths = vec!["/__parse_error".into()];
        res.summary = Summary::Unparsable { left_error, right_error };
        res
    }

    /// Mismatch class and rule: the first classification rule matching a path, else logic.
    fn classify(&self, paths: &[String]) -> (DiffClass, String) {
        paths
            .iter()
            .find_map(|p| self.rules.class_of(p))
            .map(|(c, id)| (DiffClass::parse(c), id.to_string()))
            .unwrap_or((DiffClass::Logic, "default".into()))
    }

    /// Compares two JSON bodies.
    pub fn compare_json(&self, scope: &Scope, left: &[u8], right: &[u8]) -> DiffResult {
        if left == right {
            return self.result(scope, Outcome::Match);
        }
        if left.len().max(right.len()) > self.size_cap {
            return self.by_digest(scope, left, right);
        }
        let (a, b) = match (serde_json::from_slice::<Value>(left), serde_json::from_slice::<Value>(right)) {
            (Ok(a), Ok(b)) => (a, b),
            (l, r) => return self.unparsable(scope, l.err().map(|e| e.to_string()), r.err().map(|e| e.to_string())),
        };
        self.compare_values(scope, &a, &b)
    }

    fn compare_values(&self, scope: &Scope, a: &Value, b: &Value) -> DiffResult {
        let d = json::diff_under_rules(a, b, &self.rules, scope);
        if d.remaining.total == 0 {
            if d.explained.is_empty() {
                return self.result(scope, Outcome::Match);
            }
            let mut res = self.result(scope, Outcome::Ignored);
            res.class = Some(DiffClass::Nondeterministic);
            res.rule = Some(d.explained.into_iter().collect::<Vec<_>>().join(","));
            res.diff_count = d.explained_count;
            res.paths = d.explained_paths;
            res.summary = Summary::Ignored { ignored: res.diff_count };
            return res;
        }
        let mut res = self.result(scope, Outcome::Mismatch);
        res.paths = distinct_paths(&d.remaining.entries);
        let (class, rule) = self.classify(&res.paths);
        res.class = Some(class);
        res.rule = Some(rule);
        res.diff_count = d.remaining.total;
        res.summary = Summary::Entries { entries: d.remaining.entries, ignored: d.explained_count };
        res
    }

    /// Compares two client SSE streams of `protocol`.
    pub fn compare_sse(&self, scope: &Scope, protocol: Protocol, left: &[u8], right: &[u8]) -> DiffResult {
        if left == right {
            let mut res = self.result(scope, Outcome::Match);
            if let Ok(s) = sse::canonical_events(protocol, left, self.rules.file.sse_protocol.merge_adjacent_deltas) {
                let d = tokenizer_digest(&s.text);
                res.summary = Summary::Events(Events {
                    left_events: s.events.len(),
                    right_events: s.events.len(),
                    left_token_digest: d.clone(),
                    right_token_digest: d,
                    divergence: None,
                });
            }
            return res;
        }
        if left.len().max(right.len()) > self.size_cap {
            return self.by_digest(scope, left, right);
        }
        let merge = self.rules.file.sse_protocol.merge_adjacent_deltas;
        let (a, b) = match (sse::canonical_events(protocol, left, merge), sse::canonical_events(protocol, right, merge))
        {
            (Ok(a), Ok(b)) => (a, b),
            (l, r) => return self.unparsable(scope, l.err().map(|e| e.0), r.err().map(|e| e.0)),
        };
        self.compare_events(scope, &a, &b)
    }

    fn compare_events(&self, scope: &Scope, a: &sse::CanonStream, b: &sse::CanonStream) -> DiffResult {
        let key = |e: &sse::CanonEvent, payload: &Value| format!("{}\u{0}{}", e.event_type, payload);
        let base = Events {
            left_events: a.events.len(),
            right_events: b.events.len(),
            left_token_digest: tokenizer_digest(&a.text),
            right_token_digest: tokenizer_digest(&b.text),
            divergence: None,
        };
        let raw_a: Vec<String> = a.events.iter().map(|e| key(e, &e.normalized_payload)).collect();
        let raw_b: Vec<String> = b.events.iter().map(|e| key(e, &e.normalized_payload)).collect();
        if raw_a == raw_b {
            let mut res = self.result(scope, Outcome::Match);
            res.summary = Summary::Events(base);
            return res;
        }
        // Canonical payloads, computed once: for alignment and for the mismatched pairs.
        let canon = |s: &sse::CanonStream| -> Vec<Value> {
            s.events.iter().map(|e| json::canonicalize(&e.normalized_payload, &self.rules, scope)).collect()
        };
        let (va, vb) = (canon(a), canon(b));
        let ca: Vec<String> = a.events.iter().zip(&va).map(|(e, p)| key(e, p)).collect();
        let cb: Vec<String> = b.events.iter().zip(&vb).map(|(e, p)| key(e, p)).collect();
        if ca == cb {
            // Same shape after the ruleset: name the rules that explain each raw difference.
            let mut rules = BTreeSet::new();
            let mut paths = Vec::new();
            let mut count = 0;
            for (x, y) in a.events.iter().zip(&b.events) {
                let d = json::diff(&x.normalized_payload, &y.normalized_payload, None);
                count += d.total;
                for e in &d.entries {
                    rules.insert(json::explaining_rule(e, &self.rules, scope));
                    paths.push(e.path.clone());
                }
            }
            let mut res = self.result(scope, Outcome::Ignored);
            res.class = Some(DiffClass::Nondeterministic);
            res.rule = Some(rules.into_iter().collect::<Vec<_>>().join(","));
            res.diff_count = count;
            paths.dedup();
            res.paths = paths;
            res.summary = Summary::Events(base);
            return res;
        }
        let ops = similar::capture_diff_slices(similar::Algorithm::Myers, &ca, &cb);
        let (mut added, mut removed, mut mismatched) = (0, 0, 0);
        let mut first: Option<FirstDivergence> = None;
        let mut paths = Vec::new();
        for op in &ops {
            match *op {
                similar::DiffOp::Equal { .. } => {}
                similar::DiffOp::Delete { old_index, old_len, .. } => {
                    removed += old_len;
                    let e = &a.events[old_index];
                    paths.push(format!("/events/{}", e.event_type));
                    first.get_or_insert_with(|| FirstDivergence {
                        left: Some(e.normalized_payload.clone()),
                        ..FirstDivergence::new(old_index, &e.event_type, EventChange::Removed)
                    });
                }
                similar::DiffOp::Insert { old_index, new_index, new_len } => {
                    added += new_len;
                    let e = &b.events[new_index];
                    paths.push(format!("/events/{}", e.event_type));
                    first.get_or_insert_with(|| FirstDivergence {
                        right: Some(e.normalized_payload.clone()),
                        ..FirstDivergence::new(old_index, &e.event_type, EventChange::Added)
                    });
                }
                similar::DiffOp::Replace { old_index, old_len, new_index, new_len } => {
                    let pairs = old_len.min(new_len);
                    mismatched += pairs;
                    removed += old_len - pairs;
                    added += new_len - pairs;
                    for i in 0..pairs {
                        let (x, y) = (&a.events[old_index + i], &b.events[new_index + i]);
                        let d = json::diff(&va[old_index + i], &vb[new_index + i], self.tolerance());
                        paths.extend(d.entries.iter().map(|e| e.path.clone()));
                        if x.event_type != y.event_type {
                            paths.push(format!("/events/{}", x.event_type));
                        }
                        first.get_or_insert_with(|| {
                            let entry = d.entries.first();
                            FirstDivergence {
                                right_event_type: Some(y.event_type.clone()),
                                path: entry.map(|e| e.path.clone()),
                                left: entry.and_then(|e| e.left.clone()),
                                right: entry.and_then(|e| e.right.clone()),
                                text_diff: entry.and_then(|e| e.text_diff.clone()),
                                ..FirstDivergence::new(old_index + i, &x.event_type, EventChange::Mismatched)
                            }
                        });
                    }
                }
            }
        }
        let mut seen = BTreeSet::new();
        paths.retain(|p| seen.insert(p.clone()));
        let mut res = self.result(scope, Outcome::Mismatch);
        let (class, rule) = self.classify(&paths);
        res.class = Some(class);
        res.rule = Some(rule);
        res.diff_count = added + removed + mismatched;
        res.paths = paths;
        res.summary = Summary::Events(Events {
            divergence: Some(Divergence { added, removed, mismatched, first_divergence: first.map(Box::new) }),
            ..base
        });
        res
    }
}

fn tokenizer_digest(text: &str) -> String {
    shadowgate_core::tokenizer::digest(text)
}
