//! The request's phases: the processing modes its decision needs, its
//! headers and its body, each turned into a call of the decision core and
//! an answer for Envoy.

use bytes::Bytes;

use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::{
    BodySendMode, HeaderSendMode,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    processing_response, CommonResponse, HeadersResponse, HttpBody, HttpHeaders,
};

use super::super::mutation::{self, find_header, header_mutation};
use super::{StreamState, BLOCKING_THRESHOLD};
use crate::decision::{
    self, BodyDecision, HeadersDecision, Reply, RequestCtx, RequestHead, ResponseDecider,
    ResponseRead, MAX_BODY_BYTES,
};
use crate::policy::RouteType;
use crate::provider::ErrorKind;

impl StreamState {
    /// The processing modes the request's decision needs.
    pub(super) fn request_mode(&self) -> ProcessingMode {
        let read = self.ctx.as_ref().map_or(ResponseRead::Skip, |c| c.response);
        // Budgets add the remaining budget to the response headers.
        let budgets = self
            .ctx
            .as_ref()
            .is_some_and(|c| self.policy.backends[c.backend].budgets.is_some());
        let (response_header_mode, response_body_mode) = match read {
            // Response guards need the status and content type first; the
            // body mode follows on the answer to the response headers.
            ResponseRead::Guarded => (0, 0),
            // Usage only: the response headers are skipped and the body
            // streamed — an SSE stream or a JSON body, told apart by its
            // first bytes — and every chunk passes unchanged.
            ResponseRead::UsageOnly if budgets && !self.gateway_does.budget_headers => {
                (0, BodySendMode::Streamed as i32)
            }
            ResponseRead::UsageOnly => (HeaderSendMode::Skip as i32, BodySendMode::Streamed as i32),
            // Nothing to read in the response (or only what Envoy reads).
            ResponseRead::Skip | ResponseRead::GatewayUsage => (HeaderSendMode::Skip as i32, 0),
        };
        ProcessingMode {
            response_header_mode,
            response_body_mode,
            request_body_mode: if self.requested_body {
                BodySendMode::Buffered as i32
            } else {
                0
            },
            ..ProcessingMode::default()
        }
    }

    pub(super) async fn on_request_headers(
        &mut self,
        h: HttpHeaders,
        metadata: Option<&envoy_types::pb::envoy::config::core::v3::Metadata>,
    ) -> processing_response::Response {
        let get = |name: &str| find_header(&h, name);
        let claims = self
            .policy
            .identity
            .as_ref()
            .and_then(|s| super::super::claims::verified_claims(s, metadata));
        // `when:` conditions may read the headers: only then are they copied.
        let headers: Vec<(String, String)> = if self.policy.has_conditions {
            h.headers
                .as_ref()
                .map(|m| {
                    m.headers
                        .iter()
                        .filter(|hv| !hv.key.starts_with(':'))
                        .map(|hv| {
                            (
                                hv.key.to_ascii_lowercase(),
                                super::mutation::header_str(hv).to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let head = RequestHead {
            gateway_does: self.gateway_does,
            ..RequestHead::from_headers(get, claims.as_ref(), &headers, h.end_of_stream)
        };
        let (ctx, decision) = decision::request_headers(&self.policy, self.hint.as_deref(), &head);
        self.ctx = ctx;
        self.response = ResponseDecider::new(&self.policy, self.ctx.as_ref());
        match decision {
            HeadersDecision::Continue {
                changes,
                inspect_body,
                outcome,
            } => {
                self.requested_body = inspect_body;
                if !inspect_body {
                    // A model request without a body (the body phase
                    // checks the others, once the model is known).
                    let check = self
                        .ctx
                        .clone()
                        .filter(|c| matches!(c.route, RouteType::Messages | RouteType::Completions))
                        .and_then(|c| {
                            decision::budget_check(&self.policy, &c, None).map(|k| (c, k))
                        });
                    let check = check.as_ref().map(|(c, k)| (c, k));
                    if let Some(refusal) = self.admit(check, outcome).await {
                        return refusal;
                    }
                }
                processing_response::Response::RequestHeaders(HeadersResponse {
                    response: Some(CommonResponse {
                        header_mutation: header_mutation(&changes),
                        ..CommonResponse::default()
                    }),
                })
            }
            HeadersDecision::Reply(reply) => self.refuse(reply),
        }
    }

    /// `chunk`: the body's bytes as decoded apart from `b` (else `b.body`).
    pub(super) async fn on_request_body(
        &mut self,
        mut b: HttpBody,
        chunk: Option<Bytes>,
    ) -> processing_response::Response {
        let chunk = chunk.unwrap_or_else(|| Bytes::from(std::mem::take(&mut b.body)));
        let Some(ctx) = self.ctx.clone() else {
            // No request headers were sent (request_header_mode SKIP): no
            // backend, no route. Fail closed.
            return self.refuse(decision::gateway_error(
                None,
                500,
                "promptgate needs the request headers: set request_header_mode SEND",
            ));
        };
        if !ctx.route.inspects_request_body() {
            // Envoy is configured to send bodies we do not read: pass them.
            self.request_body_done |= b.end_of_stream;
            return mutation::request_body(None);
        }
        let mode = if self.requested_body {
            BodySendMode::Buffered as i32
        } else {
            self.configured_request_body_mode
        };
        let streamed = mode == BodySendMode::Streamed as i32;
        if mode == BodySendMode::FullDuplexStreamed as i32 {
            return self.refuse(decision::gateway_error(
                Some(&ctx),
                500,
                "promptgate does not support FULL_DUPLEX_STREAMED request bodies; configure BUFFERED",
            ));
        }
        let complete = b.end_of_stream || mode == BodySendMode::Buffered as i32;
        if !complete {
            // BUFFERED_PARTIAL delivered only the first part of the body,
            // or a STREAMED body outgrew what promptgate inspects.
            if !streamed || self.held_body.len() + chunk.len() > MAX_BODY_BYTES {
                return self.refuse(too_large(&ctx));
            }
            // Hold the chunk back until the whole body is here.
            self.held_body.extend_from_slice(&chunk);
            return mutation::request_body(Some(mutation::body_cleared()));
        }
        self.request_body_done = true;
        let held_back = !self.held_body.is_empty();
        let body = if held_back {
            let mut all = std::mem::take(&mut self.held_body);
            all.extend_from_slice(&chunk);
            Bytes::from(all)
        } else {
            chunk
        };
        let (decision, body) = if body.len() > BLOCKING_THRESHOLD {
            // A large body is decided on the blocking pool, so its scan
            // never stalls the async workers (external guards, if any, are
            // awaited there too).
            let policy = self.policy.clone();
            let ctx2 = ctx.clone();
            let rt = tokio::runtime::Handle::current();
            match tokio::task::spawn_blocking(move || {
                let d = rt.block_on(decision::request_body(&policy, &ctx2, &body));
                (d, body)
            })
            .await
            {
                Ok(r) => r,
                Err(_) => {
                    return self.refuse(decision::gateway_error(
                        Some(&ctx),
                        500,
                        "promptgate failed while inspecting the request body",
                    ));
                }
            }
        } else {
            (
                decision::request_body(&self.policy, &ctx, &body).await,
                body,
            )
        };
        match decision {
            BodyDecision::Continue {
                replacement,
                read_response,
                usage_by_envoy,
                restore,
                outcome,
            } => {
                // The response side's `when:` conditions, with the model
                // the body named: decided once for the whole response.
                self.response
                    .conditions(&ctx, outcome.model_requested.as_deref());
                let check =
                    decision::budget_check(&self.policy, &ctx, outcome.model_requested.as_deref());
                let check = check.as_ref().map(|k| (&ctx, k));
                if let Some(refusal) = self.admit(check, outcome).await {
                    return refusal;
                }
                if usage_by_envoy {
                    let md = self.telemetry.on_usage_by_envoy();
                    self.queue_metadata(md);
                    // Budgets left to the access log (`debit: AccessLog`):
                    // the counters its report is added to go with the mark.
                    if let Some(pass) = self.budget.take().filter(|p| !p.debit.is_empty()) {
                        let keys = decision::budget_debit_keys(&pass);
                        self.queue_metadata(crate::telemetry::budget_debits_metadata(&keys));
                    }
                }
                if let Some(restore) = restore {
                    self.response.restore(restore);
                }
                if !read_response {
                    // The stream ends with this answer and Envoy passes the
                    // response untouched.
                    self.response.skip();
                }
                // A held-back STREAMED body must be re-emitted whole; a
                // BUFFERED one only when it changed.
                let new_body = match (replacement, held_back) {
                    (Some(r), _) => r,
                    (None, true) => body.into(),
                    (None, false) => return mutation::request_body(None),
                };
                // A decoded body goes out decoded: drop its content-encoding.
                let remove_headers = if ctx.content_encoding.is_some() {
                    vec!["content-encoding".to_owned()]
                } else {
                    Vec::new()
                };
                mutation::request_body(Some(mutation::body_replaced(
                    new_body,
                    !streamed,
                    remove_headers,
                )))
            }
            BodyDecision::Reply(reply) => self.refuse(reply),
        }
    }
}

fn too_large(ctx: &RequestCtx) -> Reply {
    let message =
        format!("the request body is larger than promptgate inspects ({MAX_BODY_BYTES} bytes)");
    decision::refusal(
        Some(ctx),
        ErrorKind::TooLarge,
        413,
        &message,
        "promptgate_body_too_large",
    )
}
