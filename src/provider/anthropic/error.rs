//! Anthropic errors: the JSON error body (its `type` named by the HTTP
//! status) and the in-stream `error` event that ends a rejected or
//! aborted stream.

use serde_json::json;

use crate::provider::json::json_string;
use crate::provider::ErrorKind;

/// A Messages-API error body: `{"type":"error","error":{type, message}}`.
pub(crate) fn body(_kind: ErrorKind, status: u16, message: &str) -> Vec<u8> {
    let ty = match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    };
    let value = json!({"type": "error", "error": {"type": ty, "message": message}});
    serde_json::to_vec(&value).expect("json values always serialise")
}

/// An `error` event of type `ty` carrying `message`.
fn error_event(ty: &str, message: &str) -> Vec<u8> {
    format!(
        "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"{ty}\",\"message\":{}}}}}\n\n",
        json_string(message)
    )
    .into_bytes()
}

/// The event ending a stream a guard rejected: a `permission_error`.
pub(crate) fn rejection_event(message: &str) -> Vec<u8> {
    error_event("permission_error", message)
}

/// The event ending a stream the gateway gave up on: an `api_error`.
pub(crate) fn abort_event(message: &str) -> Vec<u8> {
    error_event("api_error", message)
}
