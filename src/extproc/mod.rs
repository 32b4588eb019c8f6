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

use crate::decision::{
    self, BodyDecision, HeaderChanges, HeadersDecision, Outcome, Reply, RequestCtx, RequestHead,
    MAX_BODY_BYTES,
};
use crate::policy::Policy;
use crate::telemetry::{self, StreamTelemetry};

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
            In::ResponseHeaders(_) => {
                if self.requested_body && !self.request_body_done {
                    // Envoy never sent the body we asked for (the filter lacks
                    // `allow_mode_override: true`): the request went out unguarded.
                    // Fail loudly on the way back rather than pretend it was checked.
                    tracing::error!("Envoy ignored mode_override: the request body was not inspected; set allow_mode_override: true on the ext_proc filter");
                    let reply = gateway_reply(self.ctx.as_ref(), "promptgate did not see the request body: the gateway's ext_proc filter must set allow_mode_override");
                    processing_response::Response::ImmediateResponse(self.immediate(reply))
                } else {
                    processing_response::Response::ResponseHeaders(HeadersResponse::default())
                }
            }
            In::ResponseBody(_) => {
                processing_response::Response::ResponseBody(BodyResponse::default())
            }
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
        }
        out.dynamic_metadata = self.pending_metadata.take();
        Ok(out)
    }

    fn mode_override(&self) -> ProcessingMode {
        ProcessingMode {
            // Nothing on the response side is needed yet: skip it.
            response_header_mode: HeaderSendMode::Skip as i32,
            request_body_mode: if self.requested_body {
                BodySendMode::Buffered as i32
            } else {
                0
            },
            ..ProcessingMode::default()
        }
    }

    fn on_request_headers(&mut self, h: HttpHeaders) -> processing_response::Response {
        let headers = h
            .headers
            .as_ref()
            .map(|m| m.headers.as_slice())
            .unwrap_or(&[]);
        let get = |name: &str| {
            headers
                .iter()
                .find(|hv| hv.key.eq_ignore_ascii_case(name))
                .map(header_str)
        };
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
            let policy = self.policy.clone();
            let ctx2 = ctx.clone();
            match tokio::task::spawn_blocking(move || {
                let d = decision::request_body(&policy, &ctx2, &body);
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
            (decision::request_body(&self.policy, &ctx, &body), body)
        };
        match decision {
            BodyDecision::Continue {
                replacement,
                outcome,
            } => {
                self.record(outcome);
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
                let header_mutation = (!streamed).then(|| HeaderMutation {
                    set_headers: vec![set_header(
                        "content-length",
                        new_body.len().to_string().into_bytes(),
                    )],
                    remove_headers: Vec::new(),
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
        self.pending_metadata = Some(self.telemetry.on_outcome(&outcome));
    }

    fn immediate(&mut self, reply: Reply) -> ImmediateResponse {
        self.replied = true;
        self.record(reply.outcome);
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
}

fn too_large(ctx: &RequestCtx) -> Reply {
    let message =
        format!("the request body is larger than promptgate inspects ({MAX_BODY_BYTES} bytes)");
    error_reply(
        ctx.style,
        crate::provider::ErrorKind::TooLarge,
        413,
        &message,
        "promptgate_body_too_large",
        ctx,
    )
}

fn gateway_reply(ctx: Option<&RequestCtx>, message: &str) -> Reply {
    let style = ctx.map_or(crate::provider::ErrorStyle::Anthropic, |c| c.style);
    Reply {
        status: 500,
        body: crate::provider::error_body(style, crate::provider::ErrorKind::Gateway, 500, message),
        details: "promptgate_gateway_error",
        outcome: Outcome {
            decision: "error",
            route: ctx.map(|c| c.route.as_str()),
            status: Some(500),
            message: Some(message.to_owned()),
            ..Outcome::default()
        },
    }
}

fn error_reply(
    style: crate::provider::ErrorStyle,
    kind: crate::provider::ErrorKind,
    status: u16,
    message: &str,
    details: &'static str,
    ctx: &RequestCtx,
) -> Reply {
    Reply {
        status,
        body: crate::provider::error_body(style, kind, status, message),
        details,
        outcome: Outcome {
            decision: "error",
            route: Some(ctx.route.as_str()),
            status: Some(status),
            message: Some(message.to_owned()),
            ..Outcome::default()
        },
    }
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
