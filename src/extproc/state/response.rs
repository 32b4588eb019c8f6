//! The response's phases: its headers (the body mode its reading needs)
//! and its body chunk by chunk, with the tool calls, audits, budget debit
//! and record they bring.

use bytes::Bytes;

use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    processing_response, CommonResponse, HeadersResponse, HttpBody, HttpHeaders,
};

use super::super::mutation::{self, find_header, header_mutation, response_status};
use super::StreamState;
use crate::audit;
use crate::decision::{self, BodyMode, ChunkDecision, ResponseHeadersDecision};

impl StreamState {
    pub(super) fn on_response_headers(&mut self, h: HttpHeaders) -> processing_response::Response {
        let status = response_status(&h);
        if self.requested_body && !self.request_body_done && status < 400 {
            // A success for a request whose body we asked for and never
            // saw: Envoy ignored the mode_override (the filter lacks
            // `allow_mode_override: true`) and the request went out
            // unguarded. Fail loudly on the way back rather than pretend it
            // was checked. (An error status here is most likely Envoy's own
            // local reply, e.g. 413 for a body over its buffer limit: it
            // passes.)
            tracing::error!("Envoy ignored mode_override: the request body was not inspected; set allow_mode_override: true on the ext_proc filter");
            return self.refuse(decision::gateway_error(
                self.ctx.as_ref(),
                500,
                "promptgate did not see the request body: the gateway's ext_proc filter must set allow_mode_override",
            ));
        }
        let get = |name: &str| find_header(&h, name);
        let decision = self.response.headers(
            self.ctx.as_ref(),
            status,
            get("content-type"),
            get("content-encoding"),
            h.end_of_stream,
        );
        match decision {
            ResponseHeadersDecision::Continue(mode) => {
                let budget_headers = self
                    .budget
                    .as_ref()
                    .filter(|_| !self.gateway_does.budget_headers)
                    .map(|b| {
                        b.headers
                            .iter()
                            .map(|(k, v)| (*k, v.as_bytes().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                let body_mode = match mode {
                    BodyMode::Unchanged => None,
                    BodyMode::Streamed => Some(BodySendMode::Streamed),
                    BodyMode::Buffered => Some(BodySendMode::Buffered),
                };
                self.response_mode = body_mode.map(|m| ProcessingMode {
                    response_body_mode: m as i32,
                    ..ProcessingMode::default()
                });
                let changes = decision::HeaderChanges {
                    set: budget_headers,
                    remove: Vec::new(),
                };
                processing_response::Response::ResponseHeaders(HeadersResponse {
                    response: Some(CommonResponse {
                        header_mutation: header_mutation(&changes),
                        ..CommonResponse::default()
                    }),
                })
            }
            ResponseHeadersDecision::Refuse(reply) => self.refuse(*reply),
        }
    }

    pub(super) async fn on_response_body(
        &mut self,
        b: HttpBody,
        chunk: Option<Bytes>,
    ) -> processing_response::Response {
        self.response_done |= b.end_of_stream;
        let chunk = chunk.as_deref().unwrap_or(&b.body);
        let answer = self
            .response
            .body(self.ctx.as_ref(), chunk, b.end_of_stream);
        for tool in &answer.tools {
            self.telemetry.on_tool(tool);
            let entry = audit::entry::tool(tool, self.audited.as_ref(), self.ids());
            self.audit(entry);
        }
        if let Some(record) = answer.record {
            self.debit_budget(&record).await;
            self.finish_response(record);
        }
        match answer.decision {
            ChunkDecision::Pass => mutation::response_body(None),
            ChunkDecision::Replace {
                body,
                content_length,
            } => mutation::response_body(Some(mutation::body_replaced(
                body,
                content_length,
                Vec::new(),
            ))),
            // The response's record carries the rejection.
            ChunkDecision::Reject(reply) => self.reply(reply),
            ChunkDecision::Refuse(reply) => self.refuse(reply),
        }
    }
}
