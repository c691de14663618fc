//! Locating TOML errors: the 1-based line of a byte offset, and the key a
//! serde error names.

/// The 1-based line of `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

/// `file:line: key: message`, leaving out the line and key when unknown.
pub fn display(file: &str, line: usize, key: &str, message: &str) -> String {
    match (line, key.is_empty()) {
        (0, true) => format!("{file}: {message}"),
        (0, false) => format!("{file}: {key}: {message}"),
        (_, true) => format!("{file}:{line}: {message}"),
        (_, false) => format!("{file}:{line}: {key}: {message}"),
    }
}

/// The message for a file that cannot be read.
pub fn unreadable(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound { "no such file".into() } else { format!("cannot read: {e}") }
}

/// (line, key, message) of a TOML parse or type error.
pub fn locate(text: &str, e: &toml::de::Error) -> (usize, String, String) {
    let message = e.message().to_string();
    let line = e.span().map_or(0, |s| line_of(text, s.start));
    // serde names unknown, missing and duplicate fields in backticks; for a bad
    // value (`unknown variant `beta``, a wrong type) the key is the one on the line.
    let names_field = ["unknown field", "missing field", "duplicate field"].iter().any(|p| message.starts_with(p));
    let key = match message.split('`').nth(1).filter(|_| names_field) {
        Some(k) => k.to_string(),
        None => text
            .lines()
            .nth(line.saturating_sub(1))
            .and_then(|l| l.split_once('='))
            .map(|(k, _)| k.trim().to_string())
            .unwrap_or_default(),
    };
    (line, key, message)
}

/// A config value that parsed but is not valid: the dotted key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The key, as a dotted path (`providers[0].base_url`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl Invalid {
    /// An invalid value at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid { key: key.into(), message: message.into() }
    }
}
