//! Versioned noise rulesets: what the diff ignores, tolerates, normalizes and
//! how it classifies what is left.
//!
//! A published ruleset (`rulesets/diff_ruleset_vN.toml`) is never edited: a
//! change is a new file and a moved `rulesets/CURRENT` pointer, and
//! `rulesets/CHECKSUMS` holds every published file's SHA-256 (a test fails
//! when one changes). Loading rejects unknown fields and bad patterns with the
//! file, line and key.

use super::path::PathPattern;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::path::Path;
use toml::Spanned;

/// Published rulesets built into the binary, by version.
pub const EMBEDDED: &[(u32, &str)] = &[
    (1, include_str!("../../rulesets/diff_ruleset_v1.toml")),
    (2, include_str!("../../rulesets/diff_ruleset_v2.toml")),
];

/// The version `rulesets/CURRENT` points at when the binary was built.
pub const CURRENT: &str = include_str!("../../rulesets/CURRENT");

/// A ruleset that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", crate::toml_error::display(file, *line, key, message))]
pub struct RulesetError {
    /// File (or `embedded vN`).
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// The key at fault.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The file as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RulesetFile {
    /// Ruleset version (the N of `diff_ruleset_vN.toml`).
    pub version: u32,
    /// When it was published (RFC 3339).
    pub created_at: String,
    /// What changed in this version.
    #[serde(default)]
    pub description: String,
    /// Paths whose differences are ignored.
    #[serde(default)]
    pub field_whitelist: Vec<WhitelistRule>,
    /// Numeric tolerance, unordered arrays, whitespace and key order.
    #[serde(default)]
    pub tolerance_policy: TolerancePolicy,
    /// Regex normalizers for nondeterministic values.
    #[serde(default)]
    pub nondeterministic_rules: Vec<NondeterministicRule>,
    /// Canonical SSE schema.
    pub sse_protocol: SseProtocol,
    /// How remaining differences are classified, first match wins.
    #[serde(default)]
    pub classification: Vec<ClassRule>,
}

/// One ignored path.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WhitelistRule {
    /// Rule id, named in results.
    pub id: String,
    /// JSON pointer pattern.
    pub path: Spanned<String>,
    /// Module it applies to (`*` or absent: all).
    #[serde(default)]
    pub module: Option<String>,
    /// Protocol it applies to (absent: both).
    #[serde(default)]
    pub protocol: Option<String>,
    /// `response`, `stream`, `request` (absent: all).
    #[serde(default)]
    pub kind: Option<String>,
    /// Why it is safe to ignore.
    #[serde(default)]
    pub reason: String,
}

/// Tolerances.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TolerancePolicy {
    /// Numbers closer than this are equal.
    #[serde(default)]
    pub absolute: f64,
    /// Numbers within this fraction of the larger one are equal.
    #[serde(default)]
    pub relative: f64,
    /// Arrays compared as multisets.
    #[serde(default)]
    pub unordered_arrays: Vec<Spanned<String>>,
    /// Trim and collapse whitespace in strings before comparing.
    #[serde(default)]
    pub ignore_whitespace: bool,
    /// Compare objects regardless of key order.
    #[serde(default = "yes")]
    pub ignore_key_order: bool,
}

fn yes() -> bool {
    true
}

/// A regex normalizer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NondeterministicRule {
    /// Rule id.
    pub id: String,
    /// Regex applied to string values.
    pub pattern: Spanned<String>,
    /// Replacement (`$1` style groups allowed).
    pub replacement: String,
    /// Paths it applies to (absent: everywhere).
    #[serde(default)]
    pub paths: Vec<Spanned<String>>,
}

/// Canonical SSE schema settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SseProtocol {
    /// Schema version of canonical events (`sse/1`).
    pub version: String,
    /// Merge adjacent deltas of one block before comparing.
    #[serde(default = "yes")]
    pub merge_adjacent_deltas: bool,
    /// Drop keep-alive events (pings, comments).
    #[serde(default = "yes")]
    pub drop_keepalive: bool,
}

/// A classification rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClassRule {
    /// Rule id.
    pub id: String,
    /// `compat`, `logic`, `nondeterministic` or `data_quality`.
    pub class: Spanned<String>,
    /// Paths it applies to.
    pub paths: Vec<Spanned<String>>,
}

/// A ruleset ready to apply.
#[derive(Debug, Clone)]
pub struct Ruleset {
    /// The file as written.
    pub file: RulesetFile,
    /// Where it came from.
    pub source: String,
    /// The text it was parsed from.
    pub text: String,
    pub(super) whitelist: Vec<(WhitelistRule, PathPattern)>,
    pub(super) unordered: Vec<PathPattern>,
    pub(super) normalizers: Vec<(String, Regex, String, Vec<PathPattern>)>,
    pub(super) classes: Vec<(String, String, Vec<PathPattern>)>,
}

/// The classes a diff can have.
pub const CLASSES: &[&str] = &["compat", "logic", "nondeterministic", "data_quality"];

impl Ruleset {
    /// Parses and compiles ruleset text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Ruleset, RulesetError> {
        let line_of = |offset: usize| crate::toml_error::line_of(text, offset);
        let file: RulesetFile = toml::from_str(text).map_err(|e| {
            let (line, key, message) = crate::toml_error::locate(text, &e);
            RulesetError { file: source.into(), line, key, message }
        })?;
        let err = |s: &Spanned<String>, key: &str, message: String| RulesetError {
            file: source.into(),
            line: line_of(s.span().start),
            key: key.into(),
            message,
        };
        let pattern =
            |s: &Spanned<String>, key: &str| PathPattern::parse(s.get_ref()).map_err(|m| err(s, key, m.to_string()));
        let mut whitelist = Vec::new();
        for r in &file.field_whitelist {
            whitelist.push((r.clone(), pattern(&r.path, "field_whitelist.path")?));
        }
        let unordered = file
            .tolerance_policy
            .unordered_arrays
            .iter()
            .map(|p| pattern(p, "tolerance_policy.unordered_arrays"))
            .collect::<Result<_, _>>()?;
        let mut normalizers = Vec::new();
        for r in &file.nondeterministic_rules {
            let re = Regex::new(r.pattern.get_ref())
                .map_err(|e| err(&r.pattern, "nondeterministic_rules.pattern", e.to_string()))?;
            let paths = r.paths.iter().map(|p| pattern(p, "nondeterministic_rules.paths")).collect::<Result<_, _>>()?;
            normalizers.push((r.id.clone(), re, r.replacement.clone(), paths));
        }
        let mut classes = Vec::new();
        for r in &file.classification {
            if !CLASSES.contains(&r.class.get_ref().as_str()) {
                return Err(err(
                    &r.class,
                    "classification.class",
                    format!("unknown class {:?} (expected one of {})", r.class.get_ref(), CLASSES.join(", ")),
                ));
            }
            let paths = r.paths.iter().map(|p| pattern(p, "classification.paths")).collect::<Result<_, _>>()?;
            classes.push((r.id.clone(), r.class.get_ref().clone(), paths));
        }
        Ok(Ruleset { file, source: source.into(), text: text.into(), whitelist, unordered, normalizers, classes })
    }

    /// Loads `spec`: a file path, or `vN` (embedded, else `rulesets/diff_ruleset_vN.toml`), or `None` for the current version.
    pub fn load(spec: Option<&str>) -> Result<Ruleset, RulesetError> {
        let spec = spec.unwrap_or(CURRENT.trim());
        if let Some(n) = spec.strip_prefix('v').and_then(|n| n.parse::<u32>().ok()) {
            if let Some((_, text)) = EMBEDDED.iter().find(|(v, _)| *v == n) {
                return Ruleset::parse(text, &format!("diff_ruleset_v{n}.toml (embedded)"));
            }
            return Ruleset::load_file(&Path::new("rulesets").join(format!("diff_ruleset_v{n}.toml"))).map_err(
                |mut e| {
                    let known: Vec<String> = EMBEDDED.iter().map(|(v, _)| format!("v{v}")).collect();
                    e.message = format!("{} (published versions: {})", e.message, known.join(", "));
                    e
                },
            );
        }
        Ruleset::load_file(Path::new(spec))
    }

    /// Loads a ruleset file.
    pub fn load_file(path: &Path) -> Result<Ruleset, RulesetError> {
        let text = std::fs::read_to_string(path).map_err(|e| RulesetError {
            file: path.display().to_string(),
            line: 0,
            key: String::new(),
            message: crate::toml_error::unreadable(&e),
        })?;
        Ruleset::parse(&text, &path.display().to_string())
    }

    /// The ruleset version as recorded (`v1`).
    pub fn version(&self) -> String {
        format!("v{}", self.file.version)
    }

    /// The whitelist rule ignoring `path`, for this module, protocol and kind.
    pub(super) fn ignored_by(&self, path: &str, scope: &Scope) -> Option<&str> {
        let segs: Vec<String> = path.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
        self.ignored_by_segments(&segs, scope)
    }

    /// [`Ruleset::ignored_by`] on unescaped path segments.
    pub(super) fn ignored_by_segments<S: AsRef<str>>(&self, segs: &[S], scope: &Scope) -> Option<&str> {
        let fits = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == "*" || w == have);
        self.whitelist
            .iter()
            .find(|(r, p)| {
                fits(&r.module, scope.module.as_str())
                    && fits(&r.protocol, scope.protocol.as_str())
                    && fits(&r.kind, &scope.kind)
                    && p.matches_segments(segs)
            })
            .map(|(r, _)| r.id.as_str())
    }

    /// The class (and rule id) of a difference at `path`.
    pub(super) fn class_of(&self, path: &str) -> Option<(&str, &str)> {
        self.classes
            .iter()
            .find(|(_, _, ps)| ps.iter().any(|p| p.matches(path)))
            .map(|(id, class, _)| (class.as_str(), id.as_str()))
    }
}

/// Where a comparison happens: which rules apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scope {
    /// Module under comparison.
    pub module: shadowgate_core::Module,
    /// Protocol of the compared outputs.
    pub protocol: shadowgate_core::Protocol,
    /// `request`, `response` or `stream`.
    pub kind: String,
}
