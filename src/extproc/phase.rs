//! The ext_proc phases: one type for the state machine and telemetry.

use envoy_types::pb::envoy::service::ext_proc::v3::{processing_request, ProcessingRequest};

/// An ext_proc phase, in the order Envoy sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
    /// A message without a phase (a protocol error; never ordered).
    Unknown,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::RequestHeaders,
        Phase::RequestBody,
        Phase::RequestTrailers,
        Phase::ResponseHeaders,
        Phase::ResponseBody,
        Phase::ResponseTrailers,
        Phase::Unknown,
    ];

    pub fn of(msg: &ProcessingRequest) -> Phase {
        use processing_request::Request as In;
        match &msg.request {
            Some(In::RequestHeaders(_)) => Phase::RequestHeaders,
            Some(In::RequestBody(_)) => Phase::RequestBody,
            Some(In::RequestTrailers(_)) => Phase::RequestTrailers,
            Some(In::ResponseHeaders(_)) => Phase::ResponseHeaders,
            Some(In::ResponseBody(_)) => Phase::ResponseBody,
            Some(In::ResponseTrailers(_)) => Phase::ResponseTrailers,
            None => Phase::Unknown,
        }
    }

    /// Whether Envoy may send several messages of this phase (body chunks).
    pub fn repeats(self) -> bool {
        matches!(self, Phase::RequestBody | Phase::ResponseBody)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::RequestHeaders => "request_headers",
            Phase::RequestBody => "request_body",
            Phase::RequestTrailers => "request_trailers",
            Phase::ResponseHeaders => "response_headers",
            Phase::ResponseBody => "response_body",
            Phase::ResponseTrailers => "response_trailers",
            Phase::Unknown => "unknown",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Span attribute with the time spent in this phase (all its messages).
    pub fn duration_key(self) -> &'static str {
        match self {
            Phase::RequestHeaders => "promptgate.phase.request_headers.duration_us",
            Phase::RequestBody => "promptgate.phase.request_body.duration_us",
            Phase::RequestTrailers => "promptgate.phase.request_trailers.duration_us",
            Phase::ResponseHeaders => "promptgate.phase.response_headers.duration_us",
            Phase::ResponseBody => "promptgate.phase.response_body.duration_us",
            Phase::ResponseTrailers => "promptgate.phase.response_trailers.duration_us",
            Phase::Unknown => "promptgate.phase.unknown.duration_us",
        }
    }
}
