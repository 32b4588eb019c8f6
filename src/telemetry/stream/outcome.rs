//! The decision and the response's token usage: the decision's log line,
//! its span attributes and metrics, and the `promptgate` metadata for
//! Envoy.

use envoy_types::pb::google::protobuf::Struct;
use opentelemetry::trace::Status;
use opentelemetry::KeyValue;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::super::metadata::{decision_metadata, usage_metadata, usage_report_metadata};
use super::super::metrics::{metrics, GuardLabels, GuardrailLabels};
use super::super::otel::TraceHeaders;
use super::super::usage::usage_attributes;
use super::{Decided, StreamTelemetry};
use crate::decision::{Outcome, Verdict};
use crate::provider::Usage;

impl StreamTelemetry {
    /// The decision: logged (one line at info), recorded on the span
    /// (status error on reject/error) and in the metrics. Returns the
    /// `promptgate` dynamic metadata for Envoy. With
    /// [`StreamTelemetry::defer_records`], the log line and the guard
    /// metrics wait for [`StreamTelemetry::take_deferred`].
    pub fn on_outcome(&mut self, outcome: &Outcome) -> Struct {
        self.open(None);
        if self.defer_records {
            self.deferred.push(outcome.clone());
        } else {
            log_and_count(outcome);
        }
        let backend = outcome.backend.clone().unwrap_or_default();
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

    pub(super) fn record_outcome(&self, o: &Outcome) {
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

    pub(super) fn record_usage(&self, usage: &Usage, response_model: Option<&str>) {
        for kv in usage_attributes(usage, response_model) {
            self.span.set_attribute(kv.key, kv.value);
        }
    }

    /// The answer's usage is left to the gateway: the `promptgate`
    /// metadata that marks its access-log entry for promptgate's
    /// access-log service (`usage_reporter: envoy`), with what that
    /// service needs to count it as this stream would have: the provider
    /// and, when this request's span is exported, its `traceparent`.
    pub fn on_usage_by_envoy(&mut self) -> Struct {
        self.open(None);
        let provider = self.decided.as_ref().and_then(|d| d.provider);
        let traceparent = self
            .recording
            .then(|| TraceHeaders::of(&self.span.context()).traceparent)
            .flatten();
        usage_report_metadata(provider, traceparent.as_deref())
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
}

/// The decision's log line and guard metrics: what can wait until the
/// answer is on its way ([`super::Deferred`]).
pub(super) fn log_and_count(outcome: &Outcome) {
    log_decision(outcome);
    let m = metrics();
    let backend = outcome.backend.as_deref().unwrap_or_default();
    if let Some(rule) = &outcome.rule {
        let action = match outcome.decision {
            Verdict::Reject => "reject",
            _ if outcome.masked > 0 => "mask",
            _ => "match",
        };
        m.guard_matches
            .get_or_create(&GuardLabels {
                backend: backend.to_owned(),
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
                backend: backend.to_owned(),
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
