//! Envoy's ext_proc protos out of the decision core's answers: header and
//! body mutations, immediate responses, and reading request headers.

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation, processing_response, BodyMutation, BodyResponse, CommonResponse, HeaderMutation,
    HttpHeaders, ImmediateResponse,
};

use crate::decision::{HeaderChanges, Reply};

/// A header's value (Envoy sends keys lower-case; matched case-insensitively).
pub(super) fn find_header<'h>(h: &'h HttpHeaders, name: &str) -> Option<&'h str> {
    h.headers
        .as_ref()?
        .headers
        .iter()
        .find(|hv| hv.key.eq_ignore_ascii_case(name))
        .map(header_str)
}

/// `:status` of a response headers message (0 when absent or garbled).
pub(super) fn response_status(h: &HttpHeaders) -> u16 {
    find_header(h, ":status")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub(super) fn header_str(hv: &HeaderValue) -> &str {
    if hv.raw_value.is_empty() {
        hv.value.as_str()
    } else {
        std::str::from_utf8(&hv.raw_value).unwrap_or("")
    }
}

pub(super) fn set_header(key: &str, value: Vec<u8>) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            // Envoy reads mutations from raw_value; `value` would arrive empty.
            raw_value: value,
            ..HeaderValue::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    }
}

pub(super) fn header_mutation(changes: &HeaderChanges) -> Option<HeaderMutation> {
    if changes.is_empty() {
        return None;
    }
    Some(HeaderMutation {
        set_headers: changes
            .set
            .iter()
            .map(|(k, v)| set_header(k, v.clone()))
            .collect(),
        remove_headers: changes.remove.iter().map(|h| (*h).to_owned()).collect(),
    })
}

/// The `content-length` header set to `len`.
fn content_length(len: usize) -> HeaderValueOption {
    set_header("content-length", len.to_string().into_bytes())
}

/// A body answer that replaces the body (`Mutation::Body`), with the
/// header changes it needs.
pub(super) fn body_replaced(
    body: Vec<u8>,
    set_content_length: bool,
    remove_headers: Vec<String>,
) -> CommonResponse {
    let header_mutation =
        (set_content_length || !remove_headers.is_empty()).then(|| HeaderMutation {
            set_headers: if set_content_length {
                vec![content_length(body.len())]
            } else {
                Vec::new()
            },
            remove_headers,
        });
    CommonResponse {
        header_mutation,
        body_mutation: Some(BodyMutation {
            mutation: Some(body_mutation::Mutation::Body(body)),
        }),
        ..CommonResponse::default()
    }
}

/// A body answer that holds the chunk back (`ClearBody`).
pub(super) fn body_cleared() -> CommonResponse {
    CommonResponse {
        body_mutation: Some(BodyMutation {
            mutation: Some(body_mutation::Mutation::ClearBody(true)),
        }),
        ..CommonResponse::default()
    }
}

pub(super) fn request_body(response: Option<CommonResponse>) -> processing_response::Response {
    processing_response::Response::RequestBody(BodyResponse { response })
}

pub(super) fn response_body(response: Option<CommonResponse>) -> processing_response::Response {
    processing_response::Response::ResponseBody(BodyResponse { response })
}

/// The immediate response carrying a decision's reply.
pub(super) fn immediate(reply: Reply) -> ImmediateResponse {
    ImmediateResponse {
        status: Some(HttpStatus {
            code: reply.status as i32,
        }),
        headers: Some(HeaderMutation {
            set_headers: std::iter::once(set_header("content-type", b"application/json".to_vec()))
                .chain(
                    reply
                        .headers
                        .iter()
                        .map(|(k, v)| set_header(k, v.as_bytes().to_vec())),
                )
                .collect(),
            remove_headers: Vec::new(),
        }),
        body: reply.body,
        grpc_status: None,
        details: reply.details.to_owned(),
    }
}
