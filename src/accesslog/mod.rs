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

use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_server::{
    AccessLogService, AccessLogServiceServer,
};
use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::LogEntries;
use envoy_types::pb::envoy::service::accesslog::v3::{
    StreamAccessLogsMessage, StreamAccessLogsResponse,
};
use tonic::{Request, Response, Status, Streaming};

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::decision;
use crate::policy::Policy;
use crate::telemetry::{metrics, on_budget_debit, on_reported_usage, ReportedUsage};

/// The access-log service as tonic's router takes it.
pub fn server(
    policy: Arc<ArcSwap<Policy>>,
    max_message_bytes: usize,
) -> AccessLogServiceServer<UsageReports> {
    AccessLogServiceServer::new(UsageReports { policy })
        .max_decoding_message_size(max_message_bytes)
}

/// Counts the usage the gateway's access-log entries report, and debits it
/// from the budgets its requests left to it.
#[derive(Debug, Clone)]
pub struct UsageReports {
    /// The policy of the moment: a debit's limits are looked up by name.
    policy: Arc<ArcSwap<Policy>>,
}

impl UsageReports {
    pub fn new(policy: Arc<ArcSwap<Policy>>) -> UsageReports {
        UsageReports { policy }
    }

    /// Records what one message's entries report; a budget debit goes to
    /// the store on a task of its own (bounded by `storeTimeout`), so the
    /// stream is read on.
    pub fn on_message(&self, msg: &StreamAccessLogsMessage) {
        let Some(LogEntries::HttpLogs(logs)) = &msg.log_entries else {
            return;
        };
        let m = metrics();
        for e in &logs.log_entry {
            match entry::read(e) {
                Ok(report) => {
                    on_reported_usage(&report);
                    m.count_usage_report("counted");
                    let keys = entry::budget_debits(e);
                    if !keys.is_empty() {
                        self.debit(&report, &keys);
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
}

impl UsageReports {
    /// Adds a reported answer's usage to the counters its request named,
    /// with the backend's budgets of the current policy (a limit a reload
    /// removed is left out).
    fn debit(&self, report: &ReportedUsage, keys: &[&str]) {
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
}

#[tonic::async_trait]
impl AccessLogService for UsageReports {
    async fn stream_access_logs(
        &self,
        request: Request<Streaming<StreamAccessLogsMessage>>,
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
