//! promptgate: the policy brain for AI traffic.
//!
//! The crate is split the way ripgrep splits engine and searcher:
//!
//! * [`policy`] — the config model (native and agentgateway shapes), its
//!   validation with YAML paths, and compilation into an immutable [`policy::Policy`].
//! * [`guard`] — compiled guards (RegexSet) and scanning of extracted text.
//! * [`provider`] — Anthropic / OpenAI request models: which text is scanned,
//!   how a body is patched, error bodies, auth headers.
//! * [`decision`] — the pure decision core: request head and body in,
//!   decisions out. Knows nothing of gRPC.
//! * [`extproc`] — the thin Envoy ext_proc adapter: one state machine per stream.
//! * [`telemetry`] — logs, traces (OTLP), Prometheus metrics and the admin
//!   port, Envoy dynamic metadata; the per-request recorder the adapter calls.
//! * [`cli`] — the command line (`serve`, `check`, `eval`).
//! * [`lifecycle`] / [`reload`] — graceful drain on SIGTERM; hot reload on
//!   SIGHUP and on changes of the policy or secret files.
//! * [`tls`] — the ext_proc port over mutual TLS (client certificates from
//!   one CA), its certificates reloaded on change.

pub mod accesslog;
pub mod audit;
pub mod budget;
pub mod cli;
pub mod contract;
pub mod decision;
pub mod extproc;
pub mod grpc_method;
pub mod guard;
pub mod lifecycle;
pub mod path;
pub mod policy;
pub mod provider;
pub mod reload;
pub mod server;
pub mod telemetry;
pub mod tls;

/// Code generated from `proto/promptgate/guard/v1/guard.proto`: the contract
/// of an external guard service.
pub mod guard_proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("promptgate.guard.v1");
}
