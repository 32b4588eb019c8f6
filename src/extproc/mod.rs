//! The Envoy ext_proc adapter: the gRPC service, one state machine per
//! stream ([`StreamState`], in `state.rs`), and the protos built from the
//! decision core's answers (`mutation.rs`).
//!
//! It turns `ProcessingRequest`s into calls of the decision core and the
//! core's decisions into `ProcessingResponse`s; it decides nothing. Protocol
//! rules enforced here: phases arrive in order (request headers, body,
//! trailers, response headers, body, trailers; skipped phases allowed), each
//! message gets exactly one answer of the matching kind, and anything out of
//! order ends the stream with a gRPC error status — never a panic.

pub mod claims;
pub mod codec;
pub mod grpc;
mod mutation;
mod phase;
mod state;

pub use codec::Inbound;
pub use grpc::ExtProcServer;
pub use phase::Phase;
pub use state::StreamState;

use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse;
use futures_util::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::decision::GatewayDoes;
use crate::policy::Policy;
use crate::telemetry::StreamTelemetry;

/// gRPC metadata key with which Envoy names the backend of a route.
pub const BACKEND_METADATA: &str = "x-promptgate-backend";
/// gRPC metadata with which Envoy's config says it adds the remaining
/// budget headers itself (`envoy`: `response_headers_to_add` from the
/// `promptgate` metadata), so promptgate skips the response headers for them.
pub const BUDGET_HEADERS_METADATA: &str = "x-promptgate-budget-headers";
/// gRPC metadata with which Envoy's config says it reads a streamed
/// answer's token usage itself and reports it to promptgate's access-log
/// service (`envoy`: `sse_to_metadata` and the `http_grpc` access log),
/// so promptgate does not read such an answer for its usage.
pub const USAGE_METADATA: &str = "x-promptgate-usage";
/// gRPC metadata with which Envoy's config says it reads a whole JSON
/// answer's token usage too (`envoy`: `json_to_metadata` into the same
/// metadata, reported by the same access log).
pub const JSON_USAGE_METADATA: &str = "x-promptgate-json-usage";

/// The ext_proc gRPC service.
#[derive(Clone)]
pub struct ExtProcService {
    policy: Arc<ArcSwap<Policy>>,
}

impl ExtProcService {
    pub fn new(policy: Arc<ArcSwap<Policy>>) -> Self {
        ExtProcService { policy }
    }
}

pub(crate) type ResponseStream =
    Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

impl ExtProcService {
    /// One ext_proc stream (= one HTTP request): its messages through a
    /// [`StreamState`], each answered in order.
    pub async fn process(
        &self,
        request: Request<Streaming<Inbound>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let hint = request
            .metadata()
            .get(BACKEND_METADATA)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // A stream keeps the policy it started with, whatever reloads meanwhile.
        let mut machine = StreamState::new(self.policy.load_full(), hint);
        // What Envoy's config says it does itself (`<key>: envoy`).
        let says_envoy = |key: &str| {
            request
                .metadata()
                .get(key)
                .is_some_and(|v| v.as_bytes() == b"envoy")
        };
        machine.gateway_does = GatewayDoes {
            streams: says_envoy(USAGE_METADATA),
            json: says_envoy(JSON_USAGE_METADATA),
            budget_headers: says_envoy(BUDGET_HEADERS_METADATA),
        };
        machine.telemetry = StreamTelemetry::start(request.metadata());
        machine.telemetry.defer_records();
        let inbound = request.into_inner();
        let out = futures_util::stream::unfold(Some((inbound, machine)), |state| async move {
            let (mut inbound, mut machine) = state?;
            match inbound.message().await {
                Ok(Some(msg)) => match machine.handle(msg).await {
                    // Nothing more to do for this request: close the stream
                    // (OK status); Envoy goes on without the processor, and
                    // no stream lingers for the rest of a passthrough or an
                    // unread response (cheaper drains and restarts). The
                    // stream's records end after the answer is sent.
                    Ok(resp) if machine.finished() => {
                        after_answer(move || drop(machine));
                        Some((Ok(resp), None))
                    }
                    Ok(resp) => {
                        if let Some(records) = machine.telemetry.take_deferred() {
                            after_answer(move || records.run());
                        }
                        Some((Ok(resp), Some((inbound, machine))))
                    }
                    Err(status) => Some((Err(status), None)),
                },
                Ok(None) => None,
                Err(status) => {
                    tracing::debug!(code = ?status.code(), error = status.message(), "ext_proc stream broke");
                    None
                }
            }
        });
        Ok(Response::new(Box::pin(out)))
    }
}

/// Runs `work` (records of a decision already answered) once the answer
/// is on its way: a task of its own that first yields, so
/// the connection task that writes the answer to Envoy runs before it.
/// Records kept in place held every answer up by their cost (a log line,
/// metrics, the stream's end: ~3 % of the server's CPU, all before the
/// answer left). Outside a Tokio runtime `work` runs at once.
fn after_answer(work: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(async move {
                tokio::task::yield_now().await;
                work();
            });
        }
        Err(_) => work(),
    }
}

/// Namespace of promptgate's dynamic metadata in Envoy (listed in the
/// filter's `metadata_options.receiving_namespaces.untyped`).
pub use crate::telemetry::METADATA_NAMESPACE;

#[cfg(test)]
mod tests;
