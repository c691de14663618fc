//! Turning a served exchange into a replayable case: sampled after its
//! comparisons are known, redacted, and with the primary's outputs computed
//! from the redacted case (so replay compares like with like: the tokenizer
//! counts the hashed text it will see, not the original).

use crate::case::{Case, CaseRouting, UpstreamResponse};
use crate::plan;
use crate::record::{CaseRow, Dims};
use crate::sink::redact::Redactor;
use crate::sink::sampling::Sampler;
use crate::sink::{ReasonLabels, SinkRecord, SinkSender, SinkStats};
use bytes::Bytes;
use serde_json::Value;
use shadowgate_core::{Context, Protocol};
use shadowgate_runtime::{RuntimeKind, Runtimes};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the upstream answered.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A whole response.
    Response {
        /// Status.
        status: u16,
        /// Body bytes.
        body: Bytes,
        /// Headers worth keeping (`retry-after`).
        headers: BTreeMap<String, String>,
    },
    /// The raw SSE stream, whole.
    Stream(Bytes),
}

/// One served exchange, as received (redacted only if it becomes a case).
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Client protocol.
    pub client: Protocol,
    /// Upstream protocol.
    pub upstream: Protocol,
    /// The client's request body.
    pub request: Bytes,
    /// Request headers a replay needs (pass-through and tenant headers).
    pub headers: BTreeMap<String, String>,
    /// Model sent upstream, when routing replaced it.
    pub upstream_model: Option<String>,
    /// Upstream compat profile name.
    pub profile: Option<String>,
    /// The request's context.
    pub ctx: Context,
    /// The answer.
    pub answer: Answer,
    /// The routing queries the request was served with.
    pub routing: RoutingTrace,
}

/// The `routing.resolve` query and the `routing.next` queries of one request, as sent to the core.
#[derive(Debug, Clone, Default)]
pub struct RoutingTrace {
    /// The `routing.resolve` query.
    pub resolve: Bytes,
    /// One `routing.next` query per failed attempt.
    pub next: Vec<Bytes>,
}

fn json_or_text(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned()))
}

/// Samples, redacts and records cases.
pub struct Recorder {
    /// The sampling decision.
    pub sampler: Sampler,
    redactor: Arc<Redactor>,
    stats: SinkStats,
    ruleset_version: String,
}

impl Recorder {
    /// A recorder.
    pub fn new(sampler: Sampler, redactor: Arc<Redactor>, stats: SinkStats, ruleset_version: String) -> Recorder {
        Recorder { sampler, redactor, stats, ruleset_version }
    }

    /// Whether a request without shadow calls could still become a case.
    pub fn wants(&self, dims: &Dims) -> bool {
        self.sampler.rate_hit(dims).is_some()
    }

    /// Records `ex` as a case if the sampler keeps it.
    pub fn record(
        &self,
        rts: &Runtimes,
        primary: RuntimeKind,
        dims: &Dims,
        ex: &Exchange,
        diverged: bool,
        sink: &SinkSender,
    ) {
        let Some(reason) = self.sampler.decide(dims, diverged) else { return };
        let case = self.redacted_case(dims, ex);
        let outputs = plan::outputs(rts.get(primary), &case);
        self.stats.sampled.get_or_create(&ReasonLabels { reason: reason.as_str().into() }).inc();
        let row = CaseRow {
            dims: dims.clone(),
            case,
            primary_runtime: primary.as_str().into(),
            outputs,
            sampling_reason: reason.as_str().into(),
            ruleset_version: self.ruleset_version.clone(),
        };
        sink.send(SinkRecord::Case(Box::new(row)));
    }

    fn redacted_case(&self, dims: &Dims, ex: &Exchange) -> Case {
        let (upstream_response, upstream_stream) = match &ex.answer {
            Answer::Response { status, body, headers } => {
                (Some(UpstreamResponse { status: *status, body: json_or_text(body), headers: headers.clone() }), None)
            }
            Answer::Stream(s) => (None, Some(String::from_utf8_lossy(s).into_owned())),
        };
        let mut case = Case {
            id: dims.request_id.clone(),
            description: None,
            client_protocol: ex.client,
            upstream_protocol: ex.upstream,
            request: json_or_text(&ex.request),
            upstream_response,
            upstream_stream,
            upstream_model: ex.upstream_model.clone(),
            tenant: Some(dims.tenant.clone()),
            route: Some(dims.route.clone()),
            profile: ex.profile.clone(),
            context: Some(ex.ctx.clone()),
            headers: ex.headers.clone(),
            routing: Some(CaseRouting {
                resolve: json_or_text(&ex.routing.resolve),
                next: ex.routing.next.iter().map(|q| json_or_text(q)).collect(),
            }),
        };
        crate::sink::redact_case(&self.redactor, &mut case);
        case
    }
}
