//! The per-stream recorder: one span per HTTP request (per ext_proc stream),
//! phase timings, the decision, token usage — into the span, the metrics,
//! the decision log line and Envoy's dynamic metadata.
//!
//! Call order (the ext_proc adapter does this):
//!
//! ```text
//! StreamTelemetry::start(grpc metadata)        // stream opened
//!   on_request_headers(headers)                // request id, trace context → span opens
//!   span() ⊃ phase_span(phase), on_phase(phase, t)  // around each message
//!   on_outcome(&Outcome) -> Struct             // the decision; metadata for Envoy
//!   on_usage(&Usage, model) -> Struct     // response side; metadata for Envoy
//! finish() / drop                              // request metrics, span ends
//! ```
//!
//! Attributes carry names, places and counts only: never prompt text,
//! matched text or secrets (no header values except `x-request-id`).
//!
//! * this file — the stream's life: the span opened from the request's
//!   headers and trace context, phase spans and timings, errors, the
//!   request metrics and token counts when it ends;
//! * `outcome` — the decision and the token usage: the decision's log
//!   line, span attributes, guard metrics, Envoy metadata;
//! * `events` — what happens in between: tool calls decided, response
//!   guards that audited, budget checks and debits, placeholders
//!   restored.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Key, Value};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::metrics::{metrics, RequestLabels};
use super::otel::{header_text, TraceHeaders};
use super::usage::count_tokens;
use crate::decision::Outcome;
pub use crate::extproc::Phase;
use crate::provider::Usage;

mod events;
mod outcome;

pub use events::on_budget_debit;

/// Target of promptgate's request spans (the OpenTelemetry layer exports
/// spans of `promptgate` targets only).
pub const SPAN_TARGET: &str = "promptgate::request";
/// Target of the per-phase child spans; they go to OpenTelemetry only, not
/// to the log (log lines carry the request span's ids instead).
pub const PHASE_TARGET: &str = "promptgate::phase";

/// What the request metrics and token labels need of the last decision.
#[derive(Debug, Clone)]
struct Decided {
    backend: String,
    route: &'static str,
    decision: &'static str,
    provider: Option<&'static str>,
    model: Option<String>,
}

/// Telemetry of one ext_proc stream (= one HTTP request).
pub struct StreamTelemetry {
    /// Trace context Envoy's tracer put in the gRPC call metadata.
    grpc_trace: TraceHeaders,
    span: tracing::Span,
    opened: bool,
    /// The span is exported (OpenTelemetry on, sampled): attributes are worth setting.
    recording: bool,
    request_id: Option<String>,
    trace_id: Option<String>,
    decided: Option<Decided>,
    /// The last decision, for the span attributes set when the stream ends
    /// (each key once, whatever the number of calls).
    outcome: Option<Outcome>,
    usage: Option<(Usage, Option<String>)>,
    failed: bool,
    phase_time: [Duration; 7],
    finished: bool,
    /// Decisions whose log line and guard metrics wait until the answer
    /// is on its way ([`Self::defer_records`]).
    defer_records: bool,
    deferred: Vec<Outcome>,
}

/// A stream's records that wait until its answer is on its way: the
/// decision's log line (in the request span) and guard metrics.
#[must_use = "run it once the answer is sent"]
pub struct Deferred {
    span: tracing::Span,
    outcomes: Vec<Outcome>,
}

impl Deferred {
    /// Writes the log lines and counts the metrics.
    pub fn run(self) {
        let _entered = self.span.enter();
        for o in &self.outcomes {
            outcome::log_and_count(o);
        }
    }
}

impl Default for StreamTelemetry {
    fn default() -> Self {
        StreamTelemetry::detached()
    }
}

impl StreamTelemetry {
    /// At stream open, with the gRPC call metadata.
    pub fn start(grpc: &tonic::metadata::MetadataMap) -> StreamTelemetry {
        let mut t = StreamTelemetry::detached();
        t.grpc_trace = TraceHeaders::from_grpc(grpc);
        t
    }

    /// Without gRPC metadata (tests, `eval`): the trace context can only
    /// come from the request headers.
    pub fn detached() -> StreamTelemetry {
        StreamTelemetry {
            grpc_trace: TraceHeaders::default(),
            span: tracing::Span::none(),
            opened: false,
            recording: false,
            request_id: None,
            trace_id: None,
            decided: None,
            outcome: None,
            usage: None,
            failed: false,
            phase_time: [Duration::ZERO; 7],
            finished: false,
            defer_records: false,
            deferred: Vec::new(),
        }
    }

    /// From now on a decision's log line and guard metrics wait for
    /// [`Self::take_deferred`] (or the stream's end) instead of holding
    /// the answer up: the ext_proc service runs them after the answer is
    /// handed to the connection (measured in the README: ~2 % of the
    /// server's CPU on the request path, ~10 µs per request in place).
    pub fn defer_records(&mut self) {
        self.defer_records = true;
    }

    /// The records waiting since the last call, if any.
    pub fn take_deferred(&mut self) -> Option<Deferred> {
        (!self.deferred.is_empty()).then(|| Deferred {
            span: self.span.clone(),
            outcomes: std::mem::take(&mut self.deferred),
        })
    }

    /// At the request headers: takes `x-request-id` and, when Envoy sent no
    /// trace context in the gRPC metadata, the request's own
    /// `traceparent`/`tracestate`; opens the request span.
    pub fn on_request_headers(&mut self, headers: &[HeaderValue]) {
        if self.opened {
            return;
        }
        self.request_id = headers
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case("x-request-id"))
            .and_then(header_text)
            .filter(|v| v.len() <= 128)
            .map(str::to_owned);
        let from_headers = TraceHeaders::from_headers(headers);
        self.open(Some(&from_headers));
    }

    fn open(&mut self, headers: Option<&TraceHeaders>) {
        if self.opened {
            return;
        }
        self.opened = true;
        // Envoy's ext_proc call span first (its tracer is on), else the
        // trace the request carries.
        let parent = self
            .grpc_trace
            .parent()
            .or_else(|| headers.and_then(TraceHeaders::parent));
        let parent_trace = parent
            .as_ref()
            .map(|cx| cx.span().span_context().trace_id())
            .filter(|t| *t != opentelemetry::trace::TraceId::INVALID);
        // The ids go in as the span is made: recording them afterwards
        // re-encodes the span's JSON fields once per field (measured under
        // load: ~2 % of the server's CPU). A child span has its parent's
        // trace id; only a span that starts a trace learns its id below.
        self.trace_id = parent_trace.map(|t| t.to_string());
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            "ext_proc",
            otel.name = "promptgate.ext_proc",
            otel.kind = "server",
            request_id = self.request_id.as_deref(),
            trace_id = self.trace_id.as_deref(),
        );
        if let Some(cx) = parent {
            let _ = span.set_parent(cx);
        }
        let cx = span.context();
        let own = cx.span().span_context().clone();
        self.recording = cx.span().is_recording();
        if self.trace_id.is_none() && own.is_valid() {
            let id = own.trace_id().to_string();
            span.record("trace_id", id.as_str());
            self.trace_id = Some(id);
        }
        self.span = span;
    }

    /// The request span (opened if need be). Run each message's work in it,
    /// so log lines carry the request and trace ids.
    pub fn span(&mut self) -> tracing::Span {
        self.open(None);
        self.span.clone()
    }

    /// A child span for one message of `phase` when the trace is exported,
    /// else `Span::none()`; run the work in it inside [`Self::span`].
    pub fn phase_span(&mut self, phase: Phase) -> tracing::Span {
        self.open(None);
        if self.recording {
            tracing::info_span!(target: PHASE_TARGET, parent: &self.span, "phase", otel.name = phase.as_str())
        } else {
            tracing::Span::none()
        }
    }

    /// Time promptgate spent on one message of `phase`.
    pub fn on_phase(&mut self, phase: Phase, elapsed: Duration) {
        metrics().observe_phase(phase.as_str(), elapsed);
        self.phase_time[phase.index()] += elapsed;
    }

    /// The stream ends with a gRPC error (protocol violation).
    pub fn on_error(&mut self, status: &tonic::Status) {
        self.open(None);
        self.failed = true;
        let _entered = self.span.enter();
        tracing::warn!(code = ?status.code(), error = status.message(), "ext_proc stream ended with an error");
        if self.recording {
            self.span
                .set_status(Status::error(format!("ext_proc: {:?}", status.code())));
        }
    }

    /// `x-request-id` of the request, once its headers were seen.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// Trace id (hex) of the request's span, or of the trace it carried.
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }

    /// Counts the request and its tokens, and ends the span. Runs on drop
    /// if not called.
    pub fn finish(mut self) {
        self.finish_inner();
    }

    fn finish_inner(&mut self) {
        if self.finished || !self.opened {
            return;
        }
        self.finished = true;
        if let Some(d) = self.take_deferred() {
            d.run();
        }
        let m = metrics();
        let (backend, route, decision) = match &self.decided {
            Some(d) => (d.backend.clone(), d.route, d.decision),
            None if self.failed => (String::new(), "none", "error"),
            // Envoy closed the stream before any decision (client went away).
            None => (String::new(), "none", "none"),
        };
        m.requests
            .get_or_create(&RequestLabels {
                backend: backend.clone(),
                route,
                decision,
            })
            .inc();
        if let Some((usage, response_model)) = &self.usage {
            let provider = self.decided.as_ref().and_then(|d| d.provider);
            let model_name = response_model
                .as_deref()
                .or(self.decided.as_ref().and_then(|d| d.model.as_deref()));
            count_tokens(&backend, provider, model_name, usage);
        }
        if self.recording {
            if let Some(o) = &self.outcome {
                self.record_outcome(o);
            }
            if let Some((usage, model)) = &self.usage {
                self.record_usage(usage, model.as_deref());
            }
            for phase in Phase::ALL {
                let t = self.phase_time[phase.index()];
                if !t.is_zero() {
                    self.span.set_attribute(
                        Key::from_static_str(phase.duration_key()),
                        Value::I64(t.as_micros() as i64),
                    );
                }
            }
        }
        // The span ends when its last handle goes, i.e. with `self`.
    }
}

impl Drop for StreamTelemetry {
    fn drop(&mut self) {
        self.finish_inner();
    }
}
