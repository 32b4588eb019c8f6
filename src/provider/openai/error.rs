//! OpenAI errors: the JSON error body (its `code` named by why promptgate
//! answers) and the in-stream error chunk, then `[DONE]`, that ends a
//! rejected or aborted stream.

use serde_json::json;

use crate::provider::json::json_string;
use crate::provider::ErrorKind;

/// A Chat Completions error body: `{"error":{message, type, param, code}}`.
pub(crate) fn body(kind: ErrorKind, _status: u16, message: &str) -> Vec<u8> {
    let (ty, code) = match kind {
        ErrorKind::Guard => ("invalid_request_error", "content_policy_violation"),
        ErrorKind::BadRequest => ("invalid_request_error", "invalid_request_body"),
        ErrorKind::TooLarge => ("invalid_request_error", "request_too_large"),
        ErrorKind::UnsupportedEncoding => ("invalid_request_error", "unsupported_content_encoding"),
        ErrorKind::Gateway => ("server_error", "gateway_error"),
        ErrorKind::Unauthenticated => ("invalid_request_error", "invalid_api_key"),
        ErrorKind::RateLimited => ("requests", "rate_limit_exceeded"),
    };
    let value = json!({"error": {"message": message, "type": ty, "param": null, "code": code}});
    serde_json::to_vec(&value).expect("json values always serialise")
}

/// An error chunk of type `ty` and code `code` carrying `message`, then
/// `[DONE]`.
fn error_event(ty: &str, code: &str, message: &str) -> Vec<u8> {
    format!(
        "data: {{\"error\":{{\"message\":{},\"type\":\"{ty}\",\"code\":\"{code}\"}}}}\n\ndata: [DONE]\n\n",
        json_string(message)
    )
    .into_bytes()
}

/// The chunk ending a stream a guard rejected: `content_policy_violation`.
pub(crate) fn rejection_event(message: &str) -> Vec<u8> {
    error_event("invalid_request_error", "content_policy_violation", message)
}

/// The chunk ending a stream the gateway gave up on: a `gateway_error`.
pub(crate) fn abort_event(message: &str) -> Vec<u8> {
    error_event("server_error", "gateway_error", message)
}
