//! Redaction, applied before anything is written or logged: secrets become
//! `__redacted__`; PII becomes `sha256:<hex>`, an HMAC-SHA256 under a
//! per-deployment key, so equal values stay linkable without being readable.
//! Structure is kept (same keys, same array lengths, strings stay strings),
//! so replay still runs both runtimes on the same redacted input.

use crate::diff::path::PathPattern;
use hmac::{Hmac, Mac};
use regex::{Captures, Regex};
use serde_json::Value;
use sha2::Sha256;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Version of the redaction rules, recorded with every row.
pub const VERSION: &str = "redaction/1";

/// What replaces a secret.
pub const REDACTED: &str = "__redacted__";

/// Env var holding the per-deployment redaction key.
pub const KEY_ENV: &str = "SHADOWGATE_REDACTION_KEY";

/// Header names whose values are always secrets.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
    "set-cookie",
    "x-auth-token",
];

/// Field names whose values are secrets (matched case-insensitively, whole name).
/// Plural `*_tokens` (usage counts, `max_tokens`) deliberately do not match.
const SECRET_FIELDS: &str = r"(?i)^(api[_-]?key|apikey|x-api-key|authorization|auth|access[_-]?token|refresh[_-]?token|id[_-]?token|session[_-]?token|token|bearer|secret|client[_-]?secret|secret[_-]?key|private[_-]?key|password|passwd|pwd|credentials?)$";

/// Shapes of secrets inside any string.
const SECRET_VALUES: &[&str] = &[
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    r"\bsk-ant-[A-Za-z0-9_\-]{16,}",
    r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{20,}",
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{16,}",
    r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bAIza[0-9A-Za-z_\-]{35}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",
    r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",
];

const EMAIL: &str = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}";
const PHONE: &str = r"(?:\+\d{1,3}[\s.\-]?)?\(?\b\d{3}\)?[\s.\-]\d{3}[\s.\-]\d{4}\b|\+\d{8,15}\b";
const IPV4: &str = r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b";
const IPV6: &str =
    r"(?i)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|(?i)\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}:){0,5}[0-9a-f]{1,4}\b";
const CARD: &str = r"\b\d(?:[ \-]?\d){12,18}\b";

/// The redaction key is missing or unusable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

/// A compiled redactor.
#[derive(Clone)]
pub struct Redactor {
    mac: Hmac<Sha256>,
    fields: Regex,
    secrets: Vec<Regex>,
    pii: Vec<(Regex, bool)>,
    paths: Vec<PathPattern>,
}

fn luhn(digits: &str) -> bool {
    let ds: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&ds.len()) {
        return false;
    }
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d })
        .sum();
    sum.is_multiple_of(10)
}

impl Redactor {
    /// A redactor keyed with `key`; `paths` are JSON-pointer patterns whose values are always hashed.
    pub fn new(key: &[u8], paths: &[String]) -> Result<Redactor, KeyError> {
        if key.len() < 16 {
            return Err(KeyError(format!("the redaction key must be at least 16 bytes, got {}", key.len())));
        }
        let compile = |p: &str| Regex::new(p).expect("built-in redaction patterns compile");
        let paths = paths
            .iter()
            .map(|p| PathPattern::parse(p).map_err(|e| KeyError(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Redactor {
            mac: Hmac::<Sha256>::new_from_slice(key).map_err(|e| KeyError(e.to_string()))?,
            fields: compile(SECRET_FIELDS),
            secrets: SECRET_VALUES.iter().map(|p| compile(p)).collect(),
            // (pattern, needs a Luhn check)
            pii: vec![
                (compile(EMAIL), false),
                (compile(IPV6), false),
                (compile(IPV4), false),
                (compile(CARD), true),
                (compile(PHONE), false),
            ],
            paths,
        })
    }

    /// The redactor keyed from `$SHADOWGATE_REDACTION_KEY`; absent is an error (serve).
    pub fn from_env(paths: &[String]) -> Result<Redactor, KeyError> {
        let key = std::env::var(KEY_ENV).map_err(|_| {
            KeyError(format!(
                "{KEY_ENV} is not set: shadowgate needs a per-deployment key to hash PII before writing records"
            ))
        })?;
        Redactor::new(key.as_bytes(), paths)
    }

    /// A redactor with a random key (demo), for data that need not link across runs.
    pub fn ephemeral(paths: &[String]) -> Redactor {
        let mut key = [0u8; 32];
        let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key));
        if filled.is_err() {
            let nanos = crate::clock::now_nanos();
            key[..16].copy_from_slice(&nanos.to_le_bytes());
            key[16..24].copy_from_slice(&u64::from(std::process::id()).to_le_bytes());
        }
        Redactor::new(&key, paths).expect("a 32-byte key is valid")
    }

    /// `sha256:<hex>` of the keyed hash of `value`.
    pub fn hash(&self, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        format!("sha256:{}", shadowgate_core::context::hex(&mac.finalize().into_bytes()))
    }

    /// Redacts secrets and PII inside free text (SSE streams, log lines).
    pub fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(s);
        for re in &self.secrets {
            if let Cow::Owned(o) = re.replace_all(&out, REDACTED) {
                out = Cow::Owned(o);
            }
        }
        for (re, luhn_check) in &self.pii {
            let replaced = re.replace_all(&out, |c: &Captures| {
                let m = &c[0];
                if *luhn_check && !luhn(m) { m.to_string() } else { self.hash(m) }
            });
            if let Cow::Owned(o) = replaced {
                out = Cow::Owned(o);
            }
        }
        out
    }

    /// Redacts an SSE stream: each `data:` line that is JSON is redacted as
    /// JSON (so secret-named fields go too), any other line as text.
    pub fn sse(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for line in s.split_inclusive('\n') {
            let (body, eol) = match line.strip_suffix("\r\n") {
                Some(b) => (b, "\r\n"),
                None => line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n")),
            };
            let json = body.strip_prefix("data:").and_then(|d| serde_json::from_str::<Value>(d.trim_start()).ok());
            match json {
                Some(mut v) => {
                    self.json(&mut v);
                    out.push_str("data: ");
                    out.push_str(&v.to_string());
                }
                None => out.push_str(&self.text(body)),
            }
            out.push_str(eol);
        }
        out
    }

    /// Redacts a JSON document in place.
    pub fn json(&self, v: &mut Value) {
        self.walk(v, &mut Vec::new());
    }

    fn walk(&self, v: &mut Value, path: &mut Vec<String>) {
        if !self.paths.is_empty() && self.paths.iter().any(|p| p.matches_segments(path)) {
            let plain = match &*v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            *v = Value::String(self.hash(&plain));
            return;
        }
        match v {
            Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    if x.is_string() && self.fields.is_match(k) {
                        *x = Value::String(REDACTED.into());
                        continue;
                    }
                    path.push(k.clone());
                    self.walk(x, path);
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter_mut().enumerate() {
                    path.push(i.to_string());
                    self.walk(x, path);
                    path.pop();
                }
            }
            Value::String(s) => {
                if let Cow::Owned(o) = self.text(s) {
                    *s = o;
                }
            }
            _ => {}
        }
    }

    /// Redacts request headers: secret headers by name, the rest by value.
    pub fn headers(&self, h: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        h.iter()
            .map(|(k, v)| {
                let v = if SECRET_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                    REDACTED.to_string()
                } else {
                    self.text(v).into_owned()
                };
                (k.clone(), v)
            })
            .collect()
    }
}
