//! The gateway's access-log stream (`envoy.service.accesslog.v3`): how an
//! answer's token usage reaches promptgate without holding the answer back.
//!
//! Reading a stream's usage in band costs an ext_proc exchange before each
//! chunk goes on, the first one included. The shipped Envoy config reads it
//! instead: its `sse_to_metadata` filter writes the counts into the
//! request's metadata as the stream passes (`json_to_metadata` does the
//! same for a whole JSON answer under `tokenUsage: All`), and its `http_grpc` access log
//! sends the entries promptgate marked (`usage_reporter: envoy`) here, in
//! batches, after the answers ended. This service counts them exactly as a
//! stream read in band is counted (metrics; a `promptgate.usage` span in
//! the request's trace). It decides nothing: an entry is read
//! ([`entry::read`]) and recorded, or skipped and counted as such.
//!
//! Envoy keeps one such stream per worker thread open for ever and never
//! waits for an answer (the API is lossy by design: entries sent while
//! promptgate is away are lost, and not retried). The stream ends when the
//! drain closes the listener (`lifecycle::listener_closed`), so a
//! draining replica is not held open by it; Envoy opens a new one, to a
//! replica still serving, with its next entry.

pub mod entry;
pub mod wire;

use std::convert::Infallible;
use std::sync::Arc;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::service::accesslog::v3::StreamAccessLogsResponse;
use tonic::body::Body;
use tonic::codegen::{http, BoxFuture};
use tonic::server::{ClientStreamingService, Grpc};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::decision;
use crate::grpc_method::{Method, OneMethod};
use crate::policy::Policy;
use crate::telemetry::{metrics, on_budget_debit, on_reported_usage, ReportedUsage};
use wire::LogsMessage;

/// The service's gRPC name.
pub const SERVICE_NAME: &str = "envoy.service.accesslog.v3.AccessLogService";

/// The access-log service as tonic's router takes it: routed by hand
/// ([`crate::grpc_method`]) so its one method decodes [`wire::LogsMessage`]
/// (the fields promptgate reads) instead of envoy-types' whole entries.
pub type AccessLogServer = OneMethod<StreamAccessLogs>;

/// The access-log service, reading messages of up to `max_message_bytes`.
pub fn server(policy: Arc<ArcSwap<Policy>>, max_message_bytes: usize) -> AccessLogServer {
    OneMethod(StreamAccessLogs {
        reports: UsageReports { policy },
        max_message_bytes,
    })
}

/// `StreamAccessLogs`, the one method.
#[derive(Clone)]
pub struct StreamAccessLogs {
    reports: UsageReports,
    max_message_bytes: usize,
}

impl ClientStreamingService<LogsMessage> for UsageReports {
    type Response = StreamAccessLogsResponse;
    type Future = BoxFuture<Response<StreamAccessLogsResponse>, Status>;

    fn call(&mut self, request: Request<Streaming<LogsMessage>>) -> Self::Future {
        let reports = self.clone();
        Box::pin(async move { reports.stream_access_logs(request).await })
    }
}

impl Method for StreamAccessLogs {
    const SERVICE: &'static str = SERVICE_NAME;
    const PATH: &'static str = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs";

    fn serve(self, req: http::Request<Body>) -> BoxFuture<http::Response<Body>, Infallible> {
        Box::pin(async move {
            let codec = ProstCodec::<StreamAccessLogsResponse, LogsMessage>::default();
            let mut grpc =
                Grpc::new(codec).apply_max_message_size_config(Some(self.max_message_bytes), None);
            Ok(grpc.client_streaming(self.reports, req).await)
        })
    }
}

/// Counts the usage the gateway's access-log entries report, and debits it
/// from the budgets its requests left to it.
#[derive(Debug, Clone)]
pub struct UsageReports {
    /// The policy of the moment: a debit's limits are looked up by name.
    policy: Arc<ArcSwap<Policy>>,
}

impl UsageReports {
    /// Records what one message's entries report; a budget debit goes to
    /// the store on a task of its own (bounded by `storeTimeout`), so the
    /// stream is read on.
    pub fn on_message(&self, msg: &LogsMessage) {
        let Some(logs) = &msg.http_logs else {
            return;
        };
        let m = metrics();
        for e in &logs.log_entry {
            match entry::read(e) {
                Ok(report) => {
                    on_reported_usage(&report.usage);
                    m.count_usage_report("counted");
                    if !report.budget_debits.is_empty() {
                        self.debit(&report.usage, &report.budget_debits);
                    }
                }
                Err(skipped) => {
                    tracing::debug!(
                        reason = skipped.as_str(),
                        "access-log entry reports no usage"
                    );
                    m.count_usage_report(skipped.as_str());
                }
            }
        }
    }

    /// Adds a reported answer's usage to the counters its request named,
    /// with the backend's budgets of the current policy (a limit a reload
    /// removed is left out).
    fn debit(&self, report: &ReportedUsage, keys: &[String]) {
        let policy = self.policy.load();
        let Some(budgets) = policy
            .backends
            .iter()
            .find(|b| b.name == report.backend)
            .and_then(|b| b.budgets.clone())
        else {
            tracing::debug!(backend = %report.backend, "reported usage names budgets its backend no longer has");
            return;
        };
        let (pass, items) =
            decision::reported_debits(&budgets, keys, &report.usage, report.model.as_deref());
        if items.is_empty() {
            return;
        }
        let backend = report.backend.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let started = std::time::Instant::now();
            let result = budgets.store.debit(&items, budgets.store_timeout).await;
            on_budget_debit(
                &backend,
                &budgets,
                &pass,
                &items,
                result.as_ref().err(),
                started.elapsed(),
            );
        });
    }

    /// One of Envoy's access-log streams, read until it ends or the drain
    /// closes the listener.
    async fn stream_access_logs(
        &self,
        request: Request<Streaming<LogsMessage>>,
    ) -> Result<Response<StreamAccessLogsResponse>, Status> {
        let mut inbound = request.into_inner();
        let mut closed = crate::lifecycle::listener_closed();
        loop {
            tokio::select! {
                msg = inbound.message() => match msg {
                    Ok(Some(msg)) => self.on_message(&msg),
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(code = ?status.code(), error = status.message(), "access-log stream broke");
                        break;
                    }
                },
                _ = closed.changed() => break,
            }
        }
        Ok(Response::new(StreamAccessLogsResponse {}))
    }
}
