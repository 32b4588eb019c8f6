//! The Envoy ext_proc adapter: one state machine per gRPC stream.
//!
//! It turns `ProcessingRequest`s into calls of the decision core and the
//! core's decisions into `ProcessingResponse`s. Protocol rules enforced
//! here: phases arrive in order (request headers, body, trailers, response
//! headers, body, trailers; skipped phases allowed), each message gets
//! exactly one answer of the matching kind, and anything out of order ends
//! the stream with a gRPC error status — never a panic.

use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::{
    BodySendMode, HeaderSendMode,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessor;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation, processing_request, processing_response, BodyMutation, BodyResponse,
    CommonResponse, HeaderMutation, HeadersResponse, HttpBody, HttpHeaders, ImmediateResponse,
    ProcessingRequest, ProcessingResponse, TrailersResponse,
};
use envoy_types::pb::google::protobuf::Struct;
use futures_util::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::decision::ResponsePlan;
use crate::decision::{
    self, BodyDecision, HeaderChanges, HeadersDecision, Outcome, Reply, RequestCtx, RequestHead,
    MAX_BODY_BYTES,
};
use crate::policy::{Policy, TokenUsageMode};
use crate::provider::stream::{
    guard_json_body, EventInfo, Fired as StreamFired, Rejection, ScanMatch, StreamGuard,
    StreamKind, TextScanner, Usage,
};
use crate::telemetry::{self, StreamTelemetry, TokenUsage};

/// gRPC metadata key with which Envoy names the backend of a route.
pub const BACKEND_METADATA: &str = "x-promptgate-backend";

/// Bodies larger than this are decided on the blocking pool, so a 32 MB
/// scan never stalls the async workers.
const BLOCKING_THRESHOLD: usize = 1 << 20;

/// The ext_proc gRPC service.
#[derive(Clone)]
pub struct ExtProcService {
    policy: Arc<ArcSwap<Policy>>,
}

impl ExtProcService {
    pub fn new(policy: Arc<ArcSwap<Policy>>) -> Self {
        ExtProcService { policy }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalProcessor for ExtProcService {
    type ProcessStream = ResponseStream;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let hint = request
            .metadata()
            .get(BACKEND_METADATA)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // A stream keeps the policy it started with, whatever reloads meanwhile.
        let mut machine = StreamState::new(self.policy.load_full(), hint);
        machine.telemetry = StreamTelemetry::start(request.metadata());
        let inbound = request.into_inner();
        let out = futures_util::stream::unfold(Some((inbound, machine)), |state| async move {
            let (mut inbound, mut machine) = state?;
            match inbound.message().await {
                Ok(Some(msg)) => match machine.handle(msg).await {
                    // Nothing more to do for this request: close the stream
                    // (OK status); Envoy goes on without the processor, and
                    // no stream lingers for the rest of a passthrough or an
                    // unread response (cheaper drains and restarts).
                    Ok(resp) if machine.finished() => Some((Ok(resp), None)),
                    Ok(resp) => Some((Ok(resp), Some((inbound, machine)))),
                    Err(status) => Some((Err(status), None)),
                },
                Ok(None) => None,
                Err(status) => {
                    tracing::debug!(code = ?status.code(), error = status.message(), "ext_proc stream broke");
                    None
                }
            }
        });
        Ok(Response::new(Box::pin(out)))
    }
}

/// Phases in the order Envoy sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Start,
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
}

/// Per-stream state.
pub struct StreamState {
    policy: Arc<Policy>,
    hint: Option<String>,
    phase: Phase,
    ctx: Option<RequestCtx>,
    /// We asked Envoy (mode_override) for the buffered request body.
    requested_body: bool,
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
    /// How the response is being guarded.
    response: ResponseState,
    /// What response guards did so far.
    response_outcome: ResponseOutcome,
    /// The last response body chunk was answered.
    response_done: bool,
}

/// The response-side decision record (never response text).
#[derive(Debug)]
struct ResponseOutcome {
    /// `allow`, `mask`, `reject` or `error`.
    decision: &'static str,
    rule: Option<String>,
    location: Option<String>,
    masked: usize,
}

impl Default for ResponseOutcome {
    fn default() -> Self {
        ResponseOutcome {
            decision: "allow",
            rule: None,
            location: None,
            masked: 0,
        }
    }
}

/// Response-side state.
enum ResponseState {
    /// Not read.
    Skip,
    /// Read for its token usage only (no response guard): the body comes
    /// without its headers and every chunk passes unchanged.
    Usage(UsageRead),
    /// An SSE stream guarded as it flows.
    Stream(Box<StreamGuard>),
    /// A JSON body, guarded when it is whole.
    Json(StreamKind),
    /// The stream engine failed or rejected: further chunks are dropped.
    Ended,
}

impl StreamState {
    pub fn new(policy: Arc<Policy>, hint: Option<String>) -> Self {
        StreamState {
            policy,
            hint,
            phase: Phase::Start,
            ctx: None,
            requested_body: false,
            configured_request_body_mode: BodySendMode::None as i32,
            held_body: Vec::new(),
            request_body_done: false,
            replied: false,
            pending_metadata: None,
            telemetry: StreamTelemetry::detached(),
            response: ResponseState::Skip,
            response_outcome: ResponseOutcome::default(),
            response_done: false,
        }
    }

    /// Handles one message; an `Err` ends the stream with that status.
    /// Telemetry: a child span and a latency sample per message.
    pub async fn handle(&mut self, msg: ProcessingRequest) -> Result<ProcessingResponse, Status> {
        let phase = telemetry::Phase::of(&msg);
        if let Some(processing_request::Request::RequestHeaders(h)) = &msg.request {
            let headers = h.headers.as_ref().map_or(&[][..], |m| m.headers.as_slice());
            self.telemetry.on_request_headers(headers);
        }
        let started = std::time::Instant::now();
        let (span, phase_span) = (self.telemetry.span(), self.telemetry.phase_span(phase));
        let result = self
            .handle_message(msg)
            .instrument(phase_span)
            .instrument(span)
            .await;
        self.telemetry.on_phase(phase, started.elapsed());
        if let Err(status) = &result {
            self.telemetry.on_error(status);
        }
        result
    }

    async fn handle_message(
        &mut self,
        msg: ProcessingRequest,
    ) -> Result<ProcessingResponse, Status> {
        use processing_request::Request as In;
        if let Some(cfg) = &msg.protocol_config {
            self.configured_request_body_mode = cfg.request_body_mode;
        }
        if msg.observability_mode {
            // Envoy ignores answers in observability mode; still answer in order.
        }
        let Some(request) = msg.request else {
            return Err(Status::invalid_argument(
                "ProcessingRequest carries no phase",
            ));
        };
        if self.replied {
            return Err(Status::failed_precondition(
                "message after an immediate response",
            ));
        }
        let phase = match &request {
            In::RequestHeaders(_) => Phase::RequestHeaders,
            In::RequestBody(_) => Phase::RequestBody,
            In::RequestTrailers(_) => Phase::RequestTrailers,
            In::ResponseHeaders(_) => Phase::ResponseHeaders,
            In::ResponseBody(_) => Phase::ResponseBody,
            In::ResponseTrailers(_) => Phase::ResponseTrailers,
        };
        let repeatable = matches!(phase, Phase::RequestBody | Phase::ResponseBody);
        if phase < self.phase || (phase == self.phase && !repeatable) {
            return Err(Status::failed_precondition(format!(
                "{phase:?} received after {:?}: out of order",
                self.phase
            )));
        }
        if phase == Phase::RequestBody && self.request_body_done {
            return Err(Status::failed_precondition(
                "request body chunk after the end of the body",
            ));
        }
        self.phase = phase;

        let response = match request {
            In::RequestHeaders(h) => self.on_request_headers(h),
            In::RequestBody(b) => self.on_request_body(b).await,
            In::RequestTrailers(_) => {
                // A BUFFERED body followed by trailers arrives with
                // end_of_stream=false; it was decided when it arrived.
                processing_response::Response::RequestTrailers(TrailersResponse::default())
            }
            In::ResponseHeaders(h) => {
                let status = response_status(&h);
                if self.requested_body && !self.request_body_done && status < 400 {
                    // A success for a request whose body we asked for and
                    // never saw: Envoy ignored the mode_override (the filter
                    // lacks `allow_mode_override: true`) and the request went
                    // out unguarded. Fail loudly on the way back rather than
                    // pretend it was checked. (An error status here is most
                    // likely Envoy's own local reply, e.g. 413 for a body over
                    // its buffer limit: it passes.)
                    tracing::error!("Envoy ignored mode_override: the request body was not inspected; set allow_mode_override: true on the ext_proc filter");
                    let reply = gateway_reply(self.ctx.as_ref(), "promptgate did not see the request body: the gateway's ext_proc filter must set allow_mode_override");
                    processing_response::Response::ImmediateResponse(self.immediate(reply))
                } else {
                    self.on_response_headers(h)
                }
            }
            In::ResponseBody(b) => self.on_response_body(b),
            In::ResponseTrailers(_) => {
                processing_response::Response::ResponseTrailers(TrailersResponse::default())
            }
        };
        let mut out = ProcessingResponse {
            response: Some(response),
            ..ProcessingResponse::default()
        };
        if phase == Phase::RequestHeaders && !self.replied {
            out.mode_override = Some(self.mode_override());
            if self.reads_usage_only() {
                self.response = ResponseState::Usage(UsageRead::Sniff);
            }
        }
        if phase == Phase::ResponseHeaders && !self.replied {
            out.mode_override = match self.response {
                ResponseState::Stream(_) => Some(ProcessingMode {
                    response_body_mode: BodySendMode::Streamed as i32,
                    ..ProcessingMode::default()
                }),
                ResponseState::Json(_) => Some(ProcessingMode {
                    response_body_mode: BodySendMode::Buffered as i32,
                    ..ProcessingMode::default()
                }),
                _ => None,
            };
        }
        out.dynamic_metadata = self.pending_metadata.take();
        Ok(out)
    }

    /// Whether every phase promptgate asked for has been answered, so the
    /// stream can end.
    pub fn finished(&self) -> bool {
        if self.replied {
            return true;
        }
        let reads_response = self.ctx.as_ref().is_some_and(|c| c.response_guarded)
            || matches!(self.response, ResponseState::Usage(_));
        match self.phase {
            Phase::RequestHeaders => !self.requested_body && !reads_response,
            Phase::RequestBody | Phase::RequestTrailers => {
                self.request_body_done && !reads_response
            }
            Phase::ResponseHeaders => matches!(self.response, ResponseState::Skip),
            // Not before the last chunk: after a rejection the rest of the
            // stream must still be dropped, which only an open stream does.
            Phase::ResponseBody => self.response_done,
            Phase::ResponseTrailers => true,
            Phase::Start => false,
        }
    }

    /// The response is read for its token usage and nothing else.
    fn reads_usage_only(&self) -> bool {
        self.ctx
            .as_ref()
            .is_some_and(|c| c.inspect_response && !c.response_guarded)
    }

    fn mode_override(&self) -> ProcessingMode {
        let guarded = self.ctx.as_ref().is_some_and(|c| c.response_guarded);
        let (response_header_mode, response_body_mode) = if guarded {
            // Response guards need the status and content type first; the
            // body mode follows on the answer to the response headers.
            (0, 0)
        } else if self.reads_usage_only() {
            // Token usage only: no response headers exchange (Envoy would
            // hold the response back for it). The body comes STREAMED — an
            // SSE stream or a JSON body, told apart by its first bytes — and
            // every chunk passes unchanged.
            (HeaderSendMode::Skip as i32, BodySendMode::Streamed as i32)
        } else {
            // Nothing to read in the response.
            (HeaderSendMode::Skip as i32, 0)
        };
        ProcessingMode {
            response_header_mode,
            response_body_mode,
            request_body_mode: if self.requested_body {
                BodySendMode::Buffered as i32
            } else {
                0
            },
            ..ProcessingMode::default()
        }
    }

    fn on_request_headers(&mut self, h: HttpHeaders) -> processing_response::Response {
        let get = |name: &str| find_header(&h, name);
        let head = RequestHead {
            method: get(":method").unwrap_or(""),
            path: get(":path").unwrap_or("/"),
            authority: get(":authority").or_else(|| get("host")).unwrap_or(""),
            content_encoding: get("content-encoding"),
            has_anthropic_version: get("anthropic-version").is_some(),
            end_of_stream: h.end_of_stream,
        };
        let (ctx, decision) = decision::request_headers(&self.policy, self.hint.as_deref(), &head);
        self.ctx = ctx;
        match decision {
            HeadersDecision::Continue {
                changes,
                inspect_body,
                outcome,
            } => {
                self.requested_body = inspect_body;
                if !inspect_body {
                    self.record(outcome);
                }
                processing_response::Response::RequestHeaders(HeadersResponse {
                    response: Some(CommonResponse {
                        header_mutation: header_mutation(&changes),
                        ..CommonResponse::default()
                    }),
                })
            }
            HeadersDecision::Reply(reply) => {
                processing_response::Response::ImmediateResponse(self.immediate(reply))
            }
        }
    }

    async fn on_request_body(&mut self, b: HttpBody) -> processing_response::Response {
        let pass = || processing_response::Response::RequestBody(BodyResponse::default());
        let Some(ctx) = self.ctx.clone() else {
            // No request headers were sent (request_header_mode SKIP): no
            // backend, no route. Fail closed.
            let reply = gateway_reply(
                None,
                "promptgate needs the request headers: set request_header_mode SEND",
            );
            return processing_response::Response::ImmediateResponse(self.immediate(reply));
        };
        if !ctx.route.inspects_request_body() {
            // Envoy is configured to send bodies we do not read: pass them.
            self.request_body_done |= b.end_of_stream;
            return pass();
        }
        let mode = if self.requested_body {
            BodySendMode::Buffered as i32
        } else {
            self.configured_request_body_mode
        };
        let streamed = mode == BodySendMode::Streamed as i32;
        if mode == BodySendMode::FullDuplexStreamed as i32 {
            let reply = gateway_reply(Some(&ctx), "promptgate does not support FULL_DUPLEX_STREAMED request bodies; configure BUFFERED");
            return processing_response::Response::ImmediateResponse(self.immediate(reply));
        }
        let complete = b.end_of_stream || mode == BodySendMode::Buffered as i32;
        if !complete {
            if !streamed {
                // BUFFERED_PARTIAL delivered only the first part of the body.
                let reply = too_large(&ctx);
                return processing_response::Response::ImmediateResponse(self.immediate(reply));
            }
            if self.held_body.len() + b.body.len() > MAX_BODY_BYTES {
                let reply = too_large(&ctx);
                return processing_response::Response::ImmediateResponse(self.immediate(reply));
            }
            // Hold the chunk back until the whole body is here.
            self.held_body.extend_from_slice(&b.body);
            return processing_response::Response::RequestBody(BodyResponse {
                response: Some(CommonResponse {
                    body_mutation: Some(BodyMutation {
                        mutation: Some(body_mutation::Mutation::ClearBody(true)),
                    }),
                    ..CommonResponse::default()
                }),
            });
        }
        self.request_body_done = true;
        let held_back = !self.held_body.is_empty();
        let body = if held_back {
            let mut all = std::mem::take(&mut self.held_body);
            all.extend_from_slice(&b.body);
            all
        } else {
            b.body
        };
        let (decision, body) = if body.len() > BLOCKING_THRESHOLD {
            // A large body is decided on the blocking pool, so its scan
            // never stalls the async workers (external guards, if any, are
            // awaited there too).
            let policy = self.policy.clone();
            let ctx2 = ctx.clone();
            let rt = tokio::runtime::Handle::current();
            match tokio::task::spawn_blocking(move || {
                let d = rt.block_on(decision::request_body(&policy, &ctx2, &body));
                (d, body)
            })
            .await
            {
                Ok(r) => r,
                Err(_) => {
                    let reply = gateway_reply(
                        Some(&ctx),
                        "promptgate failed while inspecting the request body",
                    );
                    return processing_response::Response::ImmediateResponse(self.immediate(reply));
                }
            }
        } else {
            (
                decision::request_body(&self.policy, &ctx, &body).await,
                body,
            )
        };
        match decision {
            BodyDecision::Continue {
                replacement,
                outcome,
            } => {
                self.record(outcome);
                if matches!(self.response, ResponseState::Usage(_))
                    && self.policy.backends[ctx.backend].token_usage == TokenUsageMode::Streams
                    && ctx.content_encoding.is_none()
                    && asks_for_stream(&body) == Some(false)
                {
                    // A non-streamed response is not read for its token
                    // usage (tokenUsage: Streams): reading it would hold the
                    // whole answer back for one more exchange. The stream
                    // ends with this answer and Envoy passes the response
                    // untouched.
                    self.response = ResponseState::Skip;
                }
                // A held-back STREAMED body must be re-emitted whole; a
                // BUFFERED one only when it changed.
                let new_body = match (replacement, held_back) {
                    (Some(r), _) => Some(r),
                    (None, true) => Some(body),
                    (None, false) => None,
                };
                let Some(new_body) = new_body else {
                    return pass();
                };
                // A decoded body goes out decoded: drop its content-encoding.
                let remove_headers = if ctx.content_encoding.is_some() {
                    vec!["content-encoding".to_owned()]
                } else {
                    Vec::new()
                };
                let header_mutation =
                    (!streamed || !remove_headers.is_empty()).then(|| HeaderMutation {
                        set_headers: if streamed {
                            Vec::new()
                        } else {
                            vec![set_header(
                                "content-length",
                                new_body.len().to_string().into_bytes(),
                            )]
                        },
                        remove_headers,
                    });
                processing_response::Response::RequestBody(BodyResponse {
                    response: Some(CommonResponse {
                        header_mutation,
                        body_mutation: Some(BodyMutation {
                            mutation: Some(body_mutation::Mutation::Body(new_body)),
                        }),
                        ..CommonResponse::default()
                    }),
                })
            }
            BodyDecision::Reply(reply) => {
                processing_response::Response::ImmediateResponse(self.immediate(reply))
            }
        }
    }

    /// Records a decision (log line, span, metrics) and queues it as Envoy
    /// dynamic metadata.
    fn record(&mut self, outcome: Outcome) {
        let md = self.telemetry.on_outcome(&outcome);
        self.queue_metadata(md);
    }

    /// Queues metadata for the next answer, merged with what is queued.
    fn queue_metadata(&mut self, md: Struct) {
        match &mut self.pending_metadata {
            Some(existing) => telemetry::merge_metadata(existing, md),
            None => self.pending_metadata = Some(md),
        }
    }

    fn on_response_headers(&mut self, h: HttpHeaders) -> processing_response::Response {
        let get = |name: &str| find_header(&h, name);
        let status: u16 = get(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        let plan = match &self.ctx {
            Some(ctx) if !h.end_of_stream => {
                decision::response_plan(ctx, status, get("content-type"), get("content-encoding"))
            }
            _ => ResponsePlan::Skip,
        };
        let backend = self.ctx.as_ref().map(|c| &self.policy.backends[c.backend]);
        self.response = match (plan, backend) {
            (ResponsePlan::Stream(kind), Some(b)) => {
                let scanner: Arc<dyn TextScanner + Send + Sync> = b.response_guards.clone();
                ResponseState::Stream(Box::new(StreamGuard::new(kind, scanner)))
            }
            (ResponsePlan::Json(kind), Some(_)) => ResponseState::Json(kind),
            (ResponsePlan::Refuse(why), _) => {
                let reply = gateway_reply_status(self.ctx.as_ref(), 502, why);
                return processing_response::Response::ImmediateResponse(self.immediate(reply));
            }
            _ => ResponseState::Skip,
        };
        processing_response::Response::ResponseHeaders(HeadersResponse::default())
    }

    fn on_response_body(&mut self, b: HttpBody) -> processing_response::Response {
        self.response_done |= b.end_of_stream;
        let pass = || processing_response::Response::ResponseBody(BodyResponse::default());
        let replace = |body: Vec<u8>, content_length: bool| {
            processing_response::Response::ResponseBody(BodyResponse {
                response: Some(CommonResponse {
                    header_mutation: content_length.then(|| HeaderMutation {
                        set_headers: vec![set_header(
                            "content-length",
                            body.len().to_string().into_bytes(),
                        )],
                        remove_headers: Vec::new(),
                    }),
                    body_mutation: Some(BodyMutation {
                        mutation: Some(body_mutation::Mutation::Body(body)),
                    }),
                    ..CommonResponse::default()
                }),
            })
        };
        let kind = self.stream_kind();
        match &mut self.response {
            ResponseState::Skip => pass(),
            ResponseState::Usage(read) => {
                if let Some((usage, model)) = read.push(kind, &b.body, b.end_of_stream) {
                    self.finish_response(usage, model);
                }
                pass()
            }
            ResponseState::Ended => replace(Vec::new(), false),
            ResponseState::Stream(guard) => {
                let result = guard.push(&b.body, b.end_of_stream);
                let usage = guard.usage();
                let model = guard.model().map(str::to_owned);
                match result {
                    Ok(out) => {
                        let masked = out
                            .events
                            .iter()
                            .filter(|e| matches!(e.fired, StreamFired::Masked { .. }))
                            .count();
                        self.note_response(masked, out.rejected.as_ref(), &out.events);
                        if out.rejected.is_some() {
                            self.response = ResponseState::Ended;
                        }
                        if b.end_of_stream || out.rejected.is_some() {
                            self.finish_response(usage, model);
                        }
                        if out.bytes == b.body {
                            pass()
                        } else {
                            replace(out.bytes, false)
                        }
                    }
                    Err(e) => {
                        // Fail closed: end the stream with an error event;
                        // the rest is never forwarded unscanned.
                        tracing::warn!(error = %e, "response stream could not be guarded; ending it");
                        let bytes = guard.abort("promptgate could not inspect the response stream");
                        self.response = ResponseState::Ended;
                        self.response_outcome.decision = "error";
                        self.finish_response(usage, model);
                        replace(bytes, false)
                    }
                }
            }
            ResponseState::Json(kind) => {
                let kind = *kind;
                if !b.end_of_stream {
                    // BUFFERED delivers the whole body; trailers may follow.
                }
                let backend = &self.policy.backends[self.ctx.as_ref().map_or(0, |c| c.backend)];
                let scanner = backend.response_guards.clone();
                match guard_json_body(kind, &b.body, scanner.as_ref()) {
                    Ok(outcome) => {
                        let masked = outcome
                            .events
                            .iter()
                            .filter(|e| matches!(e.fired, StreamFired::Masked { .. }))
                            .count();
                        self.note_response(masked, outcome.rejected.as_ref(), &outcome.events);
                        self.response = ResponseState::Ended;
                        self.finish_response(outcome.usage, outcome.model);
                        if let Some(rej) = outcome.rejected {
                            let ctx = self.ctx.clone();
                            let reply = guard_reply(ctx.as_ref(), &rej.message);
                            return processing_response::Response::ImmediateResponse(
                                self.immediate_keep(reply),
                            );
                        }
                        match outcome.body {
                            Some(body) => replace(body, true),
                            None => {
                                self.response = ResponseState::Skip;
                                pass()
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "response body could not be guarded; refusing it");
                        self.response_outcome.decision = "error";
                        let reply = gateway_reply_status(
                            self.ctx.as_ref(),
                            502,
                            "promptgate could not inspect the response body",
                        );
                        processing_response::Response::ImmediateResponse(self.immediate(reply))
                    }
                }
            }
        }
    }

    /// Accumulates what response guards did.
    fn note_response(&mut self, masked: usize, rejected: Option<&Rejection>, events: &[EventInfo]) {
        let r = &mut self.response_outcome;
        r.masked += masked;
        if r.location.is_none() {
            r.location = events.first().map(|e| match e.event {
                Some(i) => format!("{} (event {i})", e.location),
                None => e.location.to_string(),
            });
        }
        if let Some(rej) = rejected {
            r.decision = "reject";
            r.rule = Some(rej.rule.clone());
            r.location = Some(match rej.event {
                Some(i) => format!("{} (event {i})", rej.location),
                None => rej.location.to_string(),
            });
        } else if r.masked > 0 && r.decision == "allow" {
            r.decision = "mask";
            if r.rule.is_none() {
                r.rule = events.first().map(|e| match &e.fired {
                    StreamFired::Masked { placeholder } => placeholder.clone(),
                    StreamFired::Rejected { rule } => rule.clone(),
                });
            }
        }
    }

    /// Logs the response decision and queues it, with token usage, as
    /// dynamic metadata.
    fn finish_response(&mut self, usage: Usage, model: Option<String>) {
        let r = std::mem::take(&mut self.response_outcome);
        tracing::info!(
            response_decision = r.decision,
            response_rule = r.rule.as_deref(),
            response_location = r.location.as_deref(),
            response_masked = r.masked,
            "response decision"
        );
        // The kind every response reader of this stream was built with.
        let kind = self.stream_kind();
        let usage_md = self
            .telemetry
            .on_usage(&token_usage(kind, usage), model.as_deref());
        self.queue_metadata(usage_md);
        self.queue_metadata(crate::telemetry::response_metadata(
            r.decision,
            r.masked,
            r.rule.as_deref(),
            r.location.as_deref(),
        ));
    }

    /// The response shape of the request's route.
    fn stream_kind(&self) -> StreamKind {
        self.ctx
            .as_ref()
            .map_or(StreamKind::Anthropic, |c| c.style.into())
    }

    /// An immediate response for a response-side decision (the request's
    /// outcome was recorded already).
    fn immediate_keep(&mut self, reply: Reply) -> ImmediateResponse {
        self.replied = true;
        ImmediateResponse {
            status: Some(HttpStatus {
                code: reply.status as i32,
            }),
            headers: Some(HeaderMutation {
                set_headers: vec![set_header("content-type", b"application/json".to_vec())],
                remove_headers: Vec::new(),
            }),
            body: reply.body,
            grpc_status: None,
            details: reply.details.to_owned(),
        }
    }

    fn immediate(&mut self, reply: Reply) -> ImmediateResponse {
        self.record(reply.outcome.clone());
        self.immediate_keep(reply)
    }
}

/// A response read only for its token usage. Nothing here can hold back,
/// change or end the response: what cannot be read (a compressed body, an
/// error page, a malformed stream, a body over [`MAX_BODY_BYTES`]) is
/// passed on and simply not counted.
enum UsageRead {
    /// No byte yet. The response headers were skipped, so the first byte
    /// tells a JSON body (`{`) from an SSE stream (a field name or `:`).
    Sniff,
    /// A JSON body, read whole at its end.
    Json(Vec<u8>),
    /// An SSE stream, parsed as it flows (nothing is scanned).
    Sse(Box<StreamGuard>),
    /// Read to the end, or unreadable.
    Off,
}

impl UsageRead {
    /// Takes the next chunk. At the end of a readable response that
    /// reported usage (or a model), returns them.
    fn push(
        &mut self,
        kind: StreamKind,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Option<(Usage, Option<String>)> {
        if matches!(self, UsageRead::Sniff) {
            match chunk.iter().find(|b| !b.is_ascii_whitespace()) {
                None => {}
                Some(b'{') => *self = UsageRead::Json(Vec::new()),
                Some(b) if b.is_ascii_alphabetic() || *b == b':' => {
                    *self = UsageRead::Sse(Box::new(StreamGuard::new(kind, Arc::new(NoScan))));
                }
                Some(_) => *self = UsageRead::Off,
            }
        }
        let found = match self {
            UsageRead::Sniff | UsageRead::Off => None,
            UsageRead::Json(body) if body.len() + chunk.len() > MAX_BODY_BYTES => {
                tracing::debug!("response too large to read for token usage");
                *self = UsageRead::Off;
                return None;
            }
            UsageRead::Json(body) => {
                body.extend_from_slice(chunk);
                if end_of_stream {
                    guard_json_body(kind, body, &NoScan)
                        .ok()
                        .map(|o| (o.usage, o.model))
                } else {
                    None
                }
            }
            UsageRead::Sse(guard) => match guard.push(chunk, end_of_stream) {
                Ok(_) if end_of_stream => Some((guard.usage(), guard.model().map(str::to_owned))),
                Ok(_) => None,
                Err(e) => {
                    tracing::debug!(error = %e, "response stream not read for token usage");
                    *self = UsageRead::Off;
                    return None;
                }
            },
        };
        if end_of_stream {
            *self = UsageRead::Off;
        }
        // An error body reports neither.
        found.filter(|(usage, model)| *usage != Usage::default() || model.is_some())
    }
}

/// Whether a request body asks for a streamed (SSE) response: its top-level
/// `stream` member (absent or `null`: no). `None` when that cannot be told
/// here (not a JSON object, `stream` not a boolean), or not cheaply: a body
/// over [`BLOCKING_THRESHOLD`] whose last member is not `stream` is not
/// parsed again on an async worker.
fn asks_for_stream(body: &[u8]) -> Option<bool> {
    if let Some(stream) = trailing_stream_member(body) {
        return Some(stream);
    }
    if body.len() > BLOCKING_THRESHOLD {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Flag {
        #[serde(default)]
        stream: Option<bool>,
    }
    serde_json::from_slice::<Flag>(body)
        .ok()
        .map(|f| f.stream.unwrap_or(false))
}

/// The body's last member when it is `"stream": true|false` (Claude Code
/// puts it last), read from the end without parsing the body. Sound only
/// for a valid JSON object, which the decision core has just parsed: the
/// final `}` then closes the top-level object; a `"` preceded by `,` or `{`
/// outside a string can only open one, and `stream` cannot stand outside a
/// string, so that member is the top-level `stream`.
fn trailing_stream_member(body: &[u8]) -> Option<bool> {
    fn trim_end(b: &[u8]) -> &[u8] {
        let end = b
            .iter()
            .rposition(|c| !c.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        &b[..end]
    }
    let rest = trim_end(trim_end(body).strip_suffix(b"}")?);
    let (stream, rest) = match rest.strip_suffix(b"true") {
        Some(r) => (true, r),
        None => (false, rest.strip_suffix(b"false")?),
    };
    let rest = trim_end(trim_end(rest).strip_suffix(b":")?);
    let rest = trim_end(rest.strip_suffix(b"\"stream\"")?);
    matches!(rest.last(), Some(b',' | b'{')).then_some(stream)
}

/// The scanner of a response read only for its token usage: finds nothing.
struct NoScan;

impl TextScanner for NoScan {
    fn window(&self) -> usize {
        0
    }

    fn scan(&self, _text: &str) -> Vec<ScanMatch> {
        Vec::new()
    }
}

/// A reply promptgate makes itself (not a guard's decision on the body).
fn adapter_reply(
    ctx: Option<&RequestCtx>,
    kind: crate::provider::ErrorKind,
    status: u16,
    message: &str,
    details: &'static str,
) -> Reply {
    let style = ctx.map_or(crate::provider::ErrorStyle::Anthropic, |c| c.style);
    let outcome = Outcome {
        route: ctx.map(|c| c.route.as_str()),
        ..Outcome::default()
    };
    decision::reply(style, kind, status, message, details, outcome)
}

fn too_large(ctx: &RequestCtx) -> Reply {
    let message =
        format!("the request body is larger than promptgate inspects ({MAX_BODY_BYTES} bytes)");
    adapter_reply(
        Some(ctx),
        crate::provider::ErrorKind::TooLarge,
        413,
        &message,
        "promptgate_body_too_large",
    )
}

fn gateway_reply(ctx: Option<&RequestCtx>, message: &str) -> Reply {
    gateway_reply_status(ctx, 500, message)
}

fn gateway_reply_status(ctx: Option<&RequestCtx>, status: u16, message: &str) -> Reply {
    adapter_reply(
        ctx,
        crate::provider::ErrorKind::Gateway,
        status,
        message,
        "promptgate_gateway_error",
    )
}

/// A response guard's rejection of a whole (JSON) response.
fn guard_reply(ctx: Option<&RequestCtx>, message: &str) -> Reply {
    adapter_reply(
        ctx,
        crate::provider::ErrorKind::Guard,
        403,
        message,
        "promptgate_response_guard_reject",
    )
}

/// The stream engine's counts as telemetry's: input excludes cached tokens
/// there (Anthropic reports it so; OpenAI's `prompt_tokens` includes them).
fn token_usage(kind: StreamKind, u: Usage) -> TokenUsage {
    let input = match kind {
        StreamKind::Anthropic => u.input_tokens,
        StreamKind::OpenAi => u
            .input_tokens
            .map(|i| i.saturating_sub(u.cache_read_input_tokens.unwrap_or(0))),
    };
    TokenUsage {
        input,
        output: u.output_tokens,
        cache_read: u.cache_read_input_tokens,
        cache_creation: u.cache_creation_input_tokens,
    }
}

/// A header's value (Envoy sends keys lower-case; matched case-insensitively).
fn find_header<'h>(h: &'h HttpHeaders, name: &str) -> Option<&'h str> {
    h.headers
        .as_ref()?
        .headers
        .iter()
        .find(|hv| hv.key.eq_ignore_ascii_case(name))
        .map(header_str)
}

/// `:status` of a response headers message (0 when absent or garbled).
fn response_status(h: &HttpHeaders) -> u16 {
    find_header(h, ":status")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn header_str(hv: &HeaderValue) -> &str {
    if hv.raw_value.is_empty() {
        hv.value.as_str()
    } else {
        std::str::from_utf8(&hv.raw_value).unwrap_or("")
    }
}

fn set_header(key: &str, value: Vec<u8>) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            // Envoy reads mutations from raw_value; `value` would arrive empty.
            raw_value: value,
            ..HeaderValue::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    }
}

fn header_mutation(changes: &HeaderChanges) -> Option<HeaderMutation> {
    if changes.is_empty() {
        return None;
    }
    Some(HeaderMutation {
        set_headers: changes
            .set
            .iter()
            .map(|(k, v)| set_header(k, v.clone()))
            .collect(),
        remove_headers: changes.remove.iter().map(|h| (*h).to_owned()).collect(),
    })
}

/// Namespace of promptgate's dynamic metadata in Envoy (listed in the
/// filter's `metadata_options.receiving_namespaces.untyped`).
pub use crate::telemetry::METADATA_NAMESPACE;

#[cfg(test)]
mod tests;
