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

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::google::protobuf::Struct;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Key, KeyValue, Value};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::metadata::{decision_metadata, usage_metadata};
use super::metrics::{
    metrics, BackendLabels, CacheTokenLabels, GenAiTokenLabels, GuardLabels, GuardrailLabels,
    RequestLabels, TokenLabels, ToolLabels,
};
use super::otel::{header_text, TraceHeaders};
use crate::decision::{Outcome, Verdict};
pub use crate::extproc::Phase;
use crate::provider::tool_call::ToolDecision;
use crate::provider::Usage;

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
        }
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

    /// The decision: logged (one line at info), recorded on the span
    /// (status error on reject/error) and in the metrics. Returns the
    /// `promptgate` dynamic metadata for Envoy.
    pub fn on_outcome(&mut self, outcome: &Outcome) -> Struct {
        self.open(None);
        log_decision(outcome);
        let m = metrics();
        let backend = outcome.backend.clone().unwrap_or_default();
        if let Some(rule) = &outcome.rule {
            let action = match outcome.decision {
                Verdict::Reject => "reject",
                _ if outcome.masked > 0 => "mask",
                _ => "match",
            };
            m.guard_matches
                .get_or_create(&GuardLabels {
                    backend: backend.clone(),
                    rule: rule.clone(),
                    action,
                })
                .inc();
        }
        // Shadow guards: what they would have done, counted by rule.
        for f in outcome
            .fired
            .iter()
            .filter(|f| f.action == crate::guard::Action::Audit)
        {
            m.guard_matches
                .get_or_create(&GuardLabels {
                    backend: backend.clone(),
                    rule: f.rule.clone(),
                    action: "audit",
                })
                .inc();
        }
        if outcome.segments_scanned > 0 || outcome.rule.is_some() {
            let phase = if outcome
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with("response"))
            {
                "response"
            } else {
                "request"
            };
            m.guardrail_checks
                .get_or_create(&GuardrailLabels {
                    phase,
                    action: outcome.decision.as_str(),
                })
                .inc();
        }
        self.decided = Some(Decided {
            backend,
            route: outcome.route.unwrap_or("none"),
            decision: outcome.decision.as_str(),
            provider: outcome.provider,
            model: outcome
                .model_effective
                .clone()
                .or_else(|| outcome.model_requested.clone()),
        });
        if self.recording {
            self.outcome = Some(outcome.clone());
        }
        decision_metadata(outcome)
    }

    fn record_outcome(&self, o: &Outcome) {
        let mut attrs: Vec<KeyValue> = Vec::with_capacity(16);
        let mut s = |k: &'static str, v: Option<&str>| {
            if let Some(v) = v {
                attrs.push(KeyValue::new(k, v.to_owned()));
            }
        };
        s("promptgate.decision", Some(o.decision.as_str()));
        s("promptgate.backend", o.backend.as_deref());
        s("promptgate.route", o.route);
        s("promptgate.rule", o.rule.as_deref());
        s("promptgate.location", o.location.as_deref());
        s("promptgate.model.requested", o.model_requested.as_deref());
        s("promptgate.model.effective", o.model_effective.as_deref());
        // OpenTelemetry's end-user and session conventions.
        s("enduser.id", o.user.as_deref());
        s("session.id", o.session.as_deref());
        s("gen_ai.provider.name", o.provider);
        s("gen_ai.system", o.provider);
        s(
            "gen_ai.request.model",
            o.model_effective
                .as_deref()
                .or(o.model_requested.as_deref()),
        );
        if matches!(o.route, Some("Messages" | "Completions")) {
            s("gen_ai.operation.name", Some("chat"));
        }
        if let Some(status) = o.status {
            attrs.push(KeyValue::new(
                "promptgate.reply.status_code",
                i64::from(status),
            ));
        }
        attrs.push(KeyValue::new("promptgate.guard.masked", o.masked as i64));
        if o.user.is_some() {
            attrs.push(KeyValue::new("promptgate.groups", o.groups as i64));
        }
        attrs.push(KeyValue::new(
            "promptgate.segments_scanned",
            o.segments_scanned as i64,
        ));
        attrs.push(KeyValue::new("promptgate.body_changed", o.body_changed));
        attrs.push(KeyValue::new("promptgate.auth_injected", o.auth_injected));
        for kv in attrs {
            self.span.set_attribute(kv.key, kv.value);
        }
        match o.decision {
            Verdict::Reject => self.span.set_status(Status::error(format!(
                "rejected by guard rule {}",
                o.rule.as_deref().unwrap_or("?")
            ))),
            Verdict::Error => self.span.set_status(Status::error(format!(
                "request refused ({})",
                o.status.unwrap_or(0)
            ))),
            _ => {}
        }
    }

    fn record_usage(&self, usage: &Usage, response_model: Option<&str>) {
        let num = |k: &'static str, v: Option<u64>| {
            v.map(|v| KeyValue::new(k, i64::try_from(v).unwrap_or(i64::MAX)))
        };
        let attrs = [
            num("gen_ai.usage.input_tokens", usage.total_input()),
            num("gen_ai.usage.output_tokens", usage.output),
            num("gen_ai.usage.cache_read.input_tokens", usage.cache_read),
            num(
                "gen_ai.usage.cache_creation.input_tokens",
                usage.cache_creation,
            ),
            response_model.map(|m| KeyValue::new("gen_ai.response.model", m.to_owned())),
        ];
        for kv in attrs.into_iter().flatten() {
            self.span.set_attribute(kv.key, kv.value);
        }
    }

    /// A tool call decided in the response: a log line, a span event and
    /// the tool-call counter. Names, rule and place only, never the input.
    pub fn on_tool(&mut self, tool: &ToolDecision) {
        self.open(None);
        let action = tool.verdict.action();
        let rule = tool.verdict.rule();
        tracing::info!(
            tool = %tool.tool,
            tool_rule = rule,
            tool_action = action,
            block = tool.index,
            "tool decision"
        );
        if self.recording {
            let mut attrs = vec![
                KeyValue::new("promptgate.tool.name", tool.tool.clone()),
                KeyValue::new("promptgate.tool.action", action),
                KeyValue::new("promptgate.tool.index", tool.index as i64),
            ];
            if let Some(rule) = rule {
                attrs.push(KeyValue::new("promptgate.tool.rule", rule.to_owned()));
            }
            self.span.add_event("promptgate.tool_decision", attrs);
        }
        let m = metrics();
        let backend = self
            .decided
            .as_ref()
            .map(|d| d.backend.clone())
            .unwrap_or_default();
        m.tool_calls
            .get_or_create(&ToolLabels {
                backend,
                tool: m.tool_label(&tool.tool),
                action,
            })
            .inc();
    }

    /// Shadow (`Audit`) response guards' matches: what they would have
    /// done, counted by rule like the request's.
    pub fn on_response_audits(&mut self, rules: &[String]) {
        if rules.is_empty() {
            return;
        }
        let m = metrics();
        let backend = self
            .decided
            .as_ref()
            .map(|d| d.backend.clone())
            .unwrap_or_default();
        for rule in rules {
            m.guard_matches
                .get_or_create(&GuardLabels {
                    backend: backend.clone(),
                    rule: rule.clone(),
                    action: "audit",
                })
                .inc();
        }
    }

    /// A budget check of `backend`: metrics (requests counted, refusals,
    /// store errors, the store's time), the span's remaining budget, a log
    /// line for a failed store.
    pub fn on_budget_check(
        &mut self,
        backend: &str,
        budgets: &crate::budget::Budgets,
        verdict: &crate::decision::BudgetVerdict,
        elapsed: std::time::Duration,
    ) {
        use crate::decision::BudgetVerdict;
        let m = metrics();
        m.budget_store_duration
            .get_or_create(&super::metrics::StoreOpLabels {
                store: budgets.store.kind(),
                op: "check",
            })
            .observe(elapsed.as_secs_f64());
        let labels = |li: usize| {
            let limit = &budgets.limits[li];
            super::metrics::BudgetLabels {
                backend: backend.to_owned(),
                limit: limit.name.clone(),
                unit: budget_unit(limit.kind),
            }
        };
        match verdict {
            BudgetVerdict::Pass(pass) => {
                for li in &pass.reserved {
                    m.budget_consumed.get_or_create(&labels(*li)).inc();
                }
                if let Some(t) = pass.remaining_tokens {
                    self.span
                        .set_attribute("promptgate.budget.remaining_tokens", t as i64);
                }
                if let Some(n) = pass.remaining_nanos {
                    self.span
                        .set_attribute("promptgate.budget.remaining_usd", n as f64 / 1e9);
                }
                if let Some(why) = &pass.store_error {
                    tracing::warn!(backend, error = %why, "budget store failed: request allowed unchecked (onStoreError: Allow)");
                    self.span
                        .set_attribute("promptgate.budget.store_error", true);
                    m.budget_store_errors
                        .get_or_create(&super::metrics::BudgetStoreLabels {
                            backend: backend.to_owned(),
                            op: "check",
                            decision: "allow",
                        })
                        .inc();
                }
            }
            BudgetVerdict::Refuse(reply) if reply.status == 429 => {
                let name = reply.outcome.rule.as_deref().unwrap_or_default();
                if let Some(li) = budgets.limits.iter().position(|l| l.name == name) {
                    m.budget_rejected.get_or_create(&labels(li)).inc();
                }
                self.span
                    .set_attribute("promptgate.budget.exhausted", name.to_owned());
            }
            BudgetVerdict::Refuse(reply) => {
                tracing::warn!(
                    backend,
                    message = reply.outcome.message.as_deref(),
                    "budget store failed: request refused (onStoreError: Reject)"
                );
                self.span
                    .set_attribute("promptgate.budget.store_error", true);
                m.budget_store_errors
                    .get_or_create(&super::metrics::BudgetStoreLabels {
                        backend: backend.to_owned(),
                        op: "check",
                        decision: "reject",
                    })
                    .inc();
            }
        }
    }

    /// Placeholders of the request's masks restored in its response.
    pub fn on_restored(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        self.span
            .set_attribute("promptgate.placeholders_restored", count as i64);
        let backend = self
            .decided
            .as_ref()
            .map(|d| d.backend.clone())
            .unwrap_or_default();
        metrics()
            .placeholders_restored
            .get_or_create(&BackendLabels { backend })
            .inc_by(count as u64);
    }

    /// Token usage from the provider's response (cumulative: call again
    /// with the later counts, e.g. Anthropic's `message_delta`; the last
    /// call is what the metrics count when the stream ends). Sets the GenAI
    /// usage attributes and returns the `promptgate` dynamic metadata with
    /// the token fields, to return on the answer to that response message.
    pub fn on_usage(&mut self, usage: &Usage, response_model: Option<&str>) -> Struct {
        self.open(None);
        tracing::debug!(
            input_tokens = usage.total_input(),
            output_tokens = usage.output,
            cache_read_input_tokens = usage.cache_read,
            cache_creation_input_tokens = usage.cache_creation,
            response_model,
            "token usage"
        );
        self.usage = Some((*usage, response_model.map(str::to_owned)));
        usage_metadata(usage, response_model)
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
            let model = m.model_label(model_name);
            let add = |direction: &'static str, n: Option<u64>| {
                if let Some(n) = n {
                    m.tokens
                        .get_or_create(&TokenLabels {
                            backend: backend.clone(),
                            model: model.clone(),
                            direction,
                        })
                        .inc_by(n);
                    m.gen_ai_token_usage
                        .get_or_create(&GenAiTokenLabels {
                            gen_ai_token_type: direction,
                            gen_ai_provider_name: provider.unwrap_or("unknown"),
                            gen_ai_response_model: model.clone(),
                        })
                        .observe(n as f64);
                }
            };
            add("input", usage.total_input());
            add("output", usage.output);
            for (kind, n) in [
                ("read", usage.cache_read),
                ("creation", usage.cache_creation),
            ] {
                if let Some(n) = n {
                    m.cache_tokens
                        .get_or_create(&CacheTokenLabels {
                            backend: backend.clone(),
                            model: model.clone(),
                            kind,
                        })
                        .inc_by(n);
                }
            }
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

/// One line per decision at info; names, places and counts only.
fn log_decision(outcome: &Outcome) {
    tracing::info!(
        decision = outcome.decision.as_str(),
        backend = outcome.backend.as_deref(),
        route = outcome.route,
        rule = outcome.rule.as_deref(),
        location = outcome.location.as_deref(),
        status = outcome.status,
        masked = outcome.masked,
        model_requested = outcome.model_requested.as_deref(),
        model_effective = outcome.model_effective.as_deref(),
        body_changed = outcome.body_changed,
        auth_injected = outcome.auth_injected,
        user = outcome.user.as_deref(),
        groups = outcome.groups,
        session = outcome.session.as_deref(),
        "decision"
    );
}

fn budget_unit(kind: crate::budget::LimitKind) -> &'static str {
    match kind {
        crate::budget::LimitKind::Tokens(_) => "tokens",
        crate::budget::LimitKind::NanoUsd(_) => "nano_usd",
        crate::budget::LimitKind::Requests(_) => "requests",
    }
}

/// A response's usage added to its budgets (or not: the store failed).
pub fn on_budget_debit(
    backend: &str,
    budgets: &crate::budget::Budgets,
    pass: &crate::decision::BudgetPass,
    items: &[crate::budget::DebitItem],
    error: Option<&crate::budget::StoreError>,
    elapsed: std::time::Duration,
) {
    let m = metrics();
    m.budget_store_duration
        .get_or_create(&super::metrics::StoreOpLabels {
            store: budgets.store.kind(),
            op: "debit",
        })
        .observe(elapsed.as_secs_f64());
    if let Some(e) = error {
        tracing::warn!(backend, error = %e, "budget store failed: this response's usage was not counted");
        m.budget_store_errors
            .get_or_create(&super::metrics::BudgetStoreLabels {
                backend: backend.to_owned(),
                op: "debit",
                decision: "allow",
            })
            .inc();
        return;
    }
    for ((_, kind, _, li), item) in pass.debit.iter().zip(items) {
        m.budget_consumed
            .get_or_create(&super::metrics::BudgetLabels {
                backend: backend.to_owned(),
                limit: budgets.limits[*li].name.clone(),
                unit: budget_unit(*kind),
            })
            .inc_by(item.amount);
    }
}
