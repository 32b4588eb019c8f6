//! OpenTelemetry: the OTLP/gRPC trace pipeline, configured by the standard
//! environment variables, and W3C trace-context extraction.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// Whether the environment asks for trace export: an OTLP endpoint is set
/// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`),
/// `OTEL_SDK_DISABLED` is not `true` and `OTEL_TRACES_EXPORTER` is unset or
/// `otlp`.
pub fn tracing_requested() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    let disabled =
        std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let exporter_ok = std::env::var("OTEL_TRACES_EXPORTER")
        .map(|v| v.trim().is_empty() || v.trim().eq_ignore_ascii_case("otlp"))
        .unwrap_or(true);
    !disabled
        && exporter_ok
        && (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

/// The running export pipeline: a tracer provider with a batch span
/// processor and the small runtime its gRPC client lives on.
pub struct Pipeline {
    provider: SdkTracerProvider,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Pipeline {
    /// Builds the OTLP/gRPC pipeline from the environment (endpoint,
    /// headers, timeout, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER[_ARG]`,
    /// `OTEL_BSP_*`).
    pub fn from_env() -> Result<Pipeline, String> {
        for k in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Ok(p) = std::env::var(k) {
                if !p.trim().is_empty() && p.trim() != "grpc" {
                    return Err(format!(
                        "{k}={p}: promptgate exports traces over OTLP/gRPC only (use grpc)"
                    ));
                }
            }
        }
        // The tonic client needs a Tokio runtime for its connection; a
        // one-thread runtime of its own keeps export work off the request
        // workers and independent of how the server's runtime is built.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("promptgate-otlp")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the OTLP export runtime: {e}"))?;
        let exporter = {
            let _entered = runtime.enter();
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
                .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?
        };
        let mut resource = Resource::builder();
        let service_name_set = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
            || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name"));
        if !service_name_set {
            resource = resource.with_service_name("promptgate");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        Ok(Pipeline {
            provider,
            runtime: Some(runtime),
        })
    }

    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// Exports what is buffered and stops (bounded by the exporter timeout).
    pub fn shutdown(&mut self) {
        if let Some(rt) = self.runtime.take() {
            if let Err(e) = self.provider.shutdown() {
                eprintln!("promptgate: trace export shutdown: {e}");
            }
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The W3C `traceparent`/`tracestate` pair of a carrier, kept as strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl TraceHeaders {
    /// From gRPC call metadata (Envoy's tracer puts its ext_proc span there).
    pub fn from_grpc(md: &tonic::metadata::MetadataMap) -> TraceHeaders {
        let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
        TraceHeaders {
            traceparent: get("traceparent"),
            tracestate: get("tracestate"),
        }
    }

    /// From the HTTP request headers Envoy forwards (`raw_value`).
    pub fn from_headers(headers: &[HeaderValue]) -> TraceHeaders {
        let get = |k: &str| {
            headers
                .iter()
                .find(|h| h.key.eq_ignore_ascii_case(k))
                .and_then(|h| header_text(h).map(str::to_owned))
        };
        TraceHeaders {
            traceparent: get("traceparent"),
            tracestate: get("tracestate"),
        }
    }

    /// The carrier of `cx`'s span: what continues its trace elsewhere.
    pub fn of(cx: &Context) -> TraceHeaders {
        let mut h = TraceHeaders::default();
        TraceContextPropagator::new().inject_context(cx, &mut h);
        h
    }

    /// The remote parent, if `traceparent` is present and valid.
    pub fn parent(&self) -> Option<Context> {
        self.traceparent.as_ref()?;
        let cx = TraceContextPropagator::new().extract_with_context(&Context::new(), self);
        cx.span().span_context().is_valid().then_some(cx)
    }
}

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "traceparent" => self.traceparent = Some(value),
            "tracestate" => self.tracestate = Some(value).filter(|v| !v.is_empty()),
            _ => {}
        }
    }
}

impl Extractor for TraceHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent.as_deref(),
            "tracestate" => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

pub(crate) fn header_text(h: &HeaderValue) -> Option<&str> {
    if h.raw_value.is_empty() {
        Some(h.value.as_str())
    } else {
        std::str::from_utf8(&h.raw_value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parent_from_headers() {
        let h = TraceHeaders::from_headers(&[HeaderValue {
            key: "traceparent".into(),
            raw_value: TP.as_bytes().to_vec(),
            ..Default::default()
        }]);
        let cx = h.parent().expect("valid traceparent");
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_remote() && sc.is_sampled());
    }

    #[test]
    fn a_context_is_carried_on_as_it_came() {
        let h = TraceHeaders {
            traceparent: Some(TP.into()),
            tracestate: None,
        };
        assert_eq!(TraceHeaders::of(&h.parent().unwrap()), h);
        assert_eq!(TraceHeaders::of(&Context::new()), TraceHeaders::default());
    }

    #[test]
    fn invalid_or_missing_traceparent_is_no_parent() {
        assert!(TraceHeaders::default().parent().is_none());
        let bad = TraceHeaders {
            traceparent: Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01".into()),
            tracestate: None,
        };
        assert!(bad.parent().is_none());
        let junk = TraceHeaders {
            traceparent: Some("not a traceparent".into()),
            tracestate: None,
        };
        assert!(junk.parent().is_none());
    }

    #[test]
    fn grpc_metadata() {
        let mut md = tonic::metadata::MetadataMap::new();
        md.insert("traceparent", TP.parse().unwrap());
        md.insert("tracestate", "envoy=1".parse().unwrap());
        let h = TraceHeaders::from_grpc(&md);
        assert_eq!(h.traceparent.as_deref(), Some(TP));
        assert_eq!(h.tracestate.as_deref(), Some("envoy=1"));
        assert!(h.parent().is_some());
    }
}
