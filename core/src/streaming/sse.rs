//! Incremental Server-Sent Events parser (WHATWG event-stream rules), fed
//! byte chunks split anywhere.
//!
//! Hand-written rather than taken from a crate: the core needs a synchronous,
//! allocation-bounded parser with no I/O or async runtime, for wasm32 too.

use crate::error::{CoreError, Result};

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Parser state across chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    event: Option<String>,
    data: Option<String>,
    max_event_bytes: usize,
}

impl SseParser {
    /// A parser that refuses events (or lines) larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> SseParser {
        SseParser { max_event_bytes, ..SseParser::default() }
    }

    /// Feeds bytes; returns every event completed by them.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<()> {
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(out)?,
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(out)?;
                }
                _ => {
                    if self.line.len() >= self.max_event_bytes {
                        return Err(CoreError::stream(format!("SSE line longer than {} bytes", self.max_event_bytes)));
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    /// Ends the input: a final event without its blank line is still dispatched.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<()> {
        if !self.line.is_empty() {
            self.end_line(out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<()> {
        if self.line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = std::mem::take(&mut self.line);
        let line = String::from_utf8(line).map_err(|_| CoreError::stream("SSE line is not valid UTF-8"))?;
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                let data = self.data.get_or_insert_with(String::new);
                data.push_str(value);
                data.push('\n');
                if data.len() > self.max_event_bytes {
                    return Err(CoreError::stream(format!("SSE event larger than {} bytes", self.max_event_bytes)));
                }
            }
            _ => {} // `id`, `retry` and unknown fields carry nothing the conversion needs.
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if let Some(mut data) = self.data.take() {
            data.pop();
            out.push(SseEvent { event, data });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        p.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn handles_crlf_split_across_chunks_comments_and_multiline_data() {
        let events = parse_all(&[b"event: a\r", b"\ndata: x\r\ndata:y\r\n\r", b"\n: comment\n\ndata: [DONE]\n\n"]);
        assert_eq!(
            events,
            vec![
                SseEvent { event: Some("a".into()), data: "x\ny".into() },
                SseEvent { event: None, data: "[DONE]".into() }
            ]
        );
    }

    #[test]
    fn final_event_without_blank_line_is_dispatched_and_limits_hold() {
        assert_eq!(parse_all(&[b"data: tail"]), vec![SseEvent { event: None, data: "tail".into() }]);
        let mut p = SseParser::new(4);
        assert!(p.feed(b"data: too long", &mut Vec::new()).is_err());
    }
}
