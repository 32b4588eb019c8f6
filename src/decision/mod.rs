//! The decision core: the only place that decides, for both directions.
//!
//! * [`request_headers`] — backend and route, auth injection, what of the
//!   body and the response is read ([`RequestCtx`]).
//! * [`request_body`] — the one entry for a request body: decoding, the
//!   dialect's request model, local and external guards, masks, the model
//!   override.
//! * [`ResponseDecider`] — the response side: how a response is read, and
//!   what each chunk becomes (guarded SSE, guarded JSON, usage read).
//!
//! Decisions are typed ([`Verdict`], [`HeadersDecision`], [`BodyDecision`],
//! [`ChunkDecision`]); nothing here knows of gRPC. The ext_proc adapter,
//! the `eval` command and the benchmarks call these same entries.

mod budget;
mod conditions;
pub mod identity;
mod outcome;
mod request_body;
mod request_headers;
mod response;
mod usage_read;

pub use budget::{
    budget_check, budget_debit_keys, budget_debits, budget_verdict, counter_key, reported_debits,
    usd, BudgetCheck, BudgetPass, BudgetVerdict, UNKNOWN_BUCKET,
};
pub use outcome::{gateway_error, refusal, reply, Fired, Outcome, Reply, Verdict, MAX_FIRED};
pub use request_body::{request_body, BodyDecision, MAX_BODY_BYTES};
pub use request_headers::{
    request_headers, GatewayDoes, HeaderChanges, HeadersDecision, RequestCtx, RequestHead,
    ResponseRead,
};
pub use response::{
    BodyMode, ChunkAnswer, ChunkDecision, ResponseDecider, ResponseHeadersDecision, ResponseRecord,
};

#[cfg(test)]
mod tests;
