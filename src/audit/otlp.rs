//! The audit trail's second sink: every chained line, and the published
//! head, as an OTLP log record sent to the collector traces go to (the
//! standard `OTEL_EXPORTER_OTLP_[LOGS_]ENDPOINT`). The record's body is the
//! line exactly as written to the file, so a collector-side copy verifies
//! with the same `promptgate audit verify`; `audit.seq` and `audit.hash`
//! are attributes for querying. Export is batched on its own thread and
//! never holds up the writer.

use std::time::{Duration, SystemTime};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::Resource;

use super::chain::Head;

/// Whether the environment names an OTLP endpoint for logs.
pub fn endpoint_configured() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    set("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT")
}

/// The OTLP/gRPC log pipeline of the audit trail.
pub struct OtlpSink {
    provider: SdkLoggerProvider,
    logger: SdkLogger,
    runtime: Option<tokio::runtime::Runtime>,
}

impl OtlpSink {
    /// Built from the environment, as the trace pipeline is.
    pub fn from_env() -> Result<OtlpSink, String> {
        if !endpoint_configured() {
            return Err("audit.otlp: no OTLP endpoint (set OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT)".into());
        }
        for k in [
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Ok(p) = std::env::var(k) {
                if !p.trim().is_empty() && p.trim() != "grpc" {
                    return Err(format!(
                        "{k}={p}: promptgate exports audit records over OTLP/gRPC only (use grpc)"
                    ));
                }
            }
        }
        // The tonic client needs a Tokio runtime of its own (the writer is
        // a plain thread).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("promptgate-audit-otlp")
            .enable_all()
            .build()
            .map_err(|e| format!("audit.otlp: cannot start the export runtime: {e}"))?;
        let exporter = {
            let _entered = runtime.enter();
            opentelemetry_otlp::LogExporter::builder()
                .with_tonic()
                .build()
                .map_err(|e| format!("audit.otlp: cannot build the OTLP exporter: {e}"))?
        };
        let mut resource = Resource::builder();
        if !std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty()) {
            resource = resource.with_service_name("promptgate");
        }
        let provider = SdkLoggerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let logger = provider.logger("promptgate.audit");
        Ok(OtlpSink {
            provider,
            logger,
            runtime: Some(runtime),
        })
    }

    /// One chained line (without its newline) and the head it made.
    pub fn line(&self, line: &str, head: &Head) {
        let mut record = self.logger.create_log_record();
        record.set_event_name("promptgate.audit");
        record.set_timestamp(SystemTime::now());
        record.set_severity_number(Severity::Info);
        record.set_body(AnyValue::from(line.to_owned()));
        record.add_attribute("audit.seq", head.seq as i64);
        record.add_attribute("audit.hash", head.hash.clone());
        self.logger.emit(record);
    }

    /// The published head (line count and last hash).
    pub fn head(&self, head: &Head) {
        let mut record = self.logger.create_log_record();
        record.set_event_name("promptgate.audit.head");
        record.set_timestamp(SystemTime::now());
        record.set_severity_number(Severity::Info);
        record.set_body(AnyValue::from(format!(
            "audit head: {} lines, last hash {}",
            head.seq, head.hash
        )));
        record.add_attribute("audit.seq", head.seq as i64);
        record.add_attribute("audit.hash", head.hash.clone());
        self.logger.emit(record);
    }

    /// Exports what is buffered (bounded by the exporter timeout).
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            let _ = self.provider.shutdown_with_timeout(Duration::from_secs(2));
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
