//! What promptgate expects of the gateway's ext_proc filter.
//!
//! promptgate answers every phase Envoy sends, but it is only *efficient and
//! complete* with this configuration: request and response headers sent,
//! bodies not sent (NONE) and trailers skipped by default, and
//! `allow_mode_override: true` so that promptgate can raise a body mode for
//! the requests (and responses) it reads and skip the headers it does not
//! need (a `mode_override` cannot lower a body mode back to NONE: it is
//! proto3's zero). Fail closed: `failure_mode_allow: false`.
//!
//! Every shipped gateway config (deploy/envoy, the Envoy Gateway
//! EnvoyExtensionPolicy, the Istio EnvoyFilter) is checked against this in
//! tests/manifests.rs, together with the overrides promptgate actually sends.

use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::{
    BodySendMode, HeaderSendMode,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;

/// The `processing_mode` the filter must be configured with.
pub fn configured_mode() -> ProcessingMode {
    ProcessingMode {
        request_header_mode: HeaderSendMode::Send as i32,
        response_header_mode: HeaderSendMode::Send as i32,
        request_body_mode: BodySendMode::None as i32,
        response_body_mode: BodySendMode::None as i32,
        request_trailer_mode: HeaderSendMode::Skip as i32,
        response_trailer_mode: HeaderSendMode::Skip as i32,
    }
}

/// `allow_mode_override` must be true: promptgate raises body modes per request.
pub const ALLOW_MODE_OVERRIDE: bool = true;

/// `failure_mode_allow` must be false: no decision, no traffic.
pub const FAILURE_MODE_ALLOW: bool = false;

/// gRPC initial metadata naming the backend (see `extproc::BACKEND_METADATA`).
pub const BACKEND_METADATA: &str = crate::extproc::BACKEND_METADATA;
