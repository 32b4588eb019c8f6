//! Observability: logs, traces, metrics and Envoy dynamic metadata.
//!
//! * **Logs** — JSON lines on stderr (tracing-subscriber). One line per
//!   decision at info; lines written while a request is handled carry its
//!   `request_id` (Envoy's `x-request-id`) and `trace_id` in `span`.
//! * **Traces** — OpenTelemetry over OTLP/gRPC, on when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set. One span
//!   per ext_proc stream, a child of Envoy's ext_proc span (gRPC metadata) or
//!   of the request's `traceparent`; a child span per phase.
//! * **Metrics** — Prometheus text on the admin port ([`admin`]).
//! * **Dynamic metadata** — the `promptgate` namespace in Envoy ([`metadata`]).
//!
//! Never prompt text, matched text or secrets, at any level.
//!
//! The per-request recorder is [`StreamTelemetry`]; see its module for the
//! call order.

pub mod admin;
mod log_format;
mod log_writer;
pub mod metadata;
pub mod metrics;
pub mod otel;
pub mod stream;
pub mod usage;

pub use admin::set_ready;
pub use metadata::{
    budget_debits_metadata, budget_headers_metadata, decision_metadata, merge_metadata,
    response_metadata, usage_metadata, usage_report_metadata, BUDGET_DEBITS_KEY,
    METADATA_NAMESPACE, USAGE_NAMESPACE, USAGE_REPORTER_KEY,
};
pub use metrics::metrics;
pub use stream::{on_budget_debit, Deferred, Phase, StreamTelemetry};
pub use usage::{on_reported_usage, ReportedUsage};

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the trace pipeline alive; dropping it flushes buffered spans.
pub struct Telemetry {
    pipeline: Option<otel::Pipeline>,
    log: log_writer::LogWriter,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn tracing_enabled(&self) -> bool {
        self.pipeline.is_some()
    }

    /// Flushes and stops trace export (also done on drop).
    pub fn shutdown(&mut self) {
        if let Some(mut p) = self.pipeline.take() {
            p.shutdown();
        }
        // Last, so the lines logged while the pipeline shut down are in.
        self.log.flush_now();
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The log's filter. Phase spans are for traces only. Every filter here is
/// a directive list, never a closure: each callsite's interest is then
/// decided once and the subscriber's maximum level is known, so a
/// dependency's `trace!` (h2 has dozens per message) costs one comparison
/// instead of a filter evaluation per call (measured: `cargo bench --bench
/// hot_path`, and under load through Envoy, in the README).
fn log_filter() -> EnvFilter {
    std::env::var("PROMPTGATE_LOG")
        .ok()
        .and_then(|s| EnvFilter::try_new(s).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
        .add_directive(
            format!("{}=off", stream::PHASE_TARGET)
                .parse()
                .expect("a valid directive"),
        )
}

/// Installs the global subscriber: JSON logs on stderr, written in batches
/// (`log_writer.rs`; `PROMPTGATE_LOG`,
/// else `RUST_LOG`, else `info`) and, when the environment asks for it,
/// OpenTelemetry trace export. Call once, early; keep the result alive.
pub fn init() -> Telemetry {
    let mut problem = None;
    let pipeline = if otel::tracing_requested() {
        match otel::Pipeline::from_env() {
            Ok(p) => Some(p),
            Err(e) => {
                problem = Some(e);
                None
            }
        }
    } else {
        None
    };
    let log = log_writer::LogWriter::stderr();
    let _ = subscriber(log.clone(), pipeline.as_ref()).try_init();
    if let Some(e) = problem {
        tracing::error!(error = %e, "trace export is off");
    } else if pipeline.is_some() {
        tracing::info!("trace export on (OTLP/gRPC)");
    }
    Telemetry { pipeline, log }
}

/// The subscriber [`init`] installs, writing logs to `writer` and spans to
/// `pipeline` (if any); for benchmarks and tests that compare the two.
pub fn subscriber<W>(
    writer: W,
    pipeline: Option<&otel::Pipeline>,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer()
        .json()
        .event_format(log_format::JsonLines)
        .with_writer(writer)
        .with_filter(log_filter());
    let otel_layer = pipeline.map(|p| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer()
            .with_tracer(p.provider().tracer("promptgate"))
            .with_tracked_inactivity(false)
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            // Only promptgate's own spans (all at info) and events up to
            // info: never a dependency's (the exporter's own gRPC client
            // must not trace itself).
            .with_filter(Targets::new().with_target("promptgate", LevelFilter::INFO))
    });
    tracing_subscriber::registry().with(fmt).with(otel_layer)
}

#[cfg(test)]
mod tests;
