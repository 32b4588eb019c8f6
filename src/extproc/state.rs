//! One ext_proc stream's state machine: phases in order, one answer of the
//! matching kind per message, the request body held or buffered, and the
//! decision core's answers translated into `ProcessingResponse`s. It
//! decides nothing itself: every verdict comes from [`crate::decision`].

use std::sync::Arc;

use bytes::Bytes;

use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::{
    BodySendMode, HeaderSendMode,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    processing_request, processing_response, CommonResponse, HeadersResponse, HttpBody,
    HttpHeaders, ProcessingRequest, ProcessingResponse, TrailersResponse,
};
use envoy_types::pb::google::protobuf::Struct;
use tonic::Status;
use tracing::Instrument;

mod budget;
mod record;

use super::codec::Inbound;
use super::mutation::{self, find_header, header_mutation, response_status};
use super::Phase;
use crate::audit;
use crate::decision::{
    self, BodyDecision, BodyMode, BudgetPass, BudgetVerdict, ChunkDecision, HeadersDecision,
    Outcome, Reply, RequestCtx, RequestHead, ResponseDecider, ResponseHeadersDecision,
    ResponseRead, MAX_BODY_BYTES,
};
use crate::policy::{Policy, RouteType};
use crate::provider::ErrorKind;
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
    /// Envoy adds the remaining budget headers from promptgate's metadata
    /// (its config says so in the gRPC metadata): they go out as metadata
    /// with the request's answer, and the response headers are not asked for.
    pub envoy_adds_budget_headers: bool,
    /// Envoy reads a streamed answer's token usage and reports it to the
    /// access-log service (its config says so in the gRPC metadata): an
    /// answer read for nothing else is not read here.
    pub envoy_reports_usage: bool,
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
            envoy_adds_budget_headers: false,
            envoy_reports_usage: false,
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

    /// The processing modes the request's decision needs.
    fn request_mode(&self) -> ProcessingMode {
        let read = self.ctx.as_ref().map_or(ResponseRead::Skip, |c| c.response);
        // Budgets add the remaining budget to the response headers.
        let budgets = self
            .ctx
            .as_ref()
            .is_some_and(|c| self.policy.backends[c.backend].budgets.is_some());
        let (response_header_mode, response_body_mode) = match read {
            // Response guards need the status and content type first; the
            // body mode follows on the answer to the response headers.
            ResponseRead::Guarded => (0, 0),
            // Usage only: the response headers are skipped and the body
            // streamed — an SSE stream or a JSON body, told apart by its
            // first bytes — and every chunk passes unchanged.
            ResponseRead::UsageOnly if budgets && !self.envoy_adds_budget_headers => {
                (0, BodySendMode::Streamed as i32)
            }
            ResponseRead::UsageOnly => (HeaderSendMode::Skip as i32, BodySendMode::Streamed as i32),
            // Nothing to read in the response (or only what Envoy reads).
            ResponseRead::Skip | ResponseRead::GatewayUsage => (HeaderSendMode::Skip as i32, 0),
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

    async fn on_request_headers(
        &mut self,
        h: HttpHeaders,
        metadata: Option<&envoy_types::pb::envoy::config::core::v3::Metadata>,
    ) -> processing_response::Response {
        let get = |name: &str| find_header(&h, name);
        let claims = self
            .policy
            .identity
            .as_ref()
            .and_then(|s| super::claims::verified_claims(s, metadata));
        // `when:` conditions may read the headers: only then are they copied.
        let headers: Vec<(String, String)> = if self.policy.has_conditions {
            h.headers
                .as_ref()
                .map(|m| {
                    m.headers
                        .iter()
                        .filter(|hv| !hv.key.starts_with(':'))
                        .map(|hv| {
                            (
                                hv.key.to_ascii_lowercase(),
                                super::mutation::header_str(hv).to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let head = RequestHead::from_headers(get, claims.as_ref(), &headers, h.end_of_stream);
        let (ctx, decision) = decision::request_headers(&self.policy, self.hint.as_deref(), &head);
        self.ctx = ctx.map(|mut c| {
            if self.envoy_reports_usage {
                decision::with_gateway_usage(&self.policy, &mut c);
            }
            c
        });
        self.response = ResponseDecider::new(&self.policy, self.ctx.as_ref());
        match decision {
            HeadersDecision::Continue {
                changes,
                inspect_body,
                outcome,
            } => {
                self.requested_body = inspect_body;
                if !inspect_body {
                    // A model request without a body (the body phase
                    // checks the others, once the model is known).
                    let check = self
                        .ctx
                        .clone()
                        .filter(|c| matches!(c.route, RouteType::Messages | RouteType::Completions))
                        .and_then(|c| {
                            decision::budget_check(&self.policy, &c, None).map(|k| (c, k))
                        });
                    if let Some((ctx, check)) = check {
                        match self.check_budget(&ctx, &check, &outcome).await {
                            BudgetVerdict::Pass(pass) => self.pass_budget(pass),
                            BudgetVerdict::Refuse(reply) => return self.refuse(*reply),
                        }
                    }
                    self.record(outcome);
                    if self.audit_refused {
                        return self.audit_refusal();
                    }
                }
                processing_response::Response::RequestHeaders(HeadersResponse {
                    response: Some(CommonResponse {
                        header_mutation: header_mutation(&changes),
                        ..CommonResponse::default()
                    }),
                })
            }
            HeadersDecision::Reply(reply) => self.refuse(reply),
        }
    }

    /// `chunk`: the body's bytes as decoded apart from `b` (else `b.body`).
    async fn on_request_body(
        &mut self,
        mut b: HttpBody,
        chunk: Option<Bytes>,
    ) -> processing_response::Response {
        let chunk = chunk.unwrap_or_else(|| Bytes::from(std::mem::take(&mut b.body)));
        let Some(ctx) = self.ctx.clone() else {
            // No request headers were sent (request_header_mode SKIP): no
            // backend, no route. Fail closed.
            return self.refuse(decision::gateway_error(
                None,
                500,
                "promptgate needs the request headers: set request_header_mode SEND",
            ));
        };
        if !ctx.route.inspects_request_body() {
            // Envoy is configured to send bodies we do not read: pass them.
            self.request_body_done |= b.end_of_stream;
            return mutation::request_body(None);
        }
        let mode = if self.requested_body {
            BodySendMode::Buffered as i32
        } else {
            self.configured_request_body_mode
        };
        let streamed = mode == BodySendMode::Streamed as i32;
        if mode == BodySendMode::FullDuplexStreamed as i32 {
            return self.refuse(decision::gateway_error(
                Some(&ctx),
                500,
                "promptgate does not support FULL_DUPLEX_STREAMED request bodies; configure BUFFERED",
            ));
        }
        let complete = b.end_of_stream || mode == BodySendMode::Buffered as i32;
        if !complete {
            // BUFFERED_PARTIAL delivered only the first part of the body,
            // or a STREAMED body outgrew what promptgate inspects.
            if !streamed || self.held_body.len() + chunk.len() > MAX_BODY_BYTES {
                return self.refuse(too_large(&ctx));
            }
            // Hold the chunk back until the whole body is here.
            self.held_body.extend_from_slice(&chunk);
            return mutation::request_body(Some(mutation::body_cleared()));
        }
        self.request_body_done = true;
        let held_back = !self.held_body.is_empty();
        let body = if held_back {
            let mut all = std::mem::take(&mut self.held_body);
            all.extend_from_slice(&chunk);
            Bytes::from(all)
        } else {
            chunk
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
                    return self.refuse(decision::gateway_error(
                        Some(&ctx),
                        500,
                        "promptgate failed while inspecting the request body",
                    ));
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
                read_response,
                usage_by_envoy,
                restore,
                outcome,
            } => {
                // The response side's `when:` conditions, with the model
                // the body named: decided once for the whole response.
                self.response
                    .conditions(&ctx, outcome.model_requested.as_deref());
                if let Some(check) =
                    decision::budget_check(&self.policy, &ctx, outcome.model_requested.as_deref())
                {
                    match self.check_budget(&ctx, &check, &outcome).await {
                        BudgetVerdict::Pass(pass) => self.pass_budget(pass),
                        BudgetVerdict::Refuse(reply) => return self.refuse(*reply),
                    }
                }
                self.record(outcome);
                if self.audit_refused {
                    return self.audit_refusal();
                }
                if usage_by_envoy {
                    let md = self.telemetry.on_usage_by_envoy();
                    self.queue_metadata(md);
                }
                if let Some(restore) = restore {
                    self.response.restore(restore);
                }
                if !read_response {
                    // The stream ends with this answer and Envoy passes the
                    // response untouched.
                    self.response.skip();
                }
                // A held-back STREAMED body must be re-emitted whole; a
                // BUFFERED one only when it changed.
                let new_body = match (replacement, held_back) {
                    (Some(r), _) => r,
                    (None, true) => body.into(),
                    (None, false) => return mutation::request_body(None),
                };
                // A decoded body goes out decoded: drop its content-encoding.
                let remove_headers = if ctx.content_encoding.is_some() {
                    vec!["content-encoding".to_owned()]
                } else {
                    Vec::new()
                };
                mutation::request_body(Some(mutation::body_replaced(
                    new_body,
                    !streamed,
                    remove_headers,
                )))
            }
            BodyDecision::Reply(reply) => self.refuse(reply),
        }
    }

    fn on_response_headers(&mut self, h: HttpHeaders) -> processing_response::Response {
        let status = response_status(&h);
        if self.requested_body && !self.request_body_done && status < 400 {
            // A success for a request whose body we asked for and never
            // saw: Envoy ignored the mode_override (the filter lacks
            // `allow_mode_override: true`) and the request went out
            // unguarded. Fail loudly on the way back rather than pretend it
            // was checked. (An error status here is most likely Envoy's own
            // local reply, e.g. 413 for a body over its buffer limit: it
            // passes.)
            tracing::error!("Envoy ignored mode_override: the request body was not inspected; set allow_mode_override: true on the ext_proc filter");
            return self.refuse(decision::gateway_error(
                self.ctx.as_ref(),
                500,
                "promptgate did not see the request body: the gateway's ext_proc filter must set allow_mode_override",
            ));
        }
        let get = |name: &str| find_header(&h, name);
        let decision = self.response.headers(
            self.ctx.as_ref(),
            status,
            get("content-type"),
            get("content-encoding"),
            h.end_of_stream,
        );
        match decision {
            ResponseHeadersDecision::Continue(mode) => {
                let budget_headers = self
                    .budget
                    .as_ref()
                    .filter(|_| !self.envoy_adds_budget_headers)
                    .map(|b| {
                        b.headers
                            .iter()
                            .map(|(k, v)| (*k, v.as_bytes().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                let body_mode = match mode {
                    BodyMode::Unchanged => None,
                    BodyMode::Streamed => Some(BodySendMode::Streamed),
                    BodyMode::Buffered => Some(BodySendMode::Buffered),
                };
                self.response_mode = body_mode.map(|m| ProcessingMode {
                    response_body_mode: m as i32,
                    ..ProcessingMode::default()
                });
                let changes = decision::HeaderChanges {
                    set: budget_headers,
                    remove: Vec::new(),
                };
                processing_response::Response::ResponseHeaders(HeadersResponse {
                    response: Some(CommonResponse {
                        header_mutation: header_mutation(&changes),
                        ..CommonResponse::default()
                    }),
                })
            }
            ResponseHeadersDecision::Refuse(reply) => self.refuse(*reply),
        }
    }

    async fn on_response_body(
        &mut self,
        b: HttpBody,
        chunk: Option<Bytes>,
    ) -> processing_response::Response {
        self.response_done |= b.end_of_stream;
        let chunk = chunk.as_deref().unwrap_or(&b.body);
        let answer = self
            .response
            .body(self.ctx.as_ref(), chunk, b.end_of_stream);
        for tool in &answer.tools {
            self.telemetry.on_tool(tool);
            let entry = audit::entry::tool(tool, self.audited.as_ref(), self.ids());
            self.audit(entry);
        }
        if let Some(record) = answer.record {
            self.debit_budget(&record).await;
            self.finish_response(record);
        }
        match answer.decision {
            ChunkDecision::Pass => mutation::response_body(None),
            ChunkDecision::Replace {
                body,
                content_length,
            } => mutation::response_body(Some(mutation::body_replaced(
                body,
                content_length,
                Vec::new(),
            ))),
            // The response's record carries the rejection.
            ChunkDecision::Reject(reply) => self.reply(reply),
            ChunkDecision::Refuse(reply) => self.refuse(reply),
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

fn too_large(ctx: &RequestCtx) -> Reply {
    let message =
        format!("the request body is larger than promptgate inspects ({MAX_BODY_BYTES} bytes)");
    decision::refusal(
        Some(ctx),
        ErrorKind::TooLarge,
        413,
        &message,
        "promptgate_body_too_large",
    )
}
