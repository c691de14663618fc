//! Module `streaming`: a stateful session that converts an upstream SSE
//! stream into the client protocol's SSE stream, fed one chunk at a time.
//!
//! Contract: upstream bytes in (split anywhere), client SSE text out. How the
//! bytes are split never changes the events produced. A broken or truncated
//! stream ends with the client protocol's error event; the session records
//! the error and ignores anything fed after the end.

mod anthropic;
mod event;
mod gemini;
mod openai;
mod responses;
mod sse;

pub use event::{BlockKind, Delta, StreamEvent};
pub use sse::{SseEvent, SseParser};

use crate::canonical::Usage;
use crate::context::Context;
use crate::error::{CoreError, ErrorKind, Result};
use crate::protocol::Protocol;
use crate::tokenizer;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Version of the `streaming` module.
pub const VERSION: &str = "streaming/1.0.0";

/// Version of the canonical SSE event schema.
pub const SSE_PROTOCOL_VERSION: &str = "sse/1";

/// Largest SSE event accepted from an upstream, by default.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 8 << 20;

/// How to open a session.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamOptions {
    /// Upstream protocol.
    pub from: String,
    /// Client protocol.
    pub to: String,
    /// OpenAI clients: whether to send the final usage chunk.
    #[serde(default)]
    pub include_usage: bool,
    /// Per-event size cap (at most `u32::MAX`, so every runtime applies the same cap).
    #[serde(default)]
    pub max_event_bytes: Option<u64>,
}

#[derive(Debug)]
enum Decoder {
    OpenAi(openai::Decoder),
    Anthropic(anthropic::Decoder),
    Responses(responses::Decoder),
    Gemini(gemini::Decoder),
}

#[derive(Debug)]
enum Encoder {
    OpenAi(openai::Encoder),
    Anthropic(anthropic::Encoder),
    Responses(responses::Encoder),
    Gemini(gemini::Encoder),
}

/// One stream's conversion state.
#[derive(Debug)]
pub struct StreamSession {
    ctx: Context,
    parser: SseParser,
    decoder: Decoder,
    encoder: Encoder,
    ended: bool,
    error: Option<CoreError>,
    estimated_output_tokens: u64,
    events: Vec<StreamEvent>,
    sse: Vec<SseEvent>,
    /// OpenAI to OpenAI: choices after the first (`n > 1`), each with its own decoder and encoder.
    choices: BTreeMap<u64, (openai::Decoder, openai::Encoder)>,
    same_openai: bool,
    /// Responses to Responses, Gemini to Gemini: the upstream's events go to the
    /// client as they came (ids and sequence numbers included); the decoder
    /// still watches them.
    passthrough: bool,
}

impl StreamSession {
    /// Opens a session.
    pub fn new(ctx: Context, opts: &StreamOptions) -> Result<StreamSession> {
        let from = Protocol::parse(&opts.from, "/from")?;
        let to = Protocol::parse(&opts.to, "/to")?;
        let encoder = match to {
            Protocol::OpenAiChat => Encoder::OpenAi(openai::Encoder::new(from, opts.include_usage, &ctx)),
            Protocol::AnthropicMessages => Encoder::Anthropic(anthropic::Encoder::new(from)),
            Protocol::OpenAiResponses => Encoder::Responses(responses::Encoder::new(&ctx)),
            Protocol::Gemini => Encoder::Gemini(gemini::Encoder::new(&ctx)),
        };
        Ok(StreamSession {
            ctx,
            parser: SseParser::new(opts.max_event_bytes.map_or(DEFAULT_MAX_EVENT_BYTES, |b| {
                usize::try_from(b.min(u64::from(u32::MAX))).unwrap_or(usize::MAX)
            })),
            decoder: match from {
                Protocol::OpenAiChat => Decoder::OpenAi(openai::Decoder::default()),
                Protocol::AnthropicMessages => Decoder::Anthropic(anthropic::Decoder::default()),
                Protocol::OpenAiResponses => Decoder::Responses(responses::Decoder::default()),
                Protocol::Gemini => Decoder::Gemini(gemini::Decoder::default()),
            },
            encoder,
            ended: false,
            error: None,
            estimated_output_tokens: 0,
            events: Vec::new(),
            sse: Vec::new(),
            choices: BTreeMap::new(),
            same_openai: from == Protocol::OpenAiChat && to == Protocol::OpenAiChat,
            passthrough: from == to && matches!(from, Protocol::OpenAiResponses | Protocol::Gemini),
        })
    }

    /// Feeds upstream bytes; returns the client SSE text they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> String {
        let mut out = String::new();
        if self.ended {
            return out;
        }
        let mut sse = std::mem::take(&mut self.sse);
        let parsed = self.parser.feed(bytes, &mut sse);
        self.process(&mut sse, &mut out);
        self.sse = sse;
        if let Err(e) = parsed {
            self.fail(e, &mut out);
        }
        out
    }

    /// Ends the upstream stream; returns the last client SSE text. A stream
    /// that ends before its final event gets an error event.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        if self.ended {
            return out;
        }
        let mut sse = std::mem::take(&mut self.sse);
        let parsed = self.parser.finish(&mut sse);
        self.process(&mut sse, &mut out);
        if let Err(e) = parsed {
            self.fail(e, &mut out);
        }
        if !self.ended {
            self.fail(CoreError::stream("upstream stream ended before the message completed"), &mut out);
        }
        out
    }

    /// The error that ended the stream, if it did not complete normally.
    pub fn error(&self) -> Option<&CoreError> {
        self.error.as_ref()
    }

    /// Whether the stream has ended (completed, failed, or errored upstream).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    fn process(&mut self, sse: &mut Vec<SseEvent>, out: &mut String) {
        for ev in sse.drain(..) {
            if self.ended {
                break;
            }
            // The other choices end before choice 0, whose end closes the stream.
            let done = ev.data.trim() == "[DONE]";
            if done {
                self.other_choices(&ev.data, out);
            }
            let mut events = std::mem::take(&mut self.events);
            let decoded = match &mut self.decoder {
                Decoder::OpenAi(d) => {
                    let r = d.decode(&ev.data, &self.ctx, &mut events);
                    if self.same_openai {
                        for k in d.take_new_choices() {
                            let pair = (
                                openai::Decoder::for_choice(k),
                                openai::Encoder::for_choice(Protocol::OpenAiChat, &self.ctx, k),
                            );
                            self.choices.insert(k, pair);
                        }
                    }
                    r
                }
                Decoder::Anthropic(d) => d.decode(&ev.data, &mut events),
                Decoder::Responses(d) => d.decode(&ev.data, &mut events),
                Decoder::Gemini(d) => d.decode(&ev.data, &self.ctx, &mut events),
            };
            if self.passthrough && decoded.is_ok() {
                write_event(out, &ev);
            }
            for e in events.drain(..) {
                self.emit(e, out);
            }
            self.terminate_passthrough(out);
            self.events = events;
            if let Err(e) = decoded {
                self.fail(e, out);
            } else if !done {
                self.other_choices(&ev.data, out);
            }
        }
    }

    /// Passes an event through the other choices' decoders and encoders
    /// (same-protocol OpenAI streams with `n > 1`). Stream-level events —
    /// errors, pings, the end — are choice 0's to send.
    fn other_choices(&mut self, data: &str, out: &mut String) {
        let mut events = Vec::new();
        for (decoder, encoder) in self.choices.values_mut() {
            if decoder.decode(data, &self.ctx, &mut events).is_err() {
                events.clear();
                continue;
            }
            for e in events.drain(..) {
                if !matches!(e, StreamEvent::Done | StreamEvent::Error { .. } | StreamEvent::Ping) {
                    encoder.encode(&e, &self.ctx, out);
                }
            }
        }
    }

    /// A passed-through Responses stream that failed with an `error` event
    /// still gets its one terminal event, numbered after the upstream's.
    fn terminate_passthrough(&mut self, out: &mut String) {
        if let (true, true, Decoder::Responses(d), Encoder::Responses(e)) =
            (self.passthrough, self.ended, &self.decoder, &mut self.encoder)
            && d.error_pending()
        {
            let (seq, id, model) = d.position();
            e.follow(seq, id, model);
            let message = self.error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
            e.failed("", message, out);
        }
    }

    fn emit(&mut self, mut ev: StreamEvent, out: &mut String) {
        if self.ended {
            return;
        }
        match &mut ev {
            StreamEvent::Delta { delta: Delta::Text(t) | Delta::Thinking(t) | Delta::ToolArgs(t), .. } => {
                self.estimated_output_tokens = self.estimated_output_tokens.saturating_add(tokenizer::count(t));
            }
            StreamEvent::Finish { usage, .. } if usage.is_none() => {
                // No usage from the upstream: estimate the output side.
                *usage = Some(Usage { output_tokens: self.estimated_output_tokens, ..Usage::default() });
            }
            StreamEvent::Done => self.ended = true,
            StreamEvent::Error { kind, message } => {
                self.ended = true;
                self.error =
                    Some(CoreError::new(ErrorKind::Upstream, "", format!("upstream stream error {kind}: {message}")));
            }
            _ => {}
        }
        if self.passthrough {
            return;
        }
        match &mut self.encoder {
            Encoder::OpenAi(e) => e.encode(&ev, &self.ctx, out),
            Encoder::Anthropic(e) => e.encode(&ev, &self.ctx, out),
            Encoder::Responses(e) => e.encode(&ev, &self.ctx, out),
            Encoder::Gemini(e) => e.encode(&ev, &self.ctx, out),
        }
    }

    fn fail(&mut self, err: CoreError, out: &mut String) {
        if self.ended {
            return;
        }
        let ev = StreamEvent::Error { kind: String::new(), message: format!("shadowgate: {}", err.message) };
        match &mut self.encoder {
            Encoder::OpenAi(e) => e.encode(&ev, &self.ctx, out),
            Encoder::Anthropic(e) => e.encode(&ev, &self.ctx, out),
            Encoder::Responses(e) => {
                // A passed-through stream's error continues the upstream's numbering.
                if let (true, Decoder::Responses(d)) = (self.passthrough, &self.decoder) {
                    let (seq, id, model) = d.position();
                    e.follow(seq, id, model);
                }
                e.encode(&ev, &self.ctx, out)
            }
            Encoder::Gemini(e) => e.encode(&ev, &self.ctx, out),
        }
        self.ended = true;
        self.error = Some(if err.kind == ErrorKind::InvalidJson || err.kind == ErrorKind::InvalidInput {
            CoreError::stream(format!("malformed upstream event: {}", err.message))
        } else {
            err
        });
    }
}

/// Appends an upstream SSE event as it came (the `event:` field, then its data lines).
fn write_event(out: &mut String, ev: &SseEvent) {
    if let Some(name) = &ev.event {
        out.push_str("event: ");
        out.push_str(name);
        out.push('\n');
    }
    for line in ev.data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
}

/// Appends `v` as compact JSON (what `serde_json::to_string` gives; a value
/// that cannot be serialized, which no stream event is, appends nothing).
fn write_json(out: &mut String, v: &impl serde::Serialize) {
    let mut buf = Vec::with_capacity(128);
    if serde_json::to_writer(&mut buf, v).is_ok()
        && let Ok(text) = std::str::from_utf8(&buf)
    {
        out.push_str(text);
    }
}

/// Converts a whole upstream stream in one call (tests, replay, CLI).
pub fn convert_stream(ctx: &Context, opts: &StreamOptions, chunks: &[&[u8]]) -> Result<(String, Option<CoreError>)> {
    let mut s = StreamSession::new(ctx.clone(), opts)?;
    let mut out = String::new();
    for c in chunks {
        out.push_str(&s.feed(c));
    }
    out.push_str(&s.finish());
    Ok((out, s.error().cloned()))
}
