//! Token counts into the metrics, whoever read them: promptgate in band
//! (a stream's recorder, when the stream ends) or the gateway, whose
//! access-log entry reports a streamed answer's usage after the fact
//! ([`on_reported_usage`]; see `crate::accesslog`).

use opentelemetry::KeyValue;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::metrics::{metrics, CacheTokenLabels, GenAiTokenLabels, TokenLabels};
use super::otel::TraceHeaders;
use super::stream::SPAN_TARGET;
use crate::provider::Usage;

/// Adds one answer's tokens to `promptgate_tokens_total`,
/// `promptgate_cache_tokens_total` and `gen_ai_client_token_usage`.
pub(crate) fn count_tokens(
    backend: &str,
    provider: Option<&'static str>,
    model: Option<&str>,
    usage: &Usage,
) {
    let m = metrics();
    let model = m.model_label(model);
    let add = |direction: &'static str, n: Option<u64>| {
        if let Some(n) = n {
            m.tokens
                .get_or_create(&TokenLabels {
                    backend: backend.to_owned(),
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
                    backend: backend.to_owned(),
                    model: model.clone(),
                    kind,
                })
                .inc_by(n);
        }
    }
}

/// The GenAI usage attributes of an answer (`gen_ai.usage.*`,
/// `gen_ai.response.model`).
pub(crate) fn usage_attributes(usage: &Usage, response_model: Option<&str>) -> Vec<KeyValue> {
    let num = |k: &'static str, v: Option<u64>| {
        v.map(|v| KeyValue::new(k, i64::try_from(v).unwrap_or(i64::MAX)))
    };
    [
        num("gen_ai.usage.input_tokens", usage.total_input()),
        num("gen_ai.usage.output_tokens", usage.output),
        num("gen_ai.usage.cache_read.input_tokens", usage.cache_read),
        num(
            "gen_ai.usage.cache_creation.input_tokens",
            usage.cache_creation,
        ),
        response_model.map(|m| KeyValue::new("gen_ai.response.model", m.to_owned())),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A streamed answer's usage as the gateway reported it, after the answer
/// ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportedUsage {
    pub backend: String,
    /// The backend's provider, as promptgate named it on the request.
    pub provider: Option<&'static str>,
    /// The model the answer named, else the one the request went to.
    pub model: Option<String>,
    pub usage: Usage,
    /// W3C `traceparent` of promptgate's request span (when it was
    /// exported): the usage span becomes its child.
    pub traceparent: Option<String>,
    pub request_id: Option<String>,
}

/// Counts a reported answer's tokens like an answer read in band, and, when
/// the request's span was exported, adds a `promptgate.usage` span to its
/// trace with the GenAI usage attributes (the request's own span ended
/// with its decision, before the answer began).
pub fn on_reported_usage(r: &ReportedUsage) {
    count_tokens(&r.backend, r.provider, r.model.as_deref(), &r.usage);
    tracing::debug!(
        backend = r.backend,
        request_id = r.request_id.as_deref(),
        input_tokens = r.usage.total_input(),
        output_tokens = r.usage.output,
        cache_read_input_tokens = r.usage.cache_read,
        cache_creation_input_tokens = r.usage.cache_creation,
        response_model = r.model.as_deref(),
        "token usage reported by the gateway"
    );
    let Some(parent) = (TraceHeaders {
        traceparent: r.traceparent.clone(),
        tracestate: None,
    })
    .parent() else {
        return;
    };
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "usage",
        otel.name = "promptgate.usage",
        otel.kind = "internal",
        request_id = r.request_id.as_deref(),
    );
    let _ = span.set_parent(parent);
    for kv in usage_attributes(&r.usage, r.model.as_deref()) {
        span.set_attribute(kv.key, kv.value);
    }
}
