//! One ext_proc stream's state machine: phases in order, one answer of the
//! matching kind per message, the request body held or buffered, and the
//! decision core's answers translated into `ProcessingResponse`s. It
//! decides nothing itself: every verdict comes from [`crate::decision`].
//!
//! This file: the state, the phase order, the dispatch of each message and
//! when the stream is done. `request.rs` and `response.rs`: each side's
//! phases; `budget.rs`: the budget store calls; `record.rs`: the records
//! (log line, span, audit entries, metadata) of what was decided.

use std::sync::Arc;

use bytes::Bytes;

use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    processing_request, processing_response, ProcessingRequest, ProcessingResponse,
    TrailersResponse,
};
use envoy_types::pb::google::protobuf::Struct;
use tonic::Status;
use tracing::Instrument;

mod budget;
mod record;
mod request;
mod response;

use super::codec::Inbound;
use super::mutation;
use super::Phase;
use crate::decision::{BudgetPass, Outcome, Reply, RequestCtx, ResponseDecider};
use crate::policy::Policy;
use crate::telemetry::StreamTelemetry;

/// Bodies larger than this are decided on the blocking pool, so a 32 MB
/// scan never stalls the async workers.
const BLOCKING_THRESHOLD: usize = 1 << 20;

/// Per-stream state.
pub struct StreamState {
    policy: Arc<Policy>,
    hint: Option<String>,
    /// The last phase a message arrived for (`None`: none yet).
    phase: Option<Phase>,
    ctx: Option<RequestCtx>,
    /// We asked Envoy (mode_override) for the buffered request body.
    pub(super) requested_body: bool,
    /// Request body mode configured on the filter (from `protocol_config`).
    configured_request_body_mode: i32,
    /// Chunks of a STREAMED request body held back until the last one.
    held_body: Vec<u8>,
    request_body_done: bool,
    /// An immediate response was sent: Envoy sends nothing more.
    replied: bool,
    /// Dynamic metadata (namespace `promptgate`) to hand to Envoy on the next answer.
    pending_metadata: Option<Struct>,
    /// Span, metrics, decision log and metadata of this request.
    pub telemetry: StreamTelemetry,
    /// The response side's decisions.
    response: ResponseDecider,
    /// The last response body chunk was answered.
    response_done: bool,
    /// The response body mode decided at the response headers, for the
    /// answer to them.
    response_mode: Option<ProcessingMode>,
    /// The request's outcome, for the audit entries of its response.
    audited: Option<Outcome>,
    /// The audit log refused an entry (full queue, `FailClosed`).
    audit_refused: bool,
    /// The request passed its budgets: headers for the response, counters
    /// its usage is added to.
    budget: Option<BudgetPass>,
    /// What Envoy does itself (its config says so in the gRPC metadata):
    /// reads which answers' token usage and reports it to the access-log
    /// service (such an answer read for nothing else is not read here), and
    /// adds the remaining-budget headers from promptgate's metadata (they go
    /// out as metadata with the request's answer, and the response headers
    /// are not asked for).
    pub gateway_does: crate::decision::GatewayDoes,
}

impl StreamState {
    pub fn new(policy: Arc<Policy>, hint: Option<String>) -> Self {
        let response = ResponseDecider::new(&policy, None);
        StreamState {
            policy,
            hint,
            phase: None,
            ctx: None,
            requested_body: false,
            configured_request_body_mode: BodySendMode::None as i32,
            held_body: Vec::new(),
            request_body_done: false,
            replied: false,
            pending_metadata: None,
            telemetry: StreamTelemetry::detached(),
            response,
            audited: None,
            audit_refused: false,
            response_done: false,
            response_mode: None,
            budget: None,
            gateway_does: crate::decision::GatewayDoes::default(),
        }
    }

    /// Handles one message; an `Err` ends the stream with that status.
    /// Telemetry: a child span and a latency sample per message.
    /// Takes a message as tonic decoded it ([`Inbound`], body apart) or as
    /// built in memory (`ProcessingRequest`).
    pub async fn handle(&mut self, msg: impl Into<Inbound>) -> Result<ProcessingResponse, Status> {
        let Inbound { msg, body } = msg.into();
        let phase = Phase::of(&msg);
        if let Some(processing_request::Request::RequestHeaders(h)) = &msg.request {
            let headers = h.headers.as_ref().map_or(&[][..], |m| m.headers.as_slice());
            self.telemetry.on_request_headers(headers);
        }
        let started = std::time::Instant::now();
        let (span, phase_span) = (self.telemetry.span(), self.telemetry.phase_span(phase));
        let result = self
            .handle_message(msg, body)
            .instrument(phase_span)
            .instrument(span)
            .await;
        self.telemetry.on_phase(phase, started.elapsed());
        if let Err(status) = &result {
            self.telemetry.on_error(status);
        }
        result
    }

    /// Refuses a message that breaks the protocol's order.
    fn check_order(&self, msg: &ProcessingRequest) -> Result<Phase, Status> {
        if msg.request.is_none() {
            return Err(Status::invalid_argument(
                "ProcessingRequest carries no phase",
            ));
        }
        if self.replied {
            return Err(Status::failed_precondition(
                "message after an immediate response",
            ));
        }
        let phase = Phase::of(msg);
        if let Some(last) = self.phase {
            if phase < last || (phase == last && !phase.repeats()) {
                return Err(Status::failed_precondition(format!(
                    "{phase:?} received after {last:?}: out of order"
                )));
            }
        }
        if phase == Phase::RequestBody && self.request_body_done {
            return Err(Status::failed_precondition(
                "request body chunk after the end of the body",
            ));
        }
        Ok(phase)
    }

    async fn handle_message(
        &mut self,
        msg: ProcessingRequest,
        body: Option<Bytes>,
    ) -> Result<ProcessingResponse, Status> {
        use processing_request::Request as In;
        use processing_response::Response as Out;
        if let Some(cfg) = &msg.protocol_config {
            self.configured_request_body_mode = cfg.request_body_mode;
        }
        // In observability mode Envoy ignores the answers; they are still
        // given, in order.
        let phase = self.check_order(&msg)?;
        self.phase = Some(phase);
        let Some(request) = msg.request else {
            unreachable!("check_order refuses a message without a phase");
        };
        let response = match request {
            In::RequestHeaders(h) => {
                self.on_request_headers(h, msg.metadata_context.as_ref())
                    .await
            }
            In::RequestBody(b) => self.on_request_body(b, body).await,
            // A BUFFERED body followed by trailers arrives with
            // end_of_stream=false; it was decided when it arrived.
            In::RequestTrailers(_) => Out::RequestTrailers(TrailersResponse::default()),
            In::ResponseHeaders(h) => self.on_response_headers(h),
            In::ResponseBody(b) => self.on_response_body(b, body).await,
            In::ResponseTrailers(_) => Out::ResponseTrailers(TrailersResponse::default()),
        };
        let mut out = ProcessingResponse {
            response: Some(response),
            ..ProcessingResponse::default()
        };
        if !self.replied {
            out.mode_override = match phase {
                Phase::RequestHeaders => Some(self.request_mode()),
                Phase::ResponseHeaders => self.response_mode,
                _ => None,
            };
        }
        self.response_mode = None;
        out.dynamic_metadata = self.pending_metadata.take();
        Ok(out)
    }

    /// Whether every phase promptgate asked for has been answered, so the
    /// stream can end.
    pub fn finished(&self) -> bool {
        if self.replied {
            return true;
        }
        let reads_response = self.response.reads_response();
        match self.phase {
            None => false,
            Some(Phase::RequestHeaders) => !self.requested_body && !reads_response,
            Some(Phase::RequestBody | Phase::RequestTrailers) => {
                self.request_body_done && !reads_response
            }
            Some(Phase::ResponseHeaders) => self.response.is_skipped(),
            // Not before the last chunk: after a rejection the rest of the
            // stream must still be dropped, which only an open stream does.
            // A response read for its usage alone is done as soon as
            // nothing is left to read.
            Some(Phase::ResponseBody) => self.response_done || self.response.is_skipped(),
            Some(Phase::ResponseTrailers | Phase::Unknown) => true,
        }
    }

    /// An immediate response whose outcome was recorded already (a
    /// response guard's rejection).
    fn reply(&mut self, reply: Reply) -> processing_response::Response {
        self.replied = true;
        processing_response::Response::ImmediateResponse(mutation::immediate(reply))
    }

    /// An immediate response whose outcome is the request's record.
    fn refuse(&mut self, reply: Reply) -> processing_response::Response {
        self.record(reply.outcome.clone());
        self.reply(reply)
    }
}
