//! The text of one example difference at a path, from a summary as JSON
//! (what diff records carry): an entry of a JSON diff, or a stream's first
//! divergence.

use serde_json::Value;

fn show(x: Option<&Value>) -> String {
    x.map_or_else(|| "(absent)".to_string(), Value::to_string)
}

/// One diff entry: `path: left → right`, and the character diff of strings.
fn entry(e: &Value) -> String {
    let path = e.get("path").and_then(Value::as_str).unwrap_or("?");
    let mut s = format!("{}: {} → {}", path, show(e.get("left")), show(e.get("right")));
    if let Some(t) = e.get("text_diff").and_then(Value::as_str) {
        s += &format!("\n  text: {t}");
    }
    s
}

/// `left → right` at `path` (and the character diff of strings), if the summary shows it.
pub fn render(v: &Value, path: &str) -> Option<String> {
    if let Some(entries) = v.get("entries").and_then(Value::as_array) {
        return entries.iter().find(|e| e.get("path").and_then(Value::as_str) == Some(path)).map(entry);
    }
    first_divergence(v)
}

/// Everything a summary shows, one difference per item: each entry of a JSON
/// diff, a stream's counts and first divergence, a failure's error, the
/// digests and sizes of a comparison by digest, or the parse errors.
pub fn lines(v: &Value) -> Vec<String> {
    if let Some(entries) = v.get("entries").and_then(Value::as_array) {
        let mut out: Vec<String> = entries.iter().map(entry).collect();
        if let Some(n) = v.get("ignored").and_then(Value::as_u64).filter(|&n| n > 0) {
            out.push(format!("({n} more the ruleset explains)"));
        }
        return out;
    }
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return vec![format!("error: {e}")];
    }
    if let (Some(l), Some(r)) = (v.get("left_sha256"), v.get("right_sha256")) {
        return vec![format!(
            "compared by digest: {} ({} bytes) vs {} ({} bytes)",
            l.as_str().unwrap_or("?"),
            show(v.get("left_bytes")),
            r.as_str().unwrap_or("?"),
            show(v.get("right_bytes"))
        )];
    }
    if v.get("left_error").is_some() || v.get("right_error").is_some() {
        return vec![format!("unparsable: left {}, right {}", show(v.get("left_error")), show(v.get("right_error")))];
    }
    if let Some(n) = v.get("left_events") {
        let mut out = vec![format!(
            "events: left {n} / right {}, added {}, removed {}, mismatched {}",
            show(v.get("right_events")),
            v.get("added").map_or(0, |x| x.as_u64().unwrap_or(0)),
            v.get("removed").map_or(0, |x| x.as_u64().unwrap_or(0)),
            v.get("mismatched").map_or(0, |x| x.as_u64().unwrap_or(0)),
        )];
        out.extend(first_divergence(v));
        return out;
    }
    if let Some(n) = v.get("ignored").and_then(Value::as_u64) {
        return vec![format!("{n} differences the ruleset explains")];
    }
    Vec::new()
}

/// A stream's first divergence.
fn first_divergence(v: &Value) -> Option<String> {
    if let Some(f) = v.get("first_divergence").filter(|f| f.is_object()) {
        let event = f.get("event_type").and_then(Value::as_str).unwrap_or("?");
        let kind = f.get("kind").and_then(Value::as_str).unwrap_or("?");
        let at = f.get("path").and_then(Value::as_str).unwrap_or("-");
        let index = f.get("index").and_then(Value::as_u64).unwrap_or(0);
        let mut s =
            format!("event {index} ({event}, {kind}) at {at}: {} → {}", show(f.get("left")), show(f.get("right")));
        if let Some(t) = f.get("text_diff").and_then(Value::as_str) {
            s += &format!("\n  text: {t}");
        }
        return Some(s);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_at_the_path_renders_both_sides_and_the_text_diff() {
        let s = r#"{"entries":[{"path":"/a","kind":"changed","left":1,"right":2},
            {"path":"/choices/0/message/content","kind":"changed","left":"hi there","right":"hi here","text_diff":"hi [-t-]here"}],"ignored":0}"#;
        let s = &serde_json::from_str(s).unwrap();
        let text = render(s, "/choices/0/message/content").unwrap();
        assert_eq!(text, "/choices/0/message/content: \"hi there\" → \"hi here\"\n  text: hi [-t-]here");
        assert_eq!(render(s, "/a").unwrap(), "/a: 1 → 2");
        assert_eq!(render(s, "/b"), None);
        assert_eq!(lines(s).len(), 2);
    }

    #[test]
    fn a_stream_shows_its_first_divergence() {
        let s = r#"{"left_events":3,"right_events":3,"left_token_digest":"a","right_token_digest":"b","added":0,"removed":0,"mismatched":1,
            "first_divergence":{"index":2,"event_type":"text_delta","kind":"mismatched","path":"/text","left":"ab","right":"abc"}}"#;
        let s = &serde_json::from_str(s).unwrap();
        assert_eq!(
            render(s, "/events/text_delta").unwrap(),
            "event 2 (text_delta, mismatched) at /text: \"ab\" → \"abc\""
        );
        assert_eq!(render(&Value::Null, "/x"), None);
        assert_eq!(lines(s)[0], "events: left 3 / right 3, added 0, removed 0, mismatched 1");
        assert_eq!(lines(&serde_json::json!({"error": "deadline"})), ["error: deadline"]);
    }
}
