//! JSON pointer patterns: `/a/*/c` matches exactly one segment per `*`;
//! `**` matches any number of segments (zero included).

/// A compiled pointer pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    raw: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Any,
}

/// A pattern that is not a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JSON pointer pattern {0:?} must start with '/'")]
pub struct PatternError(pub String);

impl PathPattern {
    /// Parses a pattern; it must be empty (the root) or start with `/`.
    pub fn parse(raw: &str) -> Result<PathPattern, PatternError> {
        if !raw.is_empty() && !raw.starts_with('/') {
            return Err(PatternError(raw.into()));
        }
        let segments = split(raw)
            .map(|s| match s {
                "*" => Segment::One,
                "**" => Segment::Any,
                lit => Segment::Literal(unescape(lit)),
            })
            .collect();
        Ok(PathPattern { raw: raw.to_string(), segments })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether `path` (a JSON pointer) matches.
    pub fn matches(&self, path: &str) -> bool {
        let segs: Vec<String> = split(path).map(unescape).collect();
        self.matches_segments(&segs)
    }

    /// Whether the (unescaped) segments of a path match.
    pub fn matches_segments<S: AsRef<str>>(&self, segs: &[S]) -> bool {
        matches_from(&self.segments, segs)
    }
}

fn split(p: &str) -> impl Iterator<Item = &str> {
    p.split('/').skip(1)
}

fn matches_from<S: AsRef<str>>(pat: &[Segment], path: &[S]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((Segment::Any, rest)) => (0..=path.len()).any(|skip| matches_from(rest, &path[skip..])),
        Some((seg, rest)) => match path.split_first() {
            None => false,
            Some((first, tail)) => {
                let ok = match seg {
                    Segment::Literal(l) => first.as_ref() == l,
                    _ => true,
                };
                ok && matches_from(rest, tail)
            }
        },
    }
}

fn unescape(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

/// Appends a key or index to a JSON pointer, escaping `~` and `/`.
pub fn push(path: &str, key: &str) -> String {
    format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let p = PathPattern::parse("/choices/*/message/tool_calls/*/id").unwrap();
        assert!(p.matches("/choices/0/message/tool_calls/3/id"));
        assert!(!p.matches("/choices/0/message/tool_calls/3/function/name"));
        let any = PathPattern::parse("/usage/**").unwrap();
        assert!(any.matches("/usage") && any.matches("/usage/prompt_tokens_details/cached_tokens"));
        assert!(!any.matches("/model"));
        let deep = PathPattern::parse("/**/provider_content/**").unwrap();
        assert!(deep.matches("/choices/0/message/provider_content/1/type"));
        assert!(PathPattern::parse("usage").is_err());
        assert!(PathPattern::parse("/a~1b").unwrap().matches(&push("", "a/b")));
    }
}
