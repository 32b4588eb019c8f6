//! StreamTelemetry against an in-memory span exporter: parents, attributes,
//! status, metadata and metrics.

use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::google::protobuf::{value, Struct};
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::decision::Outcome;
use crate::provider::Usage;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const ENVOY_SPAN: &str = "b7ad6b7169203331";

fn traceparent(span: &str) -> String {
    format!("00-{TRACE}-{span}-01")
}

/// Runs `f` with a subscriber that exports promptgate spans to memory.
fn traced<R>(f: impl FnOnce() -> R) -> (R, Vec<SpanData>) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    let subscriber = tracing_subscriber::registry().with(layer);
    let r = tracing::subscriber::with_default(subscriber, f);
    let _ = provider.force_flush();
    (r, exporter.get_finished_spans().unwrap())
}

fn header(k: &str, v: &str) -> HeaderValue {
    HeaderValue {
        key: k.into(),
        raw_value: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn request_headers() -> Vec<HeaderValue> {
    vec![
        header(":method", "POST"),
        header(":path", "/v1/messages?beta=true"),
        header("x-api-key", "sk-client-secret-key"),
        header("x-request-id", "req-123"),
        header("traceparent", &traceparent(CLIENT_SPAN)),
    ]
}

fn reject() -> Outcome {
    Outcome {
        decision: crate::decision::Verdict::Reject,
        backend: Some("anthropic".into()),
        route: Some("Messages"),
        rule: Some("no-cards".into()),
        location: Some("messages[3].content[1]".into()),
        status: Some(403),
        message: Some("Rejected due to inappropriate content".into()),
        model_requested: Some("claude-sonnet-4-5".into()),
        provider: Some("anthropic"),
        segments_scanned: 4,
        auth_injected: true,
        ..Outcome::default()
    }
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn main_span(spans: &[SpanData]) -> &SpanData {
    spans
        .iter()
        .find(|s| s.name == "promptgate.ext_proc")
        .unwrap_or_else(|| panic!("no request span in {spans:?}"))
}

fn md_field<'a>(md: &'a Struct, key: &str) -> Option<&'a value::Kind> {
    match &md.fields[METADATA_NAMESPACE].kind {
        Some(value::Kind::StructValue(inner)) => inner.fields.get(key)?.kind.as_ref(),
        _ => None,
    }
}

#[test]
fn reject_span_is_child_of_the_request_trace_with_attributes_and_error_status() {
    let (md, spans) = traced(|| {
        let mut t = StreamTelemetry::detached();
        t.on_request_headers(&request_headers());
        assert_eq!(t.request_id(), Some("req-123"));
        assert_eq!(t.trace_id(), Some(TRACE));
        for phase in [Phase::RequestHeaders, Phase::RequestBody] {
            let (span, phase_span) = (t.span(), t.phase_span(phase));
            let _e = span.enter();
            let _p = phase_span.enter();
            t.on_phase(phase, Duration::from_micros(30));
        }
        t.on_outcome(&reject())
    });
    let main = main_span(&spans);
    assert_eq!(main.span_context.trace_id().to_string(), TRACE);
    assert_eq!(main.parent_span_id.to_string(), CLIENT_SPAN);
    assert!(main.parent_span_is_remote);
    assert_eq!(main.span_kind, SpanKind::Server);
    assert!(
        matches!(main.status, Status::Error { .. }),
        "{:?}",
        main.status
    );
    let s = |k| attr(main, k).map(|v| v.as_str().into_owned());
    assert_eq!(s("promptgate.decision").as_deref(), Some("reject"));
    assert_eq!(s("promptgate.rule").as_deref(), Some("no-cards"));
    assert_eq!(
        s("promptgate.location").as_deref(),
        Some("messages[3].content[1]")
    );
    assert_eq!(s("promptgate.backend").as_deref(), Some("anthropic"));
    assert_eq!(s("promptgate.route").as_deref(), Some("Messages"));
    assert_eq!(s("gen_ai.provider.name").as_deref(), Some("anthropic"));
    assert_eq!(
        s("gen_ai.request.model").as_deref(),
        Some("claude-sonnet-4-5")
    );
    assert_eq!(s("request_id").as_deref(), Some("req-123"));
    assert_eq!(
        attr(main, "promptgate.phase.request_body.duration_us"),
        Some(&Value::I64(30))
    );
    assert_eq!(attr(main, "promptgate.guard.masked"), Some(&Value::I64(0)));
    // phases are child spans of the request span
    let phases: Vec<_> = spans.iter().filter(|s| s.name != main.name).collect();
    assert_eq!(phases.len(), 2, "{spans:?}");
    for p in phases {
        assert_eq!(p.parent_span_id, main.span_context.span_id());
    }
    // the reply message and header values stay out of every span
    let all = format!("{spans:?}");
    for secret in ["sk-client-secret-key", "inappropriate content"] {
        assert!(!all.contains(secret), "{secret} in spans: {all}");
    }
    assert_eq!(
        md_field(&md, "decision"),
        Some(&value::Kind::StringValue("reject".into()))
    );
}

#[test]
fn envoy_span_in_grpc_metadata_is_preferred_over_the_request_traceparent() {
    let (_, spans) = traced(|| {
        let mut md = tonic::metadata::MetadataMap::new();
        md.insert("traceparent", traceparent(ENVOY_SPAN).parse().unwrap());
        let mut t = StreamTelemetry::start(&md);
        t.on_request_headers(&request_headers());
        t.on_outcome(&Outcome {
            decision: crate::decision::Verdict::Allow,
            ..reject()
        });
    });
    let main = main_span(&spans);
    assert_eq!(main.span_context.trace_id().to_string(), TRACE);
    assert_eq!(main.parent_span_id.to_string(), ENVOY_SPAN);
    assert_eq!(main.status, Status::Unset);
}

#[test]
fn without_any_traceparent_the_span_starts_a_trace() {
    let (trace_id, spans) = traced(|| {
        let mut t = StreamTelemetry::detached();
        t.on_request_headers(&[header(":path", "/v1/models")]);
        t.trace_id().map(str::to_owned)
    });
    let main = main_span(&spans);
    assert_eq!(
        trace_id.as_deref(),
        Some(main.span_context.trace_id().to_string().as_str())
    );
    assert_eq!(main.parent_span_id, opentelemetry::trace::SpanId::INVALID);
}

#[test]
fn usage_sets_gen_ai_attributes_metadata_and_token_metrics() {
    let backend = "unit-usage-backend";
    let (md, spans) = traced(|| {
        let mut t = StreamTelemetry::detached();
        t.on_request_headers(&request_headers());
        t.on_outcome(&Outcome {
            decision: crate::decision::Verdict::Allow,
            backend: Some(backend.into()),
            route: Some("Messages"),
            provider: Some("anthropic"),
            model_effective: Some("claude-opus-4-6".into()),
            ..Outcome::default()
        });
        // message_start, then message_delta (cumulative)
        let start = Usage {
            input: Some(25),
            output: Some(1),
            cache_read: Some(100),
            cache_creation: Some(7),
        };
        t.on_usage(&start, Some("claude-opus-4-6-20260101"));
        let mut end = start;
        end.update(&Usage {
            output: Some(12),
            ..Usage::default()
        });
        t.on_usage(&end, Some("claude-opus-4-6-20260101"))
    });
    let main = main_span(&spans);
    assert_eq!(
        attr(main, "gen_ai.usage.input_tokens"),
        Some(&Value::I64(132))
    );
    assert_eq!(
        attr(main, "gen_ai.usage.output_tokens"),
        Some(&Value::I64(12))
    );
    assert_eq!(
        attr(main, "gen_ai.usage.cache_read.input_tokens"),
        Some(&Value::I64(100))
    );
    assert_eq!(
        attr(main, "gen_ai.usage.cache_creation.input_tokens"),
        Some(&Value::I64(7))
    );
    assert_eq!(
        attr(main, "gen_ai.response.model").map(|v| v.as_str().into_owned()),
        Some("claude-opus-4-6-20260101".into())
    );
    assert_eq!(
        md_field(&md, "input_tokens"),
        Some(&value::Kind::NumberValue(132.0))
    );
    assert_eq!(
        md_field(&md, "output_tokens"),
        Some(&value::Kind::NumberValue(12.0))
    );
    assert_eq!(
        md_field(&md, "response_model"),
        Some(&value::Kind::StringValue("claude-opus-4-6-20260101".into()))
    );
    // the last usage is counted once, when the stream ends
    let text = metrics().encode();
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(backend) && l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} for {backend} missing:\n{text}"))
            .to_owned()
    };
    assert!(line(r#"direction="input""#).ends_with(" 132"), "{text}");
    assert!(line(r#"direction="output""#).ends_with(" 12"), "{text}");
    assert!(line(r#"kind="read""#).ends_with(" 100"), "{text}");
    assert!(
        line("promptgate_requests_total").contains(r#"decision="allow""#),
        "{text}"
    );
}

#[test]
fn without_opentelemetry_logs_still_get_the_request_trace_id() {
    // No OpenTelemetry layer: nothing is exported, but the trace id of the
    // request's traceparent is known for the logs.
    let mut t = StreamTelemetry::detached();
    t.on_request_headers(&request_headers());
    assert_eq!(t.trace_id(), Some(TRACE));
    let md = t.on_outcome(&reject());
    assert_eq!(
        md_field(&md, "rule"),
        Some(&value::Kind::StringValue("no-cards".into()))
    );
}

#[test]
fn deferred_records_wait_for_their_run_or_the_stream_end() {
    let matched = |backend: &str| {
        metrics().encode().contains(&format!(
            r#"promptgate_guard_matches_total{{backend="{backend}",rule="no-cards",action="reject"}} 1"#
        ))
    };
    // Run after the answer: nothing counted before, counted once after,
    // and the metadata for Envoy comes at once either way.
    let mut t = StreamTelemetry::detached();
    t.defer_records();
    t.on_request_headers(&request_headers());
    let md = t.on_outcome(&Outcome {
        backend: Some("unit-deferred-run".into()),
        ..reject()
    });
    assert!(md_field(&md, "rule").is_some());
    assert!(!matched("unit-deferred-run"));
    let records = t.take_deferred().expect("the decision waits");
    assert!(t.take_deferred().is_none(), "taken once");
    records.run();
    assert!(matched("unit-deferred-run"));
    t.finish();
    assert!(matched("unit-deferred-run"), "not counted twice");
    // Never taken: the stream's end runs them.
    let mut t = StreamTelemetry::detached();
    t.defer_records();
    t.on_request_headers(&request_headers());
    t.on_outcome(&Outcome {
        backend: Some("unit-deferred-end".into()),
        ..reject()
    });
    assert!(!matched("unit-deferred-end"));
    drop(t);
    assert!(matched("unit-deferred-end"));
}

#[test]
fn guard_matches_and_requests_are_counted() {
    let backend = "unit-guard-backend";
    let mut t = StreamTelemetry::detached();
    t.on_request_headers(&request_headers());
    t.on_outcome(&Outcome {
        backend: Some(backend.into()),
        ..reject()
    });
    t.finish();
    let text = metrics().encode();
    assert!(
        text.contains(&format!(
            r#"promptgate_guard_matches_total{{backend="{backend}",rule="no-cards",action="reject"}} 1"#
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#"promptgate_requests_total{{backend="{backend}",route="Messages",decision="reject"}} 1"#
        )),
        "{text}"
    );
}

#[test]
fn mask_decision_records_the_masked_count_without_an_error_status() {
    let backend = "unit-mask-backend";
    let (md, spans) = traced(|| {
        let mut t = StreamTelemetry::detached();
        t.on_request_headers(&request_headers());
        t.on_outcome(&Outcome {
            decision: crate::decision::Verdict::Mask,
            backend: Some(backend.into()),
            status: None,
            masked: 2,
            ..reject()
        })
    });
    let main = main_span(&spans);
    assert_eq!(
        attr(main, "promptgate.decision").map(|v| v.as_str().into_owned()),
        Some("mask".into())
    );
    assert_eq!(attr(main, "promptgate.guard.masked"), Some(&Value::I64(2)));
    assert_eq!(
        attr(main, "promptgate.location").map(|v| v.as_str().into_owned()),
        Some("messages[3].content[1]".into())
    );
    assert_eq!(main.status, Status::Unset);
    assert_eq!(
        md_field(&md, "masked"),
        Some(&value::Kind::NumberValue(2.0))
    );
    let text = metrics().encode();
    assert!(
        text.contains(&format!(
            r#"promptgate_guard_matches_total{{backend="{backend}",rule="no-cards",action="mask"}} 1"#
        )),
        "{text}"
    );
}
