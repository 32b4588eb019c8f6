//! What a stream records of its request: the decision's log line, span,
//! metrics and audit entries, and the dynamic metadata queued for Envoy.

use envoy_types::pb::envoy::service::ext_proc::v3::processing_response;
use envoy_types::pb::google::protobuf::Struct;

use super::StreamState;
use crate::audit;
use crate::decision::{self, Outcome, ResponseRecord};
use crate::telemetry;

impl StreamState {
    /// Records a request decision (log line, span, metrics) and queues it
    /// as Envoy dynamic metadata.
    pub(super) fn record(&mut self, outcome: Outcome) {
        let md = self.telemetry.on_outcome(&outcome);
        self.queue_metadata(md);
        if let Some(log) = audit::log() {
            let entry = audit::entry::request(&outcome, self.ids(), log.allows());
            self.audit(entry);
            self.audited = Some(outcome);
        }
    }

    /// The request's ids for audit entries.
    pub(super) fn ids(&self) -> audit::entry::Ids<'_> {
        audit::entry::Ids {
            request_id: self.telemetry.request_id(),
            trace_id: self.telemetry.trace_id(),
        }
    }

    /// Queues an audit entry; notes a refusal (full queue, `FailClosed`).
    pub(super) fn audit(&mut self, entry: Option<serde_json::Value>) {
        if let (Some(log), Some(entry)) = (audit::log(), entry) {
            if log.submit(entry).is_err() {
                self.audit_refused = true;
            }
        }
    }

    /// The answer when the audit log could not take the decision's entry
    /// and the setting is `FailClosed`: nothing passes unaudited.
    pub(super) fn audit_refusal(&mut self) -> processing_response::Response {
        let reply = decision::gateway_error(
            self.ctx.as_ref(),
            503,
            "promptgate could not record this decision in its audit log; try again",
        );
        self.reply(reply)
    }

    /// Queues metadata for the next answer, merged with what is queued.
    pub(super) fn queue_metadata(&mut self, md: Struct) {
        match &mut self.pending_metadata {
            Some(existing) => telemetry::merge_metadata(existing, md),
            None => self.pending_metadata = Some(md),
        }
    }

    /// Logs the response decision and queues it, with token usage, as
    /// dynamic metadata.
    pub(super) fn finish_response(&mut self, r: ResponseRecord) {
        tracing::info!(
            response_decision = r.decision.as_str(),
            response_rule = r.rule.as_deref(),
            response_location = r.location.as_deref(),
            response_masked = r.masked,
            tool_calls_blocked = r.tools_blocked,
            placeholders_restored = r.restored,
            response_audited = r.audited,
            "response decision"
        );
        self.telemetry.on_restored(r.restored);
        self.telemetry.on_response_audits(&r.audited_rules);
        if let Some(log) = audit::log() {
            let entry = audit::entry::response(&r, self.audited.as_ref(), self.ids(), log.allows());
            self.audit(entry);
        }
        let usage_md = self.telemetry.on_usage(&r.usage, r.model.as_deref());
        self.queue_metadata(usage_md);
        self.queue_metadata(telemetry::response_metadata(&r));
    }
}
