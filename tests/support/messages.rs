//! ext_proc messages as Envoy sends them, built in memory, for the
//! benchmarks that drive promptgate's state machine or its gRPC port
//! without Envoy (`benches/hot_path.rs`, `benches/tracing_overhead.rs`,
//! `tests/mtls.rs`).

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    processing_request, HttpBody, HttpHeaders, ProcessingRequest,
};

/// One header as Envoy sends it (`raw_value`).
pub fn header(k: &str, v: &str) -> HeaderValue {
    HeaderValue {
        key: k.into(),
        raw_value: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// Request headers (`name`, `value`), a body to follow.
pub fn request_headers(headers: &[(&str, &str)]) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::RequestHeaders(HttpHeaders {
            headers: Some(HeaderMap {
                headers: headers.iter().map(|(k, v)| header(k, v)).collect(),
            }),
            end_of_stream: false,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The request headers of a Claude Code Messages request (its own header
/// set), `x-request-id` = `request_id`; a body follows.
pub fn claude_code_headers(request_id: &str) -> ProcessingRequest {
    request_headers(&[
        (":method", "POST"),
        (":path", "/v1/messages?beta=true"),
        (":authority", "127.0.0.1:8080"),
        (":scheme", "http"),
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("anthropic-version", "2023-06-01"),
        (
            "anthropic-beta",
            "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14",
        ),
        ("user-agent", "claude-cli/2.0.0 (external, cli)"),
        ("x-api-key", "sk-client-key"),
        ("x-app", "cli"),
        ("x-stainless-lang", "js"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", request_id),
    ])
}

/// A whole buffered request body.
pub fn request_body(body: &[u8]) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::RequestBody(HttpBody {
            body: body.to_vec(),
            end_of_stream: true,
            ..Default::default()
        })),
        ..Default::default()
    }
}
