//! Provider models: which text of a request is scanned, how a body is
//! patched, how a response (streamed or not) is guarded, what an error
//! looks like and how credentials are sent.
//!
//! Laid out by dialect, then by job:
//! * [`Dialect`] (`dialect.rs`) — the one place that dispatches on the
//!   provider API; each dialect folder (`anthropic/`, `openai/`) implements
//!   its `request`, `stream`, `response`, `usage`, `error` and `auth`.
//! * Shared, dialect-neutral: `request.rs` (segments, locations, kinds,
//!   the parse entry), `model.rs` (model pinning), `auth.rs`
//!   ([`Credential`]), `error.rs` ([`ErrorKind`], [`error_body`]),
//!   `usage.rs` ([`Usage`]), [`encoding`] (content codings), `json/`
//!   (literals, skeletons, escapes, patching), [`sse`] (the SSE framer),
//!   [`stream`] (the stream engine and its hold-back window) and
//!   `response.rs` (the JSON response guard).

pub(crate) mod anthropic;
mod auth;
mod dialect;
pub mod encoding;
mod error;
pub(crate) mod json;
mod model;
pub(crate) mod openai;
mod request;
mod response;
pub mod restore;
pub mod sse;
pub mod stream;
pub mod tool_call;
pub mod tool_json;
mod usage;

pub use auth::Credential;
pub use dialect::Dialect;
pub use error::{error_body, ErrorKind};
pub use json::literal;
pub use model::{model_splice, Splice};
pub use request::{
    parse_request, remove_tools, BodyError, KindSet, Location, OfferedTool, ParsedRequest,
    PartKind, Role, TextSegment,
};
pub use usage::Usage;
